"""A per-user checkpoint budget on the real cluster (ADR 0013): two jobs of one
user write more checkpoints than `checkpoint_budget_mb_per_user` allows;
vigild deletes the oldest across both jobs (as the user), never a job's newest
verified checkpoint, and every deletion is on the timeline."""
import os
import subprocess

from job_support import ALICE, HEAT2D, of_type, timeline, verified
from vigil_cluster import wait_for

NODES = 2
VIGILD_CONFIG = "reconcile_interval_s: 1\ncheckpoint_budget_mb_per_user: 1\n"
# 128 x 128 doubles: one checkpoint is about 131 KB; each job writes 8.
ARGS = "--n 128 --steps 1600 --emit-every 200 --checkpoint-every 200 --sleep-ms 2"


def test_the_users_oldest_checkpoints_go_first_and_each_jobs_newest_stays(cluster, vigild):
    jobs = []
    for k in range(2):
        d = cluster.dir / "jobs" / f"budget-{k}"
        d.mkdir()
        subprocess.run(["chown", ALICE, str(d)], check=True)
        jobs.append((cluster.sbatch(f"#!/bin/bash\n#SBATCH -N 1\nsrun {HEAT2D} --checkpoint-dir {d} {ARGS}\n",
                                    user=ALICE), d))
    for jid, _ in jobs:
        assert cluster.wait_job(jid, timeout=90) == "COMPLETED"
    for jid, _ in jobs:
        wait_for(lambda: verified(cluster, jid, 8), timeout=20, what="8 verified checkpoints")
    wait_for(lambda: sum(len(of_type(timeline(cluster, j), "checkpoint_pruned")) for j, _ in jobs) >= 8,
             timeout=20, what="pruning under the budget")
    left = [p for _, d in jobs for p in d.iterdir()]
    assert sum(p.stat().st_size for p in left) <= 1 << 20, [(p.name, p.stat().st_size) for p in left]
    for jid, d in jobs:
        newest = of_type(timeline(cluster, jid), "checkpoint_verified")[-1]["attrs"]["path"]
        assert os.path.exists(newest), f"job {jid}'s newest checkpoint was deleted"
        pruned = [e["attrs"] for e in of_type(timeline(cluster, jid), "checkpoint_pruned")]
        assert all(p["deleted"] and "storage budget" in p["reason"] for p in pruned), pruned
        assert all(not os.path.exists(p["path"]) for p in pruned)
        assert all(p.stat().st_uid == p.parent.stat().st_uid for p in d.iterdir())
