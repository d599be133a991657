"""Inputs are validated before any work (issue 11): hostile .npy files, in-memory arrays and
network/option bounds give one line on stderr and exit 2 (InputError/NetworkError in the API),
never a MemoryError, EOFError, a blocked read, an unpickled object or a silently dropped
imaginary part."""
import os
import signal

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ntksym
from ntksym import inputs, network
from ntksym.cli import main
from ntksym.errors import InputError, NetworkError


class _Unpickled:  # unpickling it would create the file named by MARKER
    path = None

    def __reduce__(self):
        return (open, (self.path, "w"))


def _huge_header(path):
    with open(path, "wb") as fh:  # a valid header promising 8·10¹⁸ bytes, and no data
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 10**6)})


def _truncated(path):
    np.save(path, np.ones((4, 3)))
    data = path.read_bytes()
    path.write_bytes(data[:-5])


def _npz(path):
    with open(path, "wb") as fh:
        np.savez(fh, a=np.ones((2, 2)))


def _pickled(path):
    obj = _Unpickled()
    obj.path = str(path.parent / "UNPICKLED")
    np.save(path, np.array([[obj, 1.0]], dtype=object), allow_pickle=True)


HOSTILE = {
    "huge-header": (_huge_header, "memory"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "devnull": (None, "not a regular file"),
    "fifo": (lambda p: os.mkfifo(p), "not a regular file"),
    "directory": (lambda p: p.mkdir(), "directory"),
    "missing": (lambda p: None, "no such file"),
    "text": (lambda p: p.write_text("1 2\n3 4\n"), "not a .npy file"),
    "npz": (lambda p: _npz(p), "not a .npy file"),
    "short": (lambda p: p.write_bytes(b"\x93NUMPY\x01"), "cannot read"),
    "bad-header": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\x08\x00{'a': 1" + b"\n"), "cannot read"),
    "complex": (lambda p: np.save(p, np.array([[1 + 2j, 3.0]])), "complex"),
    "strings": (lambda p: np.save(p, np.array([["1.5", "2"]])), "string"),
    "bytes": (lambda p: np.save(p, np.array([[b"1", b"2"]])), "bytes"),
    "bool": (lambda p: np.save(p, np.ones((2, 2), dtype=bool)), "boolean"),
    "datetime": (lambda p: np.save(p, np.array([["2020-01-01"]], dtype="datetime64[D]")), "datetime"),
    "object": (_pickled, "object"),
    "structured": (lambda p: np.save(p, np.zeros((3,), dtype=[("a", "f8"), ("b", "f8")])), "structured"),
    "structured-2d": (lambda p: np.save(p, np.zeros((3, 2), dtype=[("a", "f8"), ("b", "f8")])), "structured"),
    "subarray": (lambda p: np.save(p, np.zeros((3, 2), dtype=("f8", (2,)))), "2-D"),
    "truncated": (_truncated, "truncated"),
    "trailing": (lambda p: (np.save(p, np.ones((2, 2))), open(p, "ab").write(b"\0" * 8)), "longer"),
    "3-D": (lambda p: np.save(p, np.ones((2, 2, 2))), "2-D"),
    "1-D": (lambda p: np.save(p, np.ones(3)), "2-D"),
    "0-D": (lambda p: np.save(p, np.float64(1.0)), "2-D"),
    "no-rows": (lambda p: np.save(p, np.ones((0, 3))), "non-empty"),
    "nan": (lambda p: np.save(p, np.array([[np.nan, 1.0]])), "NaN"),
    "inf": (lambda p: np.save(p, np.array([[1.0, -np.inf]])), "NaN or infinite"),
    "float128-overflow": (lambda p: np.save(p, np.array([[np.longdouble("1e4000"), 1]])), "infinite"),
}


def _make(tmp_path, kind):
    if kind == "devnull":
        return "/dev/null"
    make, _ = HOSTILE[kind]
    path = tmp_path / f"{kind}.npy"
    make(path)
    return str(path)


class _Timeout(Exception):
    pass


@pytest.fixture
def alarm():
    """Fail instead of hanging: 10 s per call (a FIFO used to block the reader forever)."""
    def ring(signum, frame):
        raise _Timeout("blocked")
    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _one_line_error(capsys, argv, *fragments):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert err.startswith("ntksym: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_cli(tmp_path, capsys, alarm, kind):
    work = tmp_path / "work"
    work.mkdir()
    path = _make(work, kind)
    good = work / "good.npy"
    np.save(good, np.ones((3, 2)))
    before = sorted(os.listdir(work))
    for argv in (["--inputs", path], ["--inputs", good, "--inputs2", path]):
        _one_line_error(capsys, ["kernel", "relu", "--depth", "1", *argv, "--out", work / "out.npz"], HOSTILE[kind][1])
        assert sorted(os.listdir(work)) == before  # nothing written, nothing unpickled


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_loader(tmp_path, alarm, kind):
    path = _make(tmp_path, kind)
    with pytest.raises(InputError, match=HOSTILE[kind][1].replace("(", r"\(")) as exc:
        inputs.load_array(path)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "UNPICKLED").exists()


def test_hostile_file_empirical(tmp_path, capsys, alarm):
    for kind in ("fifo", "complex", "huge-header", "object"):
        path = _make(tmp_path, kind)
        _one_line_error(capsys, ["empirical", "relu", "--depth", 1, "--width", 4, "--samples", 2, "--inputs", path,
                                 "--out", tmp_path / "e.npz"], HOSTILE[kind][1])
    assert not (tmp_path / "e.npz").exists() and not (tmp_path / "UNPICKLED").exists()


def test_fifo_swapped_in_after_stat_is_refused_without_blocking(tmp_path, monkeypatch, alarm):
    """The check that counts is fstat on the descriptor opened with O_NONBLOCK, not the earlier stat."""
    regular, fifo = tmp_path / "x.npy", tmp_path / "fifo.npy"
    np.save(regular, np.ones((2, 2)))
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular))
    with pytest.raises(InputError, match="not a regular file"):
        inputs.load_array(fifo)


