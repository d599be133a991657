"""Activations with jumps: Σ̇ with the almost-everywhere derivative by default (issue 12, item 4).

A finite network's gradient through sign or step is zero almost everywhere, and neural-tangents'
``stax.Sign`` sets the layer's NTK contribution to zero (its kernel_fn replaces ``ntk`` by zeros
and the NNGP by 1 − 2θ/π = (2/π)·arcsin ρ).  So at depth 1, σ = (1, 0), inputs with correlation ρ:

    NTK_ae = NNGP = (2/π)·arcsin ρ,
    NTK_distributional = (2/π)·(arcsin ρ + ρ/√(1 − ρ²))   (the old default: Σ̇ = 2/(π√(q₁q₂ − c²))).

The issue's pair "0.885 where neural-tangents gives 0.409" is this at ρ = 0.5991 (both rounded to 3
digits; found by solving (2/π)·arcsin ρ = 0.409 and checking the old code's NTK there).
References used here, all independent of the engine's rules: the arcsine closed form above, a NumPy
network of finite width with explicit backpropagation (a.e. gradient), and 2-D mpmath quadrature
of E[φ'_ae(u)φ'_ae(v)] (tests/reference.py).
"""
import json
import math

import mpmath
import numpy as np
import pytest

import ntksym
from ntksym.cli import main
from ntksym.errors import ActivationError, NtksymError
from reference import dual_ref, dual_ref_smooth

ISSUE_RHO = 0.5991


def _pair(rho, d=2, scale=1.0):
    """Two rows with |x|²/d = scale² and correlation rho."""
    return np.array([[1.0, 0.0], [rho, math.sqrt(1 - rho * rho)]]) * math.sqrt(d) * scale


def _arcsine(rho):
    return 2 / math.pi * math.asin(rho)


# ------------------------------------------------------------------ the issue's numbers


def test_sign_ntk_is_the_neural_tangents_value():
    x = _pair(ISSUE_RHO)
    nngp, ntk = ntksym.kernel("sign", x, depth=1)
    assert ntk[0, 1] == pytest.approx(_arcsine(ISSUE_RHO), rel=1e-13)   # neural-tangents' Sign: ntk → 0
    assert round(ntk[0, 1], 3) == 0.409
    np.testing.assert_allclose(ntk, nngp, rtol=0, atol=1e-15)
    # the old (distributional) value of the issue, on request only
    _, old = ntksym.kernel("sign", x[:1], x[1:], depth=1, derivative="distributional")
    assert old[0, 0] == pytest.approx(_arcsine(ISSUE_RHO) + 2 / math.pi * ISSUE_RHO / math.sqrt(1 - ISSUE_RHO**2),
                                      rel=1e-13)
    assert round(old[0, 0], 3) == 0.885


def test_readme_figures():
    """README: depth 1, ρ = 0.6: 0.4097 (ae) and 0.8871 (distributional)."""
    x = _pair(0.6)
    _, ntk = ntksym.kernel("sign", x, depth=1)
    _, dist = ntksym.kernel("sign", x[:1], x[1:], depth=1, derivative="distributional")
    assert round(ntk[0, 1], 4) == 0.4097 and round(dist[0, 0], 4) == 0.8871


@pytest.mark.parametrize("name, m2", [("sign", 1.0), ("step", 0.5)])
@pytest.mark.parametrize("depth, sw, sb", [(1, 1.0, 0.0), (3, 1.5, 0.1), (10, 2.0, 0.5)])
def test_diagonal_finite_and_ntk_is_the_layer_sum(name, m2, depth, sw, sb):
    """Σ̇ = 0, so Θ⁽ᴸ⁾ = Σ⁽ᴸ⁾: the diagonal is σ_w²E[φ²] + σ_b² (E[sign²] = 1, E[step²] = 1/2), not inf."""
    x = np.vstack([_pair(0.3), _pair(-0.7, scale=3.0), _pair(0.3)[:1]])   # a repeated row, other norms
    nngp, ntk = ntksym.kernel(name, x, depth=depth, sigma_w=sw, sigma_b=sb)
    assert np.all(np.isfinite(ntk))
    np.testing.assert_allclose(np.diag(ntk), sw**2 * m2 + sb**2, rtol=1e-14)
    np.testing.assert_allclose(ntk, nngp, rtol=1e-14)
    assert ntk[0, 4] == ntk[0, 0]


# ------------------------------------------------------------------ a finite network


def _phi(name):
    return {"sign": (np.sign, lambda h: np.zeros_like(h)),
            "step": (lambda h: (h > 0).astype(float), lambda h: np.zeros_like(h)),
            "sign(x) + x": (lambda h: np.sign(h) + h, lambda h: np.ones_like(h))}[name]


