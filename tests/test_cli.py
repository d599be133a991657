"""The command line: output contracts and user errors (one line, exit 2, nothing written)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ntksym.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hermite_json(capsys):
    code, out, err = run(capsys, "hermite", "relu", "--order", "5", "--digits", "12", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["activation"] == "relu"
    assert [c["k"] for c in data["coefficients"]] == [0, 1, 2, 3, 4]
    c1 = data["coefficients"][1]
    assert c1["exact"] == "1/2" and c1["value"].startswith("0.5") and c1["route"].startswith("exact")
    assert data["coefficients"][2]["value"].startswith("0.28209479177")


def test_hermite_numeric_route_json(capsys):
    code, out, _ = run(capsys, "hermite", "tanh", "--order", "4", "--digits", "30", "--json")
    data = json.loads(out)
    c1 = data["coefficients"][1]
    assert c1["exact"] is None and c1["route"].startswith("numeric")
    assert c1["value"].startswith("0.6057055096021")
    assert len(c1["value"].replace("-", "").replace(".", "").lstrip("0")) >= 29


def test_hermite_params(capsys):
    code, out, _ = run(capsys, "hermite", "a*x + b*Abs(x)", "--param", "a=0.3", "--param", "b=0.7",
                       "--order", "2", "--json")
    assert json.loads(out)["coefficients"][1]["exact"] == "3/10"


def test_kernel_writes_npz(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(5, 3))
    y = np.random.default_rng(1).normal(size=(2, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "k.npz"
    code, _, err = run(capsys, "kernel", "erf", "--depth", "2", "--sigma-w", "1.5", "--sigma-b", "0.1",
                       "--inputs", str(tmp_path / "x.npy"), "--inputs2", str(tmp_path / "y.npy"), "--out", str(out))
    assert code == 0, err
    with np.load(out) as k:
        assert k["nngp"].shape == (5, 2) and k["ntk"].dtype == np.float64
        import ntksym
        nngp, ntk = ntksym.kernel("erf", x, y, depth=2, sigma_w=1.5, sigma_b=0.1)
        np.testing.assert_array_equal(k["ntk"], ntk)
    assert sorted(os.listdir(tmp_path)) == ["k.npz", "x.npy", "y.npy"]


def test_derive_summary(capsys):
    code, out, _ = run(capsys, "derive", "relu", "--depth", "3")
    assert code == 0
    assert "Hermite coefficients" in out and "Sigma^(3)_xy" in out and "asin" in out


BAD = [
    ["hermite", "nosuchthing", "--order", "3"],
    ["hermite", "__import__('os').system('touch PWNED')", "--order", "3"],
    ["hermite", "x.__class__", "--order", "3"],
    ["hermite", "lambda: 1", "--order", "3"],
    ["hermite", "exp(x**2)", "--order", "3"],
    ["hermite", "relu", "--order", "0"],
    ["hermite", "relu", "--order", "three"],
    ["hermite", "relu", "--order", "3", "--param", "a=1"],
    ["hermite", "a*x", "--order", "3", "--param", "a=__import__('os')"],
    ["kernel", "relu", "--depth", "0", "--inputs", "X", "--out", "OUT"],
    ["kernel", "relu", "--depth", "2", "--sigma-w", "-1", "--inputs", "X", "--out", "OUT"],
    ["kernel", "relu", "--depth", "2", "--inputs", "NAN", "--out", "OUT"],
    ["kernel", "relu", "--depth", "2", "--inputs", "VEC", "--out", "OUT"],
    ["kernel", "relu", "--depth", "2", "--inputs", "X", "--inputs2", "WIDE", "--out", "OUT"],
    ["kernel", "relu", "--depth", "2", "--inputs", "missing.npy", "--out", "OUT"],
    ["kernel", "relu", "--depth", "2", "--inputs", "TEXT", "--out", "OUT"],
    ["derive", "relu", "--depth", "-3"],
    ["frobnicate"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a)[:40] for a in BAD])
def test_user_errors(tmp_path, capsys, argv):
    np.save(tmp_path / "X.npy", np.ones((3, 2)))
    np.save(tmp_path / "NAN.npy", np.array([[np.nan, 1.0]]))
    np.save(tmp_path / "VEC.npy", np.ones(3))
    np.save(tmp_path / "WIDE.npy", np.ones((3, 5)))
    (tmp_path / "TEXT.npy").write_text("not an array")
    before = sorted(os.listdir(tmp_path))
    subst = {"X": str(tmp_path / "X.npy"), "NAN": str(tmp_path / "NAN.npy"), "VEC": str(tmp_path / "VEC.npy"),
             "WIDE": str(tmp_path / "WIDE.npy"), "TEXT": str(tmp_path / "TEXT.npy"),
             "OUT": str(tmp_path / "out.npz"), "missing.npy": str(tmp_path / "missing.npy")}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, err = run(capsys, *[subst.get(a, a) for a in argv])
    finally:
        os.chdir(cwd)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ntksym: error:"), err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, nothing executed


def test_module_entry_point_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ntksym", "hermite", "relu", "--order", "2", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["coefficients"][1]["exact"] == "1/2"
    r = subprocess.run([sys.executable, "-m", "ntksym", "hermite", "open('x','w')", "--order", "2"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and not os.listdir(tmp_path)
