"""``ntksym rmt``: linear-width CK/NTK limit spectra (Fan & Wang 2020, arXiv 2005.11879).

γ₀ = n/d₀ (data X₀ ∈ ℝ^{d₀×n}, iid N(0, 1/d₀) entries) and γ_ℓ = n/d_ℓ for the hidden widths d₁..d_L, in
Fan & Wang's normalization X_ℓ = σ̃(W_ℓX_{ℓ−1})/√d_ℓ, W_ℓ iid N(0,1); σ̃ is σ centered and normalized
automatically.  ``--gammas G0`` alone means L = 0 (the law of X₀ᵀX₀, Marchenko–Pastur).
"""
from __future__ import annotations

import json
import math

from ntksym.errors import InputError
from ntksym.finite.rmt import MAX_GAMMA

MAX_GRID = 100_000


def register(sub) -> dict:
    from ntksym.cli import _activation_args

    p = sub.add_parser("rmt", help="linear-width CK/NTK limit spectra (Fan & Wang 2020) as a density on a grid",
                       description=__doc__)
    _activation_args(p)
    p.add_argument("--kernel", choices=["ck", "ntk"], default="ck",
                   help="conjugate kernel X_LᵀX_L or NTK (Fan & Wang's normalization)")
    p.add_argument("--gammas", required=True, metavar="G0,G1,...,GL",
                   help=f"γ₀ = n/d₀ then γ_ℓ = n/d_ℓ per hidden layer, each in (0, {MAX_GAMMA:g}]; "
                        f"a single value means L = 0; at most {MAX_GAMMAS} values")
    p.add_argument("--grid", type=int, default=400, help=f"number of grid points (10..{MAX_GRID})")
    p.add_argument("--eta", type=float, default=None,
                   help="imaginary part η of z = x + iη; density = Im m/π (default 2e-3 × grid width)")
    p.add_argument("--xmin", type=float, default=None, help="grid start (default: support found automatically)")
    p.add_argument("--xmax", type=float, default=None, help="grid end")
    p.add_argument("--compare", type=int, default=None, metavar="N",
                   help="also sample one network with n = N samples and report the KS distance")
    p.add_argument("--seed", type=int, default=0, help="seed for --compare")
    p.add_argument("--plot", default=None, help="write a figure (.png/.pdf/.svg; needs matplotlib and --compare)")
    p.add_argument("--force", action="store_true", help="replace an existing --plot file")
    p.add_argument("--json", action="store_true", help='print {"x": [...], "density": [...], ...}')
    return {"rmt": cmd_rmt}


MAX_GAMMAS = 11   # input ratio plus at most 10 hidden layers (deeper chains: see the issue-11 note)


def parse_gammas(text: str) -> list[float]:
    parts = [t.strip() for t in str(text).split(",")]
    if len(parts) > MAX_GAMMAS:
        raise InputError(f"--gammas: at most {MAX_GAMMAS} values (G0..GL), got {len(parts)}")
    if not parts or any(not t for t in parts):
        raise InputError(f"--gammas expects comma-separated numbers G0,G1,...,GL, got {text!r}")
    out = []
    for t in parts:
        try:
            v = float(t)
        except ValueError:
            raise InputError(f"--gammas: {t!r} is not a number") from None
        if not 0 < v <= MAX_GAMMA:  # NaN fails too
            raise InputError(f"--gammas: each γ must be positive and at most {MAX_GAMMA:g}, got {t}")
        out.append(v)
    return out