def _finite_ntk(name, x, depth, sw, sb, width, rng):
    """Empirical NTK of one NumPy network in the NTK parameterization (neural-tangents' stax
    serial([Dense(W_std=σ_w, b_std=σ_b), φ] * L, Dense(1)), standard normal parameters), from the
    gradient of the output w.r.t. every weight and bias by backpropagation with φ' almost everywhere."""
    phi, dphi = _phi(name)
    acts, pres = [x], []
    for layer in range(depth):
        w = rng.standard_normal((acts[-1].shape[1], width))
        b = rng.standard_normal(width)
        h = sw * acts[-1] @ w / math.sqrt(acts[-1].shape[1]) + sb * b
        pres.append((h, w))
        acts.append(phi(h))
    w_out = rng.standard_normal(width)
    fan = acts[-1].shape[1]
    # readout: ∂f/∂w_out = σ_w a_L/√n, ∂f/∂b_out = σ_b
    ntk = sw**2 * acts[-1] @ acts[-1].T / fan + sb**2
    delta = (sw * w_out / math.sqrt(fan))[None, :] * dphi(pres[-1][0])      # ∂f/∂h_L, per input
    for layer in range(depth - 1, -1, -1):
        a_prev = acts[layer]
        ntk = ntk + (delta @ delta.T) * (sw**2 * a_prev @ a_prev.T / a_prev.shape[1] + sb**2)
        if layer:
            w = pres[layer][1]
            delta = (sw * delta @ w.T / math.sqrt(a_prev.shape[1])) * dphi(pres[layer - 1][0])
    return ntk


@pytest.mark.parametrize("name", ["sign", "step", "sign(x) + x"])
def test_ntk_against_finite_networks(name):
    """Monte Carlo over finite networks agrees with the a.e. NTK and rules out the distributional one."""
    rng = np.random.default_rng(12)
    depth, sw, sb = 2, 1.2, 0.3
    x = np.vstack([_pair(0.6), _pair(-0.2, scale=1.5)])
    samples = np.array([_finite_ntk(name, x, depth, sw, sb, 1024, rng) for _ in range(24)])
    mean, sem = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(len(samples))
    _, ntk = ntksym.kernel(name, x, depth=depth, sigma_w=sw, sigma_b=sb)
    # 5 standard errors, plus the O(1/width) bias of a finite network
    np.testing.assert_array_less(np.abs(mean - ntk), 5 * sem + 2e-2 * np.abs(ntk).max() + 1e-12)
    if name != "sign(x) + x":   # its distributional Σ̇ has no closed form: refused (test below)
        _, dist = ntksym.kernel(name, x[:2], x[2:], depth=depth, sigma_w=sw, sigma_b=sb, derivative="distributional")
        assert np.max(np.abs(dist - mean[:2, 2:]) / sem[:2, 2:]) > 30, "MC should rule out the old value"


# ------------------------------------------------------------------ jumps plus a smooth part


def _orthant(q1, q2, c):
    """E[1{u > 0}1{v > 0}] = 1/4 + arcsin(ρ)/(2π) (Sheppard's orthant probability)."""
    return 0.25 + math.asin(max(-1.0, min(1.0, c / math.sqrt(q1 * q2)))) / (2 * math.pi)


def _ae_reference(name, q1, q2, c):
    """E[φ'_ae(u)φ'_ae(v)] without the engine: mpmath Gauss–Hermite (25 digits; φ'_ae a polynomial, so
    exact) or Sheppard's formula (φ'_ae = Heaviside)."""
    smooth = {"sign(x) + x": lambda t: mpmath.mpf(1), "sign(x) + x**2": lambda t: 2 * t,
              "x + Heaviside(x - 1)": lambda t: mpmath.mpf(1)}
    if name in smooth:
        return float(dual_ref_smooth(smooth[name], smooth[name], q1, q2, c, n=12))
    return _orthant(q1, q2, c)


@pytest.mark.parametrize("name", ["sign(x) + x", "Heaviside(x)*(1 + x)", "sign(x) + x**2", "x + Heaviside(x - 1)"])
def test_sigma_dot_of_jump_plus_smooth_is_the_kernel_of_the_ae_derivative(name):
    """Σ̇ evaluated by the engine (whatever route it takes) = E[φ'_ae(u)φ'_ae(v)], not the old k·μ_k² series."""
    from ntksym.kernels import kernel_functions
    act = ntksym.activation(name)
    dual = ntksym.dual_kernels(act)
    assert dual.jumps and "almost-everywhere derivative" in dual.route_dot
    fns, _ = kernel_functions(act, dual)
    for q1, q2, c in [(1.0, 1.0, 0.35), (0.7, 1.9, -0.8), (2.5, 0.4, 1.0)]:
        ref = _ae_reference(name, q1, q2, c)
        _, kdot = fns(np.array(q1), np.array(q2), np.array(c))
        assert abs(float(kdot) - ref) <= 1e-6 * max(1, abs(ref)), (name, q1, q2, c, float(kdot), ref)


