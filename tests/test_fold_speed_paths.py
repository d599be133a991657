"""The panel/triangle fold of issue 13 (ntksym/network.py, rule 7 and the layer-map protocol).

The reference is the issue-12 fold kept verbatim in tests/fold_reference.py: one layer at a time over
whole n×n temporaries.  Every entry must come out bit for bit the same (the new fold applies the
same elementwise operations, only in panels and in place), on hostile rows (repeated, antipodal,
zero, norms 1e-150 and 1e150, mpmath rows, overflow to inf), for closed forms with and without the
homogeneous scaling, both parameterizations, x2 given or not, and panel sizes from a few entries to
the whole matrix.  With x2 = None the issue-12 fold evaluated both triangles separately (they could
differ in the last bit); the new one keeps the upper triangle and mirrors it, so the comparison is
with the reference's upper triangle.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fold_reference
from ntksym import network
from ntksym.derivation import as_activation, dual_kernels
from ntksym.kernels import ClosedFormKernels, kernel_functions, snap
from ntksym.network import KernelOverflowWarning, Network


def _fns(act: str):
    a = as_activation(act, None)
    return kernel_functions(a, dual_kernels(a))[0]


def _hostile(seed: int = 0, n: int = 5, d: int = 4) -> np.ndarray:
    u = np.random.default_rng(seed).standard_normal((n, d))
    extra = [u[0], -u[1], np.zeros(d), 1e-150 * u[2], 1e150 * u[3], -u[0]]
    return np.vstack([u, np.array(extra)])


def _run(evaluate, fns, net, x1, x2):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = evaluate(fns, net, x1, x2)
        except Exception as exc:          # both folds must refuse the same way
            return type(exc).__name__, str(exc), []
    return out, [(w.category, str(w.message)) for w in caught]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.where(np.isnan(a), np.nan, a), np.where(np.isnan(b), np.nan, b)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _upper_with_copies(r, x):
    """The reference's upper triangle, mirrored, with each repeated row a copy of its first occurrence."""
    rep = np.array([next(j for j in range(i + 1) if np.array_equal(x[j], x[i])) for i in range(len(x))])
    r = np.triu(r) + np.triu(r, 1).T
    return r[np.ix_(rep, rep)]


def _compare(act, net, x1, x2=None, panel=None, monkeypatch=None):
    fns = _fns(act)
    ref = _run(fold_reference.evaluate, fns, net, x1, x2)
    monkeypatch.setattr(network, "PANEL_ENTRIES", panel)
    new = _run(network.evaluate, fns, net, x1, x2)
    if isinstance(ref[0], str):
        assert ref[:2] == new[:2]
        return
    (rs, rt), rw = ref
    (ns, nt), nw = new
    for r, v in ((rs, ns), (rt, nt)):
        if x2 is None:
            assert _same_bits(v, v.T)                    # exactly symmetric
            r = _upper_with_copies(r, x1)
        assert _same_bits(r, v), (act, panel)
    assert rw == nw


CASES = [
    ("erf", dict(depth=4, sigma_w=1.5, sigma_b=0.0)),       # odd parity: antipodal ties; 1e-150 row in mpmath
    ("relu", dict(depth=4, sigma_w=2.0, sigma_b=0.1)),      # homogeneous (scaled form), repeated ties
    ("gelu", dict(depth=3, sigma_w=1.5, sigma_b=0.0, parameterization="standard", width=7)),
    ("sin", dict(depth=3, sigma_w=1.5, sigma_b=0.0)),       # trusted range [2^-8, 64]: rows in mpmath
    ("He(4,x)", dict(depth=4, sigma_w=1.0, sigma_b=0.0)),   # overflow to inf, one warning
    ("sign", dict(depth=3, sigma_w=1.0, sigma_b=0.0)),      # homogeneous of degree 0
    ("x**2", dict(depth=3, sigma_w=1.0, sigma_b=0.0)),      # even parity: antipodal -> repeated
]


