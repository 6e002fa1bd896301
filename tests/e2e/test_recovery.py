"""Checkpoint-driven recovery on the real cluster: a node of a running job is
killed (its slurmd and slurmstepd), vigild detects it, marks it DOWN, requeues
the job without it, and the restarted job resumes from its newest verified
checkpoint — ending bit-identical to an uninterrupted run. Also: a corrupted
checkpoint is skipped for the previous one, a spent retry budget ends the job
FAILED, and vigild SIGKILLed during the recovery carries it out after its
restart. (Two nodes lost at once: one decision, both marked DOWN and excluded,
but the restarted step is cancelled by Slurm ~5 s later — under investigation,
not tested here; see docs/adr/0012-checkpoint-recovery.md.)"""
import re
import subprocess
import time

import pytest

from vigil_cluster import BUILD, vigil, wait_for

NODES = 5
VIGILD_CONFIG = "retry_backoff_s: 2\nrestart_grace_s: 3\nreconcile_interval_s: 1\n"
HEAT2D = BUILD / "sdk" / "vigil_example_heat2d"
ALICE = "vigil-alice"
ARGS = "--n 32 --steps 2500 --emit-every 50 --checkpoint-every 250 --sleep-ms 6"


def reference_sha(args):
    out = subprocess.run([str(HEAT2D), *args.split(), "--checkpoint-every", "0"], capture_output=True, text=True,
                         check=True, cwd="/tmp").stdout
    return re.search(r"sha256=(\w+)", out).group(1)


def submit(cluster, nodes=2, retries=2, args=ARGS):
    return cluster.sbatch(f"""#!/bin/bash
#SBATCH -N {nodes} --ntasks-per-node=1 --open-mode=append
#SBATCH --vigil-heartbeat=1 --vigil-retries={retries}
srun {HEAT2D} --checkpoint-dir {cluster.dir}/jobs/ckpt-$SLURM_JOB_ID {args}
""", user=ALICE)


def timeline(cluster, jid):
    r = vigil(cluster, "show", str(jid), user=ALICE, check=False)
    return r["timeline"] if isinstance(r, dict) else []  # [] until vigild has heard of the job


def of_type(tl, kind):
    return [e for e in tl if e["type"] == kind]


def verified(cluster, jid, n):
    tl = timeline(cluster, jid)
    ok = [e for e in of_type(tl, "checkpoint_verified") if e["attrs"]["ok"]]
    return ok if len(ok) >= n else None


def job_nodes(cluster, jid):
    r = cluster.run(["scontrol", "show", "job", "-o", str(jid)])
    return re.search(r" NodeList=(\S+)", r.stdout).group(1)


def expand(nodelist):
    """n[1-2,4] -> ['n1', 'n2', 'n4'] (the test cluster's names only)."""
    m = re.fullmatch(r"n\[([\d,-]+)\]", nodelist)
    if not m:
        return nodelist.split(",")
    out = []
    for part in m.group(1).split(","):
        lo, _, hi = part.partition("-")
        out += [f"n{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


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


def final_state(cluster, jid, want):
    return wait_for(lambda: (lambda j: j if j["state"] == want else None)(
        vigil(cluster, "show", str(jid), user=ALICE)), what=f"vigild's state {want}")


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
    decisions = [e["attrs"] for e in of_type(tl, "recovery")]
    actions = [d["action"] for d in decisions]
    assert actions[:3] == ["requeue", "requeued", "resume"], decisions
    assert "retry 1 of 2" in decisions[0]["reason"] and victim in decisions[0]["reason"]
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
    assert actions.count("requeue") == 1 and "requeued" in actions and "resume" in actions, actions
    assert f"sha256={expected_sha}" in cluster.job_output(jid).splitlines()[-1]
