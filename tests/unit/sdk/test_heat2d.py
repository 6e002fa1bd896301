"""heat2d (sdk/examples): deterministic, restartable bit for bit, C++ == Python.

Each test function runs as its own ctest test (tests/CMakeLists.txt); the
parametrised ones cover both implementations within that one test.
"""
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdk_support import CPP, HEAT2D_PY, PY, Result, base_env

BOTH = pytest.mark.parametrize("impl", [CPP, PY], ids=repr)


def checkpoints(d):
    return sorted(int(p.name[len("heat2d-"):-len(".ckpt")]) for p in Path(d).glob("heat2d-*.ckpt"))


def uninterrupted(impl, tmp_path, steps, *args):
    d = tmp_path / f"reference-{impl.kind}-{steps}"
    d.mkdir()
    return impl.run("--steps", steps, "--checkpoint-dir", d, *args)


@BOTH
def test_deterministic(impl, tmp_path):
    a = impl.run("--steps", 200, "--checkpoint-dir", tmp_path)
    b = impl.run("--steps", 200, "--checkpoint-dir", tmp_path)
    assert a.line == b.line
    assert a.steps == 200 and float(a.total_heat) > 0
    c = impl.run("--steps", 201, "--checkpoint-dir", tmp_path)
    assert c.sha != a.sha


@BOTH
def test_restart_resumes_from_newest_checkpoint_bit_identical(impl, tmp_path):
    ck = tmp_path / "ck"
    first = impl.run("--steps", 25, "--checkpoint-every", 10, "--checkpoint-dir", ck)
    assert first.steps == 25
    assert checkpoints(ck) == [10, 20]
    again = impl.run("--steps", 50, "--checkpoint-every", 10, "--checkpoint-dir", ck)
    assert "(step 20)" in again.stderr, again.stderr
    assert again.line == uninterrupted(impl, tmp_path, 50).line
    assert checkpoints(ck) == [10, 20, 30, 40, 50]
    assert not list(ck.glob(".*")), "temporary files left behind"


