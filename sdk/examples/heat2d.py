#!/usr/bin/python3
"""heat2d.py — the heat2d example (heat2d.cpp) in Python, with numpy and `vigil`.

Same model, options, checkpoint format and final line as the C++ version, and
the same floating-point operations in the same order, so for the same --n and
--steps both produce the bit-identical field (the same sha256), and a checkpoint
written by one resumes in the other.

    u_t = alpha (u_xx + u_yy) on an N x N grid (boundary included, h = 1/(N-1));
    row 0 held at 1.0, the other edges at 0.0, interior starts at 0.0;
    new = u + r * (up + down + left + right - 4 u),  r = alpha dt / h^2,  dt = 0.2 h^2 / alpha.

Every elementwise numpy operation below is one correctly rounded IEEE-754
operation, as in the C++ loop (compiled without fused multiply-add). The one
reduction whose result depends on the order, the sum for total_heat, uses
np.add.accumulate, which adds strictly left to right like the C++ loop (np.sum
would use pairwise summation and differ in the last bits).

Checkpoint / --out format (little-endian): b"VGHEAT1\\0", int64 N, int64 step,
then N*N float64, row-major. Checkpoints are written every --checkpoint-every steps
and at the next step after Vigil's checkpoint signal (vigil.install_checkpoint_handler:
$VIGIL_CHECKPOINT_SIGNAL, default SIGUSR1); one that cannot be written (a full
disk, ...) is removed, reported as failed, and the run goes on. Run with --help
for the options.
"""
import argparse
import hashlib
import os
import re
import signal
import struct
import sys
import time
import types
from pathlib import Path

import numpy as np

MAGIC = b"VGHEAT1\0"
HEADER = struct.Struct("<8sqq")
ALPHA = 1.0
CKPT_NAME = re.compile(r"heat2d-([0-9]{1,18})\.ckpt")

def import_vigil():
    """The vigil module: from the source tree when run there, else installed; else a no-op stand-in."""
    in_tree = Path(__file__).resolve().parent.parent / "python"
    if (in_tree / "vigil" / "__init__.py").is_file():
        sys.path.insert(0, str(in_tree))
    try:
        import vigil
        return vigil
    except ImportError:
        print("heat2d: the vigil Python module is not installed; running without Vigil", file=sys.stderr)
        return standalone_vigil()


def standalone_vigil():
    """A stand-in for the vigil module: reports nothing, but still checkpoints on the checkpoint signal."""
    requested = []
    text = os.environ.get("VIGIL_CHECKPOINT_SIGNAL", "")
    sig = int(text) if re.fullmatch(r"[0-9]{1,2}", text) else int(signal.SIGUSR1)

    def install_checkpoint_handler():
        try:
            signal.signal(sig, lambda signum, frame: requested.append(signum))
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot handle checkpoint signal {sig}: {e}") from None

    def should_checkpoint():
        asked = bool(requested)
        requested.clear()
        return asked

    noop = lambda *args, **kwargs: None  # noqa: E731
    return types.SimpleNamespace(set_stage=noop, emit=noop, emit_array=noop, report_checkpoint=noop,
                                 report_checkpoint_failed=noop, finalize=noop, active=lambda: False,
                                 checkpoint_signal=lambda: sig,
                                 install_checkpoint_handler=install_checkpoint_handler,
                                 should_checkpoint=should_checkpoint)


def parse_args(argv):
    def count(minimum):
        def parse(text):
            try:
                v = int(text, 10)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not an integer: {text}") from None
            if v < minimum:
                raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text}")
            return v
        return parse

    p = argparse.ArgumentParser(prog="heat2d.py", allow_abbrev=False,
                                description="2-D heat equation reporting through Vigil (see heat2d.cpp).",
                                epilog="Resumes from $VIGIL_RESTART_FROM or the newest valid checkpoint in DIR.")
    p.add_argument("--n", type=count(3), default=64, help="grid points per side, boundary included (64)")
    p.add_argument("--steps", type=count(0), default=500, help="run until this step (500)")
    p.add_argument("--emit-every", type=count(0), default=10, metavar="E", help="emit scalars every E steps (10)")
    p.add_argument("--snapshot-every", type=count(0), default=100, metavar="K",
                   help="emit the field 'temperature' every K steps (100)")
    p.add_argument("--checkpoint-every", type=count(0), default=0, metavar="C",
                   help="checkpoint every C steps (0: only on the checkpoint signal, "
                        "$VIGIL_CHECKPOINT_SIGNAL or SIGUSR1)")
    p.add_argument("--checkpoint-dir", default=".", metavar="DIR", help="checkpoint directory (.)")
    p.add_argument("--attempt-dirs", type=int, choices=(0, 1), default=0,
                   help="1: write checkpoints in DIR/attempt-$VIGIL_RESTART_COUNT; start looks in DIR and "
                        "every DIR/attempt-* (0)")
    p.add_argument("--sleep-ms", type=count(0), default=0, metavar="MS", help="sleep after every step")
    p.add_argument("--nan-at", type=count(1), default=-1, metavar="STEP", help="make the field NaN at STEP")
    p.add_argument("--stage", default="", metavar="NAME", help="the Vigil stage (default: main)")
    p.add_argument("--out", default="", metavar="FILE", help="write the final field there")
    o = p.parse_args(argv)
    if o.n > 1 << 15:
        p.error(f"--n {o.n} is too large")
    if not o.checkpoint_dir:
        p.error("--checkpoint-dir must not be empty")
    return o