def cmd_rmt(args) -> int:
    gammas = parse_gammas(args.gammas)
    if not 10 <= args.grid <= MAX_GRID:
        raise InputError(f"--grid must be in [10, {MAX_GRID}], got {args.grid}")
    if args.eta is not None and not (math.isfinite(args.eta) and args.eta > 0):
        raise InputError(f"--eta must be positive and finite, got {args.eta}")
    for name in ("xmin", "xmax"):
        v = getattr(args, name)
        if v is not None and not math.isfinite(v):
            raise InputError(f"--{name} must be finite, got {v}")
    if args.xmin is not None and args.xmax is not None and args.xmin >= args.xmax:
        raise InputError(f"need --xmin < --xmax, got {args.xmin} >= {args.xmax}")
    if args.compare is not None and not 10 <= args.compare <= 8000:
        raise InputError(f"--compare must be in [10, 8000], got {args.compare}")
    if args.plot is not None and args.compare is None:
        raise InputError("--plot needs --compare N (the sampled eigenvalues to draw)")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    if args.plot is None:
        law, out = _run(args, gammas, None)
    else:
        from ntksym.finite.rmt_plots import figure_format
        from ntksym.outputs import claim
        figure_format(args.plot)
        with claim(args.plot, "file", args.force) as plot:   # claimed before the work
            law, out = _run(args, gammas, plot)
    print(json.dumps(out) if args.json else _table(law, out))
    return 0


def _run(args, gammas, plot):
    """(the law, its JSON result); the figure goes to ``plot`` (a held claim) when given."""
    from ntksym.cli import _params
    from ntksym.finite.rmt import limit_spectrum, normalize_activation

    act = normalize_activation(args.activation, _params(args.param))
    law = limit_spectrum(act, gammas, kernel=args.kernel, grid=args.grid, eta=args.eta, xmin=args.xmin,
                         xmax=args.xmax)
    out = law.to_json()
    sampled = None
    if args.compare is not None:
        from ntksym.finite.rmt_sample import ks_distance, sample_spectra
        s = sample_spectra(act, gammas, args.compare, seed=args.seed, ntk=args.kernel == "ntk")
        sampled = s.ck if args.kernel == "ck" else s.ntk
        out["comparison"] = {"n": args.compare, "widths": list(s.widths), "seed": args.seed,
                             "ks": ks_distance(sampled, law),
                             "ks_note": "both CDFs Cauchy(η)-smoothed with the law's η"}
        if args.kernel == "ntk":
            out["comparison"]["ks_lemma35"] = ks_distance(s.lemma35, law)
    if plot is not None:
        from ntksym.finite.rmt_plots import plot_spectrum
        plot_spectrum(law, sampled, plot, ks=out["comparison"]["ks"])
    return law, out


def _table(law, out) -> str:
    c = law.constants
    lines = [f"{law.kernel.upper()} limit spectrum (Fan & Wang 2020), γ = ({', '.join(f'{g:g}' for g in law.gammas)}),"
             f" L = {c.depth}",
             f"  {law.normalization.split('; routes:')[0]}",
             f"  b = {c.b:.6g}, a_σ = {c.a_sigma:.6g}, r₊ = {c.r_plus:.6g}",
             f"  route: {law.route}", f"  {law.mu0}", f"  accuracy: {law.accuracy()}",
             f"  mass on grid {law.mass_on_grid:.6f}; with Cauchy tails and atoms {law.total_mass:.6f}"]
    for loc, mass in law.atoms:
        lines.append(f"  atom at {loc:.6g} with mass {mass:.6g} (not in the density column)")
    if "comparison" in out:
        cmp_ = out["comparison"]
        lines.append(f"  sampled n = {cmp_['n']}, widths {cmp_['widths']}: KS = {cmp_['ks']:.4g}"
                     + (f" (Lemma 3.5 matrix {cmp_['ks_lemma35']:.4g})" if "ks_lemma35" in cmp_ else ""))
    step = max(1, len(law.x) // 40)
    lines.append(f"  {'x':>12}  {'density':>12}" + (f"   (every {step}th grid point; --json for all)"
                                                   if step > 1 else ""))
    for i in range(0, len(law.x), step):
        lines.append(f"  {law.x[i]:12.6g}  {law.density[i]:12.6g}")
    return "\n".join(lines)
