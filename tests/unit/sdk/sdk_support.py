"""sdk_support — helpers for the SDK's Python-side unit tests (heat2d, the `vigil` module).

ctest runs every test function of test_*.py as its own test (tests/CMakeLists.txt) and
passes the build's artefacts in the environment:
  VIGIL_SDK_LIB       libvigil.so.1 of the build under test
  VIGIL_HEAT2D        the vigil_example_heat2d binary
  VIGIL_TEST_PRELOAD  sanitizer runtimes Python must preload to load an
                      instrumented libvigil (sanitizer builds only)
Run directly (`/usr/bin/python3 -m pytest tests/unit/sdk`) they default to build/.
Nothing here skips: a missing artefact is a failure.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "build"
HEAT2D_PY = REPO / "sdk" / "examples" / "heat2d.py"
MODULE_DIR = REPO / "sdk" / "python"


def heat2d_binary():
    return Path(os.environ.get("VIGIL_HEAT2D", BUILD / "sdk" / "vigil_example_heat2d"))


def sdk_library():
    return Path(os.environ.get("VIGIL_SDK_LIB", BUILD / "sdk" / "libvigil.so.1"))


def base_env(**extra):
    """The environment of a process that is not inside a Vigil job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_") or k == "VIGIL_TEST_PRELOAD"}
    env.pop("LD_PRELOAD", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def python_env(**extra):
    """base_env for a Python process that loads libvigil through the `vigil` module."""
    env = base_env(**{"VIGIL_SDK_LIB": sdk_library(), "PYTHONPATH": MODULE_DIR, **extra})
    preload = os.environ.get("VIGIL_TEST_PRELOAD")
    if preload:
        # An instrumented libvigil needs its sanitizer runtime loaded first; the
        # interpreter's own allocations at exit are not ours to report.
        env["LD_PRELOAD"] = preload
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def run(cmd, env, cwd=None, timeout=60, check=True, preexec_fn=None):
    r = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=preexec_fn)
    if check and r.returncode != 0:
        pytest.fail(f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def python_code(code, timeout=60, check=True, **extra_env):
    """Runs a Python snippet in a fresh interpreter (the module's state is per process)."""
    return run([sys.executable, "-c", code], python_env(**extra_env), timeout=timeout, check=check)


class Heat2d:
    """One implementation of heat2d: `cpp` (the binary) or `py` (heat2d.py)."""

    def __init__(self, kind):
        self.kind = kind

    def command(self, *args):
        if self.kind == "cpp":
            return [heat2d_binary(), *args]
        return [sys.executable, HEAT2D_PY, *args]

    def env(self, **extra):
        return base_env(**extra) if self.kind == "cpp" else python_env(**extra)

    def run(self, *args, cwd=None, env=None, timeout=60, preexec_fn=None):
        r = run(self.command(*args), env or self.env(), cwd=cwd, timeout=timeout, preexec_fn=preexec_fn)
        return Result(r)

    def __repr__(self):
        return self.kind


class Result:
    """The final line `heat2d: steps=... total_heat=... sha256=...`, parsed."""

    def __init__(self, completed):
        self.stdout, self.stderr = completed.stdout, completed.stderr
        lines = [l for l in completed.stdout.splitlines() if l.startswith("heat2d: ")]
        assert len(lines) == 1, f"expected one result line:\n{completed.stdout}\n{completed.stderr}"
        self.line = lines[0]
        fields = dict(part.split("=", 1) for part in self.line.split()[1:])
        self.steps, self.total_heat, self.sha = int(fields["steps"]), fields["total_heat"], fields["sha256"]
        assert len(self.sha) == 64, self.line


CPP, PY = Heat2d("cpp"), Heat2d("py")
