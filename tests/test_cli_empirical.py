"""``ntksym empirical`` and ``ntksym dispersion``: output contract and user errors
(exit status 2, one line on stderr, nothing written)."""
import json
import os

import numpy as np
import pytest

from ntksym.cli import main
from ntksym.finite.montecarlo import monte_carlo


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def inputs(tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 3))
    path = tmp_path / "x.npy"
    np.save(path, x)
    return x, path


BASE = ["--depth", 2, "--width", 32, "--sigma-w", 1.3, "--sigma-b", 0.2, "--samples", 6, "--seed", 4]


def test_writes_float64_arrays_equal_to_api(capsys, tmp_path, inputs):
    x, path = inputs
    out = tmp_path / "e.npz"
    code, stdout, err = run(capsys, "empirical", "erf", *BASE, "--inputs", path, "--out", out, "--no-progress")
    assert code == 0, err
    assert err == "" and "wrote" in stdout
    data = np.load(out)
    ref = monte_carlo("erf", x, 2, 32, 1.3, 0.2, 6, seed=4)
    for name in ("ntk_mean", "ntk_var", "nngp_mean"):
        assert data[name].shape == (5, 5) and data[name].dtype == np.float64
        np.testing.assert_array_equal(data[name], getattr(ref, name))
    # unbiased variance: ddof = 1 over the 6 samples (Welford), positive on the diagonal
    assert np.all(np.diag(data["ntk_var"]) > 0)


def test_json_summary_params_and_parameterization(capsys, tmp_path, inputs):
    _, path = inputs
    out = tmp_path / "e.npz"
    code, stdout, err = run(capsys, "empirical", "a*x + b*abs(x)", "--param", "a=0.2", "--param", "b=1",
                            *BASE, "--parameterization", "standard", "--inputs", path, "--out", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["samples"] == 6 and summary["backend"] == "numpy" and summary["dispersion_diag"] >= 1
    assert os.path.exists(out)


def test_progress_flag_draws_on_stderr(capsys, tmp_path, inputs):
    _, path = inputs
    code, _, err = run(capsys, "empirical", "relu", *BASE, "--inputs", path, "--out", tmp_path / "e.npz",
                       "--progress")
    assert code == 0 and "6/6" in err


def test_torch_backend_cli(capsys, tmp_path, inputs):
    pytest.importorskip("torch")
    _, path = inputs
    code, stdout, err = run(capsys, "empirical", "relu", *BASE, "--inputs", path, "--out", tmp_path / "t.npz",
                            "--backend", "torch", "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(stdout)["device"] == "cpu"


@pytest.mark.parametrize("change,message", [
    (dict(samples=1), "--samples"), (dict(width=0), "--width"), (dict(depth=0), "--depth"),
    (dict(seed=-1), "--seed"), (dict(sigma_w="-1"), "sigma-w"), (dict(act="foo("), "syntax"),
    (dict(act="nosuch"), ""), (dict(inputs="nan"), "NaN"), (dict(inputs="1d"), "2-D"),
    (dict(inputs="missing"), "no such file"), (dict(inputs="text"), "cannot read"),
    (dict(out="nodir"), "directory"), (dict(out="txt"), ".npz"), (dict(backend="jax"), "invalid choice"),
])
def test_user_errors(capsys, tmp_path, inputs, change, message):
    _, good = inputs
    files = {"nan": np.array([[1.0, np.nan]]), "1d": np.ones(3)}
    inp = good
    if change.get("inputs") in files:
        inp = tmp_path / f"{change['inputs']}.npy"
        np.save(inp, files[change["inputs"]])
    elif change.get("inputs") == "missing":
        inp = tmp_path / "missing.npy"
    elif change.get("inputs") == "text":
        inp = tmp_path / "text.npy"
        inp.write_text("not an array")
    out = {"nodir": tmp_path / "no" / "e.npz", "txt": tmp_path / "e.txt"}.get(change.get("out"), tmp_path / "e.npz")
    argv = ["empirical", change.get("act", "relu"), "--depth", change.get("depth", 2),
            "--width", change.get("width", 8), "--sigma-w", change.get("sigma_w", "1.0"),
            "--samples", change.get("samples", 3), "--seed", change.get("seed", 0),
            "--backend", change.get("backend", "numpy"), "--inputs", inp, "--out", out]
    before = set(os.listdir(tmp_path))
    code, stdout, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("ntksym: error:") and err.count("\n") == 1 and message in err, err
    assert stdout == ""
    assert set(os.listdir(tmp_path)) == before   # no output, no temporary left behind


def test_dispersion_theory_json(capsys):
    code, stdout, err = run(capsys, "dispersion", "--width", 50, "--depth", 10, 20, "--sigma-w2", 1.5, 2, 2.5,
                            "--json")
    assert code == 0, err
    rows = json.loads(stdout)
    assert len(rows) == 6
    eoc = {r["L"]: r for r in rows if r["phase"] == "eoc"}
    assert eoc[10]["theory_mean"] == pytest.approx(22) and eoc[10]["theory_ratio"] == pytest.approx(1.5941, abs=1e-4)
    assert eoc[20]["theory_ratio"] == pytest.approx(2.833, abs=1e-3)
    assert {r["phase"] for r in rows} == {"ordered", "eoc", "chaotic"}


def test_dispersion_with_monte_carlo_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    fig = tmp_path / "d.png"
    code, stdout, err = run(capsys, "dispersion", "--width", 10, "--depth", 2, "--sigma-w2", 2, "--samples", 300,
                            "--plot", fig, "--json", "--no-progress")
    assert code == 0, err
    row = json.loads(stdout)[0]
    assert abs(row["z_ratio"]) < 4 and abs(row["z_mean"]) < 4
    assert fig.stat().st_size > 1000


@pytest.mark.parametrize("argv", [["--width", 0, "--depth", 3], ["--width", 5, "--depth", 3, "--samples", 1],
                                  ["--width", 5, "--depth", 3, "--sigma-w2", 0],
                                  ["--width", 5, "--depth", 3, "--plot", "x.svg"]])
def test_dispersion_errors(capsys, argv):
    code, stdout, err = run(capsys, "dispersion", *argv)
    assert code == 2 and err.count("\n") == 1 and stdout == ""
