"""Checkpoint-driven recovery on the real cluster: a node of a running job is
killed (its slurmd and slurmstepd), vigild detects it, marks it DOWN, requeues
the job without it, and the restarted job resumes from its newest verified
checkpoint — ending bit-identical to an uninterrupted run. Also: a corrupted
checkpoint is skipped for the previous one, a spent retry budget ends the job
FAILED, vigild SIGKILLed during the recovery carries it out after its restart,
a node that dies while vigild is down is recovered when vigild returns, and two
nodes lost at once are one failure (the release of the requeued job waits for
the failed attempt's srun, which would otherwise cancel the new step)."""
import subprocess
import time

import pytest

from job_support import (ALICE, HEAT2D, expand, final_state, job_nodes, of_type, reference_sha, timeline,
                         verified)
from vigil_cluster import CLUSTER, vigil, wait_for

NODES = 5
VIGILD_CONFIG = "retry_backoff_s: 2\nrestart_grace_s: 3\nreconcile_interval_s: 1\n"
ARGS = "--n 32 --steps 2500 --emit-every 50 --checkpoint-every 250 --sleep-ms 6"


def submit(cluster, nodes=2, retries=2, args=ARGS):
    return cluster.sbatch(f"""#!/bin/bash
#SBATCH -N {nodes} --ntasks-per-node=1 --open-mode=append
#SBATCH --vigil-heartbeat=1 --vigil-retries={retries}
srun {HEAT2D} --checkpoint-dir {cluster.dir}/jobs/ckpt-$SLURM_JOB_ID {args}
""", user=ALICE)







def revive(cluster, *nodes):
    for n in nodes:
        cluster.start_node(n)
    for n in nodes:
        cluster.run(["scontrol", "update", f"nodename={n}", "state=resume"], check=False)
        wait_for(lambda: cluster.sinfo_states().get(n) in ("idle", "mix", "alloc"), timeout=60, what=f"{n} back")


@pytest.fixture
def victims(cluster):
    """Nodes a test kills; revived afterwards whatever the test's outcome."""
    killed = []
    yield killed
    if killed:
        revive(cluster, *killed)


def kill(cluster, victims, node):
    victims.append(node)
    cluster.kill_node(node)



def start_and_kill(cluster, victims, checkpoints=2, **job):
    """Submit, wait for `checkpoints` verified checkpoints, kill the job's last
    node (not the batch host). Returns (job id, killed node, kill time)."""
    jid = submit(cluster, **job)
    wait_for(lambda: verified(cluster, jid, checkpoints), timeout=60, what=f"{checkpoints} verified checkpoints")
    victim = expand(job_nodes(cluster, jid))[-1]
    killed = time.time()
    kill(cluster, victims, victim)
    return jid, victim, killed


def wait_action(cluster, jid, action, timeout=30):
    return wait_for(lambda: [e for e in of_type(timeline(cluster, jid), "recovery") if e["attrs"]["action"] == action],
                    timeout=timeout, interval=0.05, what=f"recovery {action}")


@pytest.fixture(scope="module")
def expected_sha():
    return reference_sha(ARGS)


def test_node_loss_requeues_and_resumes_bit_identical(cluster, vigild, expected_sha, victims):
    jid, victim, killed = start_and_kill(cluster, victims)
    assert cluster.wait_job(jid, timeout=180) == "COMPLETED"
    tl = timeline(cluster, jid)
    lost = [e for e in of_type(tl, "node_lost") if e["node"] == victim]
    assert lost and lost[0]["ts_ns"] / 1e9 - killed < 10
    # "fenced": the batch host's task kept reporting after the lost node's
    # last sign of life; those reports were refused (ADR 0022).
    decisions = [e["attrs"] for e in of_type(tl, "recovery") if e["attrs"]["action"] != "fenced"]
    actions = [d["action"] for d in decisions]
    assert actions[:3] == ["requeue", "requeued", "resume"], decisions
    assert "retry 1 of 2" in decisions[0]["reason"] and victim in decisions[0]["reason"]
    assert -3 < decisions[0]["fence_after_ns"] / 1e9 - killed < 0.5, "fenced at the lost node's last sign of life"
    resume = decisions[2]
    assert resume["step"] >= 500 and resume["path"].endswith(f"heat2d-{resume['step']}.ckpt")
    assert victim not in expand(job_nodes(cluster, jid)), "the restart avoided the lost node"
    out = cluster.job_output(jid)
    assert f"sha256={expected_sha}" in out.splitlines()[-1], out[-500:]
    final_state(cluster, jid, "COMPLETED")


