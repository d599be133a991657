"""Hostile activations: square-integrability decided soundly and cheaply, no abort, no hang,
no traceback, and no numeric result beyond its own error estimate's tolerance (issue 11, item 4).

CLI cases run in a subprocess with a time bound (the exp(exp(exp(x))) case used to abort the
process with `gmp: overflow in mpz type`); accepted activations are checked against independent
mpmath quadratures or closed forms.
"""
from __future__ import annotations

import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

import ntksym
from ntksym.activation import CATALOGUE, X, make_activation
from ntksym.errors import AccuracyError, ActivationError, DerivationTimeout

TIMEOUT = 60


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ntksym", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def assert_refused(proc, *words):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("ntksym: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for w in words:
        assert w in lines[0], lines[0]


# ------------------------------------------------------------------ the check itself (no evaluation)

NOT_L2 = ["1/x", "x**-1", "Abs(x)**(-1/2)", "Abs(x)**(-0.6)", "tan(x)", "1/cos(x)", "exp(x**2)", "exp(x**2/4)",
          "exp(exp(x))", "exp(exp(exp(x)))", "exp(1/x)", "1/(x**2 - 2)", "log(x)", "sqrt(x)", "exp(sinh(x))",
          "exp(x**2/8)**2", "x**2/(x - 1)"]


@pytest.mark.parametrize("text", NOT_L2)
def test_not_square_integrable_is_refused(text):
    with pytest.raises(ActivationError, match="square-integrable"):
        make_activation(text)


@pytest.mark.parametrize("text", ["He(60, He(60, x))", "He(60, x)**200", "(x + 1)**150*x**100"])
def test_huge_polynomials_are_refused_by_degree_before_expanding(text):
    import time
    t0 = time.perf_counter()
    with pytest.raises(ActivationError, match="degree"):
        make_activation(text)
    assert time.perf_counter() - t0 < 10


ACCEPTED = ["exp(x**2/5)", "log(Abs(x))", "1/(1 + x**2)", "Abs(x)**(-0.4)", "cosh(x)**20", "x**200", "sin(1/x)",
            "sign(sin(1/x))", "step(x)*log(x)", "exp(-1/x**2)", "1/(2 + sin(x))", "sqrt(Abs(x))", "log(x**2)",
            "tanh(exp(exp(x)))", "exp(x**2/5)*x**100", "tan(atan(x)/2)"]


@pytest.mark.parametrize("text", ACCEPTED)
def test_square_integrable_is_accepted(text):
    make_activation(text)


@pytest.mark.parametrize("name", sorted(CATALOGUE) + ["hermite3", "monomial2", "hermite30"])
def test_catalogue_is_accepted(name):
    make_activation(name)


def test_singular_points_are_recorded():
    assert make_activation("Abs(x)**(-0.4)").singular_points == (0.0,)
    assert make_activation("log((x - 1)**2)").singular_points == (1.0,)
    assert make_activation("tanh").singular_points == ()


# ------------------------------------------------------------------ accepted ones give correct numbers


def _mu(fn, k, points=(0.0,)):
    """μ_k by mpmath's own tanh-sinh quadrature, split at ``points`` (independent of ntksym's routes)."""
    with mpmath.workdps(30):
        he = [lambda t: 1, lambda t: t][k]
        pts = [-mpmath.inf, *points, mpmath.inf]
        return mpmath.quad(lambda t: fn(t) * he(t) * mpmath.npdf(t), pts)


def _close(a, b, rel=1e-12):
    return abs(mpmath.mpf(a) - mpmath.mpf(b)) <= rel * max(1, abs(mpmath.mpf(b)))


def test_integrable_power_singularity():
    mus = ntksym.hermite("Abs(x)**(-0.4)", 3, digits=15).coefficients
    with mpmath.workdps(30):  # E|Z|^p = 2^(p/2) Γ((p+1)/2)/√π
        exact = mpmath.mpf(2) ** mpmath.mpf(-0.2) * mpmath.gamma(mpmath.mpf(0.3)) / mpmath.sqrt(mpmath.pi)
    assert _close(mus[0].value, exact)
    assert _close(mus[0].value, _mu(lambda t: abs(t) ** mpmath.mpf(-0.4), 0))
    assert abs(mus[1].value) < 1e-14
    assert "tanh-sinh" in mus[0].route and "INACCURATE" not in mus[0].route


def test_log_singularities():
    mus = ntksym.hermite("log(Abs(x))", 3, digits=15).coefficients
    with mpmath.workdps(30):
        assert _close(mus[0].value, -(mpmath.euler + mpmath.log(2)) / 2)
        assert _close(mus[2].value, 1 / mpmath.sqrt(2))
    # step·log: log is never taken of x < 0 (was NaN kernels, complex Hermite output)
    mus = ntksym.hermite("step(x)*log(x)", 2, digits=15).coefficients
    for k in (0, 1):
        assert isinstance(mus[k].value, mpmath.mpf)
        assert _close(mus[k].value, _mu(lambda t: mpmath.log(t) if t > 0 else 0, k))


