"""vigil — report results and checkpoints from a Python simulation to Vigil.

A thin ctypes binding of libvigil's C API (vigil/sdk.h, API v3)::

    import vigil
    vigil.install_checkpoint_handler()   # Vigil's checkpoint signal sets a flag
    vigil.set_stage("production")
    for step in range(1, n + 1):
        advance()
        vigil.emit("energy", energy, step=step, sim_time=t, units="J")
        if step % 100 == 0:
            vigil.emit_array("density", rho, step=step, sim_time=t)   # numpy array
        if vigil.should_checkpoint():
            try:
                write_checkpoint(path)
                vigil.report_checkpoint(path, step=step, sim_time=t)
            except OSError as e:          # e.g. ENOSPC: report it and carry on
                vigil.report_checkpoint_failed(path, step=step, error=e)

Behaviour, in the order a simulation cares about:

* Outside a Vigil job every call is a cheap no-op (``active()`` is False); inside
  one, values are queued and sent by libvigil's background thread, so calls never
  block on the network. If vigild is down values wait in a bounded queue and,
  beyond it, are dropped and counted (``dropped()``).
* If libvigil cannot be loaded at all, every call is a no-op, ``active()`` is
  False and ``LIBRARY`` is None: a simulation never fails because of Vigil.
* A bad argument (a name outside [A-Za-z0-9_.-]{1,64}, an array with more than 4
  dimensions or more than 65536 elements, ...) raises ValueError: the library
  refused it (VIGIL_EINVAL) and nothing was sent. Errors inside the library are
  ignored (the value is lost, the simulation goes on).
* ``finalize()`` is registered with atexit: what is queued is flushed (at most
  2 s) when the interpreter exits.
* Checkpoint requests (``checkpoint_signal``, ``install_checkpoint_handler``,
  ``should_checkpoint``) are plain Python, with the ``signal`` module: they work
  without libvigil and outside a job, and the handler runs as Python's signal
  handlers do, in the main thread between bytecodes.

The library is looked for, first found wins: $VIGIL_SDK_LIB (a file, or a
directory holding libvigil.so.1); ../../../build/sdk next to this file (a
source checkout); ctypes.util.find_library("vigil"); "libvigil.so.1" through the
dynamic loader's usual search. A library without the v2 API is passed over;
with a v2 library, report_checkpoint_failed is a no-op.
"""

import atexit
import ctypes
import ctypes.util
import os
import re
import signal

__all__ = [
    "LIBRARY", "API_VERSION", "init", "api_version", "set_stage", "emit", "emit_array",
    "report_checkpoint", "report_checkpoint_failed", "report_output", "checkpoint_signal", "install_checkpoint_handler",
    "should_checkpoint", "finalize", "active", "dropped",
]

# The C API's constants (vigil/sdk.h).
API_VERSION = 3
_MIN_API_VERSION = 2  # what this module needs; v3 functions are used when present
MAX_NAME = 64
MAX_DIMS = 4
MAX_ARRAY_ELEMENTS = 65536
EINVAL = -1
EINTERNAL = -2
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,%d}" % MAX_NAME)

_c_double_p = ctypes.POINTER(ctypes.c_double)
_c_int64_p = ctypes.POINTER(ctypes.c_int64)

# name: (restype, argtypes)
_SIGNATURES = {
    "vigil_sdk_init": (ctypes.c_int, []),
    "vigil_sdk_api_version": (ctypes.c_int, []),
    "vigil_set_stage": (ctypes.c_int, [ctypes.c_char_p]),
    "vigil_emit_scalar": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_double, ctypes.c_int64, ctypes.c_double,
                                         ctypes.c_char_p]),
    "vigil_emit_array": (ctypes.c_int, [ctypes.c_char_p, _c_double_p, ctypes.c_int, _c_int64_p, ctypes.c_int64,
                                        ctypes.c_double, ctypes.c_char_p]),
    "vigil_report_checkpoint": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int64, ctypes.c_double]),
    "vigil_sdk_finalize": (None, [ctypes.c_int]),
    "vigil_sdk_active": (ctypes.c_int, []),
    "vigil_sdk_dropped": (ctypes.c_uint64, []),
}
# v3: bound when the library has them.
_OPTIONAL_SIGNATURES = {
    "vigil_report_checkpoint_failed": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int64, ctypes.c_int]),
    "vigil_report_output": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int64]),
}


def _candidates():
    env = os.environ.get("VIGIL_SDK_LIB")
    if env:
        yield os.path.join(env, "libvigil.so.1") if os.path.isdir(env) else env
    here = os.path.dirname(os.path.abspath(__file__))
    in_tree = os.path.normpath(os.path.join(here, "..", "..", "..", "build", "sdk", "libvigil.so.1"))
    if os.path.exists(in_tree):
        yield in_tree
    found = ctypes.util.find_library("vigil")
    if found:
        yield found
    yield "libvigil.so.1"