def test_reference_quadrature_of_a_jump_derivative():
    """The 2-D mpmath route (kinks on panel edges) agrees with Sheppard's formula used above."""
    h = lambda t: mpmath.mpf(1) if t > 0 else mpmath.mpf(0)   # noqa: E731
    assert float(dual_ref(h, h, 0.7, 1.9, -0.8, dps=8)) == pytest.approx(_orthant(0.7, 1.9, -0.8), abs=1e-7)


def test_distributional_needs_a_closed_form():
    with pytest.raises(ActivationError, match="distributional"):
        ntksym.dual_kernels("sign(x) + x", derivative="distributional")
    with pytest.raises(NtksymError, match="derivative must be"):
        ntksym.dual_kernels("sign", derivative="weak")


def test_continuous_activations_unchanged():
    for name in ("relu", "Heaviside(x)*x**2", "x*sign(x)"):
        ae, dist = ntksym.dual_kernels(name), ntksym.dual_kernels(name, derivative="distributional")
        assert ae.jumps == () and (ae.khat, ae.kdot, ae.route_dot) == (dist.khat, dist.kdot, dist.route_dot)


# ------------------------------------------------------------------ series and spectrum


@pytest.mark.parametrize("name", ["sign", "step", "sign(x) + x"])
def test_series_consistent_with_kernel(name):
    depth, sw, sb, rho = 2, 1.3, 0.2, 0.6
    s = ntksym.power_series(name, depth, sw, sb, order=2048)
    assert "almost-everywhere derivative" in s.route
    x = _pair(rho)
    nngp, ntk = ntksym.kernel(name, x, depth=depth, sigma_w=sw, sigma_b=sb)
    value = sum(float(k) * rho**p for p, k in enumerate(s.ntk))
    assert value == pytest.approx(ntk[0, 1], rel=1e-6)
    assert float(s.ntk_at_one) == pytest.approx(ntk[0, 0], rel=1e-6)   # sign(x) + x: quadrature route
    if name != "sign(x) + x":
        np.testing.assert_allclose(np.array(s.ntk, dtype=float), np.array(s.nngp, dtype=float), atol=1e-15)


def test_sign_sphere_spectrum_is_the_arcsine_kernel():
    """Depth 1, σ = (1, 0), d = 3: Θ(ρ) = (2/π)·arcsin ρ; λ_1 = ½∫ρ·Θ(ρ)dρ = 1/4, even λ_k = 0."""
    spec = ntksym.sphere_spectrum("sign", 1, 3, 3, digits=20)
    nngp = ntksym.sphere_spectrum("sign", 1, 3, 3, digits=20, which="nngp")
    assert [float(v) for v in spec.eigenvalues] == pytest.approx([float(v) for v in nngp.eigenvalues], abs=1e-18)
    assert abs(float(spec.eigenvalues[1]) - 0.25) <= float(spec.truncation[1]) + 1e-15
    assert abs(float(spec.eigenvalues[1]) - 0.25) < 1e-3
    with mpmath.workdps(20):
        lam3 = mpmath.quad(lambda t: _arcsine(float(t)) * (5 * t**3 - 3 * t) / 2, [-1, 1]) / 2
    assert abs(float(spec.eigenvalues[3]) - float(lam3)) <= float(spec.truncation[3]) + 1e-15
    with pytest.raises(NtksymError, match="distributional"):
        ntksym.sphere_spectrum("sign", 1, 3, 3, derivative="distributional")
    with pytest.raises(NtksymError, match="distributional"):
        ntksym.power_series("sign", 1, order=4, exact=True, derivative="distributional")


def test_decay_prediction():
    from ntksym.series import predicted_ntk_decay
    assert predicted_ntk_decay(ntksym.activation("sign"))[:2] == (1.5, 1.5)
    assert predicted_ntk_decay(ntksym.activation("sign"), "distributional")[:2] == (1.5, 0.5)


# ------------------------------------------------------------------ distributional on request


