"""One output discipline for every writer: claim, stage, publish.

Every file or directory that ntksym writes to a user path goes through :func:`claim`::

    with claim("report", kind="dir", force=False) as c:   # before the long computation
        ...                                               # write into c.path (a private staging entry)
        c.publish()                                       # atomic, no-clobber unless force

The guarantees:

* **claimed at the start.**  ``claim`` creates ``.ntksym-<12 hex>`` beside the target with
  ``os.mkdir`` (atomic; the short fixed name is a hash of the target's name, so it never exceeds
  NAME_MAX) and holds an exclusive ``flock`` on it for the whole run; it also records the owner's
  pid and start time.  A second run on the same target fails at once ("another ntksym run is
  writing ...").  A claim left by a dead process (no lock held; its pid is gone) is stale: the
  next run on that target takes it over, puts back a directory a killed ``--force`` run had set
  aside, and removes the rest.
* **staged privately.**  The output is written to ``c.path`` inside the claim (mode 0700), never
  to the target, so a failure or signal leaves the target as it was; the claim is removed when
  the run ends, and SIGTERM/SIGHUP (while their action is the default) raise :class:`Terminated`
  so that this cleanup runs.
* **published atomically.**  Without ``force`` the publish cannot replace anything: a file is
  hard-linked to the target name (fails if it exists), a directory is renamed onto an empty
  directory created by ``os.mkdir`` at that moment (fails if the name exists).  With ``force`` a
  file replaces the target by ``os.replace``; a directory swaps the old one aside into the claim
  and removes it after the new one is in place.
* **what may be replaced.**  A symlink is replaced itself, never written through (dangling or
  not); without ``force`` it counts as existing.  A FIFO, device or socket is refused even with
  ``force``; so is a directory where a file is written and a file where a directory is written.
* **one line per error.**  Every refusal and every OS error raises :class:`InputError` naming the
  path (parent missing, not a directory, read-only, name too long, ``/proc``, disk full, ...).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import stat
import threading
import time
from pathlib import Path

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: liveness falls back to the pid
    fcntl = None

__all__ = ["Claim", "Terminated", "claim", "claimed", "write_file", "claim_path"]

PREFIX = ".ntksym-"
SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
_UNOWNED_GRACE_S = 10.0   # a claim without an owner record younger than this is being created


class Terminated(SystemExit):
    """Raised by the SIGTERM/SIGHUP handler installed while a claim is held (exit status 128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def claim_path(target) -> Path:
    """The claim directory of ``target``: ``.ntksym-`` and 12 hex digits of sha256(name), beside it."""
    target = Path(target)
    return target.parent / (PREFIX + hashlib.sha256(os.fsencode(target.name)).hexdigest()[:12])


def show(path) -> str:
    """``path`` for a one-line message: as is when printable, else quoted with escapes."""
    text = os.fspath(path) if not isinstance(path, str) else path
    return text if text.isprintable() else repr(text)


def _error(exc: OSError, path) -> InputError:
    return InputError(f"cannot write {show(path)}: {exc.strerror or exc}")


@contextlib.contextmanager
def _oserrors(path):
    try:
        yield
    except OSError as exc:
        raise _error(exc, path) from None


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "link")):
        if test(mode):
            return name
    return "special"


