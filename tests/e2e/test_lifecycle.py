"""Each job's explicit state machine, fed by plugin events and by reconciliation
with slurmctld (libslurm, incremental): every transition stored with its reason."""
import time

from vigil_cluster import Vigild, vigil, wait_for

NODES = 2


def transitions(cluster, jid):
    return [(t["from"], t["to"], t["reason"]) for t in vigil(cluster, "show", str(jid))["transitions"]]


def final_state(cluster, jid, state, timeout=20):
    def reached():
        r = vigil(cluster, "show", str(jid), check=False)  # "unknown" until vigild has heard of the job
        return isinstance(r, dict) and r["state"] == state
    return wait_for(reached, timeout=timeout, what=f"job {jid} {state} in vigild")


def test_a_completed_job_walks_the_whole_path(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\n#SBATCH -N2\nsrun sleep 2\n")
    assert cluster.wait_job(jid) == "COMPLETED"
    final_state(cluster, jid, "COMPLETED")
    path = [to for _, to, _ in transitions(cluster, jid)]
    assert path[-1] == "COMPLETED"
    assert "RUNNING" in path
    assert all(to != frm for frm, to, _ in transitions(cluster, jid))
    reasons = dict((to, why) for _, to, why in transitions(cluster, jid))
    assert reasons["COMPLETED"] in ("finished: batch script exit code 0", "finished: slurmctld: COMPLETED")


def test_a_failing_job_ends_failed_with_its_exit_code(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\nexit 3\n")
    assert cluster.wait_job(jid) == "FAILED"
    final_state(cluster, jid, "FAILED")
    assert any(to == "FAILED" and why in ("failed: batch script exit code 3", "failed: slurmctld: FAILED")
               for _, to, why in transitions(cluster, jid))


def test_a_cancelled_job_is_cancelled(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\nsleep 60\n")
    wait_for(lambda: cluster.job_state(jid) == "RUNNING", what="running")
    cluster.run(["scancel", str(jid)])
    final_state(cluster, jid, "CANCELLED")
    assert ("CANCELLED", "cancelled: slurmctld: CANCELLED") in [(to, why) for _, to, why in transitions(cluster, jid)]


def test_reconciliation_catches_up_after_vigild_was_down(cluster, vigild):
    vigild.stop()
    try:
        jid = cluster.sbatch("#!/bin/bash\nsleep 1\n", user="vigil-alice")
        assert cluster.wait_job(jid) == "COMPLETED"
        pending = cluster.sbatch("#!/bin/bash\n#SBATCH -N2 -w n1,n2 --exclusive\nsleep 1\n",
                                 args=["--begin=now+600"])
    finally:
        vigild.start()
    # vigild never heard from the job's nodes (their spool waits for the next step
    # there), yet slurmctld's view brings it up to date, with its owner.
    final_state(cluster, jid, "COMPLETED", timeout=15)
    job = vigil(cluster, "show", str(jid))
    assert job["user"] == "vigil-alice"
    assert ("SUBMITTED", "COMPLETED", "finished: slurmctld: COMPLETED") in transitions(cluster, jid)
    final_state(cluster, pending, "PENDING", timeout=15)
    cluster.run(["scancel", str(pending)])
    final_state(cluster, pending, "CANCELLED", timeout=15)
    status = vigil(cluster, "status")
    assert status["reconcile_rounds"] >= 1 and status["reconcile_errors"] == 0


def test_submit_event_records_what_was_requested(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\n#SBATCH -N2 -n3 -t 7 -J wanted\nsrun true\n", user="vigil-bob")
    assert cluster.wait_job(jid) == "COMPLETED"
    submit = wait_for(lambda: next((e for e in vigil(cluster, "events", "--job", str(jid)) if e["type"] == "submit"), None),
                      what="submit event from reconciliation")
    a = submit["attrs"]
    assert a["source"] == "slurmctld" and a["name"] == "wanted" and a["partition"] == "debug"
    assert a["nodes"] == 2 and a["tasks"] == 3 and a["time_limit_min"] == 7 and a["user"] == "vigil-bob"
    # later reconciliation rounds and restarts find the same event: stored once
    vigild.stop()
    vigild.start()
    time.sleep(6)
    assert [e["type"] for e in vigil(cluster, "events", "--job", str(jid))].count("submit") == 1
    assert vigil(cluster, "show", str(jid))["user"] == "vigil-bob"
