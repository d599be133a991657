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
    q.add_argument("--json", action="store_true")
    return {"empirical": cmd_empirical, "dispersion": cmd_dispersion}


def _progress(flag) -> bool:
    return sys.stderr.isatty() if flag is None else bool(flag)


def _check_out_dir(path: str, suffixes=None) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"output directory does not exist: {directory}")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise InputError(f"output file must end in one of {', '.join(suffixes)}: {path}")


def _positive(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise InputError(f"--{name} must be >= {minimum}, got {value}")


def cmd_empirical(args) -> int:
    from ntksym.cli import _load, _params, _write_npz_atomic
    from ntksym.finite.montecarlo import monte_carlo

    _positive("depth", args.depth, 1)
    _positive("width", args.width, 1)
    _positive("samples", args.samples, 2)
    _positive("n-out", args.n_out, 1)
    _positive("seed", args.seed, 0)
    for name, v in (("sigma-w", args.sigma_w), ("sigma-b", args.sigma_b)):
        if not math.isfinite(v) or v < 0:
            raise InputError(f"--{name} must be finite and >= 0, got {v}")
    _check_out_dir(args.out, (".npz",))
    from ntksym.finite.empirical import _check_data
    x = _check_data(args.inputs, _load(args.inputs))  # 2-D, real, finite (InputError naming the file)
    stats = monte_carlo(args.activation, x, args.depth, args.width, args.sigma_w, args.sigma_b, args.samples,
                        args.seed, params=_params(args.param), parameterization=args.parameterization,
                        n_out=args.n_out, backend=args.backend, device=args.device,
                        progress=_progress(args.progress))
    _write_npz_atomic(args.out, **{k: np.asarray(v, dtype=np.float64) for k, v in stats.arrays().items()})
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
    from ntksym.finite import dispersion as th

    for M in args.width:
        _positive("width", M, 1)
    for L in args.depth:
        _positive("depth", L, 1)
    for s in args.sigma_w2:
        if not (math.isfinite(s) and s > 0):
            raise InputError(f"--sigma-w2 must be finite and > 0, got {s}")
    if args.samples not in (0,) and args.samples < 2:
        raise InputError(f"--samples must be 0 (theory only) or >= 2, got {args.samples}")
    _positive("seed", args.seed, 0)
    if args.plot:
        _check_out_dir(args.plot, (".pdf", ".png"))
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
    if args.plot:
        from ntksym.finite.plots import plot_dispersion
        lam_max = max(r["lam"] for r in rows)
        plot_dispersion(args.plot, comps, lam_max=lam_max, widths=sorted(set(args.width))[:1],
                        sigma_w2s=tuple(args.sigma_w2))
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            line = (f"M={r['M']:<5d} L={r['L']:<5d} σ_w²={r['sigma_w2']:<6g} {r['phase']:8s} λ={r['lam']:.4g}  "
                    f"E[Θ]={r['theory_mean']:.6g}  R={r['theory_ratio']:.6g}  limit={r['limit']:.6g}  "
                    f"exp(5λ)={r['hanin_nica']:.6g}")
            if "mc_ratio" in r:
                line += f"  MC: E[Θ]={r['mc_mean']:.6g}±{r['mc_mean_se']:.2g} R={r['mc_ratio']:.6g}±{r['mc_ratio_se']:.2g}"
            print(line)
    return 0
