"""Reproduce Seleznova & Kutyniok (ICML 2022): NTK dispersion against the depth-to-width ratio, per phase.

    python derivations/seleznova2022.py            # writes derivations/SELEZNOVA2022.md (+ .png figure)
    python derivations/seleznova2022.py --samples 1000 --no-figure   # quicker

Setup (the authors' code; FORMULAS.md §7): ReLU, standard parameterization W ~ N(0, σ_w²/fan_in) on
every layer, zero trainable biases, n_0 = M, ‖x‖ = 1, Θ = Σ_l ‖∂f/∂W^l‖² + ‖∂f/∂b^l‖².

1. Exact finite-(M, L) E[Θ] and R = E[Θ²]/E[Θ]² (transfer matrices over the exact scalar representation,
   :mod:`ntksym.finite.dispersion`) next to a direct Monte Carlo of the network, in the ordered
   (σ_w² = 1.5), EOC (2) and chaotic (2.5) phases, for λ = L/M up to 0.5 at M = 40.
2. The continuum limits R_EOC(λ), R_W(λ) (chaotic) and the ordered-phase limit against the exact
   values at growing M; Hanin & Nica's exp(5λ) law next to them.
3. A short training run per phase: full-batch GD (MSE, lr = 0.5·n/λ_max(Θ_0), 100 steps) and the
   relative NTK change ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

from ntksym.finite import dispersion as th

OUT = pathlib.Path(__file__).with_name("SELEZNOVA2022.md")
FIG = pathlib.Path(__file__).with_name("seleznova2022.png")
PHASES = [("ordered", 1.5), ("eoc", 2.0), ("chaotic", 2.5)]
M_MC = 40
DEPTHS = (2, 4, 8, 12, 16, 20)


def f(v, digits=4):
    return f"{v:.{digits}g}"


def monte_carlo_table(samples, seed):
    configs = [(M_MC, L, sw2) for _, sw2 in PHASES for L in DEPTHS]
    comps = []
    for i, cfg in enumerate(configs):
        comps += th.compare([cfg], samples=samples, seed=seed + i)
        print(f"  MC {i + 1}/{len(configs)} {cfg}", file=sys.stderr)
    rows = ["| phase | σ_w² | M | L | λ = L/M | E[Θ] exact | E[Θ] MC | R exact | R MC ± sample SE | exact SE | "
            "z (exact SE) | continuum limit | exp(5λ) |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        rows.append(f"| {c.phase} | {c.sigma_w2} | {c.M} | {c.L} | {c.lam:.3f} | {f(c.theory_mean, 6)} | "
                    f"{f(c.mc_mean, 5)} ± {f(c.mc_mean_se, 2)} | {f(c.theory_ratio, 5)} | {f(c.mc_ratio, 4)} ± "
                    f"{f(c.mc_ratio_se, 2)} | {f(c.theory_ratio_se, 2)} | {c.z_ratio_theory:+.2f} | "
                    f"{f(c.limit, 5)} | {f(c.hanin_nica, 4)} |")
    zs = np.array([[c.z_mean, c.z_ratio_theory, c.z_ratio] for c in comps])
    return comps, rows, zs


def limits_table():
    rows = ["| λ | M | R exact, EOC | R_EOC(λ) | R exact, σ_w² = 3 | R_W(λ) | R exact, weights only, EOC | "
            "exp(5λ) | R_W/exp(5λ) |", "|---|---|---|---|---|---|---|---|---|"]
    for lam in (0.25, 0.5, 1.0, 2.0):
        for M in (100, 400, 1600):
            L = int(lam * M)
            rows.append(f"| {lam} | {M} | {f(th.dispersion(M, L, 2.0), 6)} | {f(th.r_eoc(lam), 6)} | "
                        f"{f(th.dispersion(M, L, 3.0), 6)} | {f(th.r_weights(lam), 6)} | "
                        f"{f(th.dispersion(M, L, 2.0, 'weights'), 6)} | {f(th.hanin_nica(lam), 6)} | "
                        f"{th.r_weights(lam) / th.hanin_nica(lam):.3f} |")
    rows += ["", "Ordered phase (σ_w² = 1.5): R is depth-independent for L ≫ 1 and equals 1 + c/M:", "",
             "| M | R (L → ∞) | (R − 1)·M | R at L = M/4 | R at L = 4M |", "|---|---|---|---|---|"]
    for M in (25, 100, 400, 1600):
        t = th.ordered_limit(M, 1.5)
        rows.append(f"| {M} | {t.ratio:.6f} | {(t.ratio - 1) * M:.3f} | {th.dispersion(M, max(1, M // 4), 1.5):.6f} | "
                    f"{th.dispersion(M, 4 * M, 1.5):.6f} |")
    return rows


def training_table(seeds):
    rows = ["| phase | σ_w² | M | L | λ | lr | loss T=0 → T=100 | ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F (mean ± sd over seeds) |",
            "|---|---|---|---|---|---|---|---|"]
    for phase, sw2 in PHASES:
        for M, L in ((50, 2), (50, 10), (50, 20), (200, 2), (200, 10)):  # noqa: E501
            runs = [th.training_run(M, L, sw2, steps=100, n=16, seed=s) for s in range(seeds)]
            ch = np.array([r.ntk_change for r in runs])
            rows.append(f"| {phase} | {sw2} | {M} | {L} | {L / M:.2f} | {np.mean([r.lr for r in runs]):.3g} | "
                        f"{np.mean([r.loss_initial for r in runs]):.3g} → {np.mean([r.loss_final for r in runs]):.3g} | "
                        f"{ch.mean():.3f} ± {ch.std(ddof=1) if len(ch) > 1 else 0:.3f} |")
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=2000, help="networks per Monte-Carlo point")
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--seeds", type=int, default=3, help="seeds per training run")
    p.add_argument("--no-figure", action="store_true")
    args = p.parse_args()
    t0 = time.perf_counter()
    comps, mc_rows, zs = monte_carlo_table(args.samples, args.seed)
    t_mc = time.perf_counter() - t0
    lim_rows = limits_table()
    train_rows = training_table(args.seeds)
    figure = None
    if not args.no_figure:
        try:
            from ntksym.finite.plots import plot_dispersion
            figure = plot_dispersion(FIG, comps, lam_max=max(c.lam for c in comps), widths=(M_MC,),
                                     sigma_w2s=tuple(s for _, s in PHASES), log=False,
                                     title=f"NTK dispersion vs L/M, M = {M_MC} (Seleznova & Kutyniok setup)", force=True)
        except ImportError:
            figure = None
        except Exception as exc:  # matplotlib missing -> NtksymError; keep the tables
            print(f"  no figure: {exc}", file=sys.stderr)
    total = time.perf_counter() - t0
    lines = [
        "# Seleznova & Kutyniok (ICML 2022): NTK dispersion vs depth-to-width ratio, with ntksym", "",
        f"Generated by `python derivations/seleznova2022.py --samples {args.samples} --seed {args.seed}` "
        f"in {total:.0f} s ({t_mc:.0f} s of network Monte Carlo).", "",
        "Setup (the authors' code; `FORMULAS.md` §7): ReLU MLP, standard parameterization "
        "W ~ N(0, σ_w²/fan_in) on every layer including the readout, zero but trainable biases, "
        "input dimension n₀ = M, L hidden layers of width M, one output, ‖x‖ = 1, and "
        "Θ = Σ_l ‖∂f/∂W^l‖² + ‖∂f/∂b^l‖².  Phases: ordered σ_w² < 2, EOC σ_w² = 2, chaotic σ_w² > 2 "
        "(`ntksym.eoc.phase`, χ₁ = σ_w²/2).", "",
        "Theory: `ntksym.finite.dispersion` (exact finite-(M, L) moments by transfer matrices over the exact "
        "scalar representation; E[Θ] = (L+1)a^L + Σ_k a^k with a = σ_w²/2).  Monte Carlo: "
        "`ntksym.finite.dispersion.compare`, which samples the network itself (`ntksym.finite.montecarlo`, "
        "`parameterization='standard'`, σ_b = 0) and computes Θ(x, x) by exact backpropagation.", "",
        f"## 1. Exact theory vs Monte Carlo ({args.samples} networks per row, M = {M_MC})", "",
        *mc_rows, "",
        f"Over the {len(comps)} rows: max |z| of E[Θ] = {np.max(np.abs(zs[:, 0])):.2f}; max |z| of R = "
        f"{np.max(np.abs(zs[:, 1])):.2f} with the exact SE (RMS {np.sqrt(np.mean(zs[:, 1] ** 2)):.2f}), "
        f"{np.max(np.abs(zs[:, 2])):.2f} with the sample SE (RMS {np.sqrt(np.mean(zs[:, 2] ** 2)):.2f}).  "
        "The exact SE is the delta-method SE of R̂ from the exact E[Θ³] and E[Θ⁴] (transfer matrices over "
        "triples and quadruples of paths).  Θ is heavy-tailed at larger λ: E[Θ⁴] is dominated by rare "
        "networks, so the sample SE underestimates the true one, and R̂ is typically *below* R (its "
        "distribution is right-skewed); the rows with λ ≥ 0.3 need far more networks than shown.", "",
        "What the table shows (the paper's main figure): in the ordered phase R stays near 1 + O(1/M) "
        "whatever the depth (the NTK is dominated by the top-layer biases); at the EOC and in the chaotic "
        "phase R grows exponentially in λ = L/M, faster in the chaotic phase, where it approaches the "
        "weights-only law R_W(λ) ~ e^{5λ}/3 (Hanin & Nica's exp(5λ) up to a constant).", "",
        "## 2. Continuum limits (M, L → ∞, L/M = λ) against the exact finite values", "",
        *lim_rows, "",
        "The exact values approach R_EOC(λ) and R_W(λ) with an O(1/M) gap (Richardson extrapolation "
        "2R(2M) − R(M) matches them to < 0.3%, `tests/test_dispersion.py`); the chaotic phase (σ_w² = 3) "
        "tends to R_W, independent of σ_w².", "",
        "## 3. Does the NTK stay near its initial value? (full-batch GD, 100 steps)", "",
        *train_rows, "",
        "Learning rate lr = 0.5·n/λ_max(Θ_0) (so each phase trains at a comparable, stable speed); "
        "targets tanh(3⟨u, x⟩) on n = 16 unit inputs.  The relative change grows with depth at fixed "
        "width and shrinks with width at fixed depth (the lazy/NTK regime needs L/M small).  The ordered "
        "phase moves most in relative terms although its dispersion is the smallest; its Θ_0 is the "
        "smallest in scale and more concentrated on the top (near-constant) eigenvector (62% of the trace "
        "at M = 50, L = 10, seed 0, against 47-48% at the EOC and in the chaotic phase), so a step "
        "normalised by λ_max changes the rest of Θ a lot.  That reading is plausible but not checked "
        "further.", "",
    ]
    if figure:
        lines += ["## Figure", "", f"![dispersion vs L/M]({pathlib.Path(figure).name})", "",
                  "Solid: the continuum limits R_EOC(λ), R_W(λ) and exp(5λ); dashed: the exact finite-M curves "
                  f"(M = {M_MC}) per phase; points: Monte Carlo ± 1 exact SE per phase.", ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT} in {total:.0f} s")


if __name__ == "__main__":
    main()
