"""The fast route for activations without closed-form dual kernels: Mehler series on whole Gram blocks.

For two rows with variances q₁, q₂ and covariance c (ρ = c/√(q₁q₂)), Mehler's formula gives

    Σ̂ = Σ_k a_k(q₁) a_k(q₂) ρ^k,   Σ̇ = Σ_k b_k(q₁) b_k(q₂) ρ^k,

with the per-row coefficients of :mod:`ntksym.gaussian.rowhermite` (computed once per layer, not
per entry).  The series is split into its even and odd parts, E(ρ²) + ρ·O(ρ²), each truncated at
its own degree (odd φ such as tanh have no even part; SiLU, softplus, GELU have an odd part that is
exactly linear), and evaluated by Horner's rule in ρ² over row panels of the Gram matrix (only the
upper triangle when the call is symmetric).

Error bound per entry, relative to √(m(q₁)m(q₂)) (m = E[φ(√qZ)²] for Σ̂, E[φ'(√qZ)²] for Σ̇):

    B = |ρ|^{K_e+2}√(t_e(q₁)t_e(q₂)) + |ρ|^{K_o+2}√(t_o(q₁)t_o(q₂)) + ε₁ + ε₂ + ε₁ε₂ + R,

where t_e = (m_e − Σ_{even k ≤ K_e} a_k²)/m is the relative tail mass of the even part (Cauchy–Schwarz
and Parseval: |Σ_{even k > K_e} a_k a'_k ρ^k| ≤ |ρ|^{K_e+2}√(T_e T'_e)), raised by its own
quadrature error; ε = ‖δa‖₂/√m the estimated coefficient error (:mod:`ntksym.gaussian.rowhermite`),
which enters through Cauchy–Schwarz (|Σ δa_k a'_k ρ^k| ≤ ‖δa‖‖a'‖); and R = (6·M + 10)·ε_mach,
M = max √(Σ k² a_k²/m), the rounding of the products, of ρ and of Horner's rule (the term of degree
k carries at most (2k + 3) roundings, and Σ_k k|a_k a'_k| ≤ M√(m m')).  An entry is served by the
series only where B ≤ :data:`TOL` = 1e-13 for both kernels (so that depth 10 stays well within
1e-10 relative); the check is separable (|ρ| ≤ v₁v₂), so it costs three passes over the block.

Entries the bulk degree does not certify are evaluated again, gathered, at higher degrees up to
:data:`~ntksym.gaussian.rowhermite.K_MAX`; repeated rows (q₁ = q₂, ρ = ±1) take the row masses
(Σ̂ = m_e ± m_o exactly); what is still not certified goes to the accurate checked route,
:class:`ntksym.kernels.NumericDualKernels` (graded polar quadrature with its own error estimate and
refusal above 1e-6).  The label says how many entries took which route.
"""
from __future__ import annotations

import math

import numpy as np

from .gaussian.rowhermite import K_MAX, RowHermite, row_hermite

TOL = 1e-13                 # per-entry bound relative to √(m₁m₂), per kernel and layer
EPS = float(np.finfo(float).eps)
EPS_CAP = TOL / 8           # rows whose relative coefficient error exceeds this go to the fallback
BLOCK_ROWS = 16             # row panel of the blocked Horner evaluation
GATHER_CHUNK = 1 << 15      # entries per chunk of the gathered evaluation
SAMPLE = 1024               # entries sampled (per call or panel) to choose the bulk degree
FALLBACK_COST = 1e5         # one fallback entry costs about this many bulk Horner terms
GATHER_COST = 6.0           # a gathered Horner term costs about this many bulk ones
TIE_ULPS = 16               # q₁ = q₂ and |ρ| within this many ulps of 1: a repeated (or antipodal) row
TIERS = (4, 8, 16, 24, 32, 48, 64, 96, 128, K_MAX)   # degrees tried, in turn, for entries the bulk degree leaves
SERIES_LABEL = "fast: Hermite (Mehler) series in ρ with per-row coefficients"