def test_good_files_load_as_float64(tmp_path):
    x = np.arange(12).reshape(4, 3)
    for name, arr in {"i.npy": x.astype(np.int32), "u.npy": x.astype(np.uint8), "be.npy": x.astype(">f8"),
                      "f16.npy": x.astype(np.float16), "F.npy": np.asfortranarray(x.astype(float))}.items():
        np.save(tmp_path / name, arr)
        got = inputs.load_array(tmp_path / name)
        assert got.dtype == np.float64 and got.flags.c_contiguous and np.array_equal(got, x), name


def test_loader_memory_bound(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.ones((100, 10)))
    monkeypatch.setattr(inputs, "available_memory", lambda: 10_000)
    with pytest.raises(InputError, match="memory"):
        inputs.load_array(tmp_path / "x.npy")


def test_available_memory_is_positive():
    assert 0 < inputs.available_memory() < 1 << 60


# ------------------------------------------------------------------ in-memory arrays (Python API)


@pytest.mark.parametrize("bad,match", [
    (np.array([[1 + 2j, 3.0]]), "complex"), (np.array([["1.5", "2"]]), "string"),
    (np.ones((2, 2), dtype=bool), "boolean"), (np.array([[1.0, None]], dtype=object), "object"),
    (np.ones((2, 2, 2)), "2-D"), ([[1.0, 2.0], [3.0]], "not a numeric array"), (np.array([[np.nan, 1.0]]), "NaN"),
    ([[10**400, 1]], "object"),
])
def test_api_refuses_bad_arrays(bad, match, recwarn):
    with pytest.raises(InputError, match=match):
        ntksym.kernel("relu", bad, depth=1)
    with pytest.raises(InputError, match=match):
        ntksym.kernel("relu", np.ones((2, 2)), bad, depth=1)
    assert not [w for w in recwarn if issubclass(w.category, np.exceptions.ComplexWarning)]


def test_gram_matrices_bounded_by_memory():
    with pytest.raises(InputError, match="memory"):
        ntksym.kernel("relu", np.ones((10**6, 1)), depth=1)  # 10¹² entries per matrix


# ------------------------------------------------------------------ network bounds


