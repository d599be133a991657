"""``ntksym rmt`` (Fan & Wang 2020 linear-width spectra): JSON contract, table, comparison, plot, bad inputs."""
import json

import numpy as np
import pytest

from ntksym.cli import main
from ntksym.finite.rmt import mp_density


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_contract_mp(capsys):
    # L = 0 with linear activation: exactly MP_{0.5}; η = 1e-3 smoothing, compared away from the edges
    code, out, err = run(capsys, "rmt", "x", "--kernel", "ck", "--gammas", "0.5", "--grid", "600", "--eta", "1e-3",
                         "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    x, d = np.array(data["x"]), np.array(data["density"])
    assert x.size == 600 and d.size == 600
    inside = (x > 0.2) & (x < 2.7)
    assert np.max(np.abs(d - mp_density(x, 0.5))[inside]) < 5e-3
    assert abs(np.sum(0.5 * np.diff(x) * (d[1:] + d[:-1])) - 1) < 0.01   # Cauchy tails beyond the grid ≈ 3e-3
    assert data["residual"] <= 1e-10 and "normalized" in data["normalization"]


def test_ntk_table_and_compare(capsys):
    code, out, err = run(capsys, "rmt", "tanh", "--kernel", "ntk", "--gammas", "0.5,0.7", "--grid", "200",
                         "--compare", "300")
    assert code == 0, err
    assert "NTK limit spectrum" in out and "KS =" in out and "r₊" in out
    code, out, _ = run(capsys, "rmt", "tanh", "--kernel", "ntk", "--gammas", "0.5,0.7", "--grid", "200",
                       "--compare", "300", "--json")
    cmp_ = json.loads(out)["comparison"]
    assert cmp_["widths"] == [600, 429] and cmp_["ks_lemma35"] < 0.03 and cmp_["ks"] < 0.1


def test_param_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "s.png"
    code, out, err = run(capsys, "rmt", "sin", "--param", "a=1.5", "--gammas", "0.5,0.5", "--grid", "150",
                         "--compare", "200", "--plot", str(path), "--json")
    assert code == 0, err
    assert path.stat().st_size > 1000
    assert abs(json.loads(out)["constants"]["b"] - 0.6925) < 5e-5


@pytest.mark.parametrize("argv, needle", [
    (["--gammas", "0.5,-1"], "positive"),
    (["--gammas", "0.5,inf"], "positive"),
    (["--gammas", "0.5,nan"], "positive"),
    (["--gammas", "0.5,,1"], "comma-separated"),
    (["--gammas", "a,b"], "not a number"),
    (["--gammas", "0.5", "--grid", "5"], "--grid"),
    (["--gammas", "0.5", "--eta", "0"], "--eta"),
    (["--gammas", "0.5", "--xmin", "2", "--xmax", "1"], "xmin"),
    (["--gammas", "0.5", "--plot", "f.png"], "--compare"),
    (["--gammas", "0.5", "--kernel", "nngp"], "invalid choice"),
])
def test_bad_inputs(capsys, argv, needle):
    code, out, err = run(capsys, "rmt", "tanh", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err


@pytest.mark.parametrize("act", ["1", "exp(x**2)", "__import__('os')"])
def test_bad_activations(capsys, act):
    code, out, err = run(capsys, "rmt", act, "--gammas", "0.5,1")
    assert code == 2 and out == "" and err.count("\n") == 1


def test_plot_without_matplotlib(capsys, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib -> ImportError
    code, out, err = run(capsys, "rmt", "tanh", "--gammas", "0.5,0.5", "--grid", "50", "--compare", "50",
                         "--plot", str(tmp_path / "f.png"))
    assert code == 2 and "matplotlib" in err and err.count("\n") == 1
