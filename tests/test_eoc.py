"""Edge of chaos and phases, against independent numeric solutions and known values.

Independent route: mpmath quadrature of E[tanh²] and E[sech⁴] with mpmath.findroot on the two
defining equations (q = σ_w² E[φ(√q Z)²] + σ_b², σ_w² E[φ'(√q Z)²] = 1); known values from
FORMULAS.md §5 (ReLU EOC σ_w² = 2, tanh table, ReLU and tanh depth scales)."""
import json

import mpmath
import pytest
import sympy as sp

import ntksym
from ntksym.cli import main
from ntksym.eoc import DELTA, RHO, cosine_map, edge_of_chaos, phase


def _tanh_eoc_reference(sb2):
    def e(f, q):
        return mpmath.quad(lambda t: f(mpmath.sqrt(q) * t) * mpmath.npdf(t), [-mpmath.inf, 0, mpmath.inf])
    with mpmath.workdps(25):
        def eqs(sw2, q):
            return [sw2 * e(lambda u: mpmath.tanh(u) ** 2, q) + sb2 - q, sw2 * e(lambda u: mpmath.sech(u) ** 4, q) - 1]
        sw2, q = mpmath.findroot(eqs, (mpmath.mpf(1.5), mpmath.mpf(0.5)))
        return sw2, q


@pytest.mark.parametrize("sb2,sw2_table,q_table", [(0.05, 1.760955, 0.570048), (0.5, 2.843167, 1.971031)])
def test_tanh_eoc_against_independent_root_and_table(sb2, sw2_table, q_table):
    act = ntksym.activation("tanh")
    e = edge_of_chaos(act, ntksym.dual_kernels(act), mpmath.sqrt(sb2))
    sw2_ref, q_ref = _tanh_eoc_reference(mpmath.mpf(sb2))
    assert abs(e.sigma_w**2 - sw2_ref) < 1e-12 and abs(e.q_star - q_ref) < 1e-12   # both routes ≤ 1e-15
    assert float(e.sigma_w**2) == pytest.approx(sw2_table, abs=1e-6)               # table has 6 decimals
    assert float(e.q_star) == pytest.approx(q_table, abs=1e-6)


def test_relu_and_abrelu_exact_eoc_substituted_back():
    for name, params, sw2 in [("relu", {}, 2), ("abrelu", {"a": "0.3", "b": "1.2"}, sp.Rational(100, 153))]:
        act = ntksym.activation(name, params)
        dual = ntksym.dual_kernels(act)
        e = edge_of_chaos(act, dual)
        assert sp.simplify(e.exact**2 - sw2) == 0 and e.sigma_b == 0
        ph = phase(act, dual, e.exact, 0)   # substituted back: χ₁ = 1 exactly, ξ_c = ∞
        assert ph.phase == "edge of chaos" and abs(ph.chi1 - 1) < 1e-25 and ph.xi_c == mpmath.inf


def test_relu_ordered_phase_depth_scales():
    """ReLU at (σ_w², σ_b²) = (1.5, 0.3): q* = 1.2, χ₁ = 0.75, ξ_q = ξ_c = −1/log 0.75 (FORMULAS.md §5)."""
    act = ntksym.activation("relu")
    ph = phase(act, ntksym.dual_kernels(act), sp.sqrt(sp.Rational(3, 2)), sp.sqrt(sp.Rational(3, 10)))
    with mpmath.workdps(30):   # the engine works at 30 digits
        assert abs(ph.q_star - mpmath.mpf("1.2")) < 1e-25 and abs(ph.chi1 - mpmath.mpf("0.75")) < 1e-25
    assert abs(ph.xi_c - (-1 / mpmath.log(mpmath.mpf("0.75")))) < 1e-15 and ph.phase == "ordered"
    assert abs(ph.xi_q - ph.xi_c) < 1e-12


def test_tanh_ordered_point_from_formula_sheet():
    act = ntksym.activation("tanh")
    ph = phase(act, ntksym.dual_kernels(act), mpmath.sqrt(1.3), mpmath.sqrt(0.3))
    assert float(ph.chi1) == pytest.approx(0.673869, abs=2e-6)
    assert float(ph.xi_q) == pytest.approx(0.8501, abs=2e-4) and float(ph.xi_c) == pytest.approx(2.5334, abs=2e-4)


def test_chaotic_phase_has_stable_correlation_below_one():
    act = ntksym.activation("erf")
    ph = phase(act, ntksym.dual_kernels(act), 2.5, 0.1)
    assert ph.phase == "chaotic" and 0 <= ph.c_star < 1 and ph.chi1 > 1
    # c* is a fixed point of the correlation map, checked with the closed form
    d = ntksym.dual_kernels(act)
    q, c = ph.q_star, ph.c_star
    val = sp.N(d.khat.subs({ntksym.Q1: q, ntksym.Q2: q, ntksym.C: c * q}), 25)
    assert abs((6.25 * float(val) + 0.01) / float(q) - float(c)) < 1e-10


