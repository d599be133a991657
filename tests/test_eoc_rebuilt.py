"""Edge of chaos rebuilt (issue 12, item 6): every fixed point of the variance map found and
classified, q* the stable one, χ₁ / ξ_q / ξ_c from their definitions, q* → 0 limits, failures in words.

Independent routes used here (none shares code with ntksym.eoc):
* E[f(√q Z)] by mpmath.quad (tanh-sinh) at 30 digits, split at 0 and at ±1/√q, ±4/√q;
* V′ by central finite differences of that quadrature;
* the correlation map C(c) by a 2-D probabilists' Gauss–Hermite product rule in NumPy (smooth φ);
* known values: ReLU EOC σ_w = √2 (σ_b = 0); erf EOC σ_w = 1/φ′(0) = √π/2, tanh σ_w = 1 at σ_b = 0
  (Poole et al. 2016; Schoenholz et al. 2017); the tanh EOC table of FORMULAS.md §5.
"""
from __future__ import annotations

import json
import math
import time

import mpmath
import numpy as np
import pytest

import ntksym
from ntksym import eoc
from ntksym.cli import main
from ntksym.errors import NetworkError, NtksymError


@pytest.fixture(autouse=True)
def _thirty_digits():
    """The references below are computed (and compared) at 30 digits."""
    with mpmath.workdps(30):
        yield


def _setup(spec, params=None):
    act = ntksym.activation(spec, params)
    return act, ntksym.dual_kernels(act)


def _E(f, q, dps=30):
    """E[f(√q Z)] by mpmath quadrature (independent of the engine's Gauss–Legendre panels)."""
    with mpmath.workdps(dps):
        q = mpmath.mpf(q)
        if q == 0:
            return f(mpmath.mpf(0))
        s = mpmath.sqrt(q)
        cuts = sorted({mpmath.mpf(0), *(k / s for k in (-4, -1, 1, 4))})
        return mpmath.quad(lambda t: f(s * t) * mpmath.npdf(t), [-mpmath.inf, *cuts, mpmath.inf])


def _V(act, sw, sb, q):
    f = act.mpmath_fn()
    return mpmath.mpf(sw) ** 2 * _E(lambda u: f(u) ** 2, q) + mpmath.mpf(sb) ** 2


def _dV(act, sw, sb, q, h=1e-5):
    return (_V(act, sw, sb, q + h) - _V(act, sw, sb, q - h)) / (2 * h)


def _chi1(act, sw, q):
    import sympy as sp
    d = sp.lambdify(act.x, act.derivative, "mpmath")
    return mpmath.mpf(sw) ** 2 * _E(lambda u: d(u) ** 2, q)


def _run(capsys, *argv):
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def _in_words(err: str):
    assert err.count("\n") == 1 and err.startswith("ntksym: error: ")
    for bad in ("Traceback", "TypeError", "ValueError", "ZeroDivision", "complex numbers", "Error:"):
        assert bad not in err.replace("ntksym: error:", ""), err


# ------------------------------------------------------------------ the reproductions of issue 12 item 6


@pytest.mark.parametrize("name,slope0", [("mish", math.tanh(math.log(2))), pytest.param("silu", 0.5, marks=pytest.mark.slow)])
def test_mish_silu_at_unit_sigma_no_crash_and_q_star_zero(capsys, name, slope0):
    """Was: TypeError 'no ordering relation is defined for complex numbers'.  φ(0) = 0 and
    σ_w²φ′(0)² < 1: q* = 0 is the stable fixed point, χ₁ = V′(0) = φ′(0)², ξ_q = −1/log φ′(0)²."""
    act, dual = _setup(name)
    ph = eoc.phase(act, dual, 1, 0)
    assert ph.q_star == 0 and ph.phase == "ordered"
    assert abs(ph.chi1 - slope0 ** 2) < 1e-14
    assert abs(ph.xi_q - (-1 / math.log(slope0 ** 2))) < 1e-12 and ph.xi_c == mpmath.inf
    # independently: V(q)/q → φ′(0)² and V(q) < q near 0 (mpmath quadrature)
    assert abs(_V(act, 1, 0, mpmath.mpf("1e-10")) / mpmath.mpf("1e-10") - slope0 ** 2) < 1e-8
    assert [p.q for p in ph.fixed_points] == [0] and ph.fixed_points[0].kind == "stable"
    status, out, err = _run(capsys, "eoc", name, "--sigma-w", "1", "--sigma-b", "0", "--json")
    assert status == 0 and json.loads(out)["q_star"] == "0.0"