def _load():
    """(library, path) for the first usable candidate, or (None, None)."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            for name, (restype, argtypes) in _SIGNATURES.items():
                fn = getattr(lib, name)  # AttributeError: an older (v1) library
                fn.restype, fn.argtypes = restype, argtypes
            if lib.vigil_sdk_api_version() < _MIN_API_VERSION:
                continue
            for name, (restype, argtypes) in _OPTIONAL_SIGNATURES.items():
                fn = getattr(lib, name, None)
                if fn is not None:
                    fn.restype, fn.argtypes = restype, argtypes
        except (OSError, AttributeError):
            continue
        return lib, path
    return None, None


# LIBRARY: the loaded libvigil (a path or a soname), or None: then every call is a no-op.
_lib, LIBRARY = _load()


def _text(what, value, required=True):
    """`value` as NUL-terminated bytes for C (None stays None when not required)."""
    if value is None and not required:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
    else:
        raise TypeError(f"vigil: {what} must be a str, not {type(value).__name__}")
    if b"\0" in raw:
        raise ValueError(f"vigil: {what} {value!r} contains a NUL character")
    return raw


def _int64(what, value):
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"vigil: {what} must be an integer, not {value!r}") from None
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"vigil: {what} {v} does not fit in 64 bits")
    return v


def _float(what, value):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"vigil: {what} must be a number, not {value!r}") from None


def _name_problem(kind, name):
    if not _NAME.fullmatch(name) or name in (".", ".."):
        return (f"vigil: invalid {kind} name {name!r}: use 1..{MAX_NAME} characters from "
                "A-Z a-z 0-9 _ . - (not '.' or '..')")
    return None


def _check(rc, explain):
    """Turn the C return code into Python: EINVAL raises, the rest is ignored."""
    if rc == EINVAL:
        raise ValueError(explain() or "vigil: the library refused the arguments (VIGIL_EINVAL)")
    # EINTERNAL: the library failed inside; by contract the simulation goes on.


def init():
    """Start the SDK now (it also starts by itself on the first value)."""
    if _lib is not None:
        _lib.vigil_sdk_init()


def api_version():
    """The C API version of the loaded library; 0 when none is loaded."""
    return _lib.vigil_sdk_api_version() if _lib is not None else 0


def set_stage(name):
    """The stage later values belong to (process-wide; default "main")."""
    if _lib is None:
        return
    raw = _text("stage name", name)
    _check(_lib.vigil_set_stage(raw), lambda: _name_problem("stage", raw.decode("utf-8", "replace")))


def emit(name, value, step=0, sim_time=0.0, units=None):
    """A named scalar at a simulation step and time; `units` is a free label."""
    if _lib is None:
        return
    raw = _text("metric name", name)
    args = (_float("value", value), _int64("step", step), _float("sim_time", sim_time),
            _text("units", units, required=False))
    _check(_lib.vigil_emit_scalar(raw, *args), lambda: _name_problem("metric", raw.decode("utf-8", "replace")))


def _as_float64(array_like):
    """(flat float64 buffer, shape): numpy when present, else nested sequences."""
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        try:
            # asarray, not ascontiguousarray: that one would turn a scalar into shape (1,).
            a = np.asarray(array_like, dtype=np.float64, order="C")
            if not a.flags.c_contiguous:  # what libvigil reads must be one C-order block
                a = np.ascontiguousarray(a)
        except (TypeError, ValueError) as e:
            raise ValueError(f"vigil: emit_array needs a rectangular array of numbers: {e}") from None
        return a, tuple(int(d) for d in a.shape)
    # Without numpy: nested lists/tuples of numbers, rectangular.
    shape, level = [], array_like
    while isinstance(level, (list, tuple)):
        shape.append(len(level))
        level = level[0] if level else None
    flat = []

    def walk(x, depth):
        if depth == len(shape):
            flat.append(_float("array element", x))
            return
        if not isinstance(x, (list, tuple)) or len(x) != shape[depth]:
            raise ValueError("vigil: emit_array needs a rectangular array of numbers")
        for y in x:
            walk(y, depth + 1)

    walk(array_like, 0)
    return (ctypes.c_double * len(flat))(*flat), tuple(shape)


def _array_problem(name, shape):
    problem = _name_problem("metric", name)
    if problem:
        return problem
    if not 1 <= len(shape) <= MAX_DIMS:
        return f"vigil: array {name!r} has {len(shape)} dimensions; 1..{MAX_DIMS} are supported"
    if any(d < 1 for d in shape):
        return f"vigil: array {name!r} has shape {shape}: every dimension must be at least 1"
    count = 1
    for d in shape:
        count *= d
    if count > MAX_ARRAY_ELEMENTS:
        return f"vigil: array {name!r} has {count} elements; at most {MAX_ARRAY_ELEMENTS} per call"
    return None


def emit_array(name, array_like, step=0, sim_time=0.0, units=None):
    """A named n-dimensional array (numpy array or nested lists), sent as float64 in C order.

    1..4 dimensions, at most 65536 elements; the data is copied before returning.
    """
    if _lib is None:
        return
    raw = _text("metric name", name)
    buf, shape = _as_float64(array_like)
    label = raw.decode("utf-8", "replace")
    if len(shape) > MAX_DIMS or len(shape) == 0:  # no dims array to build: the library would refuse it anyway
        raise ValueError(_array_problem(label, shape))
    dims = (ctypes.c_int64 * len(shape))(*shape)
    data = buf.ctypes.data_as(_c_double_p) if hasattr(buf, "ctypes") else buf
    rc = _lib.vigil_emit_array(raw, data, len(shape), dims, _int64("step", step), _float("sim_time", sim_time),
                               _text("units", units, required=False))
    _check(rc, lambda: _array_problem(label, shape))


def report_checkpoint(path, step=0, sim_time=0.0):
    """A checkpoint the simulation has written and closed (report it after the rename)."""
    if _lib is None:
        return
    raw = _text("checkpoint path", path)
    rc = _lib.vigil_report_checkpoint(raw, _int64("step", step), _float("sim_time", sim_time))
    _check(rc, lambda: f"vigil: invalid checkpoint path {path!r}: 1..4096 bytes")


def _errno_of(error):
    """The errno a failed checkpoint write reports: an int, or an OSError's errno (0 if it has none)."""
    if isinstance(error, OSError):
        return error.errno if isinstance(error.errno, int) else 0
    if isinstance(error, bool) or not isinstance(error, int):
        raise TypeError(f"vigil: error must be an errno (int) or an OSError, not {type(error).__name__}")
    if not 0 <= error < 2**31:
        raise ValueError(f"vigil: error {error} is not an errno value (0 or a positive number)")
    return error


