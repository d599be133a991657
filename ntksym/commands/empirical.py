"""``ntksym empirical`` (Monte-Carlo empirical NTK/NNGP of finite MLPs) and ``ntksym dispersion``
(NTK dispersion theory of Seleznova & Kutyniok / Hanin & Nica next to Monte Carlo)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from ntksym.errors import InputError
from ntksym.finite.empirical import MAX_N_OUT, MAX_SAMPLES, MAX_WIDTH


def register(sub) -> dict:
    from ntksym.cli import _activation_args

    p = sub.add_parser("empirical", help="Monte-Carlo empirical NTK/NNGP of randomly initialised finite MLPs")
    _activation_args(p)
    p.add_argument("--depth", type=int, required=True, help="number of hidden layers L (activations)")
    p.add_argument("--width", type=int, required=True, help="hidden width M")
    p.add_argument("--sigma-w", type=float, default=1.0, help="weight standard deviation σ_w (W_std)")
    p.add_argument("--sigma-b", type=float, default=0.0, help="bias standard deviation σ_b (b_std)")
    p.add_argument("--parameterization", choices=["ntk", "standard"], default="ntk",
                   help="'ntk' (neural-tangents, default) or 'standard' (W ~ N(0, σ_w²/fan_in); biases trainable)")
    p.add_argument("--n-out", type=int, default=1, help="number of output units (kernels averaged over them)")
    p.add_argument("--inputs", required=True, help=".npy file, shape (n, d)")
    p.add_argument("--samples", type=int, required=True, help="number of random networks (>= 2)")
    p.add_argument("--seed", type=int, default=0, help="root seed (>= 0)")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--out", required=True, help="output .npz with ntk_mean, ntk_var, nngp_mean (n × n, float64)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    q = sub.add_parser("dispersion", help="ReLU NTK dispersion E[Θ²]/E[Θ]²: exact theory (and Monte Carlo)")
    q.add_argument("--width", type=int, nargs="+", required=True, help="width(s) M (= input dimension)")
    q.add_argument("--depth", type=int, nargs="+", required=True, help="depth(s) L")
    q.add_argument("--sigma-w2", type=float, nargs="+", default=[2.0], help="σ_w² value(s) (EOC: 2)")
    q.add_argument("--samples", type=int, default=0, help="Monte-Carlo networks per point (0: theory only)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    q.add_argument("--device", default=None)
    q.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    q.add_argument("--plot", default=None, help="write a figure (.pdf or .png; needs matplotlib)")
    q.add_argument("--force", action="store_true", help="replace an existing --plot file")
    q.add_argument("--json", action="store_true")
    return {"empirical": cmd_empirical, "dispersion": cmd_dispersion}


def _progress(flag) -> bool:
    return sys.stderr.isatty() if flag is None else bool(flag)


def _check_suffix(path: str, suffixes) -> None:
    if os.path.splitext(path)[1].lower() not in suffixes:
        raise InputError(f"output file must end in one of {', '.join(suffixes)}: {path}")


# Bounds of the numeric options: width, samples and outputs as in the API (MAX_WIDTH, MAX_SAMPLES, MAX_N_OUT
# of ntksym.finite.empirical); depth and σ as for the infinite-width network (ntksym.network).
MAX_SEED = 2**64 - 1
MAX_SIGMA_W2 = 1e12         # σ_w² of ``dispersion`` (σ_w ≤ 10⁶)
MAX_LAMBDA = 100            # depth/width of ``dispersion``: E[Θ²]/E[Θ]² ≈ exp(5λ) overflows beyond λ ≈ 140
MAX_CONFIGS = 1000          # width × depth × σ_w² combinations of ``dispersion``


def _bounded(name: str, value: int, minimum: int, maximum: int) -> None:
    if not minimum <= value <= maximum:
        raise InputError(f"--{name} must be in [{minimum}, {maximum}], got {value}")


def _sigma(name: str, v: float, maximum: float) -> None:
    if not 0 <= v <= maximum:  # NaN fails too
        raise InputError(f"--{name} must be a finite number in [0, {maximum:g}], got {v}")


def _check_mc_memory(n: int, d: int, depth: int, width: int, n_out: int = 1) -> None:
    from ntksym.finite.empirical import check_mc_memory
    check_mc_memory(n, d, depth, width, n_out)


def cmd_empirical(args) -> int:
    from ntksym.cli import _load, _params, _write_npz_atomic
    from ntksym.finite.montecarlo import monte_carlo

    from ntksym.network import MAX_DEPTH, MAX_SIGMA
    _bounded("depth", args.depth, 1, MAX_DEPTH)
    _bounded("width", args.width, 1, MAX_WIDTH)
    _bounded("samples", args.samples, 2, MAX_SAMPLES)
    _bounded("n-out", args.n_out, 1, MAX_N_OUT)
    _bounded("seed", args.seed, 0, MAX_SEED)
    for name, v in (("sigma-w", args.sigma_w), ("sigma-b", args.sigma_b)):
        _sigma(name, v, MAX_SIGMA)
    _check_suffix(args.out, (".npz",))
    from ntksym.finite.empirical import _check_data
    from ntksym.outputs import claim
    with claim(args.out, "file", args.force) as out:   # claimed before the sampling
        x = _check_data(args.inputs, _load(args.inputs))  # 2-D, real, finite (InputError naming the file)
        _check_mc_memory(x.shape[0], x.shape[1], args.depth, args.width, args.n_out)
        stats = monte_carlo(args.activation, x, args.depth, args.width, args.sigma_w, args.sigma_b, args.samples,
                            args.seed, params=_params(args.param), parameterization=args.parameterization,
                            n_out=args.n_out, backend=args.backend, device=args.device,
                            progress=_progress(args.progress))
        _write_npz_atomic(out, **{k: np.asarray(v, dtype=np.float64) for k, v in stats.arrays().items()})
    summary = {"out": args.out, "samples": stats.samples, "seconds": stats.seconds, "backend": stats.backend,
               "device": stats.device, "dispersion_diag": _num(stats.dispersion_diag),
               "dispersion_diag_se": _num(stats.dispersion_diag_se),
               "dispersion_offdiag": _num(stats.dispersion_offdiag),
               "dispersion_offdiag_se": _num(stats.dispersion_offdiag_se)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {args.out}: {stats.samples} networks in {stats.seconds:.2f} s ({stats.backend}, "
              f"{stats.device}); E[Θ²]/E[Θ]² diagonal {stats.dispersion_diag:.6g} ± {stats.dispersion_diag_se:.2g}")
    return 0


def _num(v: float):
    return None if not math.isfinite(v) else float(v)


def cmd_dispersion(args) -> int:
    from ntksym.network import MAX_DEPTH
    for M in args.width:
        _bounded("width", M, 1, MAX_WIDTH)
    for L in args.depth:
        _bounded("depth", L, 1, MAX_DEPTH)
    for s in args.sigma_w2:
        if not (0 < s <= MAX_SIGMA_W2):
            raise InputError(f"--sigma-w2 must be a finite number in (0, {MAX_SIGMA_W2:g}], got {s}")
    if args.samples != 0:
        _bounded("samples", args.samples, 2, MAX_SAMPLES)  # 0 means theory only
    _bounded("seed", args.seed, 0, MAX_SEED)
    if len(args.width) * len(args.depth) * len(args.sigma_w2) > MAX_CONFIGS:
        raise InputError(f"at most {MAX_CONFIGS} (width, depth, sigma-w2) combinations, got "
                         f"{len(args.width) * len(args.depth) * len(args.sigma_w2)}")
    if max(args.depth) / min(args.width) > MAX_LAMBDA:
        raise InputError(f"depth/width must be at most {MAX_LAMBDA} (the dispersion grows like exp(5 depth/width)), "
                         f"got {max(args.depth)}/{min(args.width)}")
    if args.samples:
        for M in args.width:  # the Monte Carlo draws networks of width M on inputs of dimension M
            _check_mc_memory(1, M, max(args.depth), M)
    if args.plot:
        _check_suffix(args.plot, (".pdf", ".png"))
        from ntksym.outputs import claim
        with claim(args.plot, "file", args.force) as out:   # claimed before the work
            rows = _dispersion(args, out)
    else:
        rows = _dispersion(args, None)
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            r = {k: (math.inf if v is None else v) for k, v in r.items()}  # JSON's null is an overflow
            line = (f"M={r['M']:<5d} L={r['L']:<5d} σ_w²={r['sigma_w2']:<6g} {r['phase']:8s} λ={r['lam']:.4g}  "
                    f"E[Θ]={r['theory_mean']:.6g}  R={r['theory_ratio']:.6g}  limit={r['limit']:.6g}  "
                    f"exp(5λ)={r['hanin_nica']:.6g}")
            if "mc_ratio" in r:
                line += f"  MC: E[Θ]={r['mc_mean']:.6g}±{r['mc_mean_se']:.2g} R={r['mc_ratio']:.6g}±{r['mc_ratio_se']:.2g}"
            print(line)
    return 0


def _dispersion(args, plot) -> list[dict]:
    """The table rows; the figure is written to ``plot`` (a held claim) when given."""
    from ntksym.finite import dispersion as th

    configs = [(M, L, s) for s in args.sigma_w2 for M in args.width for L in args.depth]
    rows = []
    if args.samples:
        comps = th.compare(configs, args.samples, args.seed, args.backend, args.device, _progress(args.progress))
        rows = [c.as_dict() for c in comps]
    else:
        comps = []
        for M, L, s in configs:
            t = th.exact_moments(M, L, s)
            rows.append({"M": M, "L": L, "sigma_w2": s, "phase": th.relu_phase(s), "lam": L / M,
                         "theory_mean": t.mean, "theory_ratio": t.ratio,
                         "limit": th.continuum_limit(L / M, s, M), "hanin_nica": th.hanin_nica(L / M)})
    rows = [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    if plot is not None:
        from ntksym.finite.plots import plot_dispersion
        lam_max = max(r["lam"] for r in rows)
        plot_dispersion(plot, comps, lam_max=lam_max, widths=sorted(set(args.width))[:1],
                        sigma_w2s=tuple(args.sigma_w2))
    return rows