def test_tanh_unit_sigma_marginal_zero_fixed_point():
    """Was: > 200 s.  V(q) = q − 2q² + …: q = 0 is the only fixed point, V′(0) = 1, approached
    algebraically (marginally stable): q* = 0, χ₁ = 1 (EOC), ξ_q = ξ_c = ∞."""
    act, dual = _setup("tanh")
    ph = eoc.phase(act, dual, 1, 0)
    assert ph.q_star == 0 and ph.phase == "edge of chaos" and ph.chi1 == 1
    assert ph.xi_q == mpmath.inf and ph.xi_c == mpmath.inf and ph.c_star is None
    assert [(p.q, p.kind) for p in ph.fixed_points] == [(0, "marginally stable")]
    for q in ("1e-4", "0.01", "1", "100"):   # V(q) < q everywhere: no other fixed point
        assert _V(act, 1, 0, q) < mpmath.mpf(q)


def test_elu_eoc_at_zero_bias_is_the_q_to_zero_limit():
    """Was: > 100 s.  ELU is C¹ at 0 with φ(0) = 0, φ′(0) = 1: the EOC at σ_b = 0 is σ_w = 1, q* = 0,
    and q = 0 attracts (V(q) < q for small q, checked by quadrature)."""
    act, dual = _setup("elu")
    e = eoc.edge_of_chaos(act, dual, 0)
    assert e.sigma_w == 1 and e.q_star == 0 and e.chi1 == 1
    for q in ("1e-6", "1e-3", "0.1"):
        assert _V(act, 1, 0, q) < mpmath.mpf(q)


def test_sin2x_plus_linear_finite_xi_q():
    """Was: ξ_q = ∞.  At (1, 0) q = 0 is unstable (V′(0) = 4 + 1.2 + 0.09 = 5.29) and the stable q* ≈ 0.766
    has V′(q*) ≈ −0.0394 (the map is decreasing there), so ξ_q = −1/log|V′| ≈ 0.309."""
    act, dual = _setup("sin(2*x)+0.3*x")
    ph = eoc.phase(act, dual, 1, 0)
    assert abs(_V(act, 1, 0, ph.q_star) - ph.q_star) < 1e-20
    dv = _dV(act, 1, 0, ph.q_star)
    assert abs(ph.v_slope - dv) < 1e-8 and dv == pytest.approx(-0.0394, abs=5e-4)
    assert abs(ph.xi_q - (-1 / mpmath.log(abs(dv)))) < 1e-7 and float(ph.xi_q) == pytest.approx(0.309, abs=1e-3)
    kinds = [(float(p.q), p.kind) for p in ph.fixed_points]
    assert kinds[0] == (0.0, "unstable") and kinds[1][1] == "stable" and len(kinds) == 2
    assert abs(ph.fixed_points[0].slope - mpmath.mpf("5.29")) < 1e-20


def _hermite3_V(sw, sb, q):
    """E[He₃(√qZ)²]/6 by quadrature (He₃(x) = x³ − 3x, normalised to unit variance at q = 1)."""
    return mpmath.mpf(sw) ** 2 * _E(lambda u: (u ** 3 - 3 * u) ** 2 / 6, q) + mpmath.mpf(sb) ** 2


def test_hermite3_unit_sigma_reports_the_stable_fixed_point():
    """Was: q* = 1 with V′ = 3 (unstable).  V(q) = q(5q² − 6q + 3)/2 has fixed points 0 (V′ = 3/2),
    1/5 (V′ = 3/5) and 1 (V′ = 3): q* = 1/5; q¹ = 1 sits on the unstable one (the note says so)."""
    act, dual = _setup("hermite3")
    ph = eoc.phase(act, dual, 1, 0)
    assert abs(ph.q_star - mpmath.mpf("0.2")) < 1e-25 and abs(ph.v_slope - mpmath.mpf("0.6")) < 1e-20
    got = [(float(p.q), p.kind) for p in ph.fixed_points]
    assert got == [(0.0, "unstable"), (pytest.approx(0.2), "stable"), (pytest.approx(1.0), "unstable")]
    for p in ph.fixed_points:    # each is a fixed point, its slope matches finite differences of V
        assert abs(_hermite3_V(1, 0, p.q) - p.q) < 1e-20
        if p.q > 0:
            dv = (_hermite3_V(1, 0, p.q + 1e-6) - _hermite3_V(1, 0, p.q - 1e-6)) / 2e-6
            assert abs(dv - p.slope) < 1e-8
    assert "unstable fixed point" in ph.note
    assert abs(ph.xi_q + 1 / mpmath.log(mpmath.mpf("0.6"))) < 1e-20


