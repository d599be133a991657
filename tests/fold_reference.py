"""The issue-12 fold (ntksym/network.py at commit d0cd722), kept verbatim as the reference for the
panel/triangle fold of issue 13 (tests/test_fold_speed_paths.py): the straightforward whole-matrix
evaluation of the same rules, one layer at a time, with full n×n temporaries."""
from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np

from ntksym.errors import AccuracyError
from ntksym.kernels import ClosedFormKernels, _to_float, snap
from ntksym.network import KernelOverflowWarning, Network, validate_inputs


def evaluate(kernel_fns, net: Network, x1, x2=None) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK Gram matrices (n₁×n₂, float64) in the convention of :class:`Network`.

    ``kernel_fns(q1, q2, c) -> (Σ̂, Σ̇)`` evaluates the dual kernels on arrays; a
    :class:`ntksym.kernels.ClosedFormKernels` also gets the mpmath fallback (see "Stable fold" in the
    module docstring).  Entries whose true value is beyond float64 are inf, with one
    :class:`KernelOverflowWarning` saying how many and from which layer.
    """
    same = x2 is None
    x1, x2 = validate_inputs(x1, x2)
    with np.errstate(all="ignore"):
        fold = _Fold(kernel_fns, net, x1, x2, same)
        sig, theta = fold.run()
    if not (np.all(np.isfinite(sig)) and np.all(np.isfinite(theta))):
        nan = int(np.isnan(sig).sum() + np.isnan(theta).sum())
        if nan and fold.closed:
            raise AccuracyError(f"{nan} kernel entries could not be evaluated (NaN) by the closed form")
        inf_s, inf_t = int(np.isinf(sig).sum()), int(np.isinf(theta).sum())
        if inf_s or inf_t:
            where = f" (first at layer {fold.first_overflow})" if fold.first_overflow is not None else ""
            warnings.warn(f"{inf_s} NNGP and {inf_t} NTK entries of {sig.size} exceed the float64 range{where}; "
                          "they are returned as inf", KernelOverflowWarning, stacklevel=2)
    return sig, theta


class _PlainKernels:
    """A plain ``f(q1, q2, c) -> (Σ̂, Σ̇)`` (quadrature routes) in the interface of the fold."""
    degree = parity = None
    closed = False

    def __init__(self, fn):
        self.fn = fn

    def pair(self, q1, q2, c, b):
        return self.fn(q1, q2, c)


_MP_PREC = 128            # bits of the mpmath values the fold keeps (q, c, Θ of the mpmath entries)
_EXACT_INIT = 2.0 ** -900  # rows with |x|² below this (or overflowing) get Σ⁽⁰⁾ from an mpmath dot product


def _mpf(v):
    return v if isinstance(v, mpmath.mpf) else mpmath.mpf(float(v))


class _Fold:
    """The layer recursion on data; see "Stable fold" in the module docstring."""

    def __init__(self, fns, net: Network, x1, x2, same: bool):
        self.closed = isinstance(fns, ClosedFormKernels)
        self.k = fns if self.closed else _PlainKernels(fns)
        self.net, self.same = net, same
        self.sw2, self.sb2 = float(net.sigma_w) ** 2, float(net.sigma_b) ** 2
        self.lo, self.hi = self.k.trusted if self.closed else (0.0, math.inf)
        self.zero_ok = self.k.zero_ok if self.closed else True
        self.first_overflow = None
        self._init(x1, x2)

    # ------------------------------------------------------------ layer 0
    def _init(self, x1, x2):
        same, sw2, sb2 = self.same, self.sw2, self.sb2
        d = x1.shape[1]
        n1 = x1.shape[0]
        g = x1 @ (x1 if same else x2).T
        if same:
            g = np.triu(g) + np.triu(g, 1).T
            nsq1 = g.diagonal().copy()
            nsq2 = nsq1
        else:
            nsq1, nsq2 = np.einsum("ij,ij->i", x1, x1), np.einsum("ij,ij->i", x2, x2)
        pos, neg = _row_classes(x1, x2, same, g, nsq1, nsq2)
        sig = sw2 * g / d + sb2
        q1 = sw2 * nsq1 / d + sb2
        q2 = q1 if same else sw2 * nsq2 / d + sb2
        if same:
            di = np.arange(n1)
            pos = (np.concatenate([di, pos[0]]), np.concatenate([di, pos[1]]))
        theta = sig.copy() if self.net.parameterization == "ntk" else g + 1.0
        self.q1, self.q2, self.sig, self.theta = q1, q2, sig, theta
        self.pos = pos if pos[0].size else None
        self.neg = neg if (neg[0].size and sb2 == 0) else None
        # mpmath state: rows (index -> mpf q), entries ((i, j) -> mpf c / Θ)
        self.xq1, self.xq2 = {}, ({} if not same else None)
        self.xc, self.xt = {}, {}
        if not self.closed:
            return
        exact1 = np.nonzero(~np.isfinite(q1) | ((nsq1 < _EXACT_INIT) & (nsq1 > 0)) | ~np.isfinite(nsq1))[0]
        exact2 = exact1 if same else np.nonzero(~np.isfinite(q2) | ((nsq2 < _EXACT_INIT) & (nsq2 > 0))
                                               | ~np.isfinite(nsq2))[0]
        with mpmath.workprec(_MP_PREC):
            def dot(a, b):
                return mpmath.fdot([mpmath.mpf(float(t)) for t in a], [mpmath.mpf(float(t)) for t in b])
            for idx, x, xq in ((exact1, x1, self.xq1), (exact2, x2, self.xq2)):
                if xq is None:
                    continue
                for i in idx:
                    xq[int(i)] = sw2 * dot(x[i], x[i]) / d + sb2
            xq2 = self.xq1 if same else self.xq2
            std = self.net.parameterization != "ntk"
            for i, j in _entries(exact1, exact2, x1.shape[0], x2.shape[0]):
                dot_ij = dot(x1[i], x2[j])
                self.xc[(i, j)] = sw2 * dot_ij / d + sb2
                self.xt[(i, j)] = self.xc[(i, j)] if not std else dot_ij + 1
            for xq, q in ((self.xq1, q1), (xq2, q2)):
                for i, v in xq.items():
                    q[i] = float(v)
            for (i, j), v in self.xc.items():
                sig[i, j] = float(v)
                theta[i, j] = float(self.xt[(i, j)])
        self._mark_rows(self.q1, self.xq1)
        if not same:
            self._mark_rows(self.q2, self.xq2)

    def _mark_rows(self, q, xq):
        """Rows whose variance is outside the trusted range (or not finite) go to mpmath."""
        bad = np.nonzero(~((q >= self.lo) & (q <= self.hi) | (q == 0) & self.zero_ok))[0]
        for i in bad:
            i = int(i)
            if i not in xq:
                xq[i] = _mpf(q[i])

    # ------------------------------------------------------------ layers
    def run(self):
        for layer in range(1, self.net.depth + 1):
            self._layer(layer)
        return np.ascontiguousarray(self.sig), np.ascontiguousarray(self.theta)

    def _layer(self, layer: int):
        k, sw2, sb2, same = self.k, self.sw2, self.sb2, self.same
        q1, q2, sig, theta = self.q1, self.q2, self.sig, self.theta
        s1 = np.sqrt(q1)
        s2 = s1 if same else np.sqrt(q2)
        b = s1[:, None] * s2[None, :]
        c = sig if k.degree is not None else snap(sig, b)   # homogeneous kernels snap ρ = c/b themselves
        khat, kdot = k.pair(q1[:, None], q2[None, :], c, b)
        shape = (q1.shape[0], q2.shape[0])
        khat, kdot = (_owned(v, shape) for v in (khat, kdot))
        kh1, kd1 = (np.broadcast_to(np.asarray(v, dtype=float), q1.shape) for v in k.pair(q1, q1, q1, q1))
        kh2, kd2 = (kh1, kd1) if same else \
            (np.broadcast_to(np.asarray(v, dtype=float), q2.shape) for v in k.pair(q2, q2, q2, q2))
        if self.pos is not None:
            i, j = self.pos
            khat[i, j], kdot[i, j] = kh1[i], kd1[i]
        neg = self.neg
        if neg is not None:
            i, j = neg
            if k.parity == "odd":
                khat[i, j], kdot[i, j] = -kh1[i], kd1[i]
            elif k.parity == "even":
                khat[i, j], kdot[i, j] = kh1[i], -kd1[i]
        new_sig = sw2 * khat + sb2
        prod = sw2 * kdot * theta
        if self.net.parameterization == "ntk":
            new_theta = new_sig + prod
        else:
            new_theta = self.net.width * khat + 1.0 + prod
        if not _all_finite(prod):      # Σ̇ = 0 contributes nothing, even where Θ is inf
            zero = kdot == 0
            new_theta[zero] = (new_sig if self.net.parameterization == "ntk" else self.net.width * khat + 1.0)[zero]
        new_q1 = sw2 * kh1 + sb2
        new_q2 = new_q1 if same else sw2 * kh2 + sb2
        # ties: repeated rows take exactly the row's new variance; antipodal rows (σ_b = 0) stay antipodal
        if self.pos is not None:
            i, j = self.pos
            new_sig[i, j] = new_q1[i]
        if neg is not None:
            i, j = neg
            if k.parity == "even":
                new_sig[i, j] = new_q1[i]
                self.pos = (np.concatenate([self.pos[0], i]), np.concatenate([self.pos[1], j])) \
                    if self.pos is not None else neg
            self.neg = neg if k.parity == "odd" else None
        if self.closed:
            self._mp_layer(khat, kdot, theta, new_sig, new_theta, new_q1, new_q2)
        if self.first_overflow is None and not (_all_finite(new_sig) and _all_finite(new_theta)):
            self.first_overflow = layer
        self.q1, self.q2, self.sig, self.theta = new_q1, new_q2, new_sig, new_theta

    # ------------------------------------------------------------ mpmath entries
    def _mp_layer(self, khat, kdot, theta, new_sig, new_theta, new_q1, new_q2):
        k, sw2, sb2, same = self.k, self.sw2, self.sb2, self.same
        std = self.net.parameterization != "ntk"
        width = self.net.width
        xq1 = self.xq1
        xq2 = xq1 if same else self.xq2
        # entries whose float values cannot be trusted: an mpmath row, or a non-finite float result
        extra = set()
        if not (_all_finite(khat) and _all_finite(kdot) and _all_finite(new_sig)):
            bad = ~(np.isfinite(khat) & np.isfinite(kdot) & np.isfinite(new_sig))
            extra = set(zip(*(a.tolist() for a in np.nonzero(bad))))
        # rows evaluated in float whose new variance left float64: recomputed in mpmath from the old one
        for xq, q, new in ((xq1, self.q1, new_q1), (None if same else xq2, self.q2, new_q2)):
            if xq is None or _all_finite(new):
                continue
            for i in np.nonzero(~np.isfinite(new))[0].tolist():
                if i not in xq:
                    xq[i] = _mpf(q[i])     # this layer's variance: the row is evaluated in mpmath from now on
        entries = set(self.xc) | extra | set(_entries(np.array(sorted(xq1), dtype=int),
                                                       np.array(sorted(xq2), dtype=int),
                                                       new_sig.shape[0], new_sig.shape[1]))
        with mpmath.workprec(_MP_PREC):
            rows1 = {i: k.mp(v, v, v) for i, v in xq1.items()}
            rows2 = rows1 if same else {i: k.mp(v, v, v) for i, v in xq2.items()}
            pos = set(zip(self.pos[0].tolist(), self.pos[1].tolist())) if self.pos is not None else set()
            new_xc, done = {}, {}
            for (i, j) in entries:
                if same and (j, i) in done:
                    kh, kd = done[(j, i)]
                else:
                    a = xq1.get(i)
                    a = _mpf(self.q1[i]) if a is None else a
                    bq = xq2.get(j)
                    bq = _mpf(self.q2[j]) if bq is None else bq
                    cv = self.xc.get((i, j))
                    cv = _mpf(self.sig[i, j]) if cv is None else cv
                    if (i, j) in pos and a == bq:
                        r = rows1.get(i) or k.mp(a, a, a)
                        kh, kd = r
                    else:
                        kh, kd = k.mp(a, bq, cv)
                    done[(i, j)] = (kh, kd)
                cn = sw2 * kh + sb2
                tp = self.xt.get((i, j))
                tp = _mpf(theta[i, j]) if tp is None else tp
                tn = (cn if not std else width * kh + 1) + (0 if kd == 0 else sw2 * kd * tp)
                new_xc[(i, j)] = cn
                self.xt[(i, j)] = tn
                new_sig[i, j], new_theta[i, j] = _to_float(cn), _to_float(tn)
            # Θ carried in mpmath (or leaving float64 now) at entries whose kernels were evaluated in float
            over = ~np.isfinite(new_theta) if not _all_finite(new_theta) else None
            carry = {e for e in self.xt if e not in new_xc}
            if over is not None:
                carry |= {e for e in zip(*(a.tolist() for a in np.nonzero(over))) if e not in new_xc}
            for (i, j) in carry:
                tp = self.xt.get((i, j))
                tp = _mpf(theta[i, j]) if tp is None else tp
                kd = _mpf(kdot[i, j])
                head = _mpf(new_sig[i, j]) if not std else width * _mpf(khat[i, j]) + 1
                tn = head + (0 if kd == 0 else sw2 * kd * tp)
                self.xt[(i, j)] = tn
                new_theta[i, j] = _to_float(tn)
            # rows: new variances
            new_rows1 = {i: sw2 * r[0] + sb2 for i, r in rows1.items()}
            new_rows2 = new_rows1 if same else {i: sw2 * r[0] + sb2 for i, r in rows2.items()}
        for xq, q, new in ((xq1, new_q1, new_rows1), (None if same else xq2, new_q2, new_rows2)):
            if xq is None:
                continue
            xq.clear()
            for i, v in new.items():
                q[i] = _to_float(v)
                if not (self.lo <= q[i] <= self.hi or q[i] == 0 and self.zero_ok):
                    xq[i] = v             # stays in mpmath
            self._mark_rows(q, xq)
        self.xc = {e: v for e, v in new_xc.items() if e[0] in xq1 or e[1] in xq2 or e in extra}
        self.xt = {e: v for e, v in self.xt.items() if e in self.xc or math.isinf(_to_float(v))}


def _owned(v, shape) -> np.ndarray:
    """``v`` as a writable float64 array of ``shape`` (copied only when it is a broadcast or a view)."""
    v = np.asarray(v, dtype=float)
    if v.shape != shape or not v.flags.writeable or not v.flags.owndata:
        v = np.array(np.broadcast_to(v, shape), dtype=float)
    return v


def _all_finite(a) -> bool:
    with np.errstate(all="ignore"):
        return math.isfinite(float(np.sum(a))) or bool(np.isfinite(a).all())


def _entries(idx1, idx2, n1: int, n2: int):
    """(i, j) with i in idx1 (any j) or j in idx2 (any i)."""
    out = set()
    for i in np.asarray(idx1).tolist():
        out.update((i, j) for j in range(n2))
    for j in np.asarray(idx2).tolist():
        out.update((i, j) for i in range(n1))
    return out


def _row_classes(x1, x2, same: bool, g, nsq1, nsq2):
    """Repeated and antipodal rows (x and ±x, also across inputs and inputs2): their squared norms are set
    to the first member's and their Gram entries to ±that, in place, so that ties are exact from layer 0.
    Returns (pos, neg): index arrays (i, j) of the pairs x_i = x_j (without the diagonal) and x_i = −x_j."""
    empty = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
    rows = x1 if same else np.vstack([x1, x2])
    n1 = x1.shape[0]
    if rows.shape[0] < 2:
        return empty, empty
    first = (rows != 0).argmax(axis=1)
    sgn = np.sign(rows[np.arange(rows.shape[0]), first])
    sgn[sgn == 0] = 1.0
    _, inv, counts = np.unique(rows * sgn[:, None], axis=0, return_inverse=True, return_counts=True)
    inv = np.asarray(inv).ravel()
    multi = np.nonzero(counts[inv] > 1)[0]
    if multi.size == 0:
        return empty, empty
    order = multi[np.argsort(inv[multi], kind="stable")]
    pos, neg = ([], []), ([], [])
    for grp in np.split(order, np.nonzero(np.diff(inv[order]))[0] + 1):
        rep = grp[0]
        r = nsq1[rep] if rep < n1 else nsq2[rep - n1]
        a = grp[grp < n1]
        bcols = a if same else grp[grp >= n1] - n1
        nsq1[a] = r
        if not same:
            nsq2[bcols] = r
        if a.size == 0 or bcols.size == 0:
            continue
        sa, sb = sgn[a], sgn[bcols if same else bcols + n1]
        prod = sa[:, None] * sb[None, :]
        g[np.ix_(a, bcols)] = r * prod
        ii, jj = np.meshgrid(a, bcols, indexing="ij")
        off = ii != jj if same else np.ones_like(prod, dtype=bool)
        for out, m in ((pos, (prod > 0) & off), (neg, prod < 0)):
            out[0].append(ii[m])
            out[1].append(jj[m])
    return tuple(tuple(np.concatenate(p) if p else np.zeros(0, dtype=np.intp) for p in pair) for pair in (pos, neg))