class _KernelRows:
    """One kernel's (Σ̂: a, m0; Σ̇: b, m1) per-row quantities for the bound."""

    def __init__(self, coef, me, mo, err, err_m, ok):
        self.coef = coef
        m = me + mo
        self.m = m
        pos = m > 0
        inv = np.where(pos, 1.0 / np.where(pos, m, 1.0), 0.0)
        sq = coef * coef
        k = np.arange(coef.shape[1])
        rel_err = err * np.sqrt(inv)[:, None]                      # ε(K), cumulative over k ≤ K
        self.eps = rel_err + 4 * EPS
        em = err_m * inv
        lg = math.log2(coef.shape[1]) + 2

        # tail of each part after degree K, relative to m: (m_p − Σ_all a_k²) + Σ_{k > K} a_k² — the first
        # by numpy's pairwise sum (rounding ≤ (log₂K + 2)ε·m_p), the second by a reverse cumulative sum
        # (rounding ≤ K_MAX·ε of itself) — raised by the quadrature errors of m and of the coefficients
        def tails(mp, parity, part_m):
            sp = np.where(k % 2 == parity, sq, 0.0)
            rest = mp - np.sum(sp, axis=1)
            after = np.cumsum(sp[:, ::-1], axis=1)[:, ::-1] - sp          # Σ_{k' > k}
            t = np.maximum(rest[:, None] + after, 0.0) * inv[:, None]
            e_all = rel_err[:, -1:]                               # Σ_all a_k² uses every coefficient
            return t * (1 + coef.shape[1] * EPS) + em[:, None] + 2 * np.sqrt(part_m * inv)[:, None] * e_all \
                + e_all ** 2 + lg * EPS * (part_m * inv)[:, None]
        self.te = tails(me, 0, me)          # te[:, K]: tail of the even part beyond K
        self.to = tails(mo, 1, mo)
        self.full_e = me * inv + em          # tail with no even term at all
        self.full_o = mo * inv + em
        self.moment = np.sqrt(np.cumsum(k * k * sq, axis=1) * inv[:, None])
        self.ok = ok & np.isfinite(m)
        n = m.size
        self.max_te = self.te.max(axis=0) if n else np.zeros(coef.shape[1])
        self.max_to = self.to.max(axis=0) if n else np.zeros(coef.shape[1])
        self.max_full = (_max(self.full_e), _max(self.full_o))
        self.max_moment = self.moment.max(axis=0) if n else np.zeros(coef.shape[1])


def _kernels(rh: RowHermite):
    return (_KernelRows(rh.a, rh.m0e, rh.m0o, rh.err_a, rh.err_m0, rh.ok),
            _KernelRows(rh.b, rh.m1e, rh.m1o, rh.err_b, rh.err_m1, rh.ok))


