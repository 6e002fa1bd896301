"""vigild's heartbeat watch on real node loss: a node's slurmd and slurmstepd
killed, detected within 2 missed heartbeats, drained in Slurm with a reason; a
hung step on a live node told apart from a lost node."""
import subprocess
import time

from vigil_cluster import heartbeats_from, vigil, wait_for

VIGILD_CONFIG = "drain_on_node_loss: true\n"


def first_event(cluster, jid, etype, node=None):
    for e in vigil(cluster, "events", "--job", str(jid)):
        if e["type"] == etype and (node is None or e["node"] == node):
            return e
    return None


def test_real_node_loss_is_detected_and_drained(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\n#SBATCH -N3\n#SBATCH --vigil-heartbeat=1\nsrun sleep 120\n")
    wait_for(lambda: heartbeats_from(cluster, jid) >= {"n1", "n2", "n3"}, timeout=30, what="heartbeats from n1-n3")
    time.sleep(1.3)  # a random-ish phase relative to the heartbeat cadence
    killed_at = time.time()
    cluster.kill_node("n2")
    lost = wait_for(lambda: first_event(cluster, jid, "node_lost", "n2"), timeout=15, what="node_lost for n2")
    detect_s = lost["ts_ns"] / 1e9 - killed_at
    print(f"\nnode loss detected {detect_s:.2f} s after the kill (heartbeat 1 s, 2 missed)")
    assert detect_s <= 3.0
    assert lost["attrs"]["by"] == "vigild" and lost["attrs"]["silent_s"] >= 2.0
    assert first_event(cluster, jid, "node_lost", "n1") is None
    assert first_event(cluster, jid, "node_lost", "n3") is None
    # Slurm itself would wait SlurmdTimeout (300 s); vigild drained it already.
    reasons = cluster.run(["sinfo", "-h", "-R", "-o", "%N|%E"]).stdout
    assert any(line.startswith("n2|vigil: no heartbeat") for line in reasons.splitlines()), reasons
    nodes = {n["node"]: n for n in vigil(cluster, "nodes")}
    assert nodes["n2"]["lost"] is True and nodes["n1"]["lost"] is False
    cluster.run(["scancel", str(jid)])


def test_hung_step_is_not_a_lost_node(cluster, vigild):
    alive = cluster.sbatch("#!/bin/bash\n#SBATCH -w n3 -n1\n#SBATCH --vigil-heartbeat=1\nsrun sleep 60\n")
    hung = cluster.sbatch("#!/bin/bash\n#SBATCH -w n3 -n1\n#SBATCH --vigil-heartbeat=1\nsrun sleep 60\n")
    for j in (alive, hung):
        wait_for(lambda: "n3" in heartbeats_from(cluster, j), timeout=30, what=f"heartbeats of job {j}")
    pid = wait_for(lambda: subprocess.run(["pgrep", "-f", rf"slurmstepd: \[{hung}\.0\]"], capture_output=True,
                                          text=True).stdout.split(), what="slurmstepd of the hung step")[0]
    subprocess.run(["kill", "-STOP", pid], check=True)
    try:
        silent = wait_for(lambda: first_event(cluster, hung, "step_silent", "n3"), timeout=10, what="step_silent")
        assert silent["step"] == 0
        assert first_event(cluster, hung, "node_lost") is None
        assert first_event(cluster, alive, "node_lost") is None
    finally:
        subprocess.run(["kill", "-CONT", pid], check=True)
    wait_for(lambda: first_event(cluster, hung, "node_recovered", "n3"), timeout=10, what="recovery after SIGCONT")
    cluster.run(["scancel", str(alive), str(hung)])