def test_cosine_map_in_delta():
    """Terjék & González-Sánchez Prop. 9: ϱ(ρ) = (1−Δ)ρ + Δ(2/π)(√(1−ρ²) + ρ asin ρ), Δ = b²/(a²+b²)."""
    for name, params, delta in [("relu", {}, sp.Rational(1, 2)), ("abs", {}, 1),
                                ("abrelu", {"a": "0.3", "b": "1.2"}, sp.Rational(16, 17))]:
        act = ntksym.activation(name, params)
        cm = cosine_map(act, ntksym.dual_kernels(act))
        assert cm.delta == delta
        assert cm.rho_map.subs({DELTA: delta, RHO: 1}) == 1            # the diagonal is preserved
        assert sp.simplify(cm.rho_map_derivative.subs({DELTA: delta, RHO: 1}) - 1) == 0   # χ₁ = 1
        # against 2-D quadrature of σ_w² E[φ(u)φ(v)] at ρ = 0.3 through the dual kernel at unit variance
        d = ntksym.dual_kernels(act)
        direct = cm.sigma_w2 * d.khat.subs({ntksym.Q1: 1, ntksym.Q2: 1, ntksym.C: sp.Rational(3, 10)})
        assert abs(sp.N(direct - cm.rho_map.subs({DELTA: delta, RHO: sp.Rational(3, 10)}), 30)) < 1e-25


def test_cli_eoc_json(capsys):
    assert main(["eoc", "relu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exact"] == "sqrt(2)" and out["sigma_b"].startswith("0")
    assert main(["eoc", "relu", "--sigma-w", "sqrt(1.5)", "--sigma-b", "sqrt(0.3)", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["phase"] == "ordered" and out["q_star"].startswith("1.2")
    assert main(["eoc", "relu", "--sigma-b", "0.1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_prop10_recursion_equals_generic_recursion():
    """u_l(ρ) (Δφ form) vs the engine's closed-form dual kernels run through the generic recursion
    (σ_w² = 1/(a²+b²), σ_b = 0, first layer ⟨x, y⟩): agreement to 1e-12 for l ≤ 8."""
    import numpy as np
    from ntksym.eoc import eoc_ntk_dot
    from ntksym.kernels import compile_closed_form
    for name, params in [("relu", {}), ("abs", {}), ("abrelu", {"a": "0.5", "b": "1"})]:
        act = ntksym.activation(name, params)
        dual = ntksym.dual_kernels(act)
        cm = cosine_map(act, dual)
        sw2, delta = float(cm.sigma_w2), float(cm.delta)
        khat, kdot = compile_closed_form(dual.khat), compile_closed_form(dual.kdot)
        rho = np.array([-0.9, -0.2, 0.0, 0.5, 0.99, 1.0])
        s, t, q = rho.copy(), rho.copy(), np.ones_like(rho)
        for layers in range(2, 9):
            sd = kdot(q, q, s)
            s = sw2 * khat(q, q, s)
            t = s + sw2 * sd * t
            q = sw2 * khat(q, q, q)
            np.testing.assert_allclose(eoc_ntk_dot(delta, layers, rho), t, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(q, 1.0, rtol=1e-14)   # Prop 8: the diagonal is preserved


def test_prop14_inverse_cosine_distance_bound_and_rate():
    """u_l ≤ Δ⁻¹(3π/16) w_l − 1/8 and the gap is O(Δ⁻²/l): (upper − u_l)·l·Δ² stays in [1, 8]
    (l ≤ 1000: beyond, float64 cannot resolve 1 − ρ_l ~ l⁻²)."""
    import numpy as np
    from ntksym.eoc import eoc_ntk_dot, inverse_cosine_approximation
    rho = np.array([-0.5, 0.0, 0.8])
    for delta in (0.25, 0.5, 1.0):
        for layers in (10, 100, 1000):
            gap = inverse_cosine_approximation(delta, layers, rho) - eoc_ntk_dot(delta, layers, rho)
            assert np.all(gap >= -1e-9)
            if layers >= 100:
                assert np.all((gap * layers * delta**2 > 1) & (gap * layers * delta**2 < 8))


def test_thm18_condition_number_limit_and_delta_ordering():
    """κ(K) → 1 + n/3 for unit-norm data as l → ∞, faster for larger Δφ (|s| beats ReLU beats Δ = 1/8)."""
    import numpy as np
    from ntksym.eoc import eoc_gram_condition
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    limit = 1 + 32 / 3
    excess = {d: [eoc_gram_condition(x, d, l) - limit for l in (64, 1024, 16384)] for d in (0.125, 0.5, 1.0)}
    for d, ex in excess.items():
        assert ex[0] > ex[1] > ex[2] > 0 and ex[2] < 0.05 * limit
        assert ex[1] / ex[2] == pytest.approx(16, rel=0.35)       # excess ~ n/(Δ l): ×16 in l → ÷16
    assert excess[1.0][1] < excess[0.5][1] < excess[0.125][1]


def test_thm18_leading_term_and_nngp_and_phase_diagram():
    import numpy as np
    from ntksym.eoc import eoc_gram_condition, eoc_nngp_dot, phase_diagram, thm18_condition_prediction
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 12))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for delta in (0.5, 1.0):   # Thm 18's leading term with W = mean inverse cosine distance: within 1 % at l = 1024
        assert thm18_condition_prediction(x, delta, 1024) == pytest.approx(eoc_gram_condition(x, delta, 1024), rel=0.01)
    # the EOC NNGP of ReLU through the generic closed-form recursion (σ_w² = 2, no bias, unit variance)
    from ntksym.kernels import compile_closed_form
    khat = compile_closed_form(ntksym.dual_kernels("relu").khat)
    rho = np.array([-0.7, 0.1, 0.9])
    s = rho.copy()
    for _ in range(5):
        s = 2 * khat(np.ones(3), np.ones(3), s)
    np.testing.assert_allclose(eoc_nngp_dot(0.5, 6, rho), s, rtol=1e-13)
    act = ntksym.activation("relu")
    chi, names = phase_diagram(act, ntksym.dual_kernels(act), [1.0, 2 ** 0.5, 2.0], [0.0, 0.5])
    assert names == [["ordered", "edge of chaos", "chaotic"]] * 2
