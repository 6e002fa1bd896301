"""emit.py — the SDK's cost to a simulation, and how many records/s reach HDF5.

1. ns per vigil_emit_scalar: outside a job (no-op), with vigild down (queued,
   then dropped and counted), and inside a real Vigil job with vigild healthy
   (the same binary, bench_emit, in every case).
2. Sustained records/s into one job's dump: one job emits N scalars as fast as it
   can; the rate is N over the time from its first emit until vigild's
   vigil_result_records_total (its /metrics) has grown by N.
3. The same across 50 concurrent jobs (a 50-task job array, N/50 values each).

Usage: emit.py CLUSTER_DIR VIGILD_PID READY_FILE
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vigil_cluster import BUILD, Cluster, wait_for  # noqa: E402

cluster = Cluster(Path(sys.argv[1]), nodes=2).attach()
http = "http://" + Path(sys.argv[3]).read_text().splitlines()[1]
bench = BUILD / "bench" / "bench_emit"
N = int(os.environ.get("VIGIL_BENCH_RECORDS", "200000"))


def records():
    text = urllib.request.urlopen(http + "/metrics", timeout=5).read().decode()
    return int(re.search(r"^vigil_result_records_total (\d+)", text, re.M).group(1))


def local(env_extra, calls):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "SLURM_"))}
    env.update(env_extra)
    out = subprocess.run([str(bench), str(calls), "2000"], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def sustained(jobs, per_job):
    before = records()
    script = (f"#!/bin/bash\n#SBATCH -N1 -n1\n{'#SBATCH --array=1-%d' % jobs if jobs > 1 else ''}\n"
              f"export VIGIL_SDK_QUEUE={per_job}\nsrun {bench} {per_job} 120000\n")
    jid = cluster.sbatch(script, user="vigil-alice")
    want = before + jobs * per_job
    first = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        n = records()
        now = time.time()
        if first is None and n > before:
            first = now
        if n >= want:
            break
        time.sleep(0.05)
    else:
        sys.exit(f"only {records() - before} of {jobs * per_job} records reached the dumps")
    # The rate runs from the first emit (printed by each emitter) to the last record written.
    starts = []
    for out in sorted((cluster.dir / "jobs").glob(f"slurm-{jid}*.out")):
        for line in out.read_text().splitlines():
            if line.startswith("{"):
                starts.append(json.loads(line))
    t0 = min(s["start_unix"] for s in starts) if starts else first
    calls = [s["ns_per_call_median"] for s in starts]
    cluster.wait_job(jid, timeout=120) if jobs == 1 else None
    return {"jobs": jobs, "records": jobs * per_job, "seconds": round(now - t0, 3),
            "records_per_s": round(jobs * per_job / (now - t0)), "emit_ns_median": sorted(calls)[len(calls) // 2]
            if calls else None, "dropped": sum(s["dropped"] for s in starts)}


noop = local({}, 1_000_000)
print(json.dumps({"case": "outside a job", **noop}), flush=True)
down = local({"VIGIL_ENDPOINT": "tcp://127.0.0.1:9", "VIGIL_JOB_ID": "1"}, 100_000)
print(json.dumps({"case": "vigild down (queued)", **down}), flush=True)
one = sustained(1, N)
print(json.dumps({"case": "one job, vigild healthy", **one}), flush=True)
fifty = sustained(50, N // 50)
print(json.dumps({"case": "50 concurrent jobs", **fifty}), flush=True)
print(json.dumps({"bench": "emit", "value": one["emit_ns_median"],
                  "unit": f"ns per vigil_emit_scalar in a job with vigild healthy (vigild down: "
                          f"{down['ns_per_call_median']:.0f} ns; outside a job: {noop['ns_per_call_median']:.1f} ns); "
                          f"sustained {one['records_per_s']} records/s into one dump, {fifty['records_per_s']} "
                          f"records/s across 50 concurrent jobs",
                  "goal": "report (issue 5): call cost healthy/down, records/s into one file and across 50 jobs"}))