class _Plan:
    """Degrees (K_e, K_o) per kernel for a bulk degree D, and the separable test |ρ| ≤ v₁v₂."""

    def __init__(self, D: int, rows, cols):
        self.D = D
        self.parts = []     # per kernel: (Ke, Ko)
        vr = np.full(rows[0].m.shape, np.inf)
        vc = np.full(cols[0].m.shape, np.inf)
        rounding = 0.0
        for kr, kc in zip(rows, cols):
            mom = max(kr.max_moment[D], kc.max_moment[D])
            rounding = max(rounding, (6 * mom + 10) * EPS)
        self.rounding = rounding
        coef_budget = 2 * EPS_CAP + EPS_CAP ** 2
        self.tau = (TOL - coef_budget - rounding) / 2          # per part
        for kr, kc in zip(rows, cols):
            ke = self._degree(D - D % 2, np.maximum(kr.max_te, kc.max_te), max(kr.max_full[0], kc.max_full[0]), 0)
            ko = self._degree(D - 1 + D % 2, np.maximum(kr.max_to, kc.max_to), max(kr.max_full[1], kc.max_full[1]), 1)
            self.parts.append((ke, ko))
            for K, tr, tc, fr, fc, mx in ((ke, kr.te, kc.te, kr.full_e, kc.full_e, (kr.max_te, kc.max_te, kr.max_full[0], kc.max_full[0])),
                                          (ko, kr.to, kc.to, kr.full_o, kc.full_o, (kr.max_to, kc.max_to, kr.max_full[1], kc.max_full[1]))):
                top = max(mx[0][K], mx[1][K]) if K >= 0 else max(mx[2], mx[3])
                if top <= self.tau:
                    continue          # negligible even at |ρ| = 1
                rt = tr[:, K] if K >= 0 else fr
                ct = tc[:, K] if K >= 0 else fc
                p = 1.0 / (2 * (K + 2))
                with np.errstate(all="ignore"):     # NaN rows (not ok) are set to NaN below anyway
                    vr = np.minimum(vr, (self.tau / rt) ** p)
                    vc = np.minimum(vc, (self.tau / ct) ** p)
        for kr, kc in zip(rows, cols):
            vr = np.where(kr.ok & (kr.eps[:, D] <= EPS_CAP), vr, np.nan)    # NaN: no entry passes
            vc = np.where(kc.ok & (kc.eps[:, D] <= EPS_CAP), vc, np.nan)
        self.v, self.vc = vr, vc      # v: of the rows, vc: of the columns (the same when rows = columns)

    def _degree(self, top, max_tail, max_full, parity):
        """The highest degree of this parity needed (≤ top): lower if the tail is negligible at |ρ| = 1
        for every row; −2 (even) / −1 (odd) if the whole part is negligible."""
        none = -2 if parity == 0 else -1
        if max_full <= self.tau or top < parity:
            return none
        ok = np.flatnonzero(max_tail[parity:top + 1:2] <= self.tau)
        return parity + 2 * int(ok[0]) if ok.size else top

    def terms(self) -> int:
        return sum((ke // 2 + 1 if ke >= 0 else 0) + ((ko + 1) // 2 if ko >= 1 else 0) for ke, ko in self.parts)


def _max(a) -> float:
    return float(np.max(a)) if np.size(a) else 0.0


def _horner(rho, rho2, ci, cjT, ke, ko, out, tmp):
    """out = Σ_{k ≤ ke even} ci_k cj_k ρ^k + Σ_{k ≤ ko odd} ci_k cj_k ρ^k on a block (ci: (r, K+1),
    cjT: (K+1, c) or, gathered, ci and cjT both (m, K+1) with elementwise products)."""
    gathered = ci.shape == cjT.shape and rho.ndim == 1

    def coef(k, dst):
        if gathered:
            np.multiply(ci[:, k], cjT[:, k], out=dst)
        else:
            np.multiply(ci[:, k, None], cjT[k][None, :], out=dst)

    if ke >= 0:
        coef(ke, out)
        for k in range(ke - 2, -1, -2):
            out *= rho2
            coef(k, tmp)
            out += tmp
    else:
        out[...] = 0.0
    if ko >= 1:
        odd = np.empty_like(out)
        coef(ko, odd)
        for k in range(ko - 2, 0, -2):
            odd *= rho2
            coef(k, tmp)
            odd += tmp
        odd *= rho
        out += odd
    return out


class FastDualKernels:
    """``f(q1, q2, c) -> (Σ̂, Σ̇)`` by the Mehler series where its bound certifies it, else ``fallback``
    (:class:`ntksym.kernels.NumericDualKernels`); see the module docstring.

    A call with q1 of shape (n, 1), q2 of shape (1, m) and c of shape (n, m) (what the fold passes) is
    evaluated as a Gram block: row data once per distinct row, the bulk degree chosen from a sample of
    the entries; other shapes are evaluated entry by entry (gathered).  ``stats`` counts the entries
    by route since the last :meth:`fresh`; :meth:`label` states them."""

    degree = parity = None
    closed = False

    def __init__(self, act, fallback):
        self.act = act
        self.phi, self.dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
        self.breakpoints = tuple(b for b in act.breakpoints if np.isfinite(b))
        self.fallback = fallback
        self.initial_label = (f"{SERIES_LABEL} (error bound ≤ {TOL:.0e}·√(m₁m₂) per entry and layer, "
                              f"m = E[φ²] for Σ̂ and E[φ'²] for Σ̇; entries beyond it by the accurate route); "
                              f"accurate route: {fallback.initial_label}")
        self._cache, self._layer, self._plans_of = None, None, (None,)
        self._reset()

    def _reset(self):
        self.stats = {"entries": 0, "series": 0, "ties": 0, "fallback": 0, "degree_lo": None, "degree_hi": 0}
        self.series_bound = 0.0
        self._q_range = (math.inf, -math.inf)

    def fresh(self) -> "FastDualKernels":
        new = FastDualKernels.__new__(FastDualKernels)
        new.__dict__.update(self.__dict__)
        new.fallback = self.fallback.fresh()
        new._cache, new._layer, new._plans_of = None, None, (None,)
        new._reset()
        return new

    # ---- what the fold and the tests read
    @property
    def max_error(self) -> float:
        """Largest stated error so far: the series bound (relative to √(m₁m₂)) or the fallback's estimate."""
        return max(self.series_bound, self.fallback.max_error)

    @property
    def q_range(self):
        """(min, max) of the variances evaluated so far, by the series' row data or by the fallback."""
        lo, hi = self.fallback.q_range
        return (min(lo, self._q_range[0]), max(hi, self._q_range[1]))

    @property
    def inaccurate(self) -> bool:
        return self.fallback.inaccurate

    def label(self) -> str:
        st = self.stats
        if not st["entries"]:
            return self.initial_label
        deg = (f"degree {st['degree_lo']}–{st['degree_hi']}" if st["degree_lo"] is not None
               and st["degree_lo"] != st["degree_hi"] else f"degree {st['degree_hi']}")
        text = (f"{SERIES_LABEL}, {deg}, bound ≤ {TOL:.0e}·√(m₁m₂) per entry and layer "
                f"({st['series']:,} of {st['entries']:,} entries")
        if st["ties"]:
            text += f"; {st['ties']:,} repeated-row entries from the row masses"
        if st["fallback"]:
            text += f"; {st['fallback']:,} by the accurate route: {self.fallback.label()}"
        return text + ")"

    # ---- evaluation
    panel_entries = 1 << 16     # the fold's Gram panels (rows × columns) for pair(..., rows, cols)

    def pair(self, q1, q2, c, b=None, rows=None, cols=None):
        """The fold's protocol: ``q1`` (n, 1), ``q2`` (1, m), ``c`` (n, m) already clipped to |c| ≤ b;
        ``rows``/``cols``: the panel's place in the layer announced by :meth:`begin_layer`."""
        q1, q2, c = (np.asarray(a, dtype=float) for a in (q1, q2, c))
        if rows is not None and q1.ndim == 2 and q2.ndim == 2 and c.shape == (q1.shape[0], q2.shape[1]):
            return self._grid(q1[:, 0], q2[0, :], c, rows, cols)
        return self(q1, q2, c)

    def __call__(self, q1, q2, c):
        q1, q2, c = (np.asarray(a, dtype=float) for a in (q1, q2, c))
        if q1.ndim == 2 and q2.ndim == 2 and c.ndim == 2 and q1.shape[1] == 1 and q2.shape[0] == 1 \
                and c.shape == (q1.shape[0], q2.shape[1]):
            return self._grid(q1[:, 0], q2[0, :], c)
        hat, dot, _ = self._flat(q1, q2, c)
        return hat, dot

    def routes(self, q1, q2, c):
        """(Σ̂, Σ̇, route) entry by entry; route is "series", "tie" (repeated rows: the row masses) or
        "fallback" per entry (for tests and diagnostics)."""
        hat, dot, masks = self._flat(q1, q2, c)
        route = np.full(hat.shape, "series", dtype=object)
        route[masks["ties"].reshape(hat.shape)] = "tie"
        route[masks["fallback"].reshape(hat.shape)] = "fallback"
        return hat, dot, route

    def _flat(self, q1, q2, c):
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
        shape = q1.shape
        U, inv = self._rows(np.concatenate([q1.ravel(), q2.ravel()]))
        ii, jj = inv[:q1.size], inv[q1.size:]
        hat, dot = np.empty(q1.size), np.empty(q1.size)
        masks = self._entries(U, U, ii, jj, c.ravel().copy(), hat, dot)
        self.stats["entries"] += q1.size
        for key, mk in masks.items():
            self.stats[key] += int(mk.sum())
        return hat.reshape(shape), dot.reshape(shape), masks

    def _rows(self, q) -> tuple:
        """((RowHermite, kernels) of the distinct values of ``q``, index of each entry of ``q`` in them);
        the row data are reused while the distinct variances stay the same (the fold's diagonal and
        Gram-block calls of one layer)."""
        uq, inv = np.unique(q, return_inverse=True)
        inv = inv.ravel()
        fin = uq[np.isfinite(uq) & (uq >= 0)]
        if fin.size:
            self._q_range = (min(self._q_range[0], float(fin[0])), max(self._q_range[1], float(fin[-1])))
        if self._cache is not None and self._cache[0].shape == uq.shape and np.array_equal(self._cache[0], uq):
            return self._cache[1], inv
        rh = row_hermite(self.phi, self.dphi, uq, self.breakpoints)
        out = (rh, _kernels(rh))
        self._cache = (uq, out)
        return out, inv

    def _layer_rows(self, qr, qc):
        """(row data, row index of each q of qr, of qc, whether qr equals qc)."""
        same = qr is qc or (qr.shape == qc.shape and np.array_equal(qr, qc))
        if same:
            U, ir = self._rows(qr)
            return U, ir, ir, True
        U, inv = self._rows(np.concatenate([qr, qc]))
        return U, inv[:qr.size], inv[qr.size:], False

    def begin_layer(self, q1, q2):
        """The fold's per-layer hook: the row variances of this layer, so that the Gram panels passed to
        :meth:`pair` with ``rows``/``cols`` slices share the row data, the per-row coefficient arrays and
        the bulk degree (chosen at the first panel from a sample of its entries)."""
        q1, q2 = np.asarray(q1, dtype=float).ravel(), np.asarray(q2, dtype=float).ravel()
        U, ir, jc, _ = self._layer_rows(q1, q2)
        self._layer = {"U": U, "ir": ir, "jc": jc, "plan": None, **_row_arrays(U, ir, jc)}

    def _grid(self, qr, qc, c, rows=None, cols=None):
        L = getattr(self, "_layer", None)
        if rows is not None and L is not None:      # a panel of the fold (it computes only the upper triangle)
            U, ir, jc, sym = L["U"], L["ir"][rows], L["jc"][cols], False
            arr = {k: (v[rows] if k in ("sr", "isr") else v[cols] if k in ("sc", "isc")
                       else [a[rows] for a in v] if k == "cR" else [a[:, cols] for a in v])
                   for k, v in L.items() if k in ("sr", "isr", "sc", "isc", "cR", "cT")}
        else:
            U, ir, jc, same = self._layer_rows(qr, qc)
            sym = same and _symmetric(c)
            arr, L = _row_arrays(U, ir, jc), None
        n, m = c.shape
        hat, dot = np.empty((n, m)), np.empty((n, m))
        self.stats["entries"] += n * m
        if n == 0 or m == 0:
            return hat, dot
        if L is not None and L["plan"] is not None:
            plan, plans = L["plan"]
        else:
            plan, plans = self._choose(U, ir, jc, c)
            if L is not None:
                L["plan"] = (plan, plans)
        sr, sc, isr, isc, cR, cT = (arr[k] for k in ("sr", "sc", "isr", "isc", "cR", "cT"))
        with np.errstate(all="ignore"):
            wr = plan.v[ir] * sr          # NaN for rows the series cannot serve: the test fails there
            wc = plan.v[jc] * sc
        fail_i, fail_j = [], []
        bs = BLOCK_ROWS
        tmp = np.empty((bs, m))
        rho = np.empty((bs, m))
        rho2 = np.empty((bs, m))
        chk = np.empty((bs, m), dtype=bool)
        with np.errstate(all="ignore"):
            for i0 in range(0, n, bs):
                i1 = min(i0 + bs, n)
                j0 = i0 if sym else 0
                w = m - j0
                r_, r2_, t_, k_ = rho[:i1 - i0, :w], rho2[:i1 - i0, :w], tmp[:i1 - i0, :w], chk[:i1 - i0, :w]
                cb = c[i0:i1, j0:]
                np.multiply(cb, isr[i0:i1, None], out=r_)
                r_ *= isc[None, j0:]
                np.multiply(r_, r_, out=r2_)
                for out, ci, cjT, (ke, ko) in zip((hat, dot), cR, cT, plan.parts):
                    _horner(r_, r2_, ci[i0:i1], cjT[:, j0:], ke, ko, out[i0:i1, j0:], t_)
                np.multiply(wr[i0:i1, None], wc[None, j0:], out=t_)
                np.less_equal(np.abs(cb), t_, out=k_)
                if not k_.all():
                    fi, fj = np.nonzero(~k_)
                    fail_i.append(fi + i0)
                    fail_j.append(fj + j0)
            if sym:
                for i0 in range(0, n, bs):
                    i1 = min(i0 + bs, n)
                    for out in (hat, dot):
                        out[i1:, i0:i1] = out[i0:i1, i1:].T
                        blk = out[i0:i1, i0:i1]
                        blk[...] = np.triu(blk) + np.triu(blk, 1).T
        ii = np.concatenate(fail_i) if fail_i else np.zeros(0, dtype=np.intp)
        jj = np.concatenate(fail_j) if fail_j else np.zeros(0, dtype=np.intp)
        if sym and ii.size:     # failures found in the upper triangle: evaluate once, mirror
            keep = jj >= ii
            ii, jj = ii[keep], jj[keep]
        weight = np.where(ii != jj, 2, 1) if sym else np.ones(ii.size, dtype=np.int64)
        self.stats["series"] += n * m - int(weight.sum())
        self._note_degree(plan.D)
        self.series_bound = max(self.series_bound, TOL)
        if ii.size:
            h, d = np.empty(ii.size), np.empty(ii.size)
            masks = self._entries(U, U, ir[ii], jc[jj], c[ii, jj], h, d, plans=plans, above=plan.D)
            hat[ii, jj], dot[ii, jj] = h, d
            if sym:
                hat[jj, ii], dot[jj, ii] = h, d
            for key, mk in masks.items():
                self.stats[key] += int(weight[mk].sum())
        return hat, dot

    def _note_degree(self, D):
        st = self.stats
        st["degree_lo"] = D if st["degree_lo"] is None else min(st["degree_lo"], D)
        st["degree_hi"] = max(st["degree_hi"], D)

    def _choose(self, U, ir, jc, c) -> _Plan:
        """The bulk degree: least estimated cost over a deterministic sample of entries."""
        n, m = c.shape
        size = n * m
        idx = np.unique(np.linspace(0, size - 1, min(SAMPLE, size)).astype(np.int64))
        si, sj = idx // m, idx % m
        cs = c[si, sj]
        si, sj = ir[si], jc[sj]
        sr = np.sqrt(np.maximum(U[0].q[si], 0.0))
        sc = np.sqrt(np.maximum(U[0].q[sj], 0.0))
        with np.errstate(all="ignore"):
            arho = np.abs(cs) / (sr * sc)
        arho = np.where(sr * sc > 0, arho, 0.0)
        tie = (U[0].q[si] == U[0].q[sj]) & (arho >= 1.0 - TIE_ULPS * EPS)
        cands = sorted(set(range(2, min(K_MAX, 64) + 1, 2)) | {t for t in TIERS if t <= K_MAX})
        if getattr(self, "_plans_of", (None,))[0] is not U:
            self._plans_of = (U, [_Plan(D, U[1], U[1]) for D in cands])   # once per layer's row data
        plans, needed = self._plans_of[1], np.full(idx.size, -1)
        for i, p in enumerate(plans):
            ok = (arho <= p.v[si] * p.v[sj]) & (needed < 0)
            needed[ok] = i
        terms = np.array([p.terms() for p in plans], dtype=float)
        per = np.where(needed >= 0, GATHER_COST * terms[np.maximum(needed, 0)], FALLBACK_COST)
        per[tie] = 0.0
        best, best_cost = 0, math.inf
        for i in range(len(plans)):
            fail = (needed > i) | (needed < 0)
            cost = terms[i] + float(np.sum(per[fail])) / idx.size
            if cost < best_cost - 1e-9:
                best, best_cost = i, cost
        return plans[best], {p.D: p for p in plans}

    def _entries(self, R, C, ii, jj, c, hat, dot, plans=None, above: int = 0):
        """Gathered entries (row ii of R, row jj of C, covariance c): ties, series tiers, fallback."""
        rr, kr = R
        rc, kc = C
        qi, qj = rr.q[ii], rc.q[jj]
        si, sj = np.sqrt(np.maximum(qi, 0.0)), np.sqrt(np.maximum(qj, 0.0))
        with np.errstate(all="ignore"):
            b = np.where(qi == qj, qi, si * sj)
            rho = np.where(b > 0, c / b, 0.0)
        todo = np.ones(ii.size, dtype=bool)
        masks = {k: np.zeros(ii.size, dtype=bool) for k in ("series", "ties", "fallback")}
        # repeated rows: q₁ = q₂, ρ = ±1: the row masses (m_e ± m_o), if their error is within TOL
        tie = (qi == qj) & (np.abs(rho) >= 1.0 - TIE_ULPS * EPS) & rr.ok[ii] & rc.ok[jj]
        if tie.any():
            t = np.flatnonzero(tie)
            sgn = np.sign(rho[t])
            good = np.ones(t.size, dtype=bool)
            for out, me, mo, em in ((hat, rr.m0e, rr.m0o, rr.err_m0), (dot, rr.m1e, rr.m1o, rr.err_m1)):
                mm = me[ii[t]] + mo[ii[t]]
                out[t] = me[ii[t]] + sgn * mo[ii[t]]
                good &= em[ii[t]] + 8 * EPS * mm <= TOL * mm
            t = t[good]
            todo[t] = False
            masks["ties"][t] = True
        # series at increasing degrees
        plans = plans or {}
        for D in [D for D in TIERS if above < D <= K_MAX]:
            if not todo.any():
                break
            p = plans.get(D) or _Plan(D, kr, kc)
            w = np.flatnonzero(todo)
            ok = np.abs(rho[w]) <= p.v[ii[w]] * p.vc[jj[w]]
            w = w[ok]
            if not w.size:
                continue
            for s0 in range(0, w.size, GATHER_CHUNK):
                g = w[s0:s0 + GATHER_CHUNK]
                r = rho[g]
                r2 = r * r
                tmp = np.empty(g.size)
                for out, k1, k2, (ke, ko) in zip((hat, dot), kr, kc, p.parts):
                    o = np.empty(g.size)
                    _horner(r, r2, k1.coef[ii[g]], k2.coef[jj[g]], ke, ko, o, tmp)
                    out[g] = o
            todo[w] = False
            masks["series"][w] = True
            self._note_degree(D)
            self.series_bound = max(self.series_bound, TOL)
        # the accurate route for the rest
        rest = np.flatnonzero(todo)
        if rest.size:
            h, d = self.fallback(qi[rest], qj[rest], c[rest])
            hat[rest], dot[rest] = h, d
            masks["fallback"][rest] = True
        return masks


def _row_arrays(U, ir, jc) -> dict:
    """Per-row arrays of a Gram block: √q, 1/√q (0 at q = 0) and the coefficients (rows; columns transposed)."""
    q = U[0].q
    out = {"sr": np.sqrt(np.maximum(q[ir], 0.0)), "sc": np.sqrt(np.maximum(q[jc], 0.0))}
    with np.errstate(all="ignore"):
        out["isr"] = np.where(out["sr"] > 0, 1.0 / out["sr"], 0.0)
        out["isc"] = np.where(out["sc"] > 0, 1.0 / out["sc"], 0.0)
    out["cR"] = [k.coef[ir] for k in U[1]]
    out["cT"] = [np.ascontiguousarray(k.coef[jc].T) for k in U[1]]
    return out


def _symmetric(c) -> bool:
    """c equals its transpose (checked on row panels; stops at the first difference)."""
    n = c.shape[0]
    for i0 in range(0, n, 256):
        i1 = min(i0 + 256, n)
        if not np.array_equal(c[i0:i1, i0:], c[i0:, i0:i1].T):
            return False
    return True