@BOTH
def test_killed_run_resumes_bit_identical(impl, tmp_path):
    ck = tmp_path / "ck"
    args = ["--steps", 60, "--checkpoint-every", 10, "--checkpoint-dir", ck]
    proc = subprocess.Popen([str(a) for a in impl.command(*args, "--sleep-ms", 20)], env=impl.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while 20 not in checkpoints(ck):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint at step 20 within 30 s"
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no chance to clean up
    finally:
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    done = max(checkpoints(ck))
    assert 20 <= done < 60
    again = impl.run(*args)
    assert f"(step {done})" in again.stderr, again.stderr
    assert again.line == uninterrupted(impl, tmp_path, 60).line


@BOTH
def test_invalid_newest_checkpoints_are_skipped(impl, tmp_path):
    ck = tmp_path / "ck"
    impl.run("--steps", 25, "--checkpoint-every", 10, "--checkpoint-dir", ck)
    newest = ck / "heat2d-20.ckpt"
    newest.write_bytes(newest.read_bytes()[:-100])  # a torn write
    (ck / "heat2d-24.ckpt").write_bytes(b"VGHEAT1")  # not even a header
    (ck / "heat2d-23.ckpt").write_bytes(b"NOTHEAT\0" + bytes(16))
    (ck / "heat2d-22.ckpt").write_bytes((ck / "heat2d-10.ckpt").read_bytes())  # header says step 10
    (ck / "heat2d-99.ckpt").write_bytes(b"")  # beyond --steps: ignored, not even read
    again = impl.run("--steps", 50, "--checkpoint-dir", ck)
    for name, why in (("heat2d-24", "truncated header"), ("heat2d-23", "bad magic"),
                      ("heat2d-22", "header says step 10"), ("heat2d-20", "truncated data")):
        assert f"{name}.ckpt: " in again.stderr and why in again.stderr, again.stderr
    assert "heat2d-99" not in again.stderr
    assert "(step 10)" in again.stderr, again.stderr
    assert again.line == uninterrupted(impl, tmp_path, 50).line


@BOTH
def test_checkpoint_of_another_grid_size_is_skipped(impl, tmp_path):
    impl.run("--n", 16, "--steps", 10, "--checkpoint-every", 10, "--checkpoint-dir", tmp_path)
    again = impl.run("--n", 17, "--steps", 10, "--checkpoint-dir", tmp_path)
    assert "grid size 16 is not --n 17" in again.stderr, again.stderr
    assert again.line == uninterrupted(impl, tmp_path, 10, "--n", 17).line


@BOTH
def test_restart_from_environment_wins_and_falls_back(impl, tmp_path):
    ck = tmp_path / "ck"
    impl.run("--steps", 25, "--checkpoint-every", 10, "--checkpoint-dir", ck)
    reference = uninterrupted(impl, tmp_path, 40).line
    chosen = impl.run("--steps", 40, "--checkpoint-dir", ck, env=impl.env(VIGIL_RESTART_FROM=ck / "heat2d-10.ckpt"))
    assert f"resuming from {ck / 'heat2d-10.ckpt'} (step 10)" in chosen.stderr, chosen.stderr
    assert chosen.line == reference
    missing = impl.run("--steps", 40, "--checkpoint-dir", ck, env=impl.env(VIGIL_RESTART_FROM=tmp_path / "gone"))
    assert "unusable" in missing.stderr and "(step 20)" in missing.stderr, missing.stderr
    assert missing.line == reference


@BOTH
def test_sigusr1_checkpoints_at_the_next_step(impl, tmp_path):
    ck = tmp_path / "ck"
    args = ["--steps", 120, "--checkpoint-every", 50, "--checkpoint-dir", ck]
    proc = subprocess.Popen([str(a) for a in impl.command(*args, "--sleep-ms", 10)], env=impl.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while 50 not in checkpoints(ck):  # the handler is certainly installed by now
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    extra = [s for s in checkpoints(ck) if s % 50]
    assert len(extra) == 1 and 50 < extra[0] < 100, (checkpoints(ck), err)
    reference = uninterrupted(impl, tmp_path, 120)
    assert Result(subprocess.CompletedProcess(args, 0, out, err)).line == reference.line
    # And the signalled checkpoint is a good restart point.
    for s in checkpoints(ck):
        if s != extra[0]:
            os.unlink(ck / f"heat2d-{s}.ckpt")
    again = impl.run(*args)
    assert f"(step {extra[0]})" in again.stderr and again.line == reference.line


@pytest.mark.parametrize("n,steps", [(64, 300), (17, 1000), (3, 5), (256, 40)])
def test_cpp_and_python_produce_the_identical_field(tmp_path, n, steps):
    """Not just close: the same bytes (the same IEEE-754 operations in the same order)."""
    args = ["--n", n, "--steps", steps, "--checkpoint-dir", tmp_path, "--emit-every", 7, "--snapshot-every", 11]
    cpp = CPP.run(*args, "--out", tmp_path / "cpp.field")
    py = PY.run(*args, "--out", tmp_path / "py.field")
    assert cpp.line == py.line
    assert (tmp_path / "cpp.field").read_bytes() == (tmp_path / "py.field").read_bytes()
    assert len((tmp_path / "cpp.field").read_bytes()) == 24 + 8 * n * n


def test_checkpoints_are_interchangeable(tmp_path):
    reference = uninterrupted(CPP, tmp_path, 50).line
    for writer, reader in ((CPP, PY), (PY, CPP)):
        ck = tmp_path / f"{writer.kind}-to-{reader.kind}"
        writer.run("--steps", 25, "--checkpoint-every", 10, "--checkpoint-dir", ck)
        again = reader.run("--steps", 50, "--checkpoint-dir", ck)
        assert "(step 20)" in again.stderr, again.stderr
        assert again.line == reference


def test_nan_at_poisons_the_field_but_still_finishes(tmp_path):
    for impl in (CPP, PY):
        r = impl.run("--steps", 30, "--nan-at", 10, "--emit-every", 1, "--checkpoint-dir", tmp_path)
        assert r.steps == 30 and r.total_heat.lstrip("-") == "nan", r.line
        # Up to the step before, the field is untouched.
        early = impl.run("--steps", 9, "--nan-at", 10, "--checkpoint-dir", tmp_path)
        assert early.line == impl.run("--steps", 9, "--checkpoint-dir", tmp_path).line


def test_with_vigild_unreachable_the_simulation_is_unaffected(tmp_path):
    """Inside a 'job' whose vigild is down: values queue, are dropped at exit, results unchanged."""
    job = {"VIGIL_ENDPOINT": "tcp://127.0.0.1:9", "VIGIL_JOB_ID": "4242"}  # port 9 (discard): nobody listens
    args = ["--steps", 100, "--emit-every", 1, "--snapshot-every", 10, "--checkpoint-every", 25,
            "--checkpoint-dir", tmp_path / "ck"]
    for impl in (CPP, PY):
        start = time.monotonic()
        r = impl.run(*args, env=impl.env(**job), timeout=60)
        elapsed = time.monotonic() - start
        assert elapsed < 15, f"{impl}: {elapsed:.1f} s with vigild down"
        for s in checkpoints(tmp_path / "ck"):
            os.unlink(tmp_path / "ck" / f"heat2d-{s}.ckpt")
        assert r.line == uninterrupted(impl, tmp_path, 100).line


# --- Checkpoint requests by Vigil's configured signal, and failed checkpoint writes (SDK API v3) ---

def caught_signals(pid):
    """The signals process `pid` has a handler for (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {s for s in range(1, 65) if mask >> (s - 1) & 1}
    return set()


def checkpoint_on_signal(command, env, sig, ck):
    """Runs heat2d, sends `sig` once its handler is installed, waits for the end: (out, err)."""
    proc = subprocess.Popen([str(a) for a in command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while sig not in caught_signals(proc.pid):  # before that, the signal would kill it
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.005)
        assert signal.SIGUSR1 not in caught_signals(proc.pid), "SIGUSR1 should be left alone"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out, err


@BOTH
def test_configured_checkpoint_signal_is_honoured(impl, tmp_path):
    """VIGIL_CHECKPOINT_SIGNAL=12 (the plugin's --vigil-checkpoint-signal=USR2): SIGUSR2 checkpoints."""
    ck = tmp_path / "ck"
    args = ["--steps", 300, "--checkpoint-every", 0, "--checkpoint-dir", ck]
    out, err = checkpoint_on_signal(impl.command(*args, "--sleep-ms", 10), impl.env(VIGIL_CHECKPOINT_SIGNAL=12),
                                    signal.SIGUSR2, ck)
    assert len(checkpoints(ck)) == 1 and 0 < checkpoints(ck)[0] < 300, (checkpoints(ck), err)
    reference = uninterrupted(impl, tmp_path, 300)
    assert Result(subprocess.CompletedProcess(args, 0, out, err)).line == reference.line
    again = impl.run(*args)
    assert f"(step {checkpoints(ck)[0]})" in again.stderr and again.line == reference.line


def test_heat2d_py_without_the_vigil_module_still_honours_the_checkpoint_signal(tmp_path):
    """heat2d.py's stand-in for a missing `vigil` module handles the configured signal too."""
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "vigil.py").write_text("raise ImportError('hidden by the test')\n")
    script = tmp_path / "heat2d.py"  # outside the source tree: no sdk/python next to it
    shutil.copy(HEAT2D_PY, script)
    ck = tmp_path / "ck"
    env = base_env(PYTHONPATH=tmp_path / "hidden", VIGIL_CHECKPOINT_SIGNAL=12)
    out, err = checkpoint_on_signal([sys.executable, script, "--steps", 300, "--sleep-ms", 10, "--checkpoint-dir", ck],
                                    env, signal.SIGUSR2, ck)
    assert "vigil Python module is not installed" in err, err
    assert len(checkpoints(ck)) == 1, (checkpoints(ck), err)
    assert Result(subprocess.CompletedProcess([], 0, out, err)).line == uninterrupted(PY, tmp_path, 300).line


@contextlib.contextmanager
def small_filesystem(d):
    """A directory where checkpoint writes run out of space: (dir, preexec_fn, error text).

    Tests run as root, so permissions stop nothing: a 64 KiB tmpfs (one 32 KiB
    heat2d checkpoint fits, the next fails part-way with ENOSPC). Where mounting is
    not allowed, RLIMIT_FSIZE instead: every checkpoint fails part-way with EFBIG.
    """
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(d)],
                             capture_output=True).returncode == 0
    if not mounted:
        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead
        yield d, limit_file_size, os.strerror(27)  # EFBIG
        return
    try:
        yield d, None, os.strerror(28)  # ENOSPC
    finally:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


