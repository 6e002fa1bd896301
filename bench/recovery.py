"""recovery.py — node kill -> detected -> requeued -> the simulation running again.

Each round: heat2d runs as a 2-node job of vigil-alice (1 s heartbeats,
checkpoints every 200 steps of ~6 ms); once two checkpoints are verified, the
job's second node is killed (its slurmd and slurmstepd, scripts/cluster
kill-node). From vigild's timeline: detection = node_lost, requeue = the
"requeued" recovery event, running again = the first value the restarted attempt
emits (its wall_time, read from the job's HDF5 dump), all minus the kill time. Work lost = the step reached at
the requeue stopped the failed attempt minus the step resumed from, in steps and
seconds (≤ one checkpoint interval is the goal). The node is revived
between rounds.

Usage: recovery.py CLUSTER_DIR ROUNDS   (VIGIL_BENCH_STEPS: steps per simulation, default 4000)
"""
import json
import os
import statistics
import sys
import time
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vigil_cluster import BUILD, Cluster, vigil, wait_for  # noqa: E402

cluster = Cluster(Path(sys.argv[1]), nodes=3).attach()
RESULTS = Path(sys.argv[1]).parent / "results"  # scripts/bench: vigild's results_dir beside the cluster
rounds = int(sys.argv[2])
heat2d = BUILD / "sdk" / "vigil_example_heat2d"
STEP_S = 0.006
EVERY = 200
STEPS = int(os.environ.get("VIGIL_BENCH_STEPS", "4000"))


def events(jid):
    r = vigil(cluster, "events", "--job", str(jid), user="vigil-alice", check=False)
    return r if isinstance(r, list) else []


rows = []
for rnd in range(rounds):
    jid = cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 2 --ntasks-per-node=1 --open-mode=append
#SBATCH --vigil-heartbeat=1 --vigil-retries=3
srun {heat2d} --n 32 --steps {STEPS} --emit-every 10 --snapshot-every 0 --checkpoint-every {EVERY} \\
     --checkpoint-dir {cluster.dir}/jobs/ckpt-$SLURM_JOB_ID --sleep-ms {int(STEP_S * 1000)}
""", user="vigil-alice")
    wait_for(lambda: len([e for e in events(jid) if e["type"] == "checkpoint_verified"]) >= 2, timeout=90,
             what="two verified checkpoints")
    nodes = cluster.run(["squeue", "-h", "-j", str(jid), "-o", "%N"]).stdout.strip()  # e.g. n[1-2] or n[1,3]
    victim = "n" + nodes.rstrip("]").replace("-", ",").split(",")[-1].split("[")[-1]  # the last: not the batch host
    time.sleep(0.3 + (rnd % 4) * 0.4)  # a different phase against the checkpoint cadence each round
    killed = time.time()
    cluster.kill_node(victim)
    assert cluster.wait_job(jid, timeout=240) == "COMPLETED", cluster.job_output(jid)[-400:]
    evs = events(jid)
    t = lambda kind, pred=lambda e: True: min(e["ts_ns"] / 1e9 for e in evs if e["type"] == kind and pred(e))  # noqa
    detect = t("node_lost", lambda e: e["node"] == victim) - killed
    requeue = t("recovery", lambda e: e["attrs"]["action"] == "requeued") - killed
    resume = next(e["attrs"] for e in evs if e["type"] == "recovery" and e["attrs"]["action"] == "resume")
    # The values themselves from the job's finished dump: the database lets
    # them go once the dump holds them (ADR 0018), so its timeline no longer
    # has their steps. Running again = the restarted attempt's first value;
    # work lost = the steps the failed attempt computed (its rank 0 ran on
    # until the requeue stopped it) that the restart must compute again.
    wait_for(lambda: [e for e in events(jid) if e["type"] == "results_final"], timeout=60, what="the dump finalised")
    with h5py.File(RESULTS / "vigil-alice" / f"{jid}.h5", "r") as f:
        heat = f["/stages/main/total_heat"][()]
    running = min(float(r["wall_time"]) for r in heat if r["restart"] >= 1) - killed
    reached = int(max(r["step"] for r in heat if r["restart"] == 0))
    lost_steps = max(0, reached - resume["step"])
    row = {"round": rnd, "job": jid, "node": victim, "detect_s": round(detect, 2), "requeue_s": round(requeue, 2),
           "running_s": round(running, 2), "lost_steps": lost_steps, "lost_s": round(lost_steps * STEP_S, 2),
           "checkpoint_interval_steps": EVERY}
    rows.append(row)
    print(json.dumps(row), flush=True)
    cluster.start_node(victim)
    wait_for(lambda: cluster.sinfo_states().get(victim) == "idle", timeout=60, what=f"{victim} idle")

med = {k: statistics.median(r[k] for r in rows) for k in ("detect_s", "requeue_s", "running_s")}
worst = {k: max(r[k] for r in rows) for k in ("detect_s", "requeue_s", "running_s", "lost_steps")}
print(json.dumps({"bench": "recovery", "value": worst["running_s"],
                  "unit": f"s worst from node kill to the simulation running again (median {med['running_s']:.1f}); "
                          f"detection worst {worst['detect_s']:.1f} s (median {med['detect_s']:.1f}), requeue worst "
                          f"{worst['requeue_s']:.1f} s (median {med['requeue_s']:.1f}); work lost worst "
                          f"{worst['lost_steps']} steps (checkpoint interval {EVERY}); {len(rows)} rounds",
                  "goal": "detect <= 10 s, requeue <= 30 s, running again <= 60 s; work lost <= one checkpoint interval"}))
