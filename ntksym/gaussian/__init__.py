"""Gaussian expectations of activations: Hermite coefficients and dual kernels.

Every result carries the route that produced it (a closed-form rule, or a
numeric method with its error estimate); see :mod:`ntksym.gaussian.hermite` and
:mod:`ntksym.gaussian.dual`.
"""