def failure_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("heat2d: cannot write checkpoint ")]


def test_failed_checkpoint_writes_are_reported_and_the_run_goes_on(tmp_path):
    """Out of space mid-write: the partial file is removed, one line per failure, same final field."""
    reference = uninterrupted(CPP, tmp_path, 60).line
    args = ["--steps", 60, "--checkpoint-every", 10]
    lines = {}
    with small_filesystem(tmp_path / "small") as (d, preexec_fn, error):
        for impl in (CPP, PY):
            for f in d.iterdir():
                f.unlink()
            r = impl.run(*args, "--checkpoint-dir", d, preexec_fn=preexec_fn)
            assert r.line == reference, (impl, r.stderr)
            lines[impl.kind] = failure_lines(r.stderr)
            failed = {int(l.split("/heat2d-")[1].split(".ckpt")[0]) for l in lines[impl.kind]}
            assert failed, (impl, r.stderr)
            assert failed | set(checkpoints(d)) == {10, 20, 30, 40, 50, 60}, (impl, r.stderr)
            assert not failed & set(checkpoints(d))
            for line in lines[impl.kind]:
                assert line.endswith(f": {error}; continuing"), line
            assert [p.name for p in d.iterdir() if p.name.startswith(".")] == [], "partial file left behind"
            # What was written is good: it resumes to the same end.
            if checkpoints(d):
                again = impl.run(*args, "--checkpoint-dir", d, preexec_fn=preexec_fn)
                assert f"(step {max(checkpoints(d))})" in again.stderr and again.line == reference
    assert lines["cpp"] == lines["py"]


