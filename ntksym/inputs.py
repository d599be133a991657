"""Data arrays from users: safe ``.npy`` loading and array validation (the one place for both).

Every check runs before any large allocation:

* only regular files are read: a FIFO, device (``/dev/null``), directory or socket is refused; the
  file is opened with ``O_NONBLOCK`` and checked again with ``fstat`` on the open descriptor, so a
  FIFO swapped in between the two checks cannot block;
* the ``.npy`` header (format 1.0 or 2.0, at most :data:`MAX_HEADER_BYTES`) is parsed without
  reading the data; pickled (object), structured, complex, string, bool and datetime arrays are
  refused without being read (nothing is ever unpickled);
* the array must be 2-D ``(n, d)`` with ``n, d >= 1``, the file size must match the header
  exactly (a truncated file is an error), and the data, converted to float64, must fit in
  :data:`MEMORY_FRACTION` of the available memory;
* values must be finite (no NaN or ±inf).

Kernel evaluations also bound the ``n1 × n2`` Gram matrices by the available memory
(:func:`check_gram_memory`).  Every failure is an :class:`~ntksym.errors.InputError`.
"""
from __future__ import annotations

import os
import stat
from typing import NamedTuple

import numpy as np

from .errors import InputError

MAX_HEADER_BYTES = 10_000     # numpy's own default bound for .npy headers
MEMORY_FRACTION = 0.5         # a loaded array (as float64) may use at most this share of available memory
GRAM_ARRAYS = 16              # n1×n2 float64 arrays alive at once while the NNGP/NTK recursion runs
ACCEPTED_KINDS = "iuf"        # signed/unsigned integers and real floating point


class NpyHeader(NamedTuple):
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    data_offset: int


def show(path) -> str:
    """A path as it may appear in a one-line message (control characters escaped)."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return text if text.isprintable() else ascii(text)


def available_memory() -> int:
    """Bytes of memory available now: /proc/meminfo MemAvailable (or free pages), capped by a cgroup limit."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (OSError, ValueError, AttributeError):
            avail = 4 << 30  # unknown platform: assume 4 GiB
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        if limit != "max":
            avail = min(avail, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return avail


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_gram_memory(n1: int, n2: int, arrays: int = GRAM_ARRAYS, what: str = "the kernel matrices") -> None:
    """Refuse an ``n1 × n2`` computation that needs more than the available memory."""
    need = int(n1) * int(n2) * 8 * arrays
    avail = available_memory()
    if need > avail:
        raise InputError(f"{what} for {n1} x {n2} inputs need about {_gib(need)} of memory, "
                         f"only {_gib(avail)} available; use fewer inputs")


# ------------------------------------------------------------------ .npy files


def _open_regular(path) -> int:
    shown = show(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"no such file: {shown}") from None
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL byte
        raise InputError(f"cannot open {shown} ({_reason(exc)})") from None
    _require_regular(st, shown)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"no such file: {shown}") from None
    except OSError as exc:
        raise InputError(f"cannot open {shown} ({_reason(exc)})") from None
    try:
        _require_regular(os.fstat(fd), shown)  # the file actually opened, not the one stat'ed
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(st: os.stat_result, shown: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{shown} is a directory; expected a .npy file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{shown} is not a regular file (a device, FIFO or socket); expected a .npy file")


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0]


def read_header(fh, shown: str) -> NpyHeader:
    """Parse and check a .npy header from the start of ``fh``; reads no array data."""
    fmt = np.lib.format
    if fh.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
        raise InputError(f"cannot read {shown} as a .npy array (not a .npy file: no \\x93NUMPY magic string)")
    fh.seek(0)
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except Exception as exc:  # numpy's parser of untrusted header text raises ValueError, TokenError, ...
        raise InputError(f"cannot read {shown} as a .npy array ({_reason(exc)})") from None
    check_dtype(dtype, shown)
    if len(shape) != 2:
        raise InputError(f"{shown} must hold a 2-D array (n, d), got shape {tuple(shape)}")
    if any(n < 1 for n in shape):
        raise InputError(f"{shown} must hold a non-empty 2-D array (n, d), got shape {tuple(shape)}")
    return NpyHeader(tuple(int(n) for n in shape), dtype, bool(fortran), fh.tell())


def check_dtype(dtype: np.dtype, shown: str) -> None:
    """Only real floating-point and integer arrays are data."""
    if dtype.kind in ACCEPTED_KINDS and dtype.fields is None and not dtype.subdtype:
        return
    kind = {"c": "complex", "U": "string", "S": "bytes", "O": "object (pickled)", "V": "structured or raw",
            "M": "datetime", "m": "timedelta", "b": "boolean"}.get(dtype.kind, "non-numeric")
    raise InputError(f"{shown} holds {kind} values (dtype {dtype.str}); expected real numbers "
                     "(floating point or integer)")


def load_array(path, name: str | None = None) -> np.ndarray:
    """A finite float64 array of shape (n, d) from a .npy file, checked before anything large is read.

    ``name`` is used in messages (default: the path).  Raises :class:`InputError`.
    """
    shown = show(path) if name is None else name
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size == 0:
            raise InputError(f"{shown} is empty; expected a .npy array")
        header = read_header(fh, shown)
        count = header.shape[0] * header.shape[1]
        nbytes = count * header.dtype.itemsize
        need, avail = count * max(header.dtype.itemsize, 8) + nbytes, available_memory()
        if need > MEMORY_FRACTION * avail:
            raise InputError(f"{shown} has shape {header.shape}: loading it needs about {_gib(need)}, "
                             f"more than half of the {_gib(avail)} of memory available")
        if size - header.data_offset != nbytes:
            state = "truncated" if size - header.data_offset < nbytes else "longer than its header says"
            raise InputError(f"{shown} is {state}: its header promises shape {header.shape} "
                             f"({nbytes} data bytes), the file holds {size - header.data_offset}")
        try:
            data = fh.read(nbytes)
        except OSError as exc:
            raise InputError(f"cannot read {shown} ({_reason(exc)})") from None
    if len(data) != nbytes:  # the file shrank after it was checked
        raise InputError(f"{shown} is truncated: expected {nbytes} data bytes, read {len(data)}")
    arr = np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")
    with np.errstate(over="ignore"):  # float128 beyond the float64 range becomes inf, refused below
        arr = np.array(arr, dtype=np.float64, order="C")
    return check_finite(arr, shown)


# ------------------------------------------------------------------ in-memory arrays


def check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def as_matrix(x, name: str) -> np.ndarray:
    """A finite float64 array of shape (n, d), n, d >= 1, from a real numeric array-like (no complex,
    strings, bools, objects); raises :class:`InputError`."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, OverflowError) as exc:  # ragged nested lists and the like
        raise InputError(f"{name} is not a numeric array ({_reason(exc)})") from None
    check_dtype(arr.dtype, name)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} must be a non-empty 2-D array (n, d), got shape {arr.shape}")
    with np.errstate(over="ignore"):
        arr = np.asarray(arr, dtype=np.float64)
    return check_finite(arr, name)


# ------------------------------------------------------------------ command-line numbers


def bounded_int(minimum: int, maximum: int):
    """An argparse ``type=``: an integer in [minimum, maximum] (one-line error otherwise)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {show(text)}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be an integer in [{minimum}, {maximum}], got {value}")
        return value
    parse.__name__ = "integer"
    return parse
