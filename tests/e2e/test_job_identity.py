"""A job identity that survives Slurm reusing job ids (ADR 0017).

The cluster comes up and runs job 1 (heat2d: results, checkpoints, a
registered output); then it goes down with its Slurm state wiped and comes up
again against the same vigild database, and a new job 1 runs. The new job 1
shares no timeline, dump, checkpoint or output with the old one (it is even
requeued mid-run, and must resume from its own checkpoint, not from the old
job's newer ones), and the old one is still reachable as `1.0`."""
import hashlib
import subprocess
import time

from job_support import ALICE, HEAT2D, final_state, of_type, reference_sha
from vigil_cluster import VIGIL, vigil, wait_for

NODES = 2
VIGILD_CONFIG = "reconcile_interval_s: 1\nretry_backoff_s: 1\n"
ARGS = "--n 32 --steps 2400 --emit-every 60 --checkpoint-every 300 --sleep-ms 5"


def submit(cluster, run):
    """heat2d with checkpoints in a directory of this run's own, and its final
    field registered as the output `field` (same name in both runs)."""
    out = cluster.dir / "jobs" / "out"
    return cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 1 --open-mode=append --vigil-heartbeat=1
srun {HEAT2D} --checkpoint-dir {cluster.dir}/jobs/ckpt-{run} --out {out}/field-{run}.bin {ARGS}
srun -n1 {VIGIL} report-output {out}/field-{run}.bin --name field --step 2400
""", user=ALICE)


def show(cluster, ref):
    r = vigil(cluster, "show", ref, user=ALICE, check=False)
    return r if isinstance(r, dict) else None


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def results_final(cluster, ref):
    return wait_for(lambda: next((e["attrs"] for e in (show(cluster, ref) or {}).get("timeline", [])
                                  if e["type"] == "results_final"), None), timeout=30, what=f"results_final of {ref}")


def test_a_new_job_under_a_reused_id_shares_nothing_with_the_old_one(cluster, vigild):
    for run in ("a", "b"):
        for d in (cluster.dir / "jobs" / f"ckpt-{run}", cluster.dir / "jobs" / "out"):
            d.mkdir(exist_ok=True)
            subprocess.run(["chown", ALICE, str(d)], check=True)
    expected = reference_sha(ARGS)

    # The first job 1, to the end: results dumped, checkpoints verified, output registered.
    old = submit(cluster, "a")
    assert old == 1, "a fresh cluster starts at job 1"
    assert cluster.wait_job(old, timeout=120) == "COMPLETED", cluster.job_output(old)[-1500:]
    final_state(cluster, old, "COMPLETED")
    old_final = results_final(cluster, "1")
    wait_for(lambda: of_type(show(cluster, "1")["timeline"], "output_registered"), timeout=30, what="output a")
    old_view = show(cluster, "1")
    old_dump = vigild.dir / "results" / ALICE / "1.h5"
    old_dump_sha = sha(old_dump)
    old_ckpts = [e["attrs"]["path"] for e in of_type(old_view["timeline"], "checkpoint_verified")]
    assert old_ckpts and all("/ckpt-a/" in p for p in old_ckpts), old_ckpts

    # Slurm loses its state; vigild (and its database) does not.
    vigild.stop()
    cluster.down()
    cluster.up()
    vigild.start()

    new = submit(cluster, "b")
    assert new == 1, "the wiped slurmctld gives the id out again"
    # The plain id means the new job from the moment slurmctld has it.
    assert show(cluster, "1")["incarnation"] == 1
    # Requeued after its first verified checkpoint: the restart must come from
    # the new job's own checkpoint (ckpt-b), not the old job's newer ones.
    wait_for(lambda: [e for e in of_type((show(cluster, "1") or {}).get("timeline", []), "checkpoint_verified")
                      if e["attrs"]["ok"]], timeout=60, what="a verified checkpoint of the new job 1")
    cluster.run(["scontrol", "requeue", "1"])
    wait_for(lambda: cluster.job_state(1) == "PENDING", timeout=20, what="requeued")
    time.sleep(2)  # past the old attempt's credential revocation second
    wait_for(lambda: cluster.run(["scontrol", "update", "jobid=1", "starttime=now"], check=False).returncode == 0,
             timeout=20, interval=0.5, what="the requeued job released")
    assert cluster.wait_job(new, timeout=120) == "COMPLETED", cluster.job_output(new)[-1500:]
    out = cluster.job_output(new)
    assert f"sha256={expected}" in out.splitlines()[-1] or f"sha256={expected}" in out, out[-1500:]
    resumed = [line for line in out.splitlines() if "resuming from" in line]
    assert resumed and all("/ckpt-b/" in line for line in resumed), out[-1500:]
    final_state(cluster, "1", "COMPLETED")
    new_final = results_final(cluster, "1")

    cur = show(cluster, "1")
    assert cur["key"] == "1.1" and cur["incarnation"] == 1 and cur["current"], {k: cur[k] for k in ("key", "job")}
    # Its timeline: its own events only.
    submitted = [e for e in cur["timeline"] if e["type"] == "submit"]
    assert len(submitted) >= 1
    assert min(e["ts_ns"] for e in cur["timeline"]) >= old_view["last_ns"], "nothing of the old job's timeline"
    ckpts = [e["attrs"]["path"] for e in of_type(cur["timeline"], "checkpoint_verified")]
    assert ckpts and all("/ckpt-b/" in p for p in ckpts), ckpts
    outputs = [e["attrs"] for e in of_type(cur["timeline"], "output_registered")]
    assert [o["path"] for o in outputs] == [f"{cluster.dir}/jobs/out/field-b.bin"] and outputs[0]["ok"], outputs
    assert (cluster.dir / "jobs" / "out" / "field-b.bin").exists(), "not taken for the old job's duplicate"
    # Its dump: a file of its own.
    new_dump = vigild.dir / "results" / ALICE / "1.1.h5"
    assert [f["path"] for f in new_final["files"]][0] == str(new_dump), new_final
    assert sha(old_dump) == old_dump_sha, "the old job's dump is untouched"

    # The old job 1, reachable as 1.0, unchanged.
    was = show(cluster, "1.0")
    assert was["key"] == "1.0" and was["incarnation"] == 0 and not was["current"]
    assert [e["id"] for e in was["timeline"]] == [e["id"] for e in old_view["timeline"]]
    assert was["state"] == "COMPLETED"
    assert [f["path"] for f in old_final["files"]][0] == str(old_dump)
    listed = {j["key"] for j in vigil(cluster, "jobs", user=ALICE)}
    assert {"1.0", "1.1"} <= listed, listed
