"""Figures for the finite-width analyses (matplotlib is optional and imported lazily)."""

from __future__ import annotations

import os

import numpy as np

from ntksym.errors import NtksymError

__all__ = ["plot_dispersion"]

_COLORS = {"ordered": "tab:blue", "eoc": "tab:green", "chaotic": "tab:red"}


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise NtksymError("plotting needs matplotlib (pip install 'ntksym[plot]')") from None
    return plt


def plot_dispersion(path, comparisons=(), lam_max: float = 1.0, widths=(), sigma_w2s=(2.0,),
                    title: str | None = None, log: bool = True, force: bool = False) -> str:
    """Plot the NTK dispersion E[Θ²]/E[Θ]² against λ = L/M and write it to ``path`` (.pdf or .png).

    Curves: the continuum limits R_EOC(λ) and R_W(λ) (= chaotic phase) and Hanin & Nica's
    exp(5λ) (Hanin & Nica, ICLR 2020; Seleznova & Kutyniok, ICML 2022); for each M in ``widths``
    and σ_w² in ``sigma_w2s`` the exact finite-(M, L) curve, coloured by phase.  Points:
    Monte-Carlo estimates from :func:`ntksym.finite.dispersion.compare` records (``comparisons``)
    ± 1 SE (the exact SE of R̂ where available: the sample SE underestimates it for heavy tails).
    ``path`` is a path or a held file claim; it is written under the rules of :mod:`ntksym.outputs`
    (an existing file is replaced only with ``force``).  Returns the path written.
    """
    from ntksym import outputs
    from ntksym.finite import dispersion as th

    ext = os.path.splitext(str(path.target if isinstance(path, outputs.Claim) else path))[1].lower()
    if ext not in (".pdf", ".png"):
        raise NtksymError(f"plot path must end in .pdf or .png, got {path!r}")
    if not lam_max > 0:
        raise NtksymError(f"lam_max must be > 0, got {lam_max!r}")
    plt = _pyplot()
    lam = np.linspace(0.0, lam_max, 121)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    try:
        ax.plot(lam, [th.r_eoc(v) for v in lam], color=_COLORS["eoc"], label=r"EOC limit $R_{EOC}(\lambda)$")
        ax.plot(lam, [th.r_weights(v) for v in lam], color=_COLORS["chaotic"],
                label=r"chaotic limit $R_W(\lambda)$")
        ax.plot(lam, np.exp(5 * lam), color="gray", ls=":", label=r"Hanin–Nica $e^{5\lambda}$")
        for M in widths:
            Ls = np.unique(np.maximum(1, np.round(lam * M).astype(int)))
            for sw2 in sigma_w2s:
                phase = th.relu_phase(sw2)
                ax.plot(Ls / M, [th.dispersion(int(M), int(L), sw2) for L in Ls], color=_COLORS[phase], ls="--",
                        lw=0.8, label=fr"exact, {phase}, $\sigma_w^2$ = {sw2:g}, M = {M}")
        for phase in th.PHASES:
            pts = [c for c in comparisons if c.phase == phase]
            if pts:
                se = [c.theory_ratio_se if np.isfinite(c.theory_ratio_se) else c.mc_ratio_se for c in pts]
                ax.errorbar([c.lam for c in pts], [c.mc_ratio for c in pts], yerr=se,
                            fmt="o", ms=4, capsize=2, color=_COLORS[phase], label=f"Monte Carlo, {phase}")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel(r"depth-to-width ratio $\lambda = L/M$")
        ax.set_ylabel(r"$E[\Theta^2]/E[\Theta]^2$")
        ax.set_title(title or "NTK dispersion of ReLU MLPs (Seleznova & Kutyniok setup)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return str(outputs.write_file(path, lambda fh: fig.savefig(fh, format=ext[1:]), force=force))
    finally:
        plt.close(fig)