@pytest.mark.parametrize("opt,value,match", [
    ("--depth", "0", "depth"), ("--depth", "-1", "depth"), ("--depth", str(10**6), "100000"),
    ("--depth", "abc", "--depth"), ("--depth", "1.5", "--depth"), ("--depth", "9" * 5000, "--depth"),
    ("--sigma-w", "1e200", "1e+06"), ("--sigma-w", "nan", "sigma-w"), ("--sigma-w", "inf", "sigma-w"),
    ("--sigma-w", "-1", "sigma-w"), ("--sigma-b", "1e200", "sigma-b"), ("--sigma-b", "nan", "sigma-b"),
    ("--sigma-b", "-inf", "sigma-b"), ("--sigma-w", "abc", "--sigma-w"),
])
def test_network_bounds_cli(tmp_path, capsys, opt, value, match):
    np.save(tmp_path / "x.npy", np.ones((2, 2)))
    argv = {"--depth": "1", "--sigma-w": "1", "--sigma-b": "0", opt: value}
    for cmd in (["derive", "relu"], ["kernel", "relu", "--inputs", tmp_path / "x.npy", "--out", tmp_path / "k.npz"]):
        _one_line_error(capsys, [*cmd, *[x for kv in argv.items() for x in kv]], match)
    assert not (tmp_path / "k.npz").exists()


@pytest.mark.parametrize("argv,match", [
    (["series", "relu", "--depth", 10**6, "--order", 3], "depth"),
    (["series", "relu", "--depth", 2, "--order", 3, "--sigma-w", "10**9*10**9"], "sigma-w"),
    (["series", "relu", "--depth", 10**6, "--order", 3, "--preset", "murray"], "depth"),
    (["spectrum", "relu", "--depth", 2, "--dim", 3, "--kmax", 3, "--order", 0], "--order"),
    (["spectrum", "relu", "--depth", 2, "--dim", 3, "--kmax", 3, "--order", -5], "--order"),
    (["derive", "relu", "--depth", 2, "--parameterization", "standard", "--width", 0], "width"),
    (["derive", "relu", "--depth", 2, "--parameterization", "standard", "--width", 10**10], "width"),
    (["codegen", "relu", "--depth", 10**6, "-o", "g.py"], "depth"),
])
def test_other_command_bounds(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, argv, match)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("change,match", [
    ({"--width": 10**7}, "--width"), ({"--samples": 10**7}, "--samples"), ({"--n-out": 10**5}, "--n-out"),
    ({"--seed": 2**64}, "--seed"), ({"--depth": 10**6}, "--depth"), ({"--sigma-w": "1e200"}, "sigma-w"),
    ({"--sigma-b": "nan"}, "sigma-b"), ({"--width": 10**6, "--depth": 3}, "memory"),
])
def test_empirical_bounds(tmp_path, capsys, change, match):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    opts = {"--depth": 1, "--width": 4, "--samples": 2, "--inputs": tmp_path / "x.npy", "--out": tmp_path / "e.npz",
            **change}
    _one_line_error(capsys, ["empirical", "relu", *[x for kv in opts.items() for x in kv]], match)
    assert sorted(os.listdir(tmp_path)) == ["x.npy"]


@pytest.mark.parametrize("argv,match", [
    (["--width", 10, "--depth", 10**5], "depth/width"), (["--width", 10, "--depth", 10**6], "--depth"),
    (["--width", 10**7, "--depth", 3], "--width"), (["--width", 5, "--depth", 3, "--sigma-w2", "1e300"], "sigma-w2"),
    (["--width", 5, "--depth", 3, "--sigma-w2", "nan"], "sigma-w2"),
    (["--width", 10**6, "--depth", 3, "--samples", 2], "memory"),
    (["--width", *range(1, 41), "--depth", *range(1, 31)], "combinations"),
])
def test_dispersion_bounds(capsys, argv, match):
    _one_line_error(capsys, ["dispersion", *argv], match)


def test_dispersion_overflowing_mean_prints_inf(capsys):
    assert main(["dispersion", "--width", "10", "--depth", "1000", "--sigma-w2", "1e12"]) == 0
    assert "E[Θ]=inf" in capsys.readouterr().out


@pytest.mark.parametrize("kw", [dict(depth=0), dict(depth=10**5 + 1), dict(depth=True), dict(depth=2.0),
                                dict(depth=10**5000), dict(depth=1, sigma_w=1e200), dict(depth=1, sigma_w=10**400),
                                dict(depth=1, sigma_b=float("inf")), dict(depth=1, sigma_w=-0.5),
                                dict(depth=1, parameterization="standard", width=10**10),
                                dict(depth=1, parameterization="standard", width=2.5)])
