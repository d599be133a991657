"""Report figures as PDF files (matplotlib, the optional ``plot`` extra).

The figures only draw what the report data holds, except the kernel curves,
which evaluate the derivation's own kernel on a grid of ρ (two unit vectors
with x·y/d = ρ).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _kernels(data, ax):
    from ..derivation import kernel
    from .analyses import unit_pairs
    d = data.derivation
    rho = np.linspace(-1.0, 1.0, 201)
    net = d.network
    nngp, ntk = kernel(d.activation, *unit_pairs(rho), net.depth, net.sigma_w, net.sigma_b)
    ax.plot(rho, nngp[0], label=r"NNGP $\Sigma(\rho)$")
    ax.plot(rho, ntk[0], label=r"NTK $\Theta(\rho)$")
    ax.set_xlabel(r"$\rho = x\cdot y/d$")
    ax.set_title(f"kernels at depth {net.depth} ($|x|^2/d = 1$)")
    ax.legend()


def _series(data, ax):
    s = data.series.value
    p = np.arange(1, len(s.ntk))
    for coeffs, label in ((s.nngp, r"NNGP $\kappa^\Sigma_p$"), (s.ntk, r"NTK $\kappa_p$")):
        c = np.abs(np.asarray(coeffs[1:], dtype=float))
        keep = c > 1e-14 * max(c.max(), 1e-300)
        ax.loglog(p[keep], c[keep], ".", ms=3, label=label)
    ax.set_xlabel("$p$")
    ax.set_title("power-series coefficients")
    ax.legend()


def _spectrum(data, ax):
    s = data.spectrum.value
    k = np.arange(len(s.eigenvalues))
    lam = np.array([float(v) for v in s.eigenvalues])
    bound = np.array([float(v) for v in s.truncation])
    keep = (lam > 0) & (k >= 1)
    ax.loglog(k[keep], lam[keep], "o", ms=3, label=r"$\lambda_k$")
    shown = (k >= 1) & (bound > 0)          # exact zeros (parity) have bound 0: nothing to draw on log axes
    ax.loglog(k[shown], bound[shown], "--", lw=1, label="error bound")
    ax.set_xlabel("$k$")
    ax.set_title(f"NTK eigenvalues on $S^{{{s.d - 1}}}$")
    ax.legend()


def write_figures(data, directory: Path) -> list[tuple[str, str]]:
    """Write the figures that the data supports; returns [(file name, caption)]."""
    if not data.options.figures or not available():
        return []
    plt = _pyplot()
    made = []
    plots = [("kernels.pdf", "NNGP and NTK as functions of the input correlation.", _kernels, True),
             ("series.pdf", "Absolute power-series coefficients (log-log).", _series, data.series.value is not None),
             ("spectrum.pdf", "Sphere eigenvalues and their error bound (log-log).", _spectrum,
              data.spectrum.value is not None)]
    for name, caption, draw, ok in plots:
        if not ok:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.4))
        try:
            draw(data, ax)
            fig.tight_layout()
            fig.savefig(directory / name, metadata={"CreationDate": None, "ModDate": None})
        finally:
            plt.close(fig)
        made.append((name, caption))
    return made
