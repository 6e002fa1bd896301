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
            vigil.finalize(100),
            vigil.finalize(),  # twice is fine
        ]
        out = {"library": vigil.LIBRARY, "api": vigil.api_version(), "active": vigil.active(),
               "dropped": vigil.dropped(), "results": results}
    """)
    assert out["library"] == str(sdk_library())
    assert out["api"] == 2
    assert out["active"] is False
    assert out["dropped"] == 0
    assert out["results"] == [None] * 12


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
                         vigil.emit_array("x", [[1.0]]), vigil.report_checkpoint("/p", 1), vigil.finalize()]}
        print(json.dumps(out))
    """
    r = python_code(textwrap.dedent(code))
    out = json.loads(r.stdout)
    assert out == {"library": None, "active": False, "dropped": 0, "api": 0, "calls": [None] * 6}


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


def test_every_test_is_registered_with_ctest():
    """tests/CMakeLists.txt registers `def test_*` lines; nothing here may escape it."""
    registered = os.environ.get("VIGIL_REGISTERED_TESTS")
    if registered is None:
        return  # run by pytest directly, not by ctest: nothing to compare
    import sys
    mine = sorted(name for name, obj in vars(sys.modules[__name__]).items()
                  if name.startswith("test_") and callable(obj))
    assert mine == sorted(registered.split(",")), "re-run cmake: the ctest list is stale"