def check_target(target: Path, kind: str, force: bool) -> bool:
    """Whether ``target`` exists (as something ``force`` may replace); raise InputError if it may not be."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _error(exc, target) from None
    found = _kind_of(st.st_mode)
    if found == "special":
        raise InputError(f"refusing to write {show(target)}: it is not a regular file or directory "
                         "(FIFO, device or socket)")
    if found == "dir" and kind == "file":
        raise InputError(f"{show(target)} is a directory; expected a file name")
    if found == "file" and kind == "dir":
        raise InputError(f"{show(target)} exists and is not a directory")
    if not force:
        raise InputError(f"{show(target)} already exists (use --force to replace it)")
    return True


class Claim:
    """A held claim on one output path; see the module docstring.  Use as a context manager."""

    def __init__(self, target, kind: str = "file", force: bool = False):
        if kind not in ("file", "dir"):
            raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
        self.target = Path(os.fspath(target)).absolute()   # no resolve(): a symlink target stays a link
        if self.target.name in ("", ".", ".."):
            raise InputError(f"not a usable output name: {show(target)}")
        self.kind, self.force = kind, force
        self.directory = claim_path(self.target)
        suffix = self.target.suffix if len(self.target.suffix) <= 16 else ""
        self.path = self.directory / ("out" + suffix)   # the staged file or directory
        self.published = False
        self._fd: int | None = None
        self._handlers: dict = {}
        self._acquire()

    # -- acquiring -------------------------------------------------------------------------------
    def _acquire(self) -> None:
        parent = self.target.parent
        if not os.path.isdir(parent):
            raise InputError(f"{show(parent)} is not a directory" if os.path.lexists(parent)
                             else f"parent directory does not exist: {show(parent)}")
        check_target(self.target, self.kind, self.force)
        self._install_handlers()
        try:
            for _ in range(20):
                if self._try_claim():
                    break
            else:
                raise InputError(f"could not claim {show(self.target)}: its claim keeps changing")
            with _oserrors(self.directory):
                with open(self.directory / "owner", "w", encoding="ascii") as fh:
                    fh.write(f"{os.getpid()} {time.time():.3f}\n")
                if self.kind == "dir":
                    os.mkdir(self.path)
        except BaseException:
            self.release()
            raise

    def _try_claim(self) -> bool:
        """One attempt: create or take over the claim directory and lock it; False: try again."""
        d = self.directory
        created = True
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            created = False
        except OSError as exc:
            raise _error(exc, self.target) from None
        try:
            fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return False                        # removed by its owner meanwhile
        except OSError as exc:
            raise InputError(f"cannot claim {show(self.target)}: {show(d)} is not a usable claim "
                             f"({exc.strerror})") from None
        try:
            held = self._lock(fd)
            st = os.fstat(fd)
            if not _same_entry(st, d):          # removed (or replaced) by its owner meanwhile
                os.close(fd)
                return False
            if held is False or (not created and not self._stale(d, st, held)):
                raise InputError(f"another ntksym run{_owner_text(d)} is writing {show(self.target)}; "
                                 f"try again when it has finished (or remove {show(d)} if no run is active)")
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        self._fd = fd                           # ours from here on: release() removes it
        if not created:
            _recover(d, self.target)
        return True

    @staticmethod
    def _lock(fd: int) -> bool | None:
        """True: locked; False: another process holds it; None: locking unsupported here."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:
            return None
        return True

    @staticmethod
    def _stale(d: Path, st: os.stat_result, locked: bool | None) -> bool:
        """May an existing claim (unlocked by anyone else when ``locked``) be taken over?"""
        if st.st_uid != _euid():
            raise InputError(f"{show(d)} belongs to another user; refusing to take it over")
        if locked:        # nobody else holds the lock: its owner has exited
            return True
        pid = _owner_pid(d)   # no locking here: judge by the owner's pid
        if pid is None:       # the owner record follows the mkdir at once: give a creator time
            return time.time() - st.st_mtime > _UNOWNED_GRACE_S
        return not _alive(pid)

    # -- publishing and releasing ----------------------------------------------------------------
    def publish(self) -> Path:
        """Move the staged output to the target (no-clobber unless ``force``); return the target."""
        if self.published:
            raise RuntimeError("already published")
        exists = check_target(self.target, self.kind, self.force)
        with _oserrors(self.target):
            if self.kind == "file":
                self._publish_file()
            elif exists:
                os.rename(self.target, self.directory / "old")
                try:
                    os.rename(self.path, self.target)
                except BaseException:
                    os.rename(self.directory / "old", self.target)
                    raise
            else:
                self._publish_new_dir()
        self.published = True
        return self.target

    def _publish_file(self) -> None:
        if self.force:
            os.replace(self.path, self.target)
            return
        try:
            os.link(self.path, self.target)
        except FileExistsError:
            raise InputError(f"{show(self.target)} appeared while this run was working; not replaced "
                             "(use --force to replace it)") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            check_target(self.target, "file", False)   # no hard links here: check, then rename
            os.rename(self.path, self.target)

    def _publish_new_dir(self) -> None:
        try:
            os.mkdir(self.target, 0o700)        # the atomic no-clobber step
        except FileExistsError:
            raise InputError(f"{show(self.target)} appeared while this run was working; not replaced "
                             "(use --force to replace it)") from None
        try:
            os.rename(self.path, self.target)   # onto our own empty directory
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(self.target)
            raise

    def release(self) -> None:
        """Remove the claim (and anything staged or set aside in it); restore the signal handlers.

        SIGTERM/SIGHUP are blocked meanwhile: one arriving now is delivered after the cleanup."""
        mask = (signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
                if self._handlers and hasattr(signal, "pthread_sigmask") else None)
        try:
            if self._fd is not None:
                # a directory set aside by an unfinished --force publish is put back, never deleted
                if self.published or _put_back(self.directory, self.target):
                    shutil.rmtree(self.directory, ignore_errors=True)
                os.close(self._fd)
                self._fd = None
        finally:
            self._restore_handlers()
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- signals -----------------------------------------------------------------------------------
    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:   # leave ignored or user-handled signals alone
                self._handlers[sig] = signal.signal(sig, _terminate)

    def _restore_handlers(self) -> None:
        while self._handlers:
            sig, old = self._handlers.popitem()
            signal.signal(sig, old)