def test_hermite3_finds_the_stable_fixed_point_the_old_code_missed():
    """Was: 'no finite fixed point'.  At (1.2, 0.1) q* = 0.4233… is stable (V′ ≈ 0.44) and q ≈ 0.785 is
    unstable; from q¹ = 1 the variance diverges (the note says so), from q¹ = 0.5 it reaches q*, from
    q¹ = 2 it diverges: with an explicit q0 that is an error in words."""
    act, dual = _setup("hermite3")
    ph = eoc.phase(act, dual, 1.2, 0.1)
    assert float(ph.q_star) == pytest.approx(0.4233198, abs=1e-7)
    assert abs(_hermite3_V(1.2, 0.1, ph.q_star) - ph.q_star) < 1e-20
    assert [p.kind for p in ph.fixed_points] == ["stable", "unstable"]
    assert "grows past 1e12" in ph.note
    assert eoc.phase(act, dual, 1.2, 0.1, q0=0.5).q_star == ph.q_star
    with pytest.raises(NetworkError, match="grows past 1e12"):
        eoc.phase(act, dual, 1.2, 0.1, q0=2)


def test_abrelu_half_slope_has_q_star_zero():
    """Was: q* = 1.  φ = x/2 + |x|/2 at σ_w = 1, σ_b = 0: V(q) = q/2, so q* = 0, V′ = 1/2, ξ_q = 1/log 2."""
    act, dual = _setup("0.5*x+0.5*Abs(x)")
    ph = eoc.phase(act, dual, 1, 0)
    assert ph.q_star == 0 and ph.v_slope == mpmath.mpf("0.5") and ph.phase == "ordered"
    assert abs(ph.xi_q - 1 / mpmath.log(2)) < 1e-25
    assert abs(_V(act, 1, 0, 3) - mpmath.mpf(1.5)) < 1e-25       # V(q) = q/2 indeed


@pytest.mark.parametrize("spec", ["tanh", pytest.param("elu", marks=pytest.mark.slow), pytest.param("tanh(tanh(x))", marks=pytest.mark.slow),
                                  pytest.param("Abs(sin(x))", marks=pytest.mark.slow)])
def test_report_eoc_section_available(spec):
    """Was: 'Not available' after 60 s in derive --out.  (Abs(sin(x)): its numeric Hermite coefficients
    are refused at 15 digits by another part of the engine, hence allow_inaccurate.)"""
    from ntksym.report.analyses import _eoc, _run as run_analysis
    d = ntksym.derive(spec, depth=2, allow_inaccurate=spec == "Abs(sin(x))")
    out = run_analysis("eoc", 60.0, _eoc, d)
    assert out.skipped is None and out.value["phase"].q_star == 0
    assert out.value["edge"] is not None and out.value["edge"].sigma_w == 1


# ------------------------------------------------------------------ fixed points, χ₁, ξ by independent routes


@pytest.mark.parametrize("spec,sw,sb", [("tanh", 1.5, 0.1), pytest.param("tanh", 3, 1, marks=pytest.mark.slow), ("mish", 1.5, 0.1),
                                        ("softplus", 1, 0), pytest.param("sigmoid", 2, 0.5, marks=pytest.mark.slow), ("selu", 1, 0),
                                        ("erf", 2, 0.5), pytest.param("gelu", 1.5, 0.1, marks=pytest.mark.slow),
                                        ("cos", 1, 0)])