def report_checkpoint_failed(path, step=0, error=0):
    """A checkpoint the simulation tried to write and could not (remove the partial file first).

    `error` is the OSError that stopped the write, or its errno (0: unknown). Sent as a
    checkpoint event marked failed, with the errno and its text.
    """
    if _lib is None:
        return
    raw = _text("checkpoint path", path)
    number = _errno_of(error)
    fn = getattr(_lib, "vigil_report_checkpoint_failed", None)
    if fn is None:
        return  # a v2 library: it cannot say so
    rc = fn(raw, _int64("step", step), number)
    _check(rc, lambda: f"vigil: invalid checkpoint path {path!r}: 1..4096 bytes")


def report_output(path, name=None, step=0):
    """A final output the simulation has written and closed: registered once per name and content."""
    if _lib is None:
        return
    raw = _text("output path", path)
    raw_name = None if name is None else _text("output name", name, required=False)
    fn = getattr(_lib, "vigil_report_output", None)
    if fn is None:
        return  # a v2 library: it cannot say so
    rc = fn(raw, raw_name, _int64("step", step))
    _check(rc, lambda: f"vigil: invalid output path {path!r} or name {name!r}: 1..4096 bytes")


# Checkpoint requests, in Python (not through libvigil's C handler, which would
# bypass Python's own signal machinery). The handler counts requests; a reader
# remembers the count it has seen, so a signal arriving while should_checkpoint()
# runs is never lost (at worst it is answered on the next call).
_requests = 0
_requests_seen = 0


def _on_checkpoint_signal(signum, frame):
    global _requests
    _requests += 1


def checkpoint_signal():
    """The signal Vigil sends to ask for a checkpoint: $VIGIL_CHECKPOINT_SIGNAL, else SIGUSR1.

    The value must be plain decimal digits naming a catchable signal (as the plugin
    writes it); anything else means SIGUSR1, exactly as libvigil reads it.
    """
    text = os.environ.get("VIGIL_CHECKPOINT_SIGNAL", "")
    if re.fullmatch(r"[0-9]+", text):
        digits = text.lstrip("0")
        n = int(digits or "0") if len(digits) <= 3 else 0  # leading zeros are fine, as in C
        if 1 <= n < signal.NSIG and n not in (signal.SIGKILL, signal.SIGSTOP):
            return n
    return int(signal.SIGUSR1)


def install_checkpoint_handler():
    """Make checkpoint_signal() set the flag should_checkpoint() reads; replaces any handler of it.

    Call it once, from the main thread (Python only allows that); again is harmless.
    Works outside a Vigil job and without libvigil. ValueError if the system
    refuses the signal or this is not the main thread.
    """
    sig = checkpoint_signal()
    try:
        signal.signal(sig, _on_checkpoint_signal)
    except (OSError, ValueError) as e:
        raise ValueError(f"vigil: cannot handle checkpoint signal {sig}: {e}") from None


def should_checkpoint():
    """True once per checkpoint request since the last call (several signals count as one)."""
    global _requests_seen
    seen = _requests
    if seen == _requests_seen:
        return False
    _requests_seen = seen
    return True


def finalize(timeout_ms=2000):
    """Flush what is queued, waiting at most timeout_ms, then stop the sender thread."""
    if _lib is not None:
        _lib.vigil_sdk_finalize(max(0, min(int(timeout_ms), 2**31 - 1)))


def active():
    """True when running inside a Vigil job (values are being sent)."""
    return _lib is not None and _lib.vigil_sdk_active() == 1


def dropped():
    """Values dropped because the queue was full or vigild refused them."""
    return int(_lib.vigil_sdk_dropped()) if _lib is not None else 0


atexit.register(finalize)
