"""Exceptions raised by ntksym for bad user input and failed derivations.

Every user error derives from :class:`NtksymError`; the CLI turns these into one
line on stderr and exit status 2.  Internal bugs are *not* NtksymError and keep
their traceback.
"""


class NtksymError(ValueError):
    """Base class of every error caused by user input."""


class ParseError(NtksymError):
    """An activation string is malformed or uses something outside the whitelist."""


class ActivationError(NtksymError):
    """An activation is unknown, badly parameterized, or not usable (e.g. not in L2(N(0,1)))."""


class NetworkError(NtksymError):
    """A network specification is invalid (depth < 1, negative sigma, ...)."""


class InputError(NtksymError):
    """Data arrays are malformed (NaN, wrong shape, wrong dimension)."""


class DerivationTimeout(Exception):
    """A bounded symbolic step ran out of time (internal: callers fall back to numerics)."""


class RecordError(InputError):
    """A derivation record (derivation.json) is unreadable, malformed, or beyond the stated bounds."""


class AccuracyError(NtksymError):
    """A numeric result's own error estimate exceeds its tolerance (pass allow_inaccurate=True to accept it)."""