def test_fixed_point_chi1_and_xi_q_against_quadrature(spec, sw, sb):
    act, dual = _setup(spec)
    ph = eoc.phase(act, dual, sw, sb)
    q = ph.q_star
    assert abs(_V(act, sw, sb, q) - q) <= 1e-12 * q                      # V(q*) = q*
    dv = _dV(act, sw, sb, q)
    assert abs(dv - ph.v_slope) < 1e-8 and abs(dv) < 1                   # stable, slope by differences
    chi1 = _chi1(act, sw, q)
    assert abs(chi1 - ph.chi1) <= 1e-12 * chi1
    assert abs(ph.xi_q - (-1 / mpmath.log(abs(dv)))) < 1e-6 * ph.xi_q
    if chi1 < 1:
        assert ph.c_star == 1 and abs(ph.xi_c + 1 / mpmath.log(chi1)) < 1e-10 * ph.xi_c
    assert ph.phase == ("ordered" if chi1 < 1 else "chaotic")
    assert ph.rel_error < 1e-12


def _gh_correlation_map(phi, dphi, sw2, sb2, q, c, n=160):
    """C(c) and σ_w²E[φ′(u)φ′(v)] by a 2-D Gauss–Hermite product rule (independent of polar_dual)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    u = math.sqrt(q) * z[:, None]
    v = math.sqrt(q) * (c * z[:, None] + math.sqrt(1 - c * c) * z[None, :])
    ww = w[:, None] * w[None, :]
    return (sw2 * np.sum(ww * phi(u) * phi(v)) + sb2) / q, sw2 * np.sum(ww * dphi(u) * dphi(v))


def test_chaotic_correlation_fixed_point_and_xi_c():
    """Chaotic tanh: c* < 1 with C(c*) = c*, ξ_c = −1/log χ_c, χ_c = σ_w²E[φ′(u)φ′(v)] at c* (2-D
    Gauss–Hermite, 320² nodes; tanh is analytic so it converges to ~1e-13 here)."""
    act, dual = _setup("tanh")
    ph = eoc.phase(act, dual, 2, 0.5)
    assert ph.phase == "chaotic" and 0 < ph.c_star < 1
    cmap, chi_c = _gh_correlation_map(np.tanh, lambda x: 1 / np.cosh(x) ** 2, 4.0, 0.25, float(ph.q_star),
                                      float(ph.c_star), n=320)
    assert abs(cmap - float(ph.c_star)) < 1e-10
    assert float(ph.xi_c) == pytest.approx(-1 / math.log(chi_c), rel=1e-8)   # (c* is printed rounded)


def test_selu_chaotic_with_uncorrelated_fixed_point():
    """SELU at (1, 0): q* = 1 (self-normalising), E[φ] = 0 so C(0) = 0: c* = 0 and χ_c = (E[φ′(Z)])²,
    one-dimensional, by quadrature."""
    act, dual = _setup("selu")
    ph = eoc.phase(act, dual, 1, 0)
    assert abs(ph.q_star - 1) < 1e-13 and ph.c_star == 0 and ph.phase == "chaotic"
    import sympy as sp
    d = sp.lambdify(act.x, act.derivative, "mpmath")
    chi_c = _E(d, 1) ** 2
    assert abs(ph.xi_c + 1 / mpmath.log(chi_c)) < 1e-9 * ph.xi_c


def test_tanh_ordered_point_matches_formula_sheet():
    act, dual = _setup("tanh")
    ph = eoc.phase(act, dual, mpmath.sqrt(1.3), mpmath.sqrt(0.3))
    assert float(ph.chi1) == pytest.approx(0.673869, abs=1e-6)
    assert float(ph.xi_q) == pytest.approx(0.8501, abs=1e-4) and float(ph.xi_c) == pytest.approx(2.5334, abs=1e-4)


def _digits_ok(printed: str, ref) -> bool:
    """Every printed digit is right: |printed − ref| ≤ one unit in the last printed place."""
    mant = printed.split("e")[0]
    places = len(mant.split(".")[1]) if "." in mant else 0
    exp = int(printed.split("e")[1]) if "e" in printed else 0
    return abs(mpmath.mpf(printed) - ref) <= mpmath.mpf(10) ** (exp - places)


def test_cli_prints_only_digits_it_has(capsys):
    """Numeric route (tanh, float64 quadrature): the printed q*, χ₁, V′(q*), ξ_q against a 30-digit
    mpmath root of V(q) = q (the engine prints ~13 digits here, not 20)."""
    status, out, _ = _run(capsys, "eoc", "tanh", "--sigma-w", "1.5", "--sigma-b", "0.1", "--json")
    data = json.loads(out)
    act = ntksym.activation("tanh")
    q = mpmath.findroot(lambda v: _V(act, 1.5, mpmath.mpf("0.1"), v) - v, mpmath.mpf(data["q_star"]))
    dv = _dV(act, 1.5, mpmath.mpf("0.1"), q, h=mpmath.mpf("1e-10"))
    refs = {"q_star": q, "chi1": _chi1(act, 1.5, q), "v_slope": dv, "xi_q": -1 / mpmath.log(abs(dv))}
    for key, ref in refs.items():
        assert 8 <= len(data[key].replace(".", "").lstrip("0")) <= 16, (key, data[key])
        assert _digits_ok(data[key], ref), (key, data[key], ref)


def test_unresolved_correlation_fixed_point_is_not_printed():
    """|sin(x)| kinks at every kπ: the 2-D quadrature of the correlation map cannot resolve c*, ξ_c, so they
    are withheld (None) with a note, while q*, χ₁ (1-D, smooth φ² and φ′²) are still given."""
    act, dual = _setup("Abs(sin(x))")
    ph = eoc.phase(act, dual, 1.5, 0.1)
    assert ph.xi_c is None and ph.c_star is None and "not resolved" in ph.note
    assert abs(_V(act, 1.5, mpmath.mpf("0.1"), ph.q_star) - ph.q_star) < 1e-12


# ------------------------------------------------------------------ the EOC curve


def test_eoc_known_values_at_zero_bias():
    relu = eoc.edge_of_chaos(*_setup("relu"))
    assert abs(relu.sigma_w - mpmath.sqrt(2)) < 1e-25
    erf = eoc.edge_of_chaos(*_setup("erf"))                     # φ′(0) = 2/√π
    assert abs(erf.sigma_w - mpmath.sqrt(mpmath.pi) / 2) < 1e-24 and erf.q_star == 0
    tanh = eoc.edge_of_chaos(*_setup("tanh"))                   # Poole et al. 2016: σ_w = 1 at σ_b = 0
    assert tanh.sigma_w == 1 and tanh.q_star == 0


@pytest.mark.parametrize("spec,sb", [("erf", 0.5), ("tanh", 0.5), ("elu", 0.5), pytest.param("mish", 0.5, marks=pytest.mark.slow),
                                     ("cos", 0), pytest.param("sigmoid", 0.3, marks=pytest.mark.slow), ("gaussian", 0.5)])
def test_eoc_point_satisfies_both_conditions(spec, sb):
    """σ_w, q* on the EOC: q* = σ_w²E[φ(√q*Z)²] + σ_b², σ_w²E[φ′(√q*Z)²] = 1 (mpmath quadrature), and
    q* is a stable fixed point (|V′| < 1 by finite differences)."""
    act, dual = _setup(spec)
    e = eoc.edge_of_chaos(act, dual, sb)
    assert e.q_star > 0 and e.rel_error < 1e-12
    assert abs(_V(act, e.sigma_w, sb, e.q_star) - e.q_star) < 1e-11 * e.q_star
    assert abs(_chi1(act, e.sigma_w, e.q_star) - 1) < 1e-11
    assert abs(_dV(act, e.sigma_w, sb, e.q_star)) < 1


def test_tanh_eoc_table_and_refusals_in_words(capsys):
    act, dual = _setup("tanh")
    e = eoc.edge_of_chaos(act, dual, mpmath.sqrt(0.2))
    assert float(e.sigma_w ** 2) == pytest.approx(2.285152, abs=1e-6) and float(e.q_star) == pytest.approx(1.164496,
                                                                                                             abs=1e-6)
    with pytest.raises(NtksymError, match="only at unstable fixed points"):
        eoc.edge_of_chaos(*_setup("gelu"), 0)                   # V(q) > q near 0 at σ_w = 1/φ′(0) = 2
    with pytest.raises(NtksymError, match="χ₁ = 0 for every σ_w"):
        eoc.edge_of_chaos(*_setup("sign"), 0)
    for argv in (["eoc", "exp"], ["eoc", "hermite3", "--sigma-w", "1.2", "--sigma-b", "0.1", "--q0", "2"],
                 ["eoc", "sign", "--derivative", "distributional"]):
        status, out, err = _run(capsys, *argv)
        assert status == 2 and out == ""
        _in_words(err)


def test_distributional_sign_has_infinite_chi1():
    act = ntksym.activation("sign")
    ph = eoc.phase(act, ntksym.dual_kernels(act, derivative="distributional"), 1, 0)
    assert ph.chi1 == mpmath.inf and ph.phase == "chaotic" and ph.q_star == 1 and ph.c_star == 0


def test_cli_eoc_lists_fixed_points(capsys):
    status, out, _ = _run(capsys, "eoc", "hermite3", "--sigma-w", "1", "--json")
    data = json.loads(out)
    assert status == 0 and data["q_star"] == "0.2" and len(data["fixed_points"]) == 3 and data["v_slope"] == "0.6"
    assert "unstable" in data["fixed_points"][2] and "note" in data


def test_report_failure_is_a_sentence():
    """A phase without a stable fixed point: the report section says why, in words."""
    from ntksym.report.analyses import _eoc, _run as run_analysis
    out = run_analysis("eoc", 60.0, _eoc, ntksym.derive("softplus", depth=2, sigma_w=2.0, sigma_b=0.5))
    assert out.value is None and out.skipped.startswith("from q¹ = 1")
    assert "Error" not in out.skipped and "grows past 1e12" in out.skipped


# ------------------------------------------------------------------ every catalogue activation within 5 s


CATALOGUE_POINTS = [(1, 0), (1.5, 0.1), (2, 0.5), (3, 1)]


@pytest.mark.trust   # the long CI step (python -m pytest -m "fuzz or trust"); ~100 s
@pytest.mark.parametrize("name", sorted(__import__("ntksym.activation", fromlist=["CATALOGUE"]).CATALOGUE)
                         + ["hermite3", "monomial2", "tanh(tanh(x))", "Abs(sin(x))", "sin(2*x)+0.3*x"])
def test_catalogue_each_point_within_five_seconds(name):
    act, dual = _setup(name)
    for sw, sb in CATALOGUE_POINTS:
        t0 = time.perf_counter()
        try:
            ph = eoc.phase(act, dual, sw, sb)
        except NtksymError as exc:
            assert "Error" not in str(exc) and "\n" not in str(exc)
        else:
            if 0 < ph.q_star < mpmath.inf:
                assert abs(_V(act, sw, sb, ph.q_star) - ph.q_star) <= 1e-10 * ph.q_star
        assert time.perf_counter() - t0 < 5.0, (name, sw, sb)
    for sb in (0, 0.5):
        t0 = time.perf_counter()
        try:
            eoc.edge_of_chaos(act, dual, sb)
        except NtksymError as exc:
            assert "Error" not in str(exc) and "\n" not in str(exc)
        assert time.perf_counter() - t0 < 5.0, (name, sb)


# ------------------------------------------------------------------ φ with jumps (lead, after helper D's a.e. Σ̇)

def test_sign_is_chaotic_with_the_correlation_fixed_point_below_one():
    """Σ̇ of the NTK uses the almost-everywhere derivative (0 for sign), but the correlation map
    C(c) = (σ_w²(2/π)asin c + σ_b²)/q* has infinite slope at c = 1, so c = 1 is unstable: chaotic,
    with c* < 1 solving C(c) = c (checked by mpmath.findroot) and ξ_c = −1/log C′(c*)."""
    act, dual = _setup("sign")
    p = eoc.phase(act, dual, 1.0, 0.1)
    q = mpmath.mpf("1.01")
    c = mpmath.findroot(lambda t: (2 / mpmath.pi * mpmath.asin(t) + mpmath.mpf("0.01")) / q - t, 0.03)
    slope = 2 / mpmath.pi / mpmath.sqrt(1 - c ** 2) / q
    assert p.phase == "chaotic" and abs(p.q_star - q) < 1e-12
    assert abs(p.c_star - c) < 1e-9 and abs(p.xi_c + 1 / mpmath.log(slope)) < 1e-7
    assert "infinite slope" in p.note
