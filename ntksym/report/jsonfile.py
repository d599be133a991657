"""Read a JSON file that nobody vouches for: bounded, non-blocking, never a traceback.

:func:`read_json` accepts only a regular file (a FIFO, device or directory is
refused from its ``stat``, before anything is read; the file is opened with
``O_NONBLOCK`` and checked again with ``fstat``, so nothing can block) of at
most :data:`MAX_BYTES`, decoded as strict UTF-8.  Before the text is parsed its
nesting (at most :data:`MAX_NESTING`) and its number of values (at most
:data:`MAX_VALUES`) are counted on the text itself, so the JSON parser can
neither recurse deeply nor build millions of objects; integer literals have at
most :data:`MAX_INT_DIGITS` digits, float literals must be finite, and
NaN/Infinity literals are refused (the derivation record spells non-finite
numbers as the strings "nan", "inf", "-inf").  Every failure is a
:class:`~ntksym.errors.RecordError` with a one-line message.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
from typing import Any

import numpy as np

from ..errors import RecordError

MAX_BYTES = 64 << 20          # 64 MiB: a depth-10^5 record of a simple activation is about 60 MB
MAX_NESTING = 64              # the writer nests 6 deep
MAX_VALUES = 2_000_000        # JSON values (about 8 per recursion layer)
MAX_INT_DIGITS = 2000         # sphere multiplicities N(d, k) reach ~1400 digits at d = 10^5, k = 500

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
# a JSON string, or an unterminated one running to the end: every match attempt succeeds in one pass
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def display(path: Any) -> str:
    """A path as one printable line (control characters escaped, long names shortened)."""
    try:
        text = os.fsdecode(path)
    except TypeError:
        return repr(path)[:80]
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= 200 else text[:200] + "…"


def read_json(path: Any) -> Any:
    """The parsed JSON value of the file at ``path``, within the bounds above."""
    name = display(path)
    try:
        text = _read_regular(path, name).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    _check_shape(text, name)
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecordError as exc:
        raise RecordError(f"{name}: {exc}") from None


def _read_regular(path: Any, name: str) -> bytes:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        before = os.stat(path)
        if stat.S_ISREG(before.st_mode):
            fd = os.open(path, flags)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{name} is not a valid path ({exc})") from None
    except OSError as exc:
        raise RecordError(f"cannot read {name}: {exc.strerror or exc}") from None
    _regular(before, name)
    try:
        now = os.fstat(fd)
        _regular(now, name)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise RecordError(f"{name} was replaced while being opened")
        if now.st_size > MAX_BYTES:
            raise RecordError(f"{name} is {now.st_size} bytes; a record is at most {MAX_BYTES} bytes")
        chunks, total = [], 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise RecordError(f"cannot read {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if total > MAX_BYTES:
        raise RecordError(f"{name} grew beyond {MAX_BYTES} bytes while being read")
    if total == 0:
        raise RecordError(f"{name} is empty")
    return b"".join(chunks)


def _regular(st: os.stat_result, name: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
        raise RecordError(f"{name} is {kind}, not a regular file")


def _check_shape(text: str, name: str) -> None:
    """Count strings, escapes, values and nesting, before any parser sees the text (all linear, in C)."""
    if text.count('"') > 4 * MAX_VALUES or text.count("\\") > MAX_VALUES:
        raise RecordError(f"{name}: more than {MAX_VALUES} JSON strings or escapes")
    rest = _STRING.sub("", text)     # what lies outside strings
    if rest.count(",") + rest.count("[") + rest.count("{") + 1 > MAX_VALUES:
        raise RecordError(f"{name}: more than {MAX_VALUES} JSON values")
    if _nesting(np.frombuffer(rest.encode("utf-8"), np.uint8)) > MAX_NESTING:
        raise RecordError(f"{name}: JSON nested deeper than {MAX_NESTING} levels")


def _nesting(codes: np.ndarray, chunk: int = 1 << 22) -> int:
    """The deepest bracket nesting of ASCII codes (by chunks, to keep memory small)."""
    deepest = level = 0
    for start in range(0, codes.size, chunk):
        part = codes[start:start + chunk]
        step = (part == ord("[")).astype(np.int32) + (part == ord("{")) - (part == ord("]")) - (part == ord("}"))
        levels = np.cumsum(step, dtype=np.int32) + level
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise RecordError(f"an integer literal has {digits} digits (at most {MAX_INT_DIGITS})")
    try:
        return int(text)
    except ValueError as exc:  # a lowered sys.set_int_max_str_digits
        raise RecordError(f"an integer literal cannot be read ({exc})") from None


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RecordError(f"the number {text[:40]} is beyond the float range")
    return value


def _constant(text: str):
    raise RecordError(f"{text} is not JSON (the writer spells non-finite numbers as strings)")
