"""Monte-Carlo cost of the empirical NTK: samples (networks) per second.

    python benchmarks/mc_speed.py [--repeat 3] [--quick] [--samples 4]

* Size: width 1000, depth 10, n = 100 inputs (d = 100), one output, ReLU,
  'ntk' parameterization; ``--quick``: width 200, depth 5, n = 50.
* Timed: ``ntksym.finite.montecarlo.monte_carlo`` with the NumPy backend and
  the torch backend (CPU, and CUDA when a GPU is present), each a full MC
  step: draw the weights, forward, batched backward, Gram accumulation.
* Baselines in the same run, on the same network:
  - per-input loop: forward and backward one input at a time
    (matrix-vector products), then Θ_ij = Σ_l ⟨δ_i, δ_j⟩(a_l²⟨h_i, h_j⟩ + c²);
  - torch.func: ``jacrev`` of the output over all parameters, Θ = J Jᵀ
    (only when the Jacobian, n × P float64, fits in 2 GB).
  Each baseline's NTK is compared with the batched one (max relative difference).
Medians over ``--repeat`` runs and ratios are printed.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

import ntksym
from ntksym.finite.empirical import empirical_kernels, sample_network
from ntksym.finite.montecarlo import monte_carlo


def median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def per_input_loop(net, X, phi, dphi):
    """The straightforward per-input gradient computation (no batching over inputs)."""
    a, c = net.multipliers()
    L = net.depth
    hs, ds = [], []
    for x in X:
        h, pre, ins = x, [], [x]
        for l in range(L):
            z = a[l] * (net.weights[l] @ h) + c * net.biases[l]
            pre.append(z)
            h = phi(z)
            ins.append(h)
        delta = a[L] * net.weights[L][0] * dphi(pre[L - 1])
        deltas = [None] * L
        for l in range(L - 1, -1, -1):
            deltas[l] = delta
            if l > 0:
                delta = (net.weights[l].T @ delta) * a[l] * dphi(pre[l - 1])
        hs.append(ins)
        ds.append(deltas)
    n = len(X)
    ntk = np.empty((n, n))
    for i in range(n):
        for j in range(i + 1):
            v = a[L] ** 2 * (hs[i][L] @ hs[j][L]) + c ** 2
            for l in range(L):
                v += (ds[i][l] @ ds[j][l]) * (a[l] ** 2 * (hs[i][l] @ hs[j][l]) + c ** 2)
            ntk[i, j] = ntk[j, i] = v
    return ntk


def torch_func_ntk(net, X):
    import torch
    from torch.func import jacrev, vmap

    a, c = net.multipliers()
    params = {}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        params[f"w{l}"] = torch.tensor(np.array(w))
        params[f"b{l}"] = torch.tensor(np.array(b))

    class MLP(torch.nn.Module):
        def forward(self, x, p):
            h = x
            for l in range(net.depth):
                h = torch.relu(a[l] * (p[f"w{l}"] @ h) + c * p[f"b{l}"])
            return a[-1] * (p[f"w{net.depth}"] @ h) + c * p[f"b{net.depth}"]

    model = MLP()
    f = lambda p, x: model(x, p)[0]  # noqa: E731
    jac = vmap(jacrev(f), in_dims=(None, 0))(params, torch.tensor(X))
    flat = torch.cat([j.reshape(len(X), -1) for j in jac.values()], dim=1)
    return (flat @ flat.T).numpy()


def main():
    r = argparse.ArgumentParser()
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--samples", type=int, default=4, help="networks per timed MC run (>= 2)")
    r.add_argument("--quick", action="store_true", help="width 200, depth 5, n = 50")
    args = r.parse_args()
    width, depth, n = (200, 5, 50) if args.quick else (1000, 10, 100)
    d = n
    X = np.random.default_rng(0).standard_normal((n, d))
    act = ntksym.activation("relu")
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
    sw, sb = math.sqrt(2), 0.1
    print(f"MC cost: width {width}, depth {depth}, n = {n}, ReLU, float64, {args.samples} networks per run, "
          f"median of {args.repeat}")
    rows = {}

    def mc(backend, device=None):
        return monte_carlo(act, X, depth, width, sw, sb, args.samples, seed=0, backend=backend, device=device)

    t, _ = median_time(lambda: mc("numpy"), args.repeat)
    rows["numpy (batched)"] = args.samples / t
    try:
        import torch
        have_torch = True
    except ImportError:
        have_torch = False
    if have_torch:
        torch.set_default_dtype(torch.float64)
        t, _ = median_time(lambda: mc("torch", "cpu"), args.repeat)
        rows["torch cpu (batched)"] = args.samples / t
        if torch.cuda.is_available():
            mc("torch", "cuda")  # warm-up
            t, _ = median_time(lambda: (mc("torch", "cuda"), torch.cuda.synchronize()), args.repeat)
            rows["torch cuda (batched)"] = args.samples / t

    net = sample_network(depth, width, d, sw, sb, np.random.default_rng(1))
    ref = empirical_kernels(net, X, None, phi, dphi)[1]
    t_draw, _ = median_time(lambda: sample_network(depth, width, d, sw, sb, np.random.default_rng(1)), args.repeat)
    t_kern, _ = median_time(lambda: empirical_kernels(net, X, None, phi, dphi), args.repeat)
    t_loop, loop = median_time(lambda: per_input_loop(net, X, phi, dphi), max(1, args.repeat // 2))
    rows["baseline: per-input loop (numpy)"] = 1 / (t_loop + t_draw)
    print(f"  numpy per network: draw {t_draw:.3f} s, batched kernels {t_kern:.3f} s, per-input loop {t_loop:.3f} s")
    diffs = {"per-input loop": np.abs(loop - ref).max() / np.abs(ref).max()}
    n_params = net.n_params
    if have_torch and n * n_params * 8 <= 2 * 1024 ** 3:
        t_jac, jac = median_time(lambda: torch_func_ntk(net, X), max(1, args.repeat // 2))
        rows["baseline: torch.func jacrev J Jᵀ (cpu)"] = 1 / (t_jac + t_draw)
        diffs["torch.func"] = np.abs(jac - ref).max() / np.abs(ref).max()
    elif have_torch:
        print(f"  torch.func baseline skipped: Jacobian n × P = {n} × {n_params} float64 "
              f"= {n * n_params * 8 / 1024 ** 3:.1f} GB")
    base = rows["baseline: per-input loop (numpy)"]
    for name, rate in rows.items():
        print(f"  {name:40s} {rate:9.3f} samples/s   x{rate / base:7.2f} vs per-input loop")
    for name, diff in diffs.items():
        print(f"  agreement with the batched NTK, {name}: max rel. diff {diff:.1e}")


if __name__ == "__main__":
    main()
