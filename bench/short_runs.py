"""short_runs.py — run benchmarks in short mode one after the other, as CI tests.

A benchmark passes when `scripts/bench NAME --short` exits 0 within the timeout
and its last line is one JSON object with "bench" == NAME, a number "value", a
non-empty string "unit" and a "goal". The goal itself is not judged: a short run
on a small, shared machine measures nothing worth a verdict; this only proves the
benchmark still works end to end.

Writes a JUnit XML file (one testcase per bench; a failure carries the tail of
its output) that tests/summarize.py counts, and each bench's full output beside
it as bench-NAME.log.

Usage: short_runs.py JUNIT_XML NAME...
Environment: VIGIL_BENCH_PORT_BASE (default 25000): bench i gets base + 200*i,
so a lingering socket of one bench never meets the next one's daemons (the e2e
tests use 21000 + 200 per module); VIGIL_BENCH_TIMEOUT_S (default 300) per bench.
"""
import json
import numbers
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
out_xml = Path(sys.argv[1])
names = sys.argv[2:]
base = int(os.environ.get("VIGIL_BENCH_PORT_BASE", "25000"))
timeout = float(os.environ.get("VIGIL_BENCH_TIMEOUT_S", "300"))


def verdict(name, rc, lines):
    """None if the run counts as passed, else why not."""
    if rc != 0:
        return f"exit status {rc}"
    if not lines:
        return "no output"
    try:
        last = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return f"last line is not JSON ({e}): {lines[-1][:200]!r}"
    if not isinstance(last, dict):
        return "last line is not a JSON object"
    if last.get("bench") != name:
        return f"bench is {last.get('bench')!r}, not {name!r}"
    value = last.get("value")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return f"value is not a number: {value!r}"
    if not isinstance(last.get("unit"), str) or not last["unit"]:
        return "unit missing or empty"
    if "goal" not in last:
        return "goal missing"
    return None


suite = ET.Element("testsuite", name="bench", tests=str(len(names)))
failures = 0
total = 0.0
for i, name in enumerate(names):
    log = out_xml.parent / f"bench-{name}.log"
    env = dict(os.environ, VIGIL_BENCH_PORT_BASE=str(base + 200 * i))
    t0 = time.monotonic()
    with open(log, "w") as f:
        # Own process group: on timeout the whole bench (its python, srun, ...) gets
        # SIGTERM, and scripts/bench's trap still takes its cluster down.
        p = subprocess.Popen([str(REPO / "scripts" / "bench"), name, "--short"], stdout=subprocess.PIPE,
                             stderr=f, env=env, text=True, start_new_session=True)
        try:
            stdout, _ = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                stdout, _ = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                stdout, _ = p.communicate()
            rc = f"none: killed after the {timeout:.0f} s timeout"
        f.write("--- stdout ---\n" + stdout)
    secs = time.monotonic() - t0
    total += secs
    lines = [line for line in stdout.splitlines() if line.strip()]
    why = verdict(name, rc, lines)
    case = ET.SubElement(suite, "testcase", classname="bench.short", name=name, time=f"{secs:.1f}")
    if why:
        failures += 1
        tail = "\n".join(log.read_text().splitlines()[-40:])
        ET.SubElement(case, "failure", message=why).text = tail
        print(f"FAIL {name} ({secs:.0f} s): {why}\n{tail}\n", flush=True)
    else:
        print(f"ok   {name} ({secs:.0f} s): {lines[-1]}", flush=True)
suite.set("failures", str(failures))
suite.set("time", f"{total:.1f}")
ET.ElementTree(suite).write(out_xml, encoding="unicode", xml_declaration=True)
print(f"benchmarks (short): {len(names) - failures} of {len(names)} passed in {total:.0f} s")
sys.exit(1 if failures else 0)
