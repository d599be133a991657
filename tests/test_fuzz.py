"""Fuzz harness (issue 11): hostile input never runs, never clobbers, never crashes.

The fixed corpus lives in ``tests/fuzz_corpus.py`` (by category, each entry with its expected outcome
class).  Every case runs the real ``ntksym.cli.main`` (or an API entry point) in a *forked child* of the
test process: cheap (no re-import), isolated (an abort such as gmp's exit 134, a hang or a global-state
leak hits only that child; the child is killed at the time bound), and with the child's file descriptors
1 and 2 captured, so what C code writes is seen too.  A few cases also go through a real
``python -m ntksym`` process.  For every case the harness asserts:

* exit status 0 or 2 (API: returns or raises an ``NtksymError`` subclass), and the expected class;
* at most one line on stderr (exactly one, ``ntksym: error: ...``, when refused), no ``Traceback``;
* nothing created, changed or removed outside the declared output (a listing of the case's sandbox,
  which holds the working directory and the places the output paths point to, before and after);
  nothing at all when refused; the ``MARKER`` file the payloads try to create never exists;
* a time bound per case;
* every generated module (``codegen -o``, ``derive --out DIR`` -> DIR/kernels.py, ``write_module``)
  imports in a separate Python process with no side effect (an audit hook records process, file-write
  and socket events; nothing printed; no file appears).

The default run is a quick selection; ``python -m pytest -m fuzz tests/test_fuzz.py`` runs the whole
corpus against every subcommand and API entry point, and many more hypothesis examples.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_corpus as corpus
from fuzz_corpus import EITHER, MARKER, OK, REFUSED

CASE_SECONDS = 60           # time bound of one case (CLI call or API call)
FORKS = hasattr(os, "fork")
pytestmark = pytest.mark.skipif(not FORKS, reason="the harness forks a child per case")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


# ---------------------------------------------------------------- running one case in a forked child

@dataclasses.dataclass
class Run:
    """What a case did: ``kind`` is 'return' (value = exit status or API summary), 'ntksym' (an
    NtksymError escaped an API call), 'exception' (any other exception), 'signal' (killed by a
    signal, e.g. SIGABRT = exit 134), 'exit' (the child exited on its own) or 'timeout'."""
    kind: str
    value: object = None
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        first = self.stderr.strip().splitlines()[0][:160] if self.stderr.strip() else ""
        if self.kind == "return":
            head = f"returned {self.value}" if isinstance(self.value, str) else f"exit={self.value!r}"
        elif self.kind == "timeout":
            head = f"timeout after {self.seconds:.0f} s"
        elif self.kind == "signal":
            head = f"killed by signal {self.value} (exit {128 + self.value})"
        else:
            head = f"{self.kind}: {self.error.strip().splitlines()[-1][:200] if self.error.strip() else ''}"
        return f"{head}; stderr: {first!r}" + (f" (+{len(self.stderr.strip().splitlines()) - 1} lines)"
                                                if len(self.stderr.strip().splitlines()) > 1 else "")


def _child_streams(capture_dir: str):
    """Point fds 0/1/2 (and sys.std*) of the child at /dev/null and capture files."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "out"), (2, "err")):
        f = os.open(os.path.join(capture_dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)


def _cli_warnings():
    """Warnings as the real command line shows them (pytest records them otherwise)."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.filterwarnings("ignore", category=cat)
    warnings.showwarning = (lambda message, category, filename, lineno, file=None, line=None:
                            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))


def fork_run(fn, cwd: str, capture_dir: str, timeout: float = CASE_SECONDS, env: dict | None = None) -> Run:
    """Run ``fn()`` in a forked child with cwd ``cwd``; its return value must be JSON-able."""
    os.makedirs(capture_dir, exist_ok=True)
    r, w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            os.setpgid(0, 0)
            import faulthandler
            faulthandler.disable()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _child_streams(capture_dir)
            os.environ.update(env or {})
            os.chdir(cwd)
            _cli_warnings()
            try:
                payload = {"kind": "return", "value": fn()}
            except BaseException as exc:  # noqa: BLE001 - everything is recorded and judged by the parent
                from ntksym.errors import NtksymError
                payload = {"kind": "ntksym" if isinstance(exc, NtksymError) else "exception",
                           "error": f"{type(exc).__name__}: {str(exc)[:1000]}\n{traceback.format_exc()[-3000:]}"}
            for s in (sys.stdout, sys.stderr):
                try:
                    s.flush()
                except Exception:  # noqa: BLE001
                    pass
            data = json.dumps(payload, default=repr).encode()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks, deadline, status = [], t0 + timeout, None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([r], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(r)
    timed_out = time.monotonic() >= deadline
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    try:  # grandchildren (pdflatex, ...) go with the child
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    seconds = time.monotonic() - t0
    out = _read(os.path.join(capture_dir, "out"))
    err = _read(os.path.join(capture_dir, "err"))
    if timed_out:
        return Run("timeout", stdout=out, stderr=err, seconds=seconds)
    if os.WIFSIGNALED(status):
        return Run("signal", os.WTERMSIG(status), stdout=out, stderr=err, seconds=seconds)
    if not chunks:
        return Run("exit", os.WEXITSTATUS(status), error=f"child exited with status {os.WEXITSTATUS(status)}",
                   stdout=out, stderr=err, seconds=seconds)
    payload = json.loads(b"".join(chunks))
    return Run(payload["kind"], payload.get("value"), payload.get("error", ""), out, err, seconds)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "backslashreplace")
    except FileNotFoundError:
        return ""


def _cli(argv):
    def call():
        from ntksym.cli import main
        sys.argv = [os.path.join(REPO, "ntksym", "__main__.py"), *argv]  # as `python -m ntksym ARGV`
        return main(list(argv))
    return call


# ---------------------------------------------------------------- the sandbox of one case

class Sandbox:
    """A fresh directory per case: ``cwd`` (the working directory), ``elsewhere`` (where symlinks
    point), ``cache`` (NTKSYM_CACHE) and ``capture`` (the child's stdout/stderr, not watched)."""

    counter = 0

    def __init__(self, base):
        Sandbox.counter += 1
        self.root = os.path.join(str(base), f"case{Sandbox.counter:05d}")
        self.capture = self.root + ".capture"
        self.cwd = os.path.join(self.root, "cwd")
        self.elsewhere = os.path.join(self.root, "elsewhere")
        self.cache = os.path.join(self.root, "cache")
        for d in (self.cwd, self.elsewhere, self.cache):
            os.makedirs(d)
        self.env = {"NTKSYM_CACHE": self.cache, "MPLBACKEND": "Agg", "SOURCE_DATE_EPOCH": "0"}
        self.declared: list[str] = []
        self.before = None

    def data(self, name="x.npy", arr=None):
        path = os.path.join(self.root, name)
        np.save(path, np.random.default_rng(0).normal(size=(3, 2)) if arr is None else arr)
        return path

    def snapshot(self) -> dict:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                try:
                    st_ = os.lstat(p)
                except FileNotFoundError:
                    continue
                kind = stat.S_IFMT(st_.st_mode)
                if stat.S_ISDIR(kind):
                    out[p] = ("dir",)
                elif stat.S_ISLNK(kind):
                    out[p] = ("link", os.readlink(p))
                elif stat.S_ISREG(kind):
                    out[p] = ("file", st_.st_size, st_.st_mtime_ns, st_.st_ino)
                else:
                    out[p] = ("special", kind, st_.st_ino)
        return out

    def start(self, *declared: str):
        """Record the state before the run; ``declared``: the outputs the run may create/replace."""
        self.declared = [os.path.abspath(os.path.join(self.cwd, d)) for d in declared]
        self.declared += [os.path.realpath(d) for d in self.declared]
        self.before = self.snapshot()

    def allowed(self, path: str) -> bool:
        if path == self.cache or path.startswith(self.cache + os.sep):
            return True
        return any(path == d or path.startswith(d + os.sep) for d in self.declared)

    def problems(self, refused: bool) -> list[str]:
        after = self.snapshot()
        out = []
        for p in sorted(set(self.before) | set(after)):
            if os.path.basename(p) == MARKER:
                out.append(f"PAYLOAD RAN: {MARKER} file exists at {p}")
                continue
            if self.before.get(p) == after.get(p):
                continue
            how = "created" if p not in self.before else "removed" if p not in after else "changed"
            if refused or not self.allowed(p):
                out.append(f"{how} outside the declared output: {os.path.relpath(p, self.root)!r}")
        return out


# ---------------------------------------------------------------- judging

def judge_cli(run: Run, expect: str, box: Sandbox | None = None) -> list[str]:
    out = []
    if run.kind != "return":
        out.append(f"not an exit status: {run.describe()}")
    elif run.value not in (0, 2):
        out.append(f"exit status {run.value!r} (want 0 or 2)")
    else:
        got = OK if run.value == 0 else REFUSED
        if expect != EITHER and got != expect:
            out.append(f"expected {expect}, got {got}")
    lines = run.stderr.strip("\n").splitlines() if run.stderr.strip() else []
    if len(lines) > 1:
        out.append(f"{len(lines)} lines on stderr")
    if run.kind == "return" and run.value == 2 and (len(lines) != 1 or not lines[0].startswith("ntksym: error: ")):
        out.append("refused without exactly one 'ntksym: error: ...' line")
    if "Traceback" in run.stdout + run.stderr or "Traceback" in run.error:
        out.append("a Traceback was printed" if "Traceback" in run.stdout + run.stderr else "an exception escaped")
    if box is not None:
        out += box.problems(refused=not (run.kind == "return" and run.value == 0))
    return out


def _warning_lines(stderr: str) -> list[str]:
    """stderr lines, not counting the indented source line Python's warnings module echoes after
    ``file:line: SomeWarning: message`` (an API warning is one message, e.g. KernelOverflowWarning)."""
    lines = stderr.strip("\n").splitlines() if stderr.strip() else []
    return [ln for i, ln in enumerate(lines)
            if not (i and re.search(r"\w+Warning: ", lines[i - 1]) and ln.startswith((" ", "\t")))]


def judge_api(run: Run, expect: str, box: Sandbox | None = None) -> list[str]:
    out = []
    if run.kind not in ("return", "ntksym"):
        out.append(f"neither a result nor an NtksymError: {run.describe()}")
    else:
        got = OK if run.kind == "return" else REFUSED
        if expect != EITHER and got != expect:
            out.append(f"expected {expect}, got {got}" + (f" ({run.error.splitlines()[0][:200]})"
                                                           if run.error else ""))
    if run.stdout.strip():
        out.append(f"printed on stdout: {run.stdout.strip()[:100]!r}")
    lines = _warning_lines(run.stderr)
    if len(lines) > 1:
        out.append(f"{len(lines)} lines on stderr")
    if "Traceback" in run.stdout + run.stderr:
        out.append("a Traceback was printed")
    if box is not None:
        out += box.problems(refused=run.kind != "return")
    return out


def report(problems: list[str], run: Run, what: str) -> None:
    if problems:
        pytest.fail(f"{what}: {'; '.join(problems)} [{run.describe()}; {run.seconds:.1f} s]", pytrace=False)


IMPORT_CHECK = r"""
import importlib.util, json, os, sys
import numpy
events = []
WATCH = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
         "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
         "os.truncate", "os.putenv", "os.unsetenv", "os.chdir", "shutil.", "subprocess.", "socket.", "ctypes.",
         "pty.", "webbrowser.", "urllib.", "http.", "sys._getframe", "builtins.input")
def hook(event, args):
    bad = event.startswith(WATCH)
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        bad = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        event = f"open {args[0]!r} {mode!r}"
    if bad:
        events.append(event)
        raise RuntimeError(f"side effect during import: {event}")
sys.addaudithook(hook)
spec = importlib.util.spec_from_file_location("ntksym_generated_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
finally:
    sys.__stdout__.write("\n@@" + json.dumps({"events": events, "kernels": callable(getattr(module, "kernels", None))}))
"""


def module_problems(path: str, base) -> list[str]:
    """Import the generated module at ``path`` in a fresh Python process, in a fresh directory."""
    if not os.path.isfile(path):
        return [f"no module at {path!r}"]
    box = Sandbox(base)
    box.start()
    module_dir = os.path.dirname(path)
    listing = sorted(os.listdir(module_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NTKSYM"))}
    env["NTKSYM_CACHE"] = box.cache
    try:
        proc = subprocess.run([sys.executable, "-I", "-B", "-c", IMPORT_CHECK, path], cwd=box.cwd, env=env,
                              capture_output=True, text=True, errors="backslashreplace", timeout=CASE_SECONDS)
    except subprocess.TimeoutExpired:
        return [f"importing the generated module took over {CASE_SECONDS} s"]
    out = []
    head, _, tail = proc.stdout.rpartition("\n@@")
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        out.append(f"generated module does not import (exit {proc.returncode}: {last[:200]})")
    if tail:
        info = json.loads(tail)
        if info["events"]:
            out.append(f"PAYLOAD RAN: side effects while importing the generated module: {info['events']}")
        if proc.returncode == 0 and not info["kernels"]:
            out.append("generated module has no kernels()")
    if head.strip() or (proc.returncode == 0 and proc.stderr.strip()):
        out.append(f"importing printed {(head + proc.stderr).strip()[:120]!r}")
    if sorted(os.listdir(module_dir)) != listing:
        out.append("importing changed the module's directory")
    out += box.problems(refused=True)
    return out


# ---------------------------------------------------------------- subcommands and their cheapest calls

SMALL_REPORT = ["--no-pdf", "--series-order", "16", "--kmax", "0", "--mc-samples", "2", "--sphere-dim", "2"]


def activation_argv(command: str, act: str, box: Sandbox) -> tuple[list[str], list[str]]:
    """(argv, declared outputs) of the cheapest call of ``command`` with activation ``act``."""
    x = box.data()
    table = {
        "hermite": (["hermite", act, "--order", "4"], []),
        "derive": (["derive", act, "--depth", "1", "--order", "4"], []),
        "series": (["series", act, "--depth", "1", "--order", "4"], []),
        "spectrum": (["spectrum", act, "--depth", "1", "--dim", "3", "--kmax", "3"], []),
        "eoc": (["eoc", act], []),
        "eoc-phase": (["eoc", act, "--sigma-w", "1.5", "--sigma-b", "0.1"], []),
        "kernel": (["kernel", act, "--depth", "1", "--inputs", x, "--out", "k.npz"], ["k.npz"]),
        "codegen": (["codegen", act, "--depth", "1", "-o", "g.py"], ["g.py"]),
        "empirical": (["empirical", act, "--depth", "1", "--width", "4", "--samples", "2", "--inputs", x,
                       "--out", "e.npz"], ["e.npz"]),
        "rmt": (["rmt", act, "--gammas", "0.5,0.5", "--grid", "10"], []),
        "derive-out": (["derive", act, "--depth", "1", "--out", "R", *SMALL_REPORT], ["R"]),
    }
    argv, declared = table[command]
    return [a for a in argv], declared


ACTIVATION_COMMANDS = ("hermite", "derive", "series", "spectrum", "eoc", "eoc-phase", "kernel", "codegen",
                       "empirical", "rmt", "derive-out")


def expected_for(case, command: str, category: str) -> str:
    if case.expect == REFUSED:
        return REFUSED
    if case.id == "option-like":
        return EITHER
    return case.expect if command in ("hermite", "derive", "derive-out") else EITHER


def generated_modules(command: str, box: Sandbox) -> list[str]:
    if command == "codegen":
        return [os.path.join(box.cwd, "g.py")]
    if command == "derive-out":
        path = os.path.join(box.cwd, "R", "kernels.py")
        return [path] if os.path.exists(path) else []
    return []


def run_activation(tmp_path, command: str, category: str, case) -> None:
    box = Sandbox(tmp_path)
    argv, declared = activation_argv(command, case.value, box)
    box.start(*declared)
    run = fork_run(_cli(argv), box.cwd, box.capture, env=box.env)
    problems = judge_cli(run, expected_for(case, command, category), box)
    if run.kind == "return" and run.value == 0 and case.id != "option-like":  # --help writes nothing
        for path in generated_modules(command, box):
            problems += module_problems(path, tmp_path)
    report(problems, run, f"{command} [{category}/{case.id}] {case.value[:80]!r}")


def _ids(cases):
    return [c.id for c in cases]


ALL_ACTIVATIONS = corpus.all_activations()
DEFAULT_ACTIVATIONS = [(c, x) for c, x in ALL_ACTIVATIONS if x.id not in corpus.HEAVY]


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory):
    """Warm SymPy's caches and the lazy imports once in the test process: every forked child
    inherits them, so a case costs its own work only."""
    import contextlib
    from ntksym.cli import main
    here, where = os.getcwd(), tmp_path_factory.mktemp("warm")
    np.save(where / "x.npy", np.ones((2, 2)))
    try:
        os.chdir(where)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for argv in (["hermite", "relu", "--order", "4"], ["hermite", "a*x", "--param", "a=1", "--order", "2"],
                         ["kernel", "relu", "--depth", "1", "--inputs", "x.npy", "--out", "k.npz"],
                         ["codegen", "relu", "--depth", "1", "-o", "g.py"], ["eoc", "relu"],
                         ["derive", "relu", "--depth", "1", "--order", "4"]):
                try:  # best effort: a failure here is judged by the cases themselves
                    main(argv)
                except BaseException:  # noqa: BLE001
                    pass
    finally:
        os.chdir(here)

# ---------------------------------------------------------------- default run: activation corpus via hermite


@pytest.mark.parametrize("category,case", DEFAULT_ACTIVATIONS, ids=[f"{c}/{x.id}" for c, x in DEFAULT_ACTIVATIONS])
def test_activation_corpus_hermite(tmp_path, category, case):
    run_activation(tmp_path, "hermite", category, case)


CODEGEN_DEFAULT = ["docstring-breakout", "docstring-breakout-single", "system", "comment-triple-quote",
                   "comment-N-escape", "comment-x-escape", "trailing-newline-catalogue", "cr-trailing",
                   "u2029-trailing", "ff-inside", "tex-caret", "relu"]


@pytest.mark.parametrize("case_id", CODEGEN_DEFAULT)
def test_codegen_module_from_hostile_activation(tmp_path, case_id):
    cat = next(c for c, x in ALL_ACTIVATIONS if x.id == case_id)
    run_activation(tmp_path, "codegen", cat, corpus.activation(case_id))


@pytest.mark.parametrize("case_id", ["docstring-breakout", "comment-N-escape", "trailing-newline-catalogue"])
def test_derive_out_module_from_hostile_activation(tmp_path, case_id):
    cat = next(c for c, x in ALL_ACTIVATIONS if x.id == case_id)
    run_activation(tmp_path, "derive-out", cat, corpus.activation(case_id))


def _real_process(argv, box: Sandbox, timeout=CASE_SECONDS) -> Run:
    env = dict(os.environ, **box.env)
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "ntksym", *argv], cwd=box.cwd, env=env, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return Run("timeout", stdout=(exc.stdout or b"").decode("utf-8", "replace"),
                   stderr=(exc.stderr or b"").decode("utf-8", "replace"), seconds=time.monotonic() - t0)
    out, err = (s.decode("utf-8", "backslashreplace") for s in (proc.stdout, proc.stderr))
    if proc.returncode < 0:
        return Run("signal", -proc.returncode, stdout=out, stderr=err, seconds=time.monotonic() - t0)
    return Run("return", proc.returncode, stdout=out, stderr=err, seconds=time.monotonic() - t0)


def _real_activation(tmp_path, command, case_id):
    cat, case = next((c, x) for c, x in ALL_ACTIVATIONS if x.id == case_id)
    box = Sandbox(tmp_path)
    argv, declared = activation_argv(command, case.value, box)
    if "\x00" in case.value:
        pytest.skip("an argv string cannot hold NUL")
    box.start(*declared)
    run = _real_process(argv, box)
    problems = judge_cli(run, expected_for(case, command, cat), box)
    if run.kind == "return" and run.value == 0:
        for path in generated_modules(command, box):
            problems += module_problems(path, tmp_path)
    report(problems, run, f"python -m ntksym {command} [{cat}/{case.id}]")


@pytest.mark.parametrize("case_id", corpus.CRITICAL)
def test_real_process_hermite(tmp_path, case_id):
    _real_activation(tmp_path, "hermite", case_id)


def test_real_process_codegen_payload(tmp_path):
    _real_activation(tmp_path, "codegen", "docstring-breakout")


# ---------------------------------------------------------------- the API entry points

def _api_calls(spec, params=None, x_path=None):
    """name -> zero-argument call of every public entry point with activation ``spec``."""
    import ntksym
    from ntksym import codegen
    from ntksym.parsing import parse_expression

    def x():
        return np.load(x_path)

    def eoc():
        act = ntksym.activation(spec, params)
        return ntksym.edge_of_chaos(act, ntksym.dual_kernels(act))

    def phase():
        act = ntksym.activation(spec, params)
        return ntksym.phase(act, ntksym.dual_kernels(act), 1.5, 0.1)

    return {
        "activation": lambda: ntksym.activation(spec, params),
        "parse_expression": lambda: parse_expression(spec, parameters=list(params or {})),
        "hermite": lambda: ntksym.hermite(spec, 4, params=params),
        "dual_kernels": lambda: ntksym.dual_kernels(spec, params),
        "kernel": lambda: ntksym.kernel(spec, x(), depth=1, params=params),
        "derive": lambda: ntksym.derive(spec, 1, params=params, order=4),
        "power_series": lambda: ntksym.power_series(spec, 1, order=4, params=params),
        "sphere_spectrum": lambda: ntksym.sphere_spectrum(spec, 1, 3, 3, params=params),
        "edge_of_chaos": eoc,
        "phase": phase,
        "module_source": lambda: len(codegen.module_source(ntksym.derive(spec, 1, params=params))),
        "write_module": lambda: str(codegen.write_module(ntksym.derive(spec, 1, params=params), "w.py")),
        "load_module": lambda: codegen.load_module(ntksym.derive(spec, 1, params=params)).__name__,
    }


API_STRICT = ("activation", "hermite", "derive", "dual_kernels", "kernel")


def api_expect(case, call: str, category: str) -> str:
    if call == "parse_expression":
        return REFUSED if case.expect == REFUSED and category == "code" else EITHER
    if case.expect == REFUSED:
        return REFUSED
    return case.expect if call in API_STRICT and case.id != "option-like" else EITHER


def _timed(fn, seconds):
    class Bound(BaseException):
        pass

    def on_alarm(*_):
        raise Bound(f"API call ran past its time bound of {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_api(tmp_path, calls: list[str], category: str, case, params=None) -> None:
    """One call per forked child (an abort or hang hits one call); judged call by call."""
    failures = []
    for call in calls:
        box = Sandbox(tmp_path)
        x_path = box.data()
        declared = {"write_module": ["w.py"]}.get(call, [])
        box.start(*declared)

        def body(call=call):
            value = _timed(_api_calls(case.value, params, x_path)[call], CASE_SECONDS)
            return value if isinstance(value, (int, str)) else type(value).__name__
        run = fork_run(body, box.cwd, box.capture, timeout=CASE_SECONDS + 10, env=box.env)
        problems = judge_api(run, api_expect(case, call, category), box)
        if call == "write_module" and run.kind == "return":
            problems += module_problems(os.path.join(box.cwd, "w.py"), tmp_path)
        if problems:
            failures.append(f"{call}: {'; '.join(problems)} [{run.describe()}]")
    if failures:
        pytest.fail(f"API [{category}/{case.id}] {str(case.value)[:60]!r}:\n  " + "\n  ".join(failures),
                    pytrace=False)


@pytest.mark.parametrize("case_id", ["docstring-breakout", "system", "comment-N-escape", "exp-exp-exp"])
def test_api_critical(tmp_path, case_id):
    cat = next(c for c, x in ALL_ACTIVATIONS if x.id == case_id)
    run_api(tmp_path, ["activation", "parse_expression", "derive", "write_module", "load_module"], cat,
            corpus.activation(case_id))


class _Str(str):
    """A str subclass whose methods misbehave (the API must not trust isinstance(spec, str))."""

    def strip(self, *a):
        return f'x#"""+str({corpus.SYSTEM})+"""'


API_SPECS = (
    corpus.Case("none", None, REFUSED),
    corpus.Case("int", 1, EITHER),
    corpus.Case("bytes", b"relu", REFUSED),
    corpus.Case("list", ["x"], REFUSED),
    corpus.Case("dict", {"x": 1}, REFUSED),
    corpus.Case("str-subclass", _Str("relu"), EITHER),
)


@pytest.mark.parametrize("case", API_SPECS, ids=_ids(API_SPECS))
def test_api_non_string_specs(tmp_path, case):
    run_api(tmp_path, ["activation", "derive", "load_module"], "api", case)


def _sympy_specs():
    import sympy as sp
    x, y = sp.Symbol("x"), sp.Symbol("y")
    return (corpus.Case("sympy-nan", sp.nan, REFUSED), corpus.Case("sympy-zoo", sp.zoo * x, REFUSED),
            corpus.Case("sympy-complex", sp.I * x, REFUSED), corpus.Case("sympy-exp-exp", sp.exp(sp.exp(x)), REFUSED),
            corpus.Case("sympy-two-symbols", x * y, REFUSED), corpus.Case("sympy-other-symbol", y**2, OK),
            corpus.Case("sympy-equation", sp.Eq(x, 1), REFUSED),
            corpus.Case("sympy-function", sp.Function("f")(x), REFUSED),
            corpus.Case("sympy-symbol-named-payload", sp.Symbol(f'x#"""+str({corpus.SYSTEM})+"""'), EITHER),
            corpus.Case("sympy-big-power", x**(10**9), REFUSED))


@pytest.mark.parametrize("index", range(10))
def test_api_sympy_specs(tmp_path, index):
    case = _sympy_specs()[index]
    run_api(tmp_path, ["activation", "derive", "load_module"], "sympy", case)


API_PARAMS = (
    corpus.Case("param-payload", {"a": corpus.SYSTEM}, REFUSED),
    corpus.Case("param-nan", {"a": float("nan")}, REFUSED),
    corpus.Case("param-inf", {"a": float("inf")}, REFUSED),
    corpus.Case("param-huge", {"a": 1e300}, EITHER),
    corpus.Case("param-complex", {"a": 1j}, REFUSED),
    corpus.Case("param-object", {"a": object()}, REFUSED),
    corpus.Case("param-list", {"a": [1]}, REFUSED),
    corpus.Case("param-non-str-name", {"a": 1, 1: 2}, EITHER),
    corpus.Case("param-name-payload", {"a": 1, f'b#"""+str({corpus.SYSTEM})+"""': 1}, EITHER),
    corpus.Case("param-not-mapping", [("a", 1)], EITHER),
)


@pytest.mark.parametrize("case", API_PARAMS, ids=_ids(API_PARAMS))
def test_api_params(tmp_path, case):
    spec = corpus.Case(case.id, "a*x", case.expect)
    run_api(tmp_path, ["activation", "derive", "write_module"], "params", spec, params=case.value)


API_NUMBERS = (  # derive("relu", **kwargs)
    corpus.Case("depth-0", {"depth": 0}, REFUSED),
    corpus.Case("depth-float", {"depth": 1.5}, REFUSED),
    corpus.Case("depth-str", {"depth": "1"}, REFUSED),
    corpus.Case("depth-none", {"depth": None}, REFUSED),
    corpus.Case("depth-1e6", {"depth": 10**6}, REFUSED),
    corpus.Case("sigma-w-nan", {"depth": 1, "sigma_w": float("nan")}, REFUSED),
    corpus.Case("sigma-w-1e200", {"depth": 1, "sigma_w": 1e200}, REFUSED),
    corpus.Case("sigma-w-complex", {"depth": 1, "sigma_w": 1j}, REFUSED),
    corpus.Case("sigma-w-str", {"depth": 1, "sigma_w": "1"}, EITHER),
    corpus.Case("sigma-b-neg", {"depth": 1, "sigma_b": -1.0}, REFUSED),
    corpus.Case("order-0", {"depth": 1, "order": 0}, REFUSED),
    corpus.Case("order-huge", {"depth": 1, "order": 10**9}, REFUSED),
    corpus.Case("parameterization", {"depth": 1, "parameterization": "evil"}, REFUSED),
)


@pytest.mark.parametrize("case", API_NUMBERS, ids=_ids(API_NUMBERS))
def test_api_numbers(tmp_path, case):
    run_api_numbers(tmp_path, case)


@pytest.mark.fuzz
def test_fuzz_api_depth_1e4(tmp_path):
    run_api_numbers(tmp_path, corpus.Case("depth-1e4", {"depth": 10**4}, OK))


def run_api_numbers(tmp_path, case):
    import ntksym
    box = Sandbox(tmp_path)
    box.start()
    run = fork_run(lambda: type(_timed(lambda: ntksym.derive("relu", **case.value), CASE_SECONDS)).__name__,
                   box.cwd, box.capture, timeout=CASE_SECONDS + 10, env=box.env)
    report(judge_api(run, case.expect, box), run, f"derive(relu, {case.value})")


API_ARRAYS = (  # kernel("relu", X)
    corpus.Case("complex", lambda: np.ones((3, 2)) + 1j, REFUSED),
    corpus.Case("strings", lambda: np.array([["1", "2"]]), REFUSED),
    corpus.Case("object", lambda: np.array([[1.0, None]], dtype=object), REFUSED),
    corpus.Case("nan", lambda: np.full((2, 2), np.nan), REFUSED),
    corpus.Case("three-d", lambda: np.zeros((2, 2, 2)), REFUSED),
    corpus.Case("ragged", lambda: [[1.0], [1.0, 2.0]], REFUSED),
    corpus.Case("empty", lambda: np.zeros((0, 2)), EITHER),
    corpus.Case("huge", lambda: np.full((2, 2), 1e300), EITHER),
    corpus.Case("list", lambda: [[1.0, 2.0], [3.0, 4.0]], EITHER),
)


@pytest.mark.parametrize("case", API_ARRAYS, ids=_ids(API_ARRAYS))
def test_api_arrays(tmp_path, case):
    import ntksym
    box = Sandbox(tmp_path)
    box.start()
    run = fork_run(lambda: type(_timed(lambda: ntksym.kernel("relu", case.value(), depth=1), CASE_SECONDS)).__name__,
                   box.cwd, box.capture, timeout=CASE_SECONDS + 10, env=box.env)
    report(judge_api(run, case.expect, box), run, f"kernel(relu, {case.id})")


# ---------------------------------------------------------------- --param

@pytest.mark.parametrize("case", corpus.PARAMS, ids=_ids(corpus.PARAMS))
def test_params_hermite(tmp_path, case):
    act, params = case.value
    box = Sandbox(tmp_path)
    box.start()
    argv = ["hermite", act, "--order", "2"] + [a for p in params for a in ("--param", p)]
    run = fork_run(_cli(argv), box.cwd, box.capture, env=box.env)
    report(judge_cli(run, case.expect, box), run, f"hermite {act!r} --param {params!r}"[:200])


PARAMS_CODEGEN_DEFAULT = ("name-newline", "name-triple-quote", "name-comment", "name-import", "value-fraction")


@pytest.mark.parametrize("case_id", PARAMS_CODEGEN_DEFAULT)
def test_params_codegen(tmp_path, case_id):
    _params_codegen(tmp_path, next(c for c in corpus.PARAMS if c.id == case_id))


def _params_codegen(tmp_path, case):
    act, params = case.value
    box = Sandbox(tmp_path)
    box.start("g.py")
    argv = ["codegen", act, "--depth", "1", "-o", "g.py"] + [a for p in params for a in ("--param", p)]
    run = fork_run(_cli(argv), box.cwd, box.capture, env=box.env)
    problems = judge_cli(run, case.expect, box)
    if run.kind == "return" and run.value == 0:
        problems += module_problems(os.path.join(box.cwd, "g.py"), tmp_path)
    report(problems, run, f"codegen {act!r} --param {params!r}"[:200])


# ---------------------------------------------------------------- output paths

WRITERS = {  # name -> (suffix, argv builder(target, x_path), is a directory writer)
    "codegen": (".py", lambda t, x: ["codegen", "relu", "--depth", "1", "-o", t], False),
    "kernel": (".npz", lambda t, x: ["kernel", "relu", "--depth", "1", "--inputs", x, "--out", t], False),
    "empirical": (".npz", lambda t, x: ["empirical", "relu", "--depth", "1", "--width", "4", "--samples", "2",
                                        "--inputs", x, "--out", t], False),
    "derive": ("", lambda t, x: ["derive", "relu", "--depth", "1", "--out", t, *SMALL_REPORT], True),
    "dispersion-plot": (".png", lambda t, x: ["dispersion", "--width", "4", "--depth", "2", "--plot", t], False),
    "rmt-plot": (".png", lambda t, x: ["rmt", "relu", "--gammas", "0.5,0.5", "--grid", "10", "--compare", "20",
                                       "--plot", t], False),
}


def _setup_target(box: Sandbox, target, suffix: str):
    """Create what ``target.setup`` says; returns (path argument, declared output) or a skip reason."""
    name = target.name + suffix
    if set(target.name) == {"n"} and len(target.name) > 200:  # total length, suffix included
        name = target.name[:len(target.name) - len(suffix)] + suffix
    cwd, path = box.cwd, os.path.join(box.cwd, name)
    kind = target.setup
    if kind == "none":
        return name, name
    if kind == "file":
        with open(path, "wb") as fh:
            fh.write(b"precious")
    elif kind == "dir":
        os.mkdir(path)
        with open(os.path.join(path, "keep.txt"), "w") as fh:
            fh.write("precious")
    elif kind == "symlink-file":
        victim = os.path.join(box.elsewhere, "victim" + suffix)
        with open(victim, "wb") as fh:
            fh.write(b"precious")
        os.symlink(victim, path)
    elif kind == "symlink-dangling":
        os.symlink(os.path.join(box.elsewhere, "ghost" + suffix), path)
    elif kind == "symlink-dir":
        real = os.path.join(box.elsewhere, "realdir")
        os.mkdir(real)
        with open(os.path.join(real, "keep.txt"), "w") as fh:
            fh.write("precious")
        os.symlink(real, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "chardev":
        if not ROOT:
            return None, "a device node needs root"
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private twin of /dev/null
    elif kind == "parent-file":
        with open(os.path.join(cwd, "parent"), "w") as fh:
            fh.write("precious")
        return os.path.join("parent", name), None
    elif kind == "parent-missing":
        return os.path.join("nodir", name), None
    elif kind == "parent-symlink":
        real = os.path.join(box.elsewhere, "real")
        os.mkdir(real)
        os.symlink(real, os.path.join(cwd, "linkdir"))
        return os.path.join("linkdir", name), os.path.join("linkdir", name)
    elif kind == "readonly-parent":
        if ROOT:
            return None, "root writes through read-only permissions"
        os.mkdir(os.path.join(cwd, "ro"), 0o555)
        return os.path.join("ro", name), None
    elif kind == "proc":
        return "/proc/x" + suffix, None
    else:
        raise AssertionError(kind)
    return name, name


def run_output(tmp_path, writer: str, case) -> None:
    suffix, build, is_dir = WRITERS[writer]
    target = case.value
    box = Sandbox(tmp_path)
    x = box.data()
    arg, declared = _setup_target(box, target, suffix)
    if arg is None:
        pytest.skip(declared)
    expect = case.expect
    if case.id == "existing-dir-force":
        expect = OK if is_dir else REFUSED
    if case.id == "symlink-dir-force" or (is_dir and case.id == "existing-file-force"):
        expect = EITHER
    argv = build(arg, x) + (["--force"] if target.force else [])
    box.start(*([declared] if declared else []))
    run = fork_run(_cli(argv), box.cwd, box.capture, env=box.env)
    problems = judge_cli(run, expect, box)
    if run.kind == "return" and run.value == 0 and declared:
        out = os.path.join(box.cwd, declared)
        if os.path.islink(out) and target.setup.startswith("symlink"):
            problems.append("wrote through the symlink instead of replacing it")
        elif not (os.path.isdir(out) if is_dir else os.path.isfile(out)):
            problems.append(f"exit 0 but no output at the declared path {declared!r}")
        module = os.path.join(out, "kernels.py") if is_dir else out
        if writer in ("codegen", "derive") and os.path.exists(module):
            problems += module_problems(module, tmp_path)
    if target.setup == "readonly-parent":
        os.chmod(os.path.join(box.cwd, "ro"), 0o755)
    report(problems, run, f"{writer} -> {target} [{case.id}]")


OUTPUT_DEFAULT_WRITERS = ("codegen", "kernel")
SETUP_OUTPUTS = [c for c in corpus.OUTPUTS if c.value.setup != "none" or c.id == "plain"]


@pytest.mark.parametrize("case", corpus.OUTPUTS, ids=_ids(corpus.OUTPUTS))
def test_outputs_codegen(tmp_path, case):
    run_output(tmp_path, "codegen", case)


@pytest.mark.parametrize("case", SETUP_OUTPUTS, ids=_ids(SETUP_OUTPUTS))
def test_outputs_kernel(tmp_path, case):
    run_output(tmp_path, "kernel", case)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", [c for c in corpus.OUTPUTS if c not in SETUP_OUTPUTS],
                         ids=_ids([c for c in corpus.OUTPUTS if c not in SETUP_OUTPUTS]))
def test_fuzz_outputs_kernel_names(tmp_path, case):
    run_output(tmp_path, "kernel", case)


# ---------------------------------------------------------------- input .npy files

def _setup_input(box: Sandbox, case) -> str:
    v = case.value
    if v in ("/dev/null", "/dev/zero"):
        return v
    path = os.path.join(box.root, "in.npy")
    if v == "missing":
        return path
    if v == "directory":
        os.mkdir(path)
    elif v == "fifo":
        os.mkfifo(path)
    else:
        v(path)
    return path


def run_input(tmp_path, command: str, case, second=False) -> None:
    box = Sandbox(tmp_path)
    path = _setup_input(box, case)
    good = box.data()
    x1, x2 = (good, path) if second else (path, None)
    if command == "kernel":
        argv = ["kernel", "relu", "--depth", "1", "--inputs", x1, "--out", "k.npz"] + (["--inputs2", x2] if x2 else [])
        declared = "k.npz"
    else:
        argv = ["empirical", "relu", "--depth", "1", "--width", "4", "--samples", "2", "--inputs", x1, "--out", "e.npz"]
        declared = "e.npz"
    box.start(declared)
    run = fork_run(_cli(argv), box.cwd, box.capture, timeout=30, env=box.env)
    expect = case.expect
    if second and case.id == "good-int":
        expect = EITHER
    report(judge_cli(run, expect, box), run, f"{command} {'--inputs2' if second else '--inputs'} [{case.id}]")


@pytest.mark.parametrize("case", corpus.INPUTS, ids=_ids(corpus.INPUTS))
def test_inputs_kernel(tmp_path, case):
    run_input(tmp_path, "kernel", case)


# ---------------------------------------------------------------- numbers

def number_argv(flag: str, value: str, box: Sandbox) -> list[list[str]]:
    """Every cheap call that takes ``flag`` (value spliced in as ``--flag=value``)."""
    x = box.data()
    opt = f"{flag}={value}"
    calls = {
        "--depth": [["kernel", "relu", opt, "--inputs", x, "--out", "k.npz"], ["derive", "relu", opt, "--order", "2"],
                    ["series", "relu", opt, "--order", "4"], ["spectrum", "relu", opt, "--dim", "3", "--kmax", "2"],
                    ["codegen", "relu", opt, "-o", "g.py"],
                    ["empirical", "relu", opt, "--width", "2", "--samples", "2", "--inputs", x, "--out", "e.npz"],
                    ["dispersion", "--width", "4", "--depth", value]],
        "--sigma-w": [["kernel", "relu", "--depth", "1", opt, "--inputs", x, "--out", "k.npz"],
                      ["derive", "relu", "--depth", "1", opt, "--order", "2"],
                      ["series", "relu", "--depth", "1", opt, "--order", "4"],
                      ["spectrum", "relu", "--depth", "1", opt, "--dim", "3", "--kmax", "2"],
                      ["eoc", "relu", opt], ["codegen", "relu", "--depth", "1", opt, "-o", "g.py"],
                      ["empirical", "relu", "--depth", "1", opt, "--width", "2", "--samples", "2", "--inputs", x,
                       "--out", "e.npz"]],
        "--order": [["hermite", "relu", opt], ["derive", "relu", "--depth", "1", opt],
                    ["series", "relu", "--depth", "1", opt], ["spectrum", "relu", "--depth", "1", "--dim", "3",
                                                              "--kmax", "2", opt]],
        "--digits": [["hermite", "relu", "--order", "2", opt], ["series", "relu", "--depth", "1", "--order", "2", opt],
                     ["spectrum", "relu", "--depth", "1", "--dim", "3", "--kmax", "2", opt]],
        "--width": [["empirical", "relu", "--depth", "1", opt, "--samples", "2", "--inputs", x, "--out", "e.npz"],
                    ["kernel", "relu", "--depth", "1", "--parameterization", "standard", opt, "--inputs", x,
                     "--out", "k.npz"], ["dispersion", "--depth", "2", "--width", value]],
        "--samples": [["empirical", "relu", "--depth", "1", "--width", "2", opt, "--inputs", x, "--out", "e.npz"],
                      ["dispersion", "--width", "4", "--depth", "2", opt]],
        "--dim": [["spectrum", "relu", "--depth", "1", opt, "--kmax", "2"]],
        "--kmax": [["spectrum", "relu", "--depth", "1", "--dim", "3", opt]],
        "--grid": [["rmt", "relu", "--gammas", "0.5", opt]],
        "--gammas": [["rmt", "relu", opt, "--grid", "10"]],
    }
    if flag == "--sigma-b":
        return [[a.replace("--sigma-w=", "--sigma-b=") for a in argv] for argv in calls["--sigma-w"]]
    return calls[flag]


NUMBERS_DEFAULT = ("depth-0", "depth-1e6", "depth-abc", "depth-5000-digits", "sigma-w-1e200", "sigma-w-nan",
                   "sigma-w-inf", "sigma-w-neg", "sigma-b-1e200", "order-huge", "digits-huge", "width-huge",
                   "samples-huge", "gammas-many")


def run_numbers(tmp_path, case, only_first: bool) -> None:
    flag, value = case.value
    failures = []
    count = len(number_argv(flag, value, Sandbox(tmp_path)))
    for i in range(1 if only_first else count):
        box = Sandbox(tmp_path)
        argv = number_argv(flag, value, box)[i]
        declared = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--out", "-o")]
        box.start(*declared)
        run = fork_run(_cli(argv), box.cwd, box.capture, env=box.env)
        expect = case.expect
        if case.id == "depth-1e4" and argv[0] in ("dispersion", "empirical"):
            expect = EITHER  # finite networks: a bound below 1e4 is fine
        if case.id == "width-huge" and argv[0] == "kernel":
            expect = EITHER  # the infinite-width kernel only scales with it
        if case.id in ("order-huge", "order-2-64") and argv[0] == "spectrum":
            expect = EITHER  # may be clamped to what the spectrum needs
        problems = judge_cli(run, expect, box)
        if problems:
            failures.append(f"{' '.join(a[:30] for a in argv[:3])}: {'; '.join(problems)} [{run.describe()}; "
                            f"{run.seconds:.1f} s]")
    if failures:
        pytest.fail(f"{case.id}:\n  " + "\n  ".join(failures), pytrace=False)


@pytest.mark.parametrize("case_id", NUMBERS_DEFAULT)
def test_numbers(tmp_path, case_id):
    run_numbers(tmp_path, next(c for c in corpus.NUMBERS if c.id == case_id), only_first=True)


# ---------------------------------------------------------------- records

def _setup_record(box: Sandbox, case) -> str:
    v = case.value
    if v == "/dev/null":
        return v
    path = os.path.join(box.root, "derivation.json")
    if v == "missing":
        return path
    if v == "directory":
        os.mkdir(path)
    elif v == "fifo":
        os.mkfifo(path)
    else:
        with open(path, "wb") as fh:
            fh.write(v)
    return path


def run_record(tmp_path, case) -> None:
    box = Sandbox(tmp_path)
    path = _setup_record(box, case)
    box.start()

    def body():
        from ntksym.report import load_record, rederive
        rec = _timed(lambda: load_record(path), CASE_SECONDS)
        d = _timed(lambda: rederive(rec), CASE_SECONDS)
        return type(d).__name__
    run = fork_run(body, box.cwd, box.capture, timeout=CASE_SECONDS + 10, env=box.env)
    report(judge_api(run, case.expect, box), run, f"load_record/rederive [{case.id}]")


@pytest.mark.parametrize("case", corpus.RECORDS, ids=_ids(corpus.RECORDS))
def test_records(tmp_path, case):
    run_record(tmp_path, case)


# ---------------------------------------------------------------- titles (derive --out DIR --title T)

def run_title(tmp_path, case, pdf: bool = False) -> None:
    box = Sandbox(tmp_path)
    box.start("R")
    argv = ["derive", "relu", "--depth", "1", "--out", "R", "--title", case.value,
            *(SMALL_REPORT if not pdf else SMALL_REPORT[1:])]
    run = fork_run(_cli(argv), box.cwd, box.capture, timeout=2 * CASE_SECONDS, env=box.env)
    problems = judge_cli(run, case.expect, box)
    if run.kind == "return" and run.value == 0:
        problems += module_problems(os.path.join(box.cwd, "R", "kernels.py"), tmp_path)
        rec = os.path.join(box.cwd, "R", "derivation.json")
        rr = fork_run(lambda: type(__import__("ntksym.report", fromlist=["rederive"]).rederive(
            __import__("ntksym.report", fromlist=["load_record"]).load_record(rec))).__name__,
            box.cwd, box.capture + "2", env=box.env)
        problems += [f"its derivation.json: {p}" for p in judge_api(rr, OK)]
    report(problems, run, f"derive --out --title {case.value[:60]!r}")


def test_title_combined(tmp_path):
    """One title with TeX, Python and Jinja breakouts and a newline; the record round-trips."""
    run_title(tmp_path, corpus.TITLE_COMBINED)


# ---------------------------------------------------------------- hypothesis

def _judge_text(tmp_path, text: str) -> None:
    box = Sandbox(tmp_path)
    box.start()
    run = fork_run(_cli(["hermite", "--order", "4", "--", text]), box.cwd, box.capture, env=box.env)
    expect = EITHER
    inner = text.strip()
    if "#" in text or ";" in text or any(c in inner for c in "\n\r\x00"):
        expect = REFUSED  # not a single expression, at the token level
    report(judge_cli(run, expect, box), run, f"hermite {text[:100]!r}")


HOSTILE_FRAGMENTS = ["#", '"""', "'''", "\n", "\r", "\x00", ";", "\\", "\\N", "\\x", "__import__('os')",
                     corpus.SYSTEM, "{{7*7}}", "{%", "%}", "\\input{/etc/passwd}", "$", "\u2028", "\ufeff",
                     "lambda:", ".__class__", "[0]", "9**9**9", ",", "=", ":=", "`"]


def _leaves():
    return st.sampled_from(["x", "1", "2", "0.5", "3", "pi", "E", "e", "9", "60", "200", "1e308", "1e-308",
                            "10**9", "-1", "0", "a", "y"])


def _expressions():
    from ntksym.parsing import ALLOWED_FUNCTIONS
    funcs = sorted(ALLOWED_FUNCTIONS) + ["foo", "eval", "exec", "open"]
    ops = st.sampled_from(["+", "-", "*", "/", "**", "^", "%", "//", "@", "<<", "&"])

    def extend(inner):
        return st.one_of(
            st.builds(lambda a, o, b: f"{a}{o}{b}", inner, ops, inner),
            st.builds(lambda f, a: f"{f}({a})", st.sampled_from(funcs), inner),
            st.builds(lambda a: f"({a})", inner),
            st.builds(lambda a: f"-{a}", inner),
            st.builds(lambda n, a: f"He({n}, {a})", st.integers(-2, 70), inner),
            st.builds(lambda a, b: f"Max({a}, {b})", inner, inner))
    core = st.recursive(_leaves(), extend, max_leaves=12)
    return st.one_of(core, st.builds(lambda e, frag, pos: e[:pos % (len(e) + 1)] + frag + e[pos % (len(e) + 1):],
                                     core, st.sampled_from(HOSTILE_FRAGMENTS), st.integers(0, 200)))


_TEXT = st.one_of(st.text(max_size=40),
                  st.text(st.sampled_from(list("x()+-*/^.,;#'\"\\\n\r\t\x00\x0b\x0c {}%$_eE0123456789aIjJ")),
                          max_size=30),
                  st.text(st.characters(codec="utf-8"), max_size=20))

_FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
_LONG = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


@_FAST
@given(text=_TEXT)
def test_hypothesis_text(tmp_path_factory, text):
    _judge_text(tmp_path_factory.mktemp("h"), text)


@_FAST
@given(text=_expressions())
def test_hypothesis_grammar(tmp_path_factory, text):
    _judge_text(tmp_path_factory.mktemp("g"), text)


# ================================================================ the long run: pytest -m fuzz

FUZZ_COMMANDS = ("derive", "series", "spectrum", "eoc", "eoc-phase", "kernel", "codegen", "empirical", "rmt")


HEAVY_ACTIVATIONS = [(c, x) for c, x in ALL_ACTIVATIONS if x.id in corpus.HEAVY]


@pytest.mark.fuzz
@pytest.mark.parametrize("category,case", HEAVY_ACTIVATIONS, ids=[f"{c}/{x.id}" for c, x in HEAVY_ACTIVATIONS])
def test_fuzz_heavy_hermite(tmp_path, category, case):
    run_activation(tmp_path, "hermite", category, case)


@pytest.mark.fuzz
@pytest.mark.parametrize("command", FUZZ_COMMANDS)
@pytest.mark.parametrize("category,case", ALL_ACTIVATIONS, ids=[f"{c}/{x.id}" for c, x in ALL_ACTIVATIONS])
def test_fuzz_activation_grid(tmp_path, command, category, case):
    run_activation(tmp_path, command, category, case)


FUZZ_DERIVE_OUT = [(c, x) for c, x in ALL_ACTIVATIONS if c in ("code", "control-chars", "templates", "unicode")]


@pytest.mark.fuzz
@pytest.mark.parametrize("category,case", FUZZ_DERIVE_OUT, ids=[f"{c}/{x.id}" for c, x in FUZZ_DERIVE_OUT])
def test_fuzz_derive_out(tmp_path, category, case):
    run_activation(tmp_path, "derive-out", category, case)


@pytest.mark.fuzz
@pytest.mark.parametrize("case_id", [x.id for _, x in ALL_ACTIVATIONS])
def test_fuzz_real_process_hermite(tmp_path, case_id):
    _real_activation(tmp_path, "hermite", case_id)


@pytest.mark.fuzz
@pytest.mark.parametrize("category,case", ALL_ACTIVATIONS, ids=[f"{c}/{x.id}" for c, x in ALL_ACTIVATIONS])
def test_fuzz_api(tmp_path, category, case):
    calls = list(_api_calls("x"))
    if case.expect != REFUSED and category not in ("code", "control-chars", "benign"):
        calls = ["activation", "parse_expression", "hermite", "derive", "kernel", "write_module", "load_module"]
    run_api(tmp_path, calls, category, case)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", corpus.PARAMS, ids=_ids(corpus.PARAMS))
def test_fuzz_params_codegen(tmp_path, case):
    _params_codegen(tmp_path, case)


@pytest.mark.fuzz
@pytest.mark.parametrize("writer", [w for w in WRITERS if w not in OUTPUT_DEFAULT_WRITERS])
@pytest.mark.parametrize("case", corpus.OUTPUTS, ids=_ids(corpus.OUTPUTS))
def test_fuzz_outputs(tmp_path, writer, case):
    run_output(tmp_path, writer, case)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", corpus.INPUTS, ids=_ids(corpus.INPUTS))
def test_fuzz_inputs_empirical(tmp_path, case):
    run_input(tmp_path, "empirical", case)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", corpus.INPUTS, ids=_ids(corpus.INPUTS))
def test_fuzz_inputs_kernel_second(tmp_path, case):
    run_input(tmp_path, "kernel", case, second=True)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", corpus.NUMBERS, ids=_ids(corpus.NUMBERS))
def test_fuzz_numbers(tmp_path, case):
    run_numbers(tmp_path, case, only_first=False)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", corpus.TITLES, ids=_ids(corpus.TITLES))
def test_fuzz_titles(tmp_path, case):
    run_title(tmp_path, case)


@pytest.mark.fuzz
def test_fuzz_title_pdf(tmp_path):
    """pdflatex on a title that tries \\write18 (skipped without pdflatex)."""
    import shutil
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex")
    run_title(tmp_path, corpus.TITLES[1], pdf=True)


@pytest.mark.fuzz
@_LONG
@given(text=_TEXT)
def test_fuzz_hypothesis_text(tmp_path_factory, text):
    _judge_text(tmp_path_factory.mktemp("h"), text)


@pytest.mark.fuzz
@_LONG
@given(text=_expressions())
def test_fuzz_hypothesis_grammar(tmp_path_factory, text):
    _judge_text(tmp_path_factory.mktemp("g"), text)


@pytest.mark.fuzz
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=60))
def test_fuzz_hypothesis_output_names(tmp_path_factory, name):
    """Any file name for ``codegen -o``: exit 0 or 2, the module imports, nothing else written."""
    from fuzz_corpus import Case, Target
    if name in (".", ".."):
        return
    run_output(tmp_path_factory.mktemp("o"), "codegen", Case("hyp", Target("none", name), EITHER))


@pytest.mark.fuzz
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(max_size=12), value=st.one_of(st.text(max_size=12), st.floats().map(repr)))
def test_fuzz_hypothesis_params(tmp_path_factory, name, value):
    box = Sandbox(tmp_path_factory.mktemp("p"))
    box.start()
    run = fork_run(_cli(["hermite", "a*x", "--order", "2", "--param", "a=1", "--param", f"{name}={value}"]),
                   box.cwd, box.capture, env=box.env)
    report(judge_cli(run, EITHER, box), run, f"--param {name!r}={value!r}")


