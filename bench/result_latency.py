"""result_latency.py — emit -> visible to an h5py SWMR reader, on the real cluster.

The heat2d sample simulation runs as a Slurm job of the test user vigil-alice
and emits its 4 scalars at every step (50 steps/s); an independent reader
process (h5py, SWMR, run as vigil-alice) polls the job's dump and measures, for
every row of total_heat, now - the row's wall_time (when emit was called).
Rounds are repeated; the verdict uses all samples.

Usage: result_latency.py CLUSTER_DIR RESULTS_DIR ROUNDS SECONDS
"""
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vigil_cluster import BUILD, Cluster  # noqa: E402

cdir, results = Path(sys.argv[1]), Path(sys.argv[2])
rounds, seconds = int(sys.argv[3]), float(sys.argv[4])
cluster = Cluster(cdir, nodes=1).attach()
heat2d = BUILD / "sdk" / "vigil_example_heat2d"
reader = REPO / "bench" / "swmr_latency_reader.py"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


every = []
for r in range(rounds):
    steps = int((seconds + 5) * 50)
    jid = cluster.sbatch(f"#!/bin/bash\n#SBATCH -N1\nsrun {heat2d} --n 16 --steps {steps} --emit-every 1 "
                         f"--snapshot-every 0 --sleep-ms 20\n", user="vigil-alice")
    path = results / "vigil-alice" / f"{jid}.h5"
    out = cluster.run(["/usr/bin/python3", str(reader), str(path), "/stages/main/total_heat", str(seconds)],
                      user="vigil-alice", check=False, timeout=seconds + 90)
    data = json.loads(out.stdout or '{"error": "no output", "latency_ms": []}')
    if data["error"] or not data["latency_ms"]:
        sys.exit(f"round {r}: reader failed: {data['error']} {out.stderr}")
    lat = data["latency_ms"]
    every += lat
    print(json.dumps({"round": r, "job": jid, "samples": len(lat), "median_ms": statistics.median(lat),
                      "p99_ms": pct(lat, 99), "max_ms": max(lat)}), flush=True)
    cluster.run(["scancel", str(jid)], check=False)
    cluster.wait_job(jid, timeout=60)

med, p99 = statistics.median(every), pct(every, 99)
print(json.dumps({"bench": "result-latency", "value": round(p99, 1),
                  "unit": f"ms p99 from emit to visible in an h5py SWMR reader (median {med:.1f} ms, max "
                          f"{max(every):.1f} ms, {len(every)} values over {rounds} jobs)",
                  "goal": "p99 <= 1000 ms, median <= 200 ms"}))