def test_a_corrupted_checkpoint_is_skipped_for_the_previous_one(cluster, vigild, expected_sha, victims):
    jid, _, _ = start_and_kill(cluster, victims)
    wait_action(cluster, jid, "requeued")  # from now on no task writes; the restart is ~2 s away
    ok = verified(cluster, jid, 2)
    newest = ok[-1]["attrs"]["path"]
    with open(newest, "r+b") as f:  # same size, different bytes
        f.seek(100)
        f.write(b"\x7f" * 64)
    assert cluster.wait_job(jid, timeout=180) == "COMPLETED"
    tl = timeline(cluster, jid)
    skipped = of_type(tl, "checkpoint_skipped")
    assert skipped and skipped[0]["attrs"]["path"] == newest and "changed" in skipped[0]["attrs"]["why"], skipped
    resumes = [e["attrs"] for e in of_type(tl, "recovery") if e["attrs"]["action"] == "resume"]
    assert len(resumes) == 1, "every node of the restarted job is told, the choice is made once"
    assert resumes[0]["path"] != newest and resumes[0]["step"] < ok[-1]["attrs"]["step"]
    assert f"sha256={expected_sha}" in cluster.job_output(jid).splitlines()[-1]


def test_a_spent_retry_budget_ends_the_job_failed_with_its_reason(cluster, vigild, victims):
    jid, _, _ = start_and_kill(cluster, victims, checkpoints=1, retries=0, args=ARGS.replace("2500", "100000"))
    state = cluster.wait_job(jid, timeout=60)
    assert state in ("CANCELLED", "FAILED", "NODE_FAIL")
    job = wait_for(lambda: (lambda j: j if j["state"] == "FAILED" else None)(vigil(cluster, "show", str(jid),
                                                                                  user=ALICE)), what="FAILED")
    fail = [e["attrs"] for e in of_type(job["timeline"], "recovery") if e["attrs"]["action"] == "fail"]
    assert len(fail) == 1 and "retry budget of 0 exhausted" in fail[0]["reason"]
    assert any("retry budget" in t["reason"] for t in job["transitions"] if t["to"] == "FAILED")


def test_vigild_killed_during_recovery_finishes_it_after_restart(cluster, vigild, expected_sha, victims):
    jid, _, _ = start_and_kill(cluster, victims)
    wait_action(cluster, jid, "requeue", timeout=20)
    vigild.kill()  # inside the 2 s backoff: the requeue itself has not happened
    vigild.start()
    assert cluster.wait_job(jid, timeout=180) == "COMPLETED"
    actions = [e["attrs"]["action"] for e in of_type(timeline(cluster, jid), "recovery")]
    actions = [a for a in actions if a != "fenced"]
    assert actions.count("requeue") == 1 and "requeued" in actions and "resume" in actions, actions
    assert f"sha256={expected_sha}" in cluster.job_output(jid).splitlines()[-1]


def test_a_node_failing_while_vigild_is_down_is_recovered_when_it_returns(cluster, vigild, expected_sha, victims):
    jid = submit(cluster)
    wait_for(lambda: verified(cluster, jid, 2), timeout=60, what="2 verified checkpoints")
    victim = expand(job_nodes(cluster, jid))[-1]
    vigild.kill()
    kill(cluster, victims, victim)
    time.sleep(2)
    vigild.start()  # the steps it was watching get restart_grace_s, then the dead node's count as lost
    assert cluster.wait_job(jid, timeout=180) == "COMPLETED"
    tl = timeline(cluster, jid)
    assert [e for e in of_type(tl, "node_lost") if e["node"] == victim]
    actions = [e["attrs"]["action"] for e in of_type(tl, "recovery") if e["attrs"]["action"] != "fenced"]
    assert actions[:3] == ["requeue", "requeued", "resume"], actions
    assert f"sha256={expected_sha}" in cluster.job_output(jid).splitlines()[-1]


def test_two_nodes_lost_at_once_are_one_failure(cluster, vigild, expected_sha, victims):
    jid = submit(cluster, nodes=3)
    wait_for(lambda: verified(cluster, jid, 2), timeout=60, what="2 verified checkpoints")
    nodes = expand(job_nodes(cluster, jid))
    for n in nodes[1:]:  # both non-batch nodes, together
        victims.append(n)
    subprocess.run(["bash", "-c", " & ".join(f"{CLUSTER} kill-node {n} --dir {cluster.dir}" for n in nodes[1:])
                    + " & wait"], check=True, capture_output=True)
    assert cluster.wait_job(jid, timeout=180) == "COMPLETED", cluster.job_output(jid)[-2000:]
    tl = timeline(cluster, jid)
    decisions = [e["attrs"] for e in of_type(tl, "recovery")]
    assert [d["action"] for d in decisions].count("requeue") == 1, decisions
    down = ",".join(d.get("down", "") for d in decisions if d["action"] in ("requeued", "down"))
    assert all(n in down for n in nodes[1:]), decisions
    assert not set(expand(job_nodes(cluster, jid))) & set(nodes[1:])
    assert f"sha256={expected_sha}" in cluster.job_output(jid).splitlines()[-1]