def _terminate(signum, frame):
    for sig in SIGNALS:   # one signal is enough: let the cleanup finish
        if signal.getsignal(sig) is _terminate:
            signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _same_entry(st: os.stat_result, path: Path) -> bool:
    """Is ``path`` still the entry whose fstat is ``st``?"""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _owner_pid(d: Path) -> int | None:
    try:
        return int((d / "owner").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def _owner_text(d: Path) -> str:
    pid = _owner_pid(d)
    return f" (pid {pid})" if pid is not None else ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def _put_back(d: Path, target: Path) -> bool:
    """Put a target set aside in claim ``d`` back in place if the target is missing; False if
    something set aside is still there (so the claim must be kept)."""
    old = d / "old"
    if not os.path.lexists(old):
        return True
    if os.path.lexists(target):
        return False
    try:
        os.rename(old, target)
    except OSError:
        return False
    return True


def _recover(d: Path, target: Path) -> None:
    """Take over a stale claim: put back a directory a killed --force run had set aside (if the
    new one never took its place), drop the rest."""
    with _oserrors(target):
        _put_back(d, target)
        for entry in os.listdir(d):
            p = d / entry
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)


def claim(target, kind: str = "file", force: bool = False) -> Claim:
    """Claim ``target`` now (see the module docstring); release it with ``with`` or ``.release()``."""
    return Claim(target, kind, force)


@contextlib.contextmanager
def claimed(out, kind: str = "file", force: bool = False):
    """``out`` itself when it is a held :class:`Claim` (its holder releases it), else a new claim."""
    if isinstance(out, Claim):
        if out.kind != kind:
            raise ValueError(f"a {out.kind} claim cannot take a {kind}")
        yield out
        return
    with claim(out, kind, force) as c:
        yield c


def write_file(out, write, force: bool = False) -> Path:
    """Write a file through ``write(binary_file)`` to ``out`` (a path or a held file :class:`Claim`)
    and publish it; returns the target path."""
    with claimed(out, "file", force) as c:
        with _oserrors(c.target):
            with open(c.path, "xb") as fh:
                write(fh)
        return c.publish()
