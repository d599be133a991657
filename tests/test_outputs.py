"""One output discipline for every writer (ntksym/outputs.py): no clobbering without --force,
no writing through symlinks or into FIFOs/devices, atomic claims against concurrent runs,
no litter after failures and signals, one line per OS error."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import ntksym
from ntksym import outputs
from ntksym.cli import main
from ntksym.errors import InputError, NtksymError

ROOT = Path(__file__).resolve().parents[1]
HAVE_MPL = __import__("importlib").util.find_spec("matplotlib") is not None


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_line_error(err: str, needle: str = "") -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntksym: error: "), err
    assert "Traceback" not in err and needle in lines[0], err


def litter(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "ntksym" in p.name)


@pytest.fixture
def x_npy(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.random.default_rng(0).standard_normal((4, 3)))
    return path


def writers(x_npy):
    """(name, argv for a target path, kind) of every CLI writer, sized to run in about a second."""
    out = [("kernel", lambda t: ["kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", t], "K.npz", "file"),
           ("empirical", lambda t: ["empirical", "relu", "--depth", 1, "--width", 4, "--inputs", x_npy,
                                    "--samples", 2, "--no-progress", "--out", t], "E.npz", "file"),
           ("codegen", lambda t: ["codegen", "relu", "--depth", 1, "-o", t], "m.py", "file"),
           ("derive", lambda t: ["derive", "relu", "--depth", 1, "--no-pdf", "--series-order", 16, "--kmax", 2,
                                 "--mc-samples", 2, "--out", t], "D", "dir")]
    if HAVE_MPL:
        out += [("dispersion", lambda t: ["dispersion", "--width", 4, "--depth", 1, "--plot", t], "d.png", "file"),
                ("rmt", lambda t: ["rmt", "relu", "--gammas", "0.5", "--grid", 20, "--compare", 20, "--plot", t],
                 "r.png", "file")]
    return out


# ---------------------------------------------------------------------------------------------
# --force, symlinks, special files
# ---------------------------------------------------------------------------------------------

def test_every_writer_refuses_an_existing_target_and_replaces_it_with_force(capsys, tmp_path, x_npy):
    for name, argv, target_name, kind in writers(x_npy):
        target = tmp_path / target_name
        if kind == "dir":
            target.mkdir()
            (target / "mine").write_text("keep")
        else:
            target.write_text("mine")
        code, _, err = run(capsys, *argv(target))
        assert code == 2, (name, err)
        one_line_error(err, "already exists")
        assert (target / "mine").read_text() == "keep" if kind == "dir" else target.read_text() == "mine"
        code, _, err = run(capsys, *argv(target), "--force")
        assert code == 0, (name, err)
        if kind == "dir":
            assert not (target / "mine").exists() and (target / "derivation.json").is_file()
        else:
            assert target.is_file() and target.read_bytes() != b"mine" and target.stat().st_size > 100
        umask = os.umask(0)
        os.umask(umask)
        ordinary = (0o777 if kind == "dir" else 0o666) & ~umask   # not mkstemp's 0600
        assert target.stat().st_mode & 0o777 == ordinary, name
        assert litter(tmp_path) == [], name


def test_symlink_target_is_replaced_never_written_through(capsys, tmp_path, x_npy):
    victim = tmp_path / "victim.py"
    victim.write_text("victim")
    for name, argv, target_name, kind in writers(x_npy)[:3]:   # the file writers without matplotlib
        link = tmp_path / target_name
        link.symlink_to(victim)
        code, _, err = run(capsys, *argv(link))
        assert code == 2 and victim.read_text() == "victim", name
        one_line_error(err, "already exists")
        code, _, err = run(capsys, *argv(link), "--force")
        assert code == 0, (name, err)
        assert not link.is_symlink() and link.is_file() and victim.read_text() == "victim", name
    # the API too: write_module(force=True) on a link to a file, write_outputs on a link to a directory
    d = ntksym.derive("relu", depth=1)
    link = tmp_path / "api.py"
    link.symlink_to(victim)
    from ntksym.codegen import write_module
    write_module(d, link, force=True)
    assert not link.is_symlink() and victim.read_text() == "victim"
    from ntksym.report import ReportOptions, write_outputs
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    (vdir / "keep").write_text("keep")
    dlink = tmp_path / "report"
    dlink.symlink_to(vdir)
    with pytest.raises(InputError, match="already exists"):
        write_outputs(d, dlink, options=ReportOptions(figures=False, analyses=()), pdf=False)
    write_outputs(d, dlink, force=True, options=ReportOptions(figures=False, analyses=()), pdf=False)
    assert not dlink.is_symlink() and (dlink / "report.tex").is_file()
    assert sorted(p.name for p in vdir.iterdir()) == ["keep"]
    assert litter(tmp_path) == []


def test_dangling_symlink(capsys, tmp_path, x_npy):
    link = tmp_path / "K.npz"
    link.symlink_to(tmp_path / "nowhere.npz")
    argv = ["kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", link]
    code, _, err = run(capsys, *argv)
    assert code == 2 and link.is_symlink()
    one_line_error(err, "already exists")
    code, _, err = run(capsys, *argv, "--force")
    assert code == 0, err
    assert not link.is_symlink() and set(np.load(link).files) == {"nngp", "ntk"}
    assert not (tmp_path / "nowhere.npz").exists() and litter(tmp_path) == []


def test_fifo_is_refused_even_with_force_and_never_blocks(tmp_path, x_npy):
    fifo = tmp_path / "K.npz"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "ntksym", "kernel", "relu", "--depth", "1", "--inputs",
                           str(x_npy), "--out", str(fifo), "--force"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    one_line_error(proc.stderr, "not a regular file or directory")
    # the API: write_module on a FIFO must return (refusing), not block on open()
    result = []

    from ntksym.codegen import write_module
    d = ntksym.derive("relu", depth=1)
    os.mkfifo(tmp_path / "f.py")

    def attempt():
        try:
            write_module(d, tmp_path / "f.py", force=True)
        except NtksymError as exc:
            result.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and result and "not a regular file" in result[0]
    assert litter(tmp_path) == []


def test_symlink_to_a_device_is_replaced_only_with_force(capsys, tmp_path, x_npy):
    link = tmp_path / "K.npz"
    link.symlink_to("/dev/null")
    code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", link)
    assert code == 2 and os.readlink(link) == "/dev/null"
    one_line_error(err, "already exists")


# ---------------------------------------------------------------------------------------------
# OS errors: one line, exit 2, nothing left
# ---------------------------------------------------------------------------------------------

def test_os_errors_are_one_line(capsys, tmp_path, x_npy):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "adir").mkdir()
    cases = [(tmp_path / "file.txt" / "out.npz", "not a directory"),
             (tmp_path / "missing" / "out.npz", "does not exist"),
             (tmp_path / "adir", "is a directory"),
             (tmp_path / ("b" * 256 + ".npz"), "too long"),
             ("/proc/ntksym-test.npz", "/proc/ntksym-test.npz")]
    for target, needle in cases:
        for force in ([], ["--force"]):
            code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", target, *force)
            assert code == 2, (target, err)
            one_line_error(err, needle)
    code, _, err = run(capsys, "derive", "relu", "--depth", 1, "--out", tmp_path / "file.txt", "--force")
    assert code == 2
    one_line_error(err, "not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "adir", "file.txt"]
    assert list((tmp_path / "adir").iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_parent(capsys, tmp_path, x_npy):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", ro / "K.npz")
        assert code == 2
        one_line_error(err, "Permission denied")
    finally:
        ro.chmod(0o700)


def test_long_names_fit(capsys, tmp_path, x_npy):
    name = "a" * 246 + ".npz"   # 250 characters: the claim's name does not grow with it
    code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", tmp_path / name)
    assert code == 0, err
    from ntksym.report import ReportOptions, write_outputs
    out = write_outputs(ntksym.derive("relu", depth=1), tmp_path / ("d" * 250),
                        options=ReportOptions(figures=False, analyses=()), pdf=False)
    assert (out.directory / "report.tex").is_file() and litter(tmp_path) == []


def test_nothing_partial_after_a_failure(capsys, tmp_path, x_npy):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", bad, "--out", tmp_path / "K.npz")
    assert code == 2 and not (tmp_path / "K.npz").exists()
    code, _, err = run(capsys, "derive", "nosuchactivation", "--depth", 1, "--out", tmp_path / "D")
    assert code == 2 and not (tmp_path / "D").exists()

    def half(fh):
        fh.write(b"partial")
        raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError):
        outputs.write_file(tmp_path / "half.bin", half)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "bad.npy"]


def test_publish_never_clobbers_what_appeared_meanwhile(tmp_path):
    target = tmp_path / "f.bin"
    with outputs.claim(target, "file") as c:
        c.path.write_bytes(b"ours")
        target.write_bytes(b"theirs")          # another writer, during our long computation
        with pytest.raises(InputError, match="already exists"):
            c.publish()
    assert target.read_bytes() == b"theirs"
    target = tmp_path / "D"
    with outputs.claim(target, "dir") as c:
        (c.path / "ours").write_text("ours")
        target.mkdir()                          # even an empty directory is not replaced
        with pytest.raises(InputError, match="already exists"):
            c.publish()
    assert list(target.iterdir()) == [] and litter(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# claims: concurrent runs, stale claims, signals
# ---------------------------------------------------------------------------------------------

def test_a_held_claim_stops_a_second_run(capsys, tmp_path, x_npy):
    target = tmp_path / "K.npz"
    argv = ["kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", target]
    with outputs.claim(target, "file"):
        assert outputs.claim_path(target).is_dir()
        code, _, err = run(capsys, *argv)
        assert code == 2
        one_line_error(err, "another ntksym run")
        code, _, err = run(capsys, *argv, "--force")   # --force does not break a live claim
        assert code == 2 and not target.exists()
    assert litter(tmp_path) == []
    code, _, err = run(capsys, *argv)
    assert code == 0, err


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_claim_of_a_dead_process_is_removed(capsys, tmp_path, x_npy):
    target = tmp_path / "K.npz"
    stale = outputs.claim_path(target)
    stale.mkdir(mode=0o700)
    (stale / "owner").write_text(f"{dead_pid()} {time.time() - 60:.3f}\n")
    (stale / "out.npz").write_bytes(b"half-written")
    code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", target)
    assert code == 0, err
    assert set(np.load(target).files) == {"nngp", "ntk"} and litter(tmp_path) == []


def test_stale_claim_puts_back_a_directory_set_aside_by_a_killed_force_run(tmp_path):
    target = tmp_path / "D"
    stale = outputs.claim_path(target)
    stale.mkdir(mode=0o700)
    (stale / "owner").write_text(f"{dead_pid()} 0\n")
    (stale / "old").mkdir()
    (stale / "old" / "report.tex").write_text("previous")
    with outputs.claim(target, "dir", force=True):
        assert (target / "report.tex").read_text() == "previous"
    assert litter(tmp_path) == []


def test_failed_force_publish_puts_the_old_directory_back(tmp_path, monkeypatch):
    target = tmp_path / "D"
    target.mkdir()
    (target / "report.tex").write_text("previous")
    real_rename = os.rename

    def failing_rename(src, dst):
        if Path(src).name == "out":
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)
    with outputs.claim(target, "dir", force=True) as c:
        (c.path / "report.tex").write_text("new")
        monkeypatch.setattr(outputs.os, "rename", failing_rename)
        with pytest.raises(InputError, match="No space left"):
            c.publish()
        monkeypatch.undo()
    assert (target / "report.tex").read_text() == "previous" and litter(tmp_path) == []


HOLDER = textwrap.dedent("""
    import sys, time
    from ntksym.outputs import claim
    with claim(sys.argv[1], "file"):
        print("claimed", flush=True)
        time.sleep(60)
