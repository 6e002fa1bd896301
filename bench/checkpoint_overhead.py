"""checkpoint_overhead.py — what checkpointing costs the simulation.

heat2d (256x256 grid, 30 000 steps, no sleeping: pure compute) runs as a 1-node
job of vigil-alice, alternately with checkpoints every 3 000 steps (about every 0.55 s) (512 KiB each,
written atomically with fsync, reported to vigild, which digests them with
SHA-256 on its own thread) and without. The job measures the simulation's
elapsed time (/usr/bin/time). Rounds interleave the two variants; the result is
the ratio of the medians.

Usage: checkpoint_overhead.py CLUSTER_DIR ROUNDS DIGEST_JSON (bench_digest's output)
VIGIL_BENCH_STEPS: steps per run (default 30 000; checkpoints every 3 000).
"""
import json
import os
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vigil_cluster import BUILD, Cluster  # noqa: E402

cluster = Cluster(Path(sys.argv[1]), nodes=1).attach()
rounds = int(sys.argv[2])
digest = json.loads(sys.argv[3])
heat2d = BUILD / "sdk" / "vigil_example_heat2d"
STEPS, EVERY = int(os.environ.get("VIGIL_BENCH_STEPS", "30000")), 3000


def run(every):
    jid = cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 1
mkdir -p ckpt-$SLURM_JOB_ID
srun /usr/bin/time -f 'elapsed=%e' {heat2d} --n 256 --steps {STEPS} --emit-every 50 --snapshot-every 0 \\
    --checkpoint-every {every} --checkpoint-dir ckpt-$SLURM_JOB_ID
""", user="vigil-alice")
    assert cluster.wait_job(jid, timeout=300) == "COMPLETED"
    out = cluster.job_output(jid)
    return float(re.search(r"elapsed=([\d.]+)", out).group(1))


with_ckpt, without = [], []
for r in range(rounds):
    for every, sink in ((EVERY, with_ckpt), (0, without)) if r % 2 == 0 else ((0, without), (EVERY, with_ckpt)):
        sink.append(run(every))
    print(json.dumps({"round": r, "with_s": with_ckpt[-1], "without_s": without[-1]}), flush=True)

ratio = statistics.median(with_ckpt) / statistics.median(without)
print(json.dumps({"bench": "checkpoint-overhead", "value": round((ratio - 1) * 100, 2),
                  "unit": f"% run time added by checkpoints every {EVERY} steps ({STEPS // EVERY} x 512 KiB, fsync, digested by "
                          f"vigild): median {statistics.median(with_ckpt):.2f} s vs {statistics.median(without):.2f} s, "
                          f"{rounds} interleaved rounds; SHA-256 file digest {digest['gb_per_s_median']:.2f} GB/s "
                          f"({digest['bytes'] / 2**30:g} GiB, page cache, median of {digest['rounds']})",
                  "goal": "<= 2 %; digests >= 1 GB/s"}))