@BOTH
def test_failed_checkpoints_inside_a_job_with_vigild_down(impl, tmp_path):
    """The checkpoint directory cannot exist (under a regular file): every write fails with
    ENOTDIR and is reported; the run ends normally, with the same field, in bounded time."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    d = blocker / "ck"
    job = {"VIGIL_ENDPOINT": "tcp://127.0.0.1:9", "VIGIL_JOB_ID": "4242"}
    start = time.monotonic()
    r = impl.run("--steps", 30, "--checkpoint-every", 10, "--checkpoint-dir", d, env=impl.env(**job))
    assert time.monotonic() - start < 15
    assert failure_lines(r.stderr) == [f"heat2d: cannot write checkpoint {d}/heat2d-{s}.ckpt: {os.strerror(20)}; "
                                       "continuing" for s in (10, 20, 30)], r.stderr
    assert "vigil report_checkpoint_failed failed" not in r.stderr
    assert r.line == uninterrupted(impl, tmp_path, 30).line


@BOTH
def test_attempt_dirs_keep_each_attempts_checkpoints_apart(impl, tmp_path):
    """--attempt-dirs 1 (ADR 0022): attempt N writes in DIR/attempt-N only, and
    the next attempt resumes from the newest checkpoint of any attempt."""
    ck = tmp_path / "ck"
    args = ["--checkpoint-every", 10, "--checkpoint-dir", ck, "--attempt-dirs", 1]
    first = impl.run("--steps", 25, *args, env=impl.env(VIGIL_RESTART_COUNT="0"))
    assert first.steps == 25
    assert checkpoints(ck / "attempt-0") == [10, 20] and checkpoints(ck) == []
    before = {p.name: p.read_bytes() for p in (ck / "attempt-0").iterdir()}
    again = impl.run("--steps", 50, *args, env=impl.env(VIGIL_RESTART_COUNT="1"))
    assert "attempt-0/heat2d-20.ckpt (step 20)" in again.stderr, again.stderr
    assert checkpoints(ck / "attempt-1") == [30, 40, 50]
    assert {p.name: p.read_bytes() for p in (ck / "attempt-0").iterdir()} == before, "attempt 0's files untouched"
    assert again.line == uninterrupted(impl, tmp_path, 50).line
    # Without the variable (outside Slurm): attempt-0.
    impl.run("--steps", 60, *args)
    assert checkpoints(ck / "attempt-0") == [10, 20, 60]


def test_bad_options_are_usage_errors(tmp_path):
    for impl in (CPP, PY):
        for bad in (["--n", "2"], ["--steps", "-1"], ["--steps", "x"], ["--bogus", "1"], ["--steps"],
                    ["--attempt-dirs", "2"]):
            r = subprocess.run([str(a) for a in impl.command(*bad)], env=impl.env(), cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 2, (impl, bad, r.stdout, r.stderr)
            assert "usage" in r.stderr.lower()


def test_every_test_is_registered_with_ctest():
    """tests/CMakeLists.txt registers `def test_*` lines; nothing here may escape it."""
    registered = os.environ.get("VIGIL_REGISTERED_TESTS")
    if registered is None:
        return  # run by pytest directly, not by ctest: nothing to compare
    import sys
    mine = sorted(name for name, obj in vars(sys.modules[__name__]).items()
                  if name.startswith("test_") and callable(obj))
    assert mine == sorted(registered.split(",")), "re-run cmake: the ctest list is stale"
