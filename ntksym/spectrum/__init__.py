"""Kernel spectra: dot-product kernels on the sphere (:mod:`.sphere`)."""
from .sphere import (SphereSpectrum, funk_hecke_eigenvalue, monomial_eigenvalue, multiplicity,
                     predicted_decay_exponent, sphere_eigenvalues)

__all__ = ["SphereSpectrum", "funk_hecke_eigenvalue", "monomial_eigenvalue", "multiplicity",
           "predicted_decay_exponent", "sphere_eigenvalues"]