def test_other_accepted_values():
    mus = ntksym.hermite("1/(1 + x**2)", 2, digits=15).coefficients
    assert _close(mus[0].value, _mu(lambda t: 1 / (1 + t * t), 0))
    mus = ntksym.hermite("exp(x**2/5)", 2, digits=15).coefficients
    assert _close(mus[0].value, mpmath.sqrt(mpmath.mpf(5) / 3))
    mus = ntksym.hermite("x**200", 1, digits=15).coefficients
    assert mus[0].exact == sp.factorial2(199)


def test_derivative_must_be_square_integrable_for_the_ntk():
    with pytest.raises(ActivationError, match="derivative"):
        ntksym.derive("Abs(x)**(-0.4)", depth=1)


# ------------------------------------------------------------------ tolerances and --allow-inaccurate


def test_inaccurate_hermite_is_an_error_unless_allowed():
    with pytest.raises(AccuracyError, match="exceeds the tolerance"):
        ntksym.hermite("sin(1/x)", 2, digits=15)   # allowed: test_cli_allow_inaccurate_marks_the_route


def test_inaccurate_kernel_is_an_error_unless_allowed():
    # Max(x - 1, 0) used to be refused here (Gauss-Hermite across a kink at 1); the graded polar rule
    # now splits at breakpoints away from 0 and resolves it (tests/test_numeric_dual.py checks it against
    # mpmath).  |sin x|, with a kink at every k*pi that no split covers, is still refused.
    x = np.array([[1.0, 0.0], [0.6, 0.8]]) * np.sqrt(2)
    with pytest.raises(AccuracyError, match="exceeds the tolerance"):
        ntksym.kernel("Abs(sin(x))", x, depth=1)
    nngp, ntk = ntksym.kernel("Abs(sin(x))", x, depth=1, allow_inaccurate=True)
    assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))
    d = ntksym.derive("Abs(sin(x))", depth=1, order=2, allow_inaccurate=True)
    assert "INACCURATE" in d.kernel_route and np.all(np.isfinite(d.kernel(x)[0]))


def test_derivative_chain_survives_an_interrupted_step(monkeypatch):
    """A time limit firing between the two appends of _Piece.deriv used to leave the lists unequal
    (IndexError for sin(x)**200 and (x+1)**200*exp(-x**2))."""
    from ntksym.gaussian import hermite as H
    from ntksym.gaussian.pieces import Piece
    piece = H._Piece(Piece(-sp.oo, sp.oo, sp.sin(X) ** 3), X)
    real = H.as_exp_poly
    monkeypatch.setattr(H, "as_exp_poly", lambda *a: (_ for _ in ()).throw(DerivationTimeout("test")))
    with pytest.raises(DerivationTimeout):
        piece.deriv(1)
    monkeypatch.setattr(H, "as_exp_poly", real)
    assert sp.expand(piece.deriv(2)[0] - sp.diff(sp.sin(X) ** 3, X, 2)) == 0
    assert len(piece.derivs) == len(piece.classes)


# ------------------------------------------------------------------ the CLI: exit 2, one line, no abort


@pytest.mark.parametrize("args,words", [
    (["hermite", "exp(exp(exp(x)))", "--order", "8"], ["square-integrable", "faster"]),   # was a gmp abort (134)
    (["hermite", "He(60, He(60, x))", "--order", "8"], ["degree", "bound is 200"]),      # was a hang
    (["derive", "1/x", "--depth", "1"], ["pole at x = 0"]),
    (["derive", "hermite99", "--depth", "1"], ["hermiteN"]),                             # was a ufunc TypeError
    (["derive", "sign(sin(1/x))", "--depth", "1"], ["--allow-inaccurate"]),              # was a printer ValueError
    (["derive", "step(x)*log(x)", "--depth", "1"], ["derivative"]),                      # was NaN kernels
])
def test_cli_refuses_in_one_line(args, words):
    assert_refused(run_cli(*args), *words)


def test_cli_allow_inaccurate_marks_the_route():
    proc = run_cli("hermite", "sin(1/x)", "--order", "2", "--digits", "10", "--allow-inaccurate", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "INACCURATE" in proc.stdout


def test_mpmath_evaluation_never_aborts():
    code = ("import mpmath; from ntksym.activation import make_activation as m\n"
            "print(m('tanh(exp(exp(x)))').mpmath_fn()(mpmath.mpf(30)), "
            "m('sin(exp(exp(x)))').mpmath_fn()(mpmath.mpf(30)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1.0", "nan"]