@pytest.mark.fuzz
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_fuzz_signal_leaves_nothing(tmp_path, sig):
    """A writer killed by a signal mid-run leaves neither its output nor staging litter."""
    box = Sandbox(tmp_path)
    box.start()
    env = dict(os.environ, **box.env)
    proc = subprocess.Popen([sys.executable, "-m", "ntksym", "derive", "tanh", "--depth", "1", "--out", "R",
                             *SMALL_REPORT], cwd=box.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [n for n in os.listdir(box.cwd) if n != "R"] and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(getattr(signal, sig))
    try:
        _, err = proc.communicate(timeout=CASE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"{sig}: the process did not end")
    err = err.decode("utf-8", "replace")
    problems = box.problems(refused=True)
    if "Traceback" in err or len(err.strip().splitlines()) > 1:
        problems.append(f"stderr: {err.strip()[:200]!r}")
    assert not problems, f"{sig}: {problems}"


@pytest.mark.fuzz
def test_fuzz_concurrent_claims(tmp_path):
    """Two derive --out SAME started together: exactly one succeeds; the other is refused."""
    box = Sandbox(tmp_path)
    box.start("R")
    env = dict(os.environ, **box.env)
    argv = [sys.executable, "-m", "ntksym", "derive", "relu", "--depth", "1", "--out", "R", *SMALL_REPORT]
    procs = [subprocess.Popen(argv, cwd=box.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    codes = sorted(p.wait(timeout=2 * CASE_SECONDS) for p in procs)
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    problems = box.problems(refused=False)
    assert codes == [0, 2] and not problems, f"exit statuses {codes}; {problems}"