def initial_field(n):
    u = np.zeros((n, n), dtype=np.float64)
    u[0, :] = 1.0  # the heated top edge
    return u


def step_once(u, r):
    """One FTCS step in place; returns the largest |change| of an interior point."""
    c = u[1:-1, 1:-1]
    up, down, left, right = u[:-2, 1:-1], u[2:, 1:-1], u[1:-1, :-2], u[1:-1, 2:]
    new = c + r * (up + down + left + right - 4.0 * c)  # the C++ association, term by term
    residual = float(np.max(np.abs(new - c)))
    u[1:-1, 1:-1] = new
    return residual


def stats(u, h):
    """(total_heat, max_temp, center_temp) over the interior, as heat2d.cpp computes them."""
    n = u.shape[0]
    flat = u[1:-1, 1:-1].ravel()  # row by row, left to right: the C++ loop order
    total = float(np.add.accumulate(flat)[-1])  # strictly sequential sum (not np.sum's pairwise one)
    return total * h * h, float(np.max(flat)), float(u[n // 2, n // 2])


def write_state(path, u, step):
    """Atomically: temporary file, fsync, rename, fsync of the directory.

    Returns None, or the OSError that stopped it (the temporary file is removed).
    """
    path = Path(path)
    d = path.parent
    tmp = d / f".{path.name}.tmp.{os.getpid()}"
    data = HEADER.pack(MAGIC, u.shape[0], step) + u.astype("<f8", copy=False).tobytes()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)  # make the rename itself durable
        finally:
            os.close(dfd)
        return None
    except OSError as e:
        try:
            os.unlink(tmp)  # never leave a partial file behind
        except OSError:
            pass
        return e


def read_state(path, n):
    """(field, step) or (None, reason)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return None, e.strerror or str(e)
    if len(data) < HEADER.size:
        return None, "truncated header"
    magic, file_n, step = HEADER.unpack_from(data)
    if magic != MAGIC:
        return None, "not a heat2d checkpoint (bad magic)"
    if file_n != n:
        return None, f"grid size {file_n} is not --n {n}"
    if step < 0:
        return None, "negative step"
    want = HEADER.size + 8 * n * n
    if len(data) < want:
        return None, "truncated data"
    if len(data) > want:
        return None, "trailing bytes"
    u = np.frombuffer(data, dtype="<f8", offset=HEADER.size).astype(np.float64).reshape(n, n)
    return (u, step), None


def starting_state(o):
    """$VIGIL_RESTART_FROM, else the newest valid checkpoint in DIR not beyond --steps, else step 0."""
    start = os.environ.get("VIGIL_RESTART_FROM")
    if start:
        state, why = read_state(start, o.n)
        if state and state[1] <= o.steps:
            print(f"heat2d: resuming from {start} (step {state[1]})", file=sys.stderr)
            return state
        print(f"heat2d: VIGIL_RESTART_FROM={start} unusable ({why or 'beyond --steps'}); "
              f"looking in {o.checkpoint_dir}", file=sys.stderr)
    found = []
    dirs = [o.checkpoint_dir]
    if o.attempt_dirs:
        try:
            dirs += [e.path for e in os.scandir(o.checkpoint_dir) if e.name.startswith("attempt-")]
        except OSError:
            pass
    for d in dirs:
        try:
            for entry in os.scandir(d):
                m = CKPT_NAME.fullmatch(entry.name)
                if m:
                    found.append((int(m.group(1)), os.path.join(d, entry.name)))
        except OSError:
            pass
    for s, path in sorted(found, reverse=True):
        if s > o.steps:
            continue  # from a longer run: not the state this run asks for
        state, why = read_state(path, o.n)
        if state and state[1] != s:
            state, why = None, f"header says step {state[1]}"
        if not state:
            print(f"heat2d: skipping {path}: {why}", file=sys.stderr)
            continue
        print(f"heat2d: resuming from {path} (step {s})", file=sys.stderr)
        return state
    return initial_field(o.n), 0


def error_text(error):
    """strerror's text, as heat2d.cpp prints it."""
    return os.strerror(error.errno) if error.errno else str(error)


class WarnOnce:
    """A refused SDK call never stops the simulation: say so once per kind of call."""

    def __init__(self, what):
        self.what, self.done = what, False

    def __call__(self, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except ValueError as e:
            if not self.done:
                self.done = True
                print(f"heat2d: vigil {self.what} failed ({e}); continuing without it", file=sys.stderr)


def main(argv=None):
    o = parse_args(sys.argv[1:] if argv is None else argv)
    # Launched as several tasks, every task computes the same field and task 0
    # alone reports and checkpoints (as heat2d.cpp does).
    writer = os.environ.get("SLURM_PROCID", "0") == "0"
    if not writer:
        o.emit_every = o.snapshot_every = o.checkpoint_every = 0
    vigil = import_vigil()
    # Vigil's checkpoint signal (the job's --vigil-checkpoint-signal, or SIGUSR1,
    # also by hand) only sets a flag; the checkpoint is written at a step boundary.
    try:
        vigil.install_checkpoint_handler()
    except ValueError as e:
        print(f"heat2d: {e}; checkpoints only by --checkpoint-every", file=sys.stderr)
    if o.stage:
        try:
            vigil.set_stage(o.stage)
        except ValueError:
            print(f"heat2d: --stage {o.stage} is not a valid Vigil name; using the default", file=sys.stderr)

    n = o.n
    h = 1.0 / (n - 1)
    dt = 0.2 * h * h / ALPHA
    r = ALPHA * dt / (h * h)  # written as in heat2d.cpp: the same rounding

    u, step = starting_state(o)
    residual = 0.0
    last_checkpoint = step
    write_dir = o.checkpoint_dir
    if o.attempt_dirs:
        write_dir = os.path.join(o.checkpoint_dir, "attempt-" + (os.environ.get("VIGIL_RESTART_COUNT") or "0"))
        if writer:
            os.makedirs(write_dir, exist_ok=True)
    emit, emit_array, report = WarnOnce("emit"), WarnOnce("emit_array"), WarnOnce("report_checkpoint")
    report_failure = WarnOnce("report_checkpoint_failed")

    while step < o.steps:
        residual = step_once(u, r)
        step += 1
        if step == o.nan_at:
            u[1:-1, 1:-1] = np.nan
            residual = float("nan")
        t = step * dt

        if o.emit_every > 0 and step % o.emit_every == 0:
            total, max_temp, center = stats(u, h)
            emit(vigil.emit, "total_heat", total, step=step, sim_time=t)
            emit(vigil.emit, "max_temp", max_temp, step=step, sim_time=t, units="K")
            emit(vigil.emit, "residual", residual, step=step, sim_time=t, units="K")
            emit(vigil.emit, "center_temp", center, step=step, sim_time=t, units="K")
        if o.snapshot_every > 0 and step % o.snapshot_every == 0:
            emit_array(vigil.emit_array, "temperature", u, step=step, sim_time=t, units="K")

        asked = vigil.should_checkpoint()  # read every step, on every task: clears the request
        if writer and (asked or (o.checkpoint_every > 0 and step % o.checkpoint_every == 0)) \
                and step != last_checkpoint:
            path = os.path.abspath(os.path.join(write_dir, f"heat2d-{step}.ckpt"))
            error = write_state(path, u, step)
            if error is None:
                last_checkpoint = step
                report(vigil.report_checkpoint, path, step=step, sim_time=t)
            else:
                # A full disk must not cost the run: say so, tell Vigil, keep computing.
                print(f"heat2d: cannot write checkpoint {path}: {error_text(error)}; continuing", file=sys.stderr)
                report_failure(vigil.report_checkpoint_failed, path, step=step, error=error)
        if o.sleep_ms > 0:
            time.sleep(o.sleep_ms / 1000.0)

    if o.out:
        error = write_state(o.out, u, step)
        if error is not None:
            print(f"heat2d: cannot write {o.out}: {error_text(error)}", file=sys.stderr)
            return 1
    total = stats(u, h)[0]
    digest = hashlib.sha256(u.astype("<f8", copy=False).tobytes()).hexdigest()
    print(f"heat2d: steps={step} total_heat={total:.17g} sha256={digest}", flush=True)
    vigil.finalize(2000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