def test_distributional_reproduces_old_values_and_refuses_infinity():
    d = ntksym.derive("sign", 2, derivative="distributional")
    assert d.derivative == "distributional" and d.dual.kdot_distributional
    assert "distributional derivative (smoothed limit)" in d.dual.route_dot
    q1, q2, c = 0.7, 1.9, 0.5
    kdot = float(d.dual.kdot.subs({ntksym.Q1: q1, ntksym.Q2: q2, ntksym.C: c}))
    assert kdot == pytest.approx(2 / (math.pi * math.sqrt(q1 * q2 - c * c)), rel=1e-14)
    x = _pair(0.6)
    with pytest.raises(ActivationError, match="infinite"):
        d.kernel(x)
    with pytest.raises(ActivationError, match="infinite"):
        ntksym.kernel("step", x, depth=1, derivative="distributional")
    assert ntksym.derive("sign", 2).derivative == "ae"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli(capsys, tmp_path):
    code, out, _ = _run(capsys, "derive", "sign", "--depth", "2", "--json")
    dk = json.loads(out)["dual_kernels"]
    assert code == 0 and dk["kdot"] == "0" and dk["derivative"] == "ae"
    assert "almost-everywhere derivative" in dk["route_dot"]
    code, out, _ = _run(capsys, "derive", "step", "--depth", "2", "--json", "--derivative", "distributional")
    dk = json.loads(out)["dual_kernels"]
    assert code == 0 and dk["derivative"] == "distributional" and dk["kdot_distributional"]
    assert dk["kdot"] == "1/(2*pi*sqrt(-c**2 + q1*q2))" and "distributional derivative (smoothed limit)" in dk["route_dot"]
    np.save(tmp_path / "x.npy", _pair(ISSUE_RHO))
    code, _, err = _run(capsys, "kernel", "sign", "--depth", "1", "--inputs", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "k.npz"))
    assert code == 0, err
    ntk = np.load(tmp_path / "k.npz")["ntk"]
    assert np.all(np.isfinite(ntk)) and round(ntk[0, 1], 3) == 0.409
    for argv in (("kernel", "sign", "--depth", "1", "--inputs", str(tmp_path / "x.npy"), "--out",
                  str(tmp_path / "d.npz"), "--derivative", "distributional"),
                 ("series", "sign", "--depth", "1", "--order", "4", "--derivative", "distributional"),
                 ("codegen", "sign", "--depth", "1", "-o", str(tmp_path / "m.py"), "--derivative", "distributional")):
        code, out, err = _run(capsys, *argv)
        assert code == 2 and err.startswith("ntksym: error:") and len(err.strip().splitlines()) == 1, (argv, err)
        assert "distributional" in err and not (tmp_path / "d.npz").exists()
    code, out, _ = _run(capsys, "series", "sign", "--depth", "1", "--order", "4", "--json")
    assert code == 0 and "almost-everywhere derivative" in json.loads(out)["route"]


def test_record_convention_and_old_records():
    """derivation.json records the convention; a record without it (older) re-derives as it was made."""
    from ntksym.report import schema
    from ntksym.summary import summary_dict
    d = ntksym.derive("sign", 1, derivative="distributional")
    dk = summary_dict(d)["dual_kernels"]
    assert dk["derivative"] == "distributional"
    rec = {"schema": schema.SCHEMA, "activation": {"name": "sign", "expr": "sign(x)", "params": {},
                                                  "source": "catalogue"},
           "network": {"depth": 1, "sigma_w": 1.0, "sigma_b": 0.0, "parameterization": "ntk", "width": None},
           "hermite": [{"k": 0}], "dual_kernels": dict(dk)}
    del rec["dual_kernels"]["derivative"]      # a record written before the option: Dirac Σ̇ = distributional
    assert _rederive_derivative(rec) == "distributional"
    rec["dual_kernels"]["kdot_distributional"] = False
    assert _rederive_derivative(rec) == "ae"
    rec["dual_kernels"]["derivative"] = "distributional"
    assert _rederive_derivative(rec) == "distributional"
    with pytest.raises(NtksymError):
        schema.Obj({}, {"dual_kernels": schema.RECORD.required["dual_kernels"]}).check(
            {"dual_kernels": {**dk, "derivative": "weak"}}, "")


def _rederive_derivative(rec):
    from unittest import mock

    from ntksym.report import record as rec_mod
    from ntksym.network import Network
    act = ntksym.activation(rec["activation"]["name"])
    with mock.patch.object(rec_mod, "inputs", lambda r: (act, Network(1))), \
            mock.patch("ntksym.derivation.derive", lambda *a, **k: k["derivative"]):
        return rec_mod.rederive(rec, order=1)