def test_network_bounds_api(kw):
    with pytest.raises(NetworkError):
        ntksym.kernel("relu", np.ones((2, 2)), **kw)
    with pytest.raises(NetworkError):
        ntksym.derive("relu", **kw)


def test_bounds_are_inclusive():
    net = ntksym.Network(network.MAX_DEPTH, network.MAX_SIGMA, network.MAX_SIGMA, "standard", network.MAX_WIDTH)
    assert net.depth == 100_000 and net.sigma_w == 1e6 and net.width == 10**9


# ------------------------------------------------------------------ depth 10⁴ works


def test_depth_10000_api_kernel():
    x = np.random.default_rng(1).standard_normal((3, 4))
    nngp, ntk = ntksym.kernel("erf", x, depth=10_000)
    assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk)) and np.all(np.diag(ntk) > 0)
    # every input's variance has converged to the same fixed point q* of q -> E[erf(√q Z)²]
    np.testing.assert_allclose(np.diag(nngp), np.full(3, nngp[0, 0]), rtol=1e-12)
    assert 0.1 < nngp[0, 0] < 0.2


def test_depth_10000_cli_kernel(tmp_path, capsys):
    x = np.random.default_rng(2).standard_normal((3, 4))
    np.save(tmp_path / "x.npy", x)
    assert main(["kernel", "relu", "--depth", "10000", "--sigma-w", "1.4142135623730951", "--inputs",
                 str(tmp_path / "x.npy"), "--out", str(tmp_path / "k.npz")]) == 0, capsys.readouterr().err
    with np.load(tmp_path / "k.npz") as k:
        # ReLU at σ_w² = 2, σ_b = 0 keeps the diagonal: Σ⁽ᴸ⁾(x, x) = |x|²/d; Θ⁽ᴸ⁾(x, x) = (L + 1)|x|²/d
        q = 2 * np.einsum("ij,ij->i", x, x) / x.shape[1]
        np.testing.assert_allclose(np.diag(k["nngp"]), q, rtol=1e-9)
        np.testing.assert_allclose(np.diag(k["ntk"]), 10_001 * q, rtol=1e-9)


@pytest.mark.trust   # with the long CI step (python -m pytest -m "fuzz or trust")
def test_depth_10000_derive():
    d = ntksym.derive("relu", depth=10_000)
    assert len(d.recursion.layers) == 10_001 and d.recursion.ntk == sp.Symbol("Theta^(10000)_xy", real=True)


@pytest.mark.parametrize("act", ["relu", "erf", "tanh", "abs"])
def test_renamed_layers_equal_evaluated_ones(act):
    """Layers 2..L are layer 1 with symbols renamed and no re-evaluation; evaluating them gives the same trees."""
    from ntksym.derivation import dual_kernels
    from ntksym.network import Network, recursion
    dual = dual_kernels(act)
    for net, symbolic in [(Network(11, 1.3, 0.2), False), (Network(11, 1.0, 0.5, "standard", 7), False),
                          (Network(11), True)]:
        rec = recursion(dual, net, symbolic_sigmas=symbolic)
        s0, s1 = rec.layers[0].symbols, rec.layers[1].symbols
        for l in range(2, net.depth + 1):
            rename = {**{s0[k]: rec.layers[l - 1].symbols[k] for k in s0},
                      **{s1[k]: rec.layers[l].symbols[k] for k in s1}}
            for key, eq in rec.layers[1].equations.items():
                evaluated, got = eq.xreplace(rename), rec.layers[l].equations[key]
                assert evaluated == got and sp.srepr(evaluated) == sp.srepr(got)
                assert sp.latex(evaluated) == sp.latex(got) and sp.sstr(evaluated) == sp.sstr(got)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300),
                 st.builds(lambda v, n, text: b"\x93NUMPY" + bytes(v) + n.to_bytes(2, "little") + text.encode(),
                           st.sampled_from([(1, 0), (2, 0), (3, 0), (1, 1)]), st.integers(0, 400),
                           st.text(max_size=200))))
def test_arbitrary_bytes_never_crash_the_loader(tmp_path, data):
    path = tmp_path / "fuzz.npy"
    path.write_bytes(data)
    try:
        arr = inputs.load_array(path)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert arr.dtype == np.float64 and arr.ndim == 2 and np.all(np.isfinite(arr))