@pytest.mark.parametrize("act,kw", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("panel", [5, 40, None])
def test_bitwise_equal_to_issue12_fold_symmetric(act, kw, panel, monkeypatch):
    _compare(act, Network(**kw), _hostile(), None, panel, monkeypatch)


@pytest.mark.parametrize("act,kw", CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_bitwise_equal_to_issue12_fold_two_inputs(act, kw, monkeypatch):
    x = _hostile(1)
    _compare(act, Network(**kw), x[:7], x[3:], 6, monkeypatch)


@pytest.mark.parametrize("panel", [7, None])
def test_rows_entering_mpmath_mid_depth(panel, monkeypatch):
    """Ordinary rows whose variance leaves GELU's trusted range (q > 8192) at layer 10 of 12: they go to
    mpmath then, with no mpmath state before (regression: the fast path must still mark them)."""
    x = np.random.default_rng(12).standard_normal((4, 30))
    x *= 0.1 * np.sqrt(30) / np.linalg.norm(x, axis=1, keepdims=True)
    x = np.vstack([x, x[:1], -x[:1]])
    _compare("gelu", Network(depth=12, sigma_w=3.0, sigma_b=0.0), x, None, panel, monkeypatch)
    _compare("gelu", Network(depth=12, sigma_w=3.0, sigma_b=0.0), x[:4], x[2:], panel, monkeypatch)


def test_repeated_rows_stay_whole_rows():
    """x2 = None: a repeated row's whole row (not only the tie entry) is bitwise its first occurrence's,
    for closed forms whose float evaluation is not symmetric in (q1, q2) (He(4,x): the issue-12 grid)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 5)) * rng.uniform(0.5, 2.0, (9, 1))
    x[6], x[8] = x[1], x[1]
    for act in ("He(4,x)", "gelu", "erf"):
        s, t = network.evaluate(_fns(act), Network(depth=3, sigma_w=1.5, sigma_b=0.1), x)
        for a in (s, t):
            assert _same_bits(a[1], a[6]) and _same_bits(a[1], a[8]) and _same_bits(a[:, 1], a[:, 8])


def test_bitwise_equal_theta_overflow_carried(monkeypatch):
    """Θ leaves float64 while Σ̂, Σ̇ stay finite (ReLU, σ_w large): Θ is carried in mpmath at entries
    evaluated in float (rule 5), in panels as in the whole-matrix fold."""
    x = _hostile(2)
    for panel in (7, None):
        _compare("relu", Network(depth=60, sigma_w=2.0e3, sigma_b=0.0), x, None, panel, monkeypatch)
        _compare("relu", Network(depth=60, sigma_w=2.0e3, sigma_b=0.0), x[:6], x[4:], panel, monkeypatch)


def test_larger_panels_match_whole_matrix(monkeypatch):
    """n = 300 with repeated and antipodal rows: the default panels against one whole-matrix panel
    (and against the issue-12 fold), closed forms with and without the homogeneous scaling."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 20))
    x[10], x[200], x[250] = x[3], -x[7], x[3]
    for act in ("erf", "relu"):
        net = Network(depth=5, sigma_w=1.5, sigma_b=0.0)
        fns = _fns(act)
        ref = fold_reference.evaluate(fns, net, x)
        out = network.evaluate(fns, net, x)
        monkeypatch.setattr(network, "PANEL_ENTRIES", None)
        whole = network.evaluate(fns, net, x)
        monkeypatch.undo()
        for r, v, w in zip(ref, out, whole):
            assert _same_bits(v, w)
            assert _same_bits(v, _upper_with_copies(r, x))
        assert out[0][3, 10] == out[0][3, 3] == out[0][10, 10] == out[0][250, 3]   # repeated rows stay tied
        assert out[0][7, 200] == -out[0][7, 7] if act == "erf" else True          # odd: antipodal stays


@pytest.mark.parametrize("n1,n2,same", [(1, 1, True), (7, 7, True), (50, 50, True), (13, 29, False),
                                        (40, 3, False), (3, 500, False), (500, 500, True)])
@pytest.mark.parametrize("entries", [1, 5, 64, 1000, None])
def test_panels_cover_each_needed_entry_once(n1, n2, same, entries):
    count = np.zeros((n1, n2), dtype=int)
    for i0, i1, j0, j1 in network._panels(n1, n2, same, entries):
        count[i0:i1, j0:j1] += 1
        if same:
            assert j1 > i0 and (j0 >= i0 or j0 == 0 and i0 == 0)   # nothing strictly below a diagonal block
    if same:
        assert np.all(count[np.triu_indices(n1)] == 1) and np.all(count <= 1)
    else:
        assert np.all(count == 1)


def test_snap_in_place_equals_snap():
    rng = np.random.default_rng(3)
    b = np.abs(rng.standard_normal((9, 11))) * 10.0 ** rng.integers(-5, 5, (9, 11))
    b[0, 0] = 0.0
    eps = np.finfo(float).eps
    c = b * rng.choice([-1.0, 1.0], b.shape) * (1 - rng.integers(0, 12, b.shape) * eps)
    c[1, :3] = [np.nan, np.inf, -np.inf]
    c[0, 0] = -0.0
    c[2] = b[2] * 3.0                        # beyond the bound: clipped
    c[3] = rng.standard_normal(11) * b[3]    # ordinary values
    for diag in (0, 4):
        got = c.copy()
        network._snap_in_place(got, b, diag)
        assert _same_bits(got, snap(c, b))
    # near entries only in the diagonal block (the first 4 columns): the short path
    c2 = 0.5 * b
    c2[:4, :4] = c[:4, :4]
    for diag in (0, 4):
        got = c2.copy()
        network._snap_in_place(got, b, diag)
        assert _same_bits(got, snap(c2, b))


class _Recorder:
    """A layer map with ``begin_layer``: the closed form of erf, recording the protocol calls."""

    def __init__(self, inner: ClosedFormKernels, panel_entries):
        self.inner, self.panel_entries, self.calls = inner, panel_entries, []
        self.degree, self.parity = inner.degree, inner.parity

    def begin_layer(self, q1, q2):
        self.calls.append(("begin", q1.copy(), q2.copy(), q1 is q2))

    def pair(self, q1, q2, c, b, rows=None, cols=None):
        self.calls.append(("pair", q1.shape, q2.shape, c.shape, rows, cols, q1.copy(), q2.copy()))
        return self.inner.pair(q1, q2, c, b)


@pytest.mark.parametrize("two_inputs", [False, True])
def test_layer_map_protocol(two_inputs):
    """begin_layer once per layer before the layer's pair calls, with the 1-D row variances; panels
    of at most ``panel_entries`` entries with their row/column slices; the results equal the closed
    form's own route bit for bit (no row leaves its trusted range here)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((23, 6))
    x[5] = x[2]
    x2 = rng.standard_normal((17, 6)) if two_inputs else None
    net = Network(depth=3, sigma_w=1.5, sigma_b=0.2)
    closed = _fns("erf")
    rec = _Recorder(closed, panel_entries=50)
    got = network.evaluate(rec, net, x, x2)
    want = network.evaluate(closed, net, x, x2)
    assert all(_same_bits(g, w) for g, w in zip(got, want))
    begins = [i for i, c in enumerate(rec.calls) if c[0] == "begin"]
    assert len(begins) == net.depth
    for layer, start in enumerate(begins):
        end = begins[layer + 1] if layer + 1 < len(begins) else len(rec.calls)
        _, q1, q2, same_obj = rec.calls[start]
        assert q1.ndim == q2.ndim == 1 and q1.shape == (23,) and q2.shape == ((17,) if two_inputs else (23,))
        assert same_obj == (not two_inputs)
        panels = [c for c in rec.calls[start + 1:end] if c[4] is not None]
        diag = [c for c in rec.calls[start + 1:end] if c[4] is None]
        assert len(diag) == (2 if two_inputs else 1) and all(len(c[1]) == 1 for c in diag)
        covered = np.zeros((23, q2.size), dtype=int)
        for _, s1, s2, sc, rows, cols, pq1, pq2 in panels:
            assert s1 == (rows.stop - rows.start, 1) and s2 == (1, cols.stop - cols.start) == (1, sc[1])
            assert sc[0] * sc[1] <= max(50, sc[0] * sc[0])
            assert _same_bits(pq1[:, 0], q1[rows]) and _same_bits(pq2[0], q2[cols])
            covered[rows, cols] += 1
        target = np.triu(covered) if not two_inputs else covered
        assert np.all(target[np.triu_indices(23) if not two_inputs else np.nonzero(np.ones_like(covered))] == 1)


def test_plain_callable_is_one_call_per_layer_and_symmetric():
    """A plain f(q1, q2, c) (quadrature routes: a per-call error check) gets one call per layer on the
    whole matrix, and the result is exactly symmetric."""
    closed = _fns("gelu")
    shapes = []

    def f(q1, q2, c):
        shapes.append(np.broadcast(q1, q2, c).shape)
        return closed(q1, q2, c)
    x = np.random.default_rng(2).standard_normal((30, 5))
    s, t = network.evaluate(f, Network(depth=4, sigma_w=1.2, sigma_b=0.1), x)
    assert shapes.count((30, 30)) == 4 and all(sh in ((30, 30), (30,)) for sh in shapes)
    assert _same_bits(s, s.T) and _same_bits(t, t.T)
    ref = network.evaluate(closed, Network(depth=4, sigma_w=1.2, sigma_b=0.1), x)
    assert np.max(np.abs(s - ref[0])) <= 1e-14 * np.max(np.abs(ref[0]))


def test_overflow_warning_once_with_panels(monkeypatch):
    monkeypatch.setattr(network, "PANEL_ENTRIES", 3)
    x = np.random.default_rng(1).standard_normal((6, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s, t = network.evaluate(_fns("He(4,x)"), Network(depth=5), x)
    assert [w.category for w in caught] == [KernelOverflowWarning]
    assert np.all(np.isinf(s)) and np.all(np.isinf(t))
