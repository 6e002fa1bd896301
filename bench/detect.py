"""detect.py — node-loss detection time on the real local cluster.

For each heartbeat interval (5 s, the default, and 1 s): a 3-node job runs; once
heartbeats flow from every node, after a random phase, one node's slurmd and
slurmstepd are SIGKILLed (scripts/cluster kill-node). Detection time = the
node_lost event's time at vigild minus the kill time. The job is cancelled, the
node restarted, and the next round uses the next node.

scripts/bench runs vigild with `recovery: false` for this bench: what is measured
ends at node_lost, and automatic recovery would requeue the job (and mark the node
DOWN) between rounds. The clean-up below works either way: it cancels the job
again until it is gone, so a requeued attempt cannot keep the bench waiting.

Usage: detect.py CLUSTER_DIR ROUNDS_5S ROUNDS_1S
"""
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from vigil_cluster import TERMINAL, Cluster, heartbeats_from, vigil, wait_for  # noqa: E402

cdir = Path(sys.argv[1])
rounds = {5: int(sys.argv[2]), 1: int(sys.argv[3])}
cluster = Cluster(cdir, nodes=3).attach()


def events(jid):
    """The job's events; `vigil events --json` prints a lone event as one object, not a list."""
    r = vigil(cluster, "events", "--job", str(jid))
    return [r] if isinstance(r, dict) else r


def gone(jid):
    """True once the job has ended; a requeued (PENDING) attempt is cancelled again."""
    state = cluster.job_state(jid)
    if state is None or state in TERMINAL:
        return True
    if state != "COMPLETING":
        cluster.run(["scancel", str(jid)], check=False)
    return False


rng = random.Random(7)
results = {}
node_cycle = ["n1", "n2", "n3"]
k = 0
for interval, n in rounds.items():
    times = []
    for _ in range(n):
        victim = node_cycle[k % 3]
        k += 1
        jid = cluster.sbatch(f"#!/bin/bash\n#SBATCH -N3\n#SBATCH --vigil-heartbeat={interval}\nsrun sleep 600\n")
        wait_for(lambda: heartbeats_from(cluster, jid) >= {"n1", "n2", "n3"}, timeout=60, what="heartbeats")
        time.sleep(rng.uniform(0, interval))
        killed = time.time()
        cluster.kill_node(victim)
        lost = wait_for(lambda: next((e for e in events(jid)
                                      if e["type"] == "node_lost" and e["node"] == victim), None),
                        timeout=6 * interval + 10, interval=0.05, what="node_lost")
        times.append(lost["ts_ns"] / 1e9 - killed)
        print(json.dumps({"interval_s": interval, "node": victim, "detect_s": round(times[-1], 3)}), flush=True)
        cluster.run(["scancel", str(jid)], check=False)
        cluster.start_node(victim)
        cluster.run(["scontrol", "update", f"nodename={victim}", "state=resume"], check=False)
        # Job first: its ending (COMPLETING until the node is back) is what frees the node.
        wait_for(lambda: gone(jid), timeout=60, what="job gone")
        wait_for(lambda: cluster.sinfo_states().get(victim) == "idle", timeout=60, what=f"{victim} idle again")
    results[interval] = times
    print(json.dumps({"interval_s": interval, "rounds": n, "median_s": round(statistics.median(times), 3),
                      "max_s": round(max(times), 3)}), flush=True)

print(json.dumps({"bench": "detect", "value": round(max(results[5]), 3),
                  "unit": f"s, worst node-loss detection at the 5 s heartbeat (1 s heartbeat: worst "
                          f"{max(results[1]):.2f} s, median {statistics.median(results[1]):.2f} s)",
                  "goal": "<= 10 s at 5 s heartbeats; <= 3 s at 1 s"}))
