"""ntksym: exact Gaussian expectations, NNGP/NTK recursions and more for
fully-connected networks, derived symbolically from an activation expression.

Quick use::

    import ntksym
    act = ntksym.activation("relu")
    ntksym.hermite(act, order=6).coefficients[2].exact      # 1/(2*sqrt(pi))
    ntksym.dual_kernels(act).khat                           # arc-cosine kernel in q1, q2, c
    nngp, ntk = ntksym.kernel(act, X, depth=3, sigma_w=1.4, sigma_b=0.1)
    d = ntksym.derive("a*x + b*Abs(x)", depth=3, params={"a": 0.3, "b": 0.7})
    ntksym.power_series("relu", depth=3, order=1000).ntk   # κ_p of Θ(ρ) (Murray et al. 2023)
    ntksym.sphere_spectrum("relu", depth=3, dim=10, kmax=50).eigenvalues
"""
from .activation import CATALOGUE, Activation, catalogue_names
from .activation import make_activation as activation
from .derivation import (Derivation, data_spectrum_report, derive, dual_kernels, hermite, kernel, power_series,
                         sphere_spectrum)
from .eoc import cosine_map, edge_of_chaos, phase
from .errors import (ActivationError, InputError, NetworkError, NtksymError,
                     ParseError)
from .gaussian.dual import C, Q1, Q2, DualKernels
from .network import Network, recursion

__version__ = "0.1.0"

__all__ = [
    "Activation", "activation", "catalogue_names", "CATALOGUE", "hermite", "dual_kernels", "kernel",
    "derive", "Derivation", "power_series", "sphere_spectrum", "data_spectrum_report", "edge_of_chaos", "phase", "cosine_map", "DualKernels", "Network", "recursion", "Q1", "Q2", "C",
    "NtksymError", "ParseError", "ActivationError", "NetworkError", "InputError", "__version__",
]