""")


def test_sigkilled_claim_is_cleaned_by_the_next_run(capsys, tmp_path, x_npy):
    target = tmp_path / "K.npz"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "claimed"
        code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", target)
        assert code == 2   # a live claim in another process
        one_line_error(err, f"(pid {proc.pid})")
        proc.kill()
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert litter(tmp_path) == [outputs.claim_path(target).name]   # SIGKILL cannot clean up
    code, _, err = run(capsys, "kernel", "relu", "--depth", 1, "--inputs", x_npy, "--out", target)
    assert code == 0, err
    assert litter(tmp_path) == []


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_signal_mid_derive_leaves_no_litter(capsys, tmp_path, sig):
    target = tmp_path / "D"
    claim = outputs.claim_path(target)
    proc = subprocess.Popen([sys.executable, "-m", "ntksym", "derive", "relu", "--depth", "2", "--out", str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (claim / "owner").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        # meanwhile a second run on the same target fails at once
        code, _, err = run(capsys, "derive", "relu", "--depth", 1, "--out", target)
        assert code == 2
        one_line_error(err, "another ntksym run")
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + getattr(signal, sig), err
    one_line_error(err, sig)
    assert litter(tmp_path) == [] and not target.exists()


# ---------------------------------------------------------------------------------------------
# load_module's cache, and main()'s last-resort handlers
# ---------------------------------------------------------------------------------------------

def test_load_module_cache_is_private_and_never_follows_a_planted_link(tmp_path, monkeypatch):
    from ntksym.codegen import load_module, module_source
    import hashlib
    cache = tmp_path / "cache"
    monkeypatch.setenv("NTKSYM_CACHE", str(cache))
    d = ntksym.derive("relu", depth=1, sigma_w=1.25)
    name = "ntksym_generated_" + hashlib.sha256(module_source(d).encode()).hexdigest()[:16]
    (cache / "codegen").mkdir(parents=True, mode=0o700)
    planted = tmp_path / "planted.py"
    planted.write_text("raise SystemExit('planted code ran')\n")
    (cache / "codegen" / f"{name}.py").symlink_to(planted)
    monkeypatch.delitem(sys.modules, name, raising=False)
    mod = load_module(d)
    assert callable(mod.kernels) and planted.read_text().startswith("raise SystemExit")
    assert not (cache / "codegen" / f"{name}.py").is_symlink()
    monkeypatch.delitem(sys.modules, name)
    (cache / "codegen").chmod(0o777)      # writable by others: made private again before use
    load_module(d)
    assert (cache / "codegen").stat().st_mode & 0o777 == 0o700
    monkeypatch.delitem(sys.modules, name)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("NTKSYM_CACHE", str(tmp_path / "cache2"))
    (tmp_path / "cache2").mkdir()
    (tmp_path / "cache2" / "codegen").symlink_to(other)   # a link is not our directory
    with pytest.raises(NtksymError, match="module cache"):
        load_module(d)
    assert list(other.iterdir()) == []


def test_main_turns_unexpected_errors_into_one_line(capsys, monkeypatch):
    import ntksym.cli as cli

    def boom(args):
        raise RuntimeError("unexpected\nsecond line")

    def oserror(args):
        raise PermissionError(13, "Permission denied", "/some/path")

    monkeypatch.delenv("NTKSYM_DEBUG", raising=False)
    monkeypatch.setitem(cli.COMMANDS, "hermite", boom)
    code, _, err = run(capsys, "hermite", "relu", "--order", 2)
    assert code == 1 and err.strip() == ("ntksym: internal error: RuntimeError: unexpected "
                                         "(set NTKSYM_DEBUG=1 for the traceback)")
    monkeypatch.setenv("NTKSYM_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["hermite", "relu", "--order", "2"])
    monkeypatch.setitem(cli.COMMANDS, "hermite", oserror)
    code, _, err = run(capsys, "hermite", "relu", "--order", 2)
    assert code == 2
    one_line_error(err, "/some/path: Permission denied")
