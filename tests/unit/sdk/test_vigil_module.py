"""The `vigil` Python module (sdk/python/vigil): a no-op outside a job, ValueError
on bad arguments, harmless without libvigil or without vigild.

Every case runs in a fresh interpreter: the module binds the library at import.
Each test function runs as its own ctest test (tests/CMakeLists.txt).
"""
import json
import os
import textwrap

from sdk_support import MODULE_DIR, python_code, sdk_library


def run_json(code, **env):
    """Runs `code` (which sets `out`) and returns `out` as printed JSON."""
    r = python_code("import json, vigil\n" + textwrap.dedent(code) + "\nprint(json.dumps(out))", **env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_outside_a_job_every_call_is_a_no_op():
    out = run_json("""
        import numpy as np
        results = [
            vigil.init(),
            vigil.set_stage("equilibration"),
            vigil.emit("energy", -1.25, step=1, sim_time=0.1, units="J"),
            vigil.emit("energy", np.float32(2.5)),
            vigil.emit_array("field", np.arange(12.0).reshape(3, 4), step=2, sim_time=0.2, units="K"),
            vigil.emit_array("ints", [[1, 2], [3, 4]]),                            # nested lists
            vigil.emit_array("strided", np.arange(64.0).reshape(8, 8)[::2, ::3]),  # not contiguous
            vigil.emit_array("fortran", np.asfortranarray(np.ones((3, 5)))),
            vigil.emit_array("four_d", np.zeros((2, 2, 2, 2))),
            vigil.report_checkpoint("/tmp/ckpt-0002", step=2, sim_time=0.2),
            vigil.report_checkpoint_failed("/tmp/ckpt-0003", step=3, error=28),
            vigil.report_checkpoint_failed("/tmp/ckpt-0004", step=4, error=OSError(28, "No space left on device")),
            vigil.report_checkpoint_failed("/tmp/ckpt-0005"),  # cause unknown
            vigil.report_output("/tmp/result.h5", name="result", step=5),
            vigil.finalize(100),
            vigil.finalize(),  # twice is fine
        ]
        out = {"library": vigil.LIBRARY, "api": vigil.api_version(), "active": vigil.active(),
               "dropped": vigil.dropped(), "results": results}
    """)
    assert out["library"] == str(sdk_library())
    assert out["api"] == 3
    assert out["active"] is False
    assert out["dropped"] == 0
    assert out["results"] == [None] * 16


def test_bad_arguments_raise_value_error():
    out = run_json("""
        import numpy as np
        cases = {
            "slash": lambda: vigil.emit("a/b", 1.0),
            "empty": lambda: vigil.emit("", 1.0),
            "dotdot": lambda: vigil.emit("..", 1.0),
            "too_long": lambda: vigil.emit("x" * 65, 1.0),
            "nul": lambda: vigil.emit("a\\0b", 1.0),
            "space_stage": lambda: vigil.set_stage("pro duction"),
            "slash_stage": lambda: vigil.set_stage("a/b"),
            "array_name": lambda: vigil.emit_array("a/b", [1.0, 2.0]),
            "five_d": lambda: vigil.emit_array("field", np.zeros((1, 1, 1, 1, 2))),
            "zero_d": lambda: vigil.emit_array("field", 3.0),
            "empty_dim": lambda: vigil.emit_array("field", np.zeros((0, 3))),
            "too_big": lambda: vigil.emit_array("field", np.zeros((257, 256))),
            "ragged": lambda: vigil.emit_array("field", [[1.0, 2.0], [3.0]]),
            "not_numbers": lambda: vigil.emit_array("field", [["a", "b"]]),
            "value": lambda: vigil.emit("x", "not a number"),
            "step": lambda: vigil.emit("x", 1.0, step=2**63),
            "path": lambda: vigil.report_checkpoint(""),
            "failed_path": lambda: vigil.report_checkpoint_failed("", step=1, error=28),
            "failed_long_path": lambda: vigil.report_checkpoint_failed("p" * 4097, step=1, error=28),
            "failed_errno": lambda: vigil.report_checkpoint_failed("/tmp/c", step=1, error=-28),
            "failed_step": lambda: vigil.report_checkpoint_failed("/tmp/c", step="x", error=28),
            "output_path": lambda: vigil.report_output(""),
        }
        out = {}
        for key, call in cases.items():
            try:
                call()
                out[key] = "no error"
            except ValueError as e:
                out[key] = str(e)
        out["ok_at_the_limits"] = [vigil.emit("x" * 64, 1.0), vigil.emit_array("f", np.zeros((256, 256)))]
    """)
    assert out.pop("ok_at_the_limits") == [None, None]
    for key, message in out.items():
        assert message != "no error", f"{key}: no ValueError"
        assert message.startswith("vigil: "), f"{key}: {message}"
    assert "invalid metric name 'a/b'" in out["slash"]
    assert "invalid stage name" in out["slash_stage"]
    assert "5 dimensions" in out["five_d"] and "1..4" in out["five_d"]
    assert "0 dimensions" in out["zero_d"]
    assert "65792 elements" in out["too_big"]
    assert "NUL" in out["nul"]
    assert "invalid checkpoint path" in out["failed_path"] and "invalid checkpoint path" in out["failed_long_path"]
    assert "not an errno" in out["failed_errno"]
    assert "invalid output path" in out["output_path"]


def test_a_valid_stage_then_an_invalid_one_keeps_working():
    out = run_json("""
        vigil.set_stage("production")
        try:
            vigil.set_stage("bad stage")
        except ValueError:
            pass
        vigil.emit("energy", 1.0)
        out = vigil.active()
    """)
    assert out is False


def test_without_the_library_every_call_is_a_no_op():
    """libvigil not loadable at all: LIBRARY is None and nothing raises, not even a bad name."""
    code = """
        import ctypes, ctypes.util
        def refuse(*args, **kwargs):
            raise OSError("no libvigil here")
        ctypes.CDLL = refuse
        ctypes.util.find_library = lambda name: None
        import json, vigil
        out = {"library": vigil.LIBRARY, "active": vigil.active(), "dropped": vigil.dropped(),
               "api": vigil.api_version(),
               "calls": [vigil.init(), vigil.set_stage("s"), vigil.emit("a/b", 1.0),
                         vigil.emit_array("x", [[1.0]]), vigil.report_checkpoint("/p", 1),
                         vigil.report_checkpoint_failed("/p", 1, error=28), vigil.finalize()]}
        # Checkpoint requests are plain Python: they work without libvigil.
        import signal
        vigil.install_checkpoint_handler()
        signal.raise_signal(signal.SIGUSR1)
        out["checkpoint"] = [vigil.checkpoint_signal(), vigil.should_checkpoint(), vigil.should_checkpoint()]
        print(json.dumps(out))
    """
    r = python_code(textwrap.dedent(code))
    out = json.loads(r.stdout)
    assert out == {"library": None, "active": False, "dropped": 0, "api": 0, "calls": [None] * 7,
                   "checkpoint": [10, True, False]}


def test_library_search_order():
    """$VIGIL_SDK_LIB first (a file or a directory); a bad one falls through to the next candidate."""
    lib = sdk_library()
    code = "import vigil; print(vigil.LIBRARY)"
    assert python_code(code, VIGIL_SDK_LIB=lib.parent).stdout.strip() == str(lib.parent / "libvigil.so.1")
    # Not loadable: the search goes on (in the tree: ../../../build/sdk next to the module).
    r = python_code(code, VIGIL_SDK_LIB="/nonexistent/libvigil.so.1").stdout.strip()
    assert r != "None" and r != "/nonexistent/libvigil.so.1"
    in_tree = (MODULE_DIR / ".." / ".." / "build" / "sdk" / "libvigil.so.1").resolve()
    if in_tree.exists():
        assert os.path.realpath(r) == os.path.realpath(in_tree)


def test_inside_a_job_with_vigild_down_calls_return_and_exit_is_bounded():
    """Active (a job's environment) but vigild unreachable: nothing blocks, values are dropped at finalize."""
    out = run_json("""
        import time
        import numpy as np
        start = time.monotonic()
        for step in range(2000):
            vigil.emit("loss", 1.0 / (step + 1), step=step)
        vigil.emit_array("field", np.ones((64, 64)), step=1)
        emit_s = time.monotonic() - start
        vigil.finalize(300)
        out = {"active": vigil.active(), "dropped": vigil.dropped(), "emit_s": emit_s,
               "total_s": time.monotonic() - start}
    """, VIGIL_ENDPOINT="tcp://127.0.0.1:9", VIGIL_JOB_ID="4242")
    assert out["active"] is True
    assert out["emit_s"] < 2.0, out
    assert out["total_s"] < 10.0, out
    assert out["dropped"] == 2001, out


# --- v3: checkpoint requests and failed checkpoints ---

SIGNAL_VALUES = [None, "12", "15", "012", "0012", "1", "64", "", "USR2", "SIGUSR2", " 12", "12 ", "+12", "-12",
                 "0x0c", "1e1", "0", "00", "9", "19", "65", "99999999999999999999999", "\u0661\u0662"]


def test_checkpoint_signal_is_read_exactly_as_libvigil_reads_it():
    """Python parses VIGIL_CHECKPOINT_SIGNAL itself (it works without libvigil): it must agree with C."""
    out = run_json(f"""
        import ctypes, os
        c = ctypes.CDLL(vigil.LIBRARY).vigil_checkpoint_signal
        out = {{}}
        for value in {SIGNAL_VALUES!r}:
            if value is None:
                os.environ.pop("VIGIL_CHECKPOINT_SIGNAL", None)
            else:
                os.environ["VIGIL_CHECKPOINT_SIGNAL"] = value
            out[repr(value)] = [vigil.checkpoint_signal(), c()]
    """)
    for value, (py, c) in out.items():
        assert py == c, f"{value}: Python {py}, libvigil {c}"
    assert out["None"] == [10, 10] and out["'12'"] == [12, 12] and out["'0012'"] == [12, 12]
    for invalid in ("''", "'USR2'", "' 12'", "'+12'", "'0'", "'9'", "'19'", "'65'", "'\u0661\u0662'"):
        assert out[invalid] == [10, 10], invalid


def test_checkpoint_handler_sees_each_request_once():
    out = run_json("""
        import signal, threading
        out = {"signal": vigil.checkpoint_signal(), "before": vigil.should_checkpoint()}
        vigil.install_checkpoint_handler()
        vigil.install_checkpoint_handler()  # again: harmless
        out["installed"] = signal.getsignal(signal.SIGUSR2) is not signal.SIG_DFL
        out["idle"] = vigil.should_checkpoint()
        signal.raise_signal(signal.SIGUSR2)  # runs the Python handler before it returns
        out["once"] = [vigil.should_checkpoint(), vigil.should_checkpoint()]
        signal.raise_signal(signal.SIGUSR2)
        signal.raise_signal(signal.SIGUSR2)
        out["twice"] = [vigil.should_checkpoint(), vigil.should_checkpoint()]
        errors = []
        def from_a_thread():
            try:
                vigil.install_checkpoint_handler()
            except ValueError as e:
                errors.append(str(e))
        t = threading.Thread(target=from_a_thread)
        t.start()
        t.join()
        out["thread"] = errors
    """, VIGIL_CHECKPOINT_SIGNAL="12")
    assert out["signal"] == 12 and out["before"] is False and out["installed"] is True
    assert out["idle"] is False
    assert out["once"] == [True, False]
    assert out["twice"] == [True, False]
    assert len(out["thread"]) == 1 and out["thread"][0].startswith("vigil: cannot handle checkpoint signal 12")


def test_checkpoint_handler_defaults_to_sigusr1_and_refuses_what_the_system_refuses():
    out = run_json("""
        import signal
        vigil.install_checkpoint_handler()
        signal.raise_signal(signal.SIGUSR1)
        out = {"signal": vigil.checkpoint_signal(), "seen": vigil.should_checkpoint()}
    """, VIGIL_CHECKPOINT_SIGNAL="not a number")
    assert out == {"signal": 10, "seen": True}
    # 32: in the plugin's range, but glibc keeps it for its threads.
    out = run_json("""
        try:
            vigil.install_checkpoint_handler()
            out = "no error"
        except ValueError as e:
            out = str(e)
    """, VIGIL_CHECKPOINT_SIGNAL="32")
    assert out.startswith("vigil: cannot handle checkpoint signal 32"), out


def test_report_checkpoint_failed_argument_types():
    out = run_json("""
        out = {}
        for key, error in {"str": "ENOSPC", "float": 28.0, "bool": True, "none": None}.items():
            try:
                vigil.report_checkpoint_failed("/tmp/c", step=1, error=error)
                out[key] = "no error"
            except TypeError as e:
                out[key] = str(e)
        # An OSError without an errno is a failure of unknown cause.
        out["no_errno"] = vigil.report_checkpoint_failed("/tmp/c", step=1, error=OSError("odd"))
        out["pathlike"] = vigil.report_checkpoint_failed(__import__("pathlib").Path("/tmp/c"), 2, 5)
    """)
    assert out.pop("no_errno") is None and out.pop("pathlike") is None
    for key, message in out.items():
        assert message.startswith("vigil: error must be an errno"), f"{key}: {message}"


def test_report_checkpoint_failed_inside_a_job_is_queued():
    """In a job (vigild unreachable): each failure report is an event like any other, dropped at finalize."""
    out = run_json("""
        import errno
        for step in (10, 20, 30):
            vigil.report_checkpoint_failed(f"/scratch/ckpt-{step}", step=step,
                                           error=OSError(errno.ENOSPC, "No space left on device"))
        vigil.finalize(300)
        out = {"active": vigil.active(), "dropped": vigil.dropped()}
    """, VIGIL_ENDPOINT="tcp://127.0.0.1:9", VIGIL_JOB_ID="4242")
    assert out == {"active": True, "dropped": 3}


def test_every_test_is_registered_with_ctest():
    """tests/CMakeLists.txt registers `def test_*` lines; nothing here may escape it."""
    registered = os.environ.get("VIGIL_REGISTERED_TESTS")
    if registered is None:
        return  # run by pytest directly, not by ctest: nothing to compare
    import sys
    mine = sorted(name for name, obj in vars(sys.modules[__name__]).items()
                  if name.startswith("test_") and callable(obj))
    assert mine == sorted(registered.split(",")), "re-run cmake: the ctest list is stale"
