"""Time bounds for symbolic steps.

SymPy can run for a very long time on innocent-looking input.  Every symbolic
step in ntksym runs inside :func:`time_limit`; when the budget is spent a
:class:`~ntksym.errors.DerivationTimeout` is raised and the caller falls back to
a numeric route (and records that it did).

The bound uses ``SIGALRM`` (an interval timer), which interrupts pure-Python
code such as SymPy's.  Off the main thread, or where signals are unavailable,
the step runs unbounded in time but callers still bound expression sizes
(:func:`check_size`).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time

import sympy as sp

from .errors import DerivationTimeout

DEFAULT_STEP_SECONDS = 5.0
MAX_OPS = 4000


def _signals_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str = "symbolic step"):
    """Raise DerivationTimeout if the body runs longer than ``seconds``.

    Nested limits are honoured: the inner one never extends an outer budget.
    """
    if not seconds or not _signals_usable():
        yield
        return

    def _expire(signum, frame):
        raise DerivationTimeout(f"{what} exceeded {seconds:g} s")

    start = time.monotonic()
    outer_remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_remaining <= seconds:  # the enclosing budget ends first: it governs
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining > 0:
            left = outer_remaining - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


def check_size(expr: sp.Basic, what: str = "expression", max_ops: int = MAX_OPS) -> sp.Basic:
    """Raise DerivationTimeout if ``expr`` has grown past ``max_ops`` operations."""
    if sp.count_ops(expr) > max_ops:
        raise DerivationTimeout(f"{what} grew past {max_ops} operations")
    return expr
