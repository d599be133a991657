"""Figures for linear-width spectra (Fan & Wang 2020, arXiv 2005.11879): histogram of sampled eigenvalues
under the predicted limit density.  matplotlib is imported lazily (extra ``plot``)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ntksym.errors import NtksymError

__all__ = ["plot_spectrum"]


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NtksymError("plotting needs matplotlib (pip install 'ntksym[plot]')") from None
    return plt


def figure_format(path) -> str:
    """The figure format of ``path`` (a path or a held claim): png, pdf or svg."""
    from ntksym.outputs import Claim
    ext = os.path.splitext(str(path.target if isinstance(path, Claim) else path))[1].lower()
    if ext not in (".png", ".pdf", ".svg"):
        raise NtksymError(f"figure file must end in .png, .pdf or .svg: {path}")
    return ext[1:]


def _save(fig, path, force: bool) -> None:
    """Write ``fig`` to ``path`` under the rules of :mod:`ntksym.outputs` (no-clobber unless ``force``)."""
    from ntksym.outputs import write_file
    fmt = figure_format(path)
    write_file(path, lambda fh: fig.savefig(fh, format=fmt, dpi=130), force=force)


def plot_spectrum(law, eigenvalues=None, path=None, title: str | None = None, bins: int = 60,
                  ax=None, ks: float | None = None, force: bool = False):
    """Draw ``law`` (a :class:`~ntksym.finite.rmt.SpectrumResult`; its η-smoothed density) over a density
    histogram of sampled ``eigenvalues``; atoms are drawn as stems of height mass/bin width.  Writes ``path``
    (.png/.pdf/.svg; a path or a held file claim; an existing file is replaced only with ``force``) when
    given; returns the figure."""
    plt = _pyplot()
    if path is not None:
        figure_format(path)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
    else:
        fig = ax.figure
    width = (law.x[-1] - law.x[0]) / bins
    if eigenvalues is not None:
        lam = np.asarray(eigenvalues, dtype=float)
        edges = np.linspace(min(law.x[0], lam.min()), max(law.x[-1], lam.max()), bins + 1)
        width = edges[1] - edges[0]
        ax.hist(lam, bins=edges, density=True, color="#9ecae1", edgecolor="#6baed6", linewidth=0.4,
                label=f"sampled, n = {lam.size}")
    ax.plot(law.x, law.density, color="#d62728", linewidth=1.3, label=f"limit law (η = {law.eta:.2g})")
    for loc, mass in law.atoms:
        ax.vlines(loc, 0, mass / width, color="#d62728", linewidth=2.0, linestyles="dotted")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    label = title or f"{law.kernel.upper()}, γ = {', '.join(f'{g:.3g}' for g in law.gammas)}"
    if ks is not None:
        label += f" (KS {ks:.3g})"
    ax.set_title(label, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    if path is not None:
        fig.tight_layout()
        try:
            _save(fig, path, force)
        finally:
            plt.close(fig)
    return fig


def plot_panels(laws: Sequence, samples: Sequence, path: str, titles: Sequence[str], ks: Sequence[float],
                force: bool = False):
    """A row of :func:`plot_spectrum` panels written to ``path`` (used by derivations/fanwang2020.py)."""
    plt = _pyplot()
    figure_format(path)
    fig, axes = plt.subplots(1, len(laws), figsize=(4.6 * len(laws), 3.4))
    try:
        for ax, law, lam, t, k in zip(np.atleast_1d(axes), laws, samples, titles, ks):
            plot_spectrum(law, lam, ax=ax, title=t, ks=k)
        fig.tight_layout()
        _save(fig, path, force)
    finally:
        plt.close(fig)
    return path
