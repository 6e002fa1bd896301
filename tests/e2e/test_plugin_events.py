"""What Vigil sees of real jobs: lifecycle events with hardware, heartbeats,
identity, authorisation, and a vigild outage the job never notices."""
import collections
import os
import re
import statistics
import time

from vigil_cluster import vigil, wait_for

MULTI = """#!/bin/bash
#SBATCH -N 3
#SBATCH --ntasks-per-node=2
#SBATCH --vigil-heartbeat=1
#SBATCH --vigil-label=e2e/multi
srun bash -c 'sleep 4'
"""


def events_of(cluster, jid, user=None):
    return vigil(cluster, "show", str(jid), user=user)["timeline"]


def test_multi_node_step_one_start_and_exit_per_task(cluster, vigild):
    jid = cluster.sbatch(MULTI)
    assert cluster.wait_job(jid, timeout=90) == "COMPLETED"
    tl = wait_for(lambda: (lambda t: t if any(e["type"] == "job_end" for e in t) else None)(events_of(cluster, jid)),
                  what="job_end event")
    step0 = [e for e in tl if e.get("step") == 0]
    starts = collections.Counter(e["task"] for e in step0 if e["type"] == "task_start")
    exits = collections.Counter(e["task"] for e in step0 if e["type"] == "task_exit")
    assert starts == {t: 1 for t in range(6)}
    assert exits == {t: 1 for t in range(6)}
    assert all(e["attrs"]["exit_code"] == 0 for e in step0 if e["type"] == "task_exit")
    # tasks 0,1 on n1, 2,3 on n2, 4,5 on n3 (block distribution)
    assert {e["task"]: e["node"] for e in step0 if e["type"] == "task_start"} == \
        {0: "n1", 1: "n1", 2: "n2", 3: "n2", 4: "n3", 5: "n3"}
    step_starts = [e for e in step0 if e["type"] == "step_start"]
    assert sorted(e["node"] for e in step_starts) == ["n1", "n2", "n3"]
    for e in step_starts:
        hw = e["attrs"]["hardware"]
        assert hw["nnodes"] == 3 and hw["local_tasks"] == 2
        assert hw["cpu_model"] and hw["kernel"].startswith("Linux")
        assert e["attrs"]["uid"] == 0 and e["attrs"]["label"] == "e2e/multi"
        assert e["attrs"]["options"]["heartbeat_s"] == 1
    assert [e["type"] for e in tl if e.get("step") == 0xfffffffb and e["type"] in ("job_start", "job_end")] == \
        ["job_start", "job_end"]
    job = vigil(cluster, "show", str(jid))
    assert job["state"] == "COMPLETED" and job["label"] == "e2e/multi"


def test_heartbeats_from_every_node_at_the_configured_cadence(cluster, vigild):
    jid = cluster.sbatch(MULTI.replace("sleep 4", "sleep 6"))
    assert cluster.wait_job(jid, timeout=90) == "COMPLETED"
    # Heartbeats are kept as one row per step and node (ADR 0016), not as events.
    job = wait_for(lambda: (lambda j: j if all(s["ended_ns"] for s in j["steps"] if s["step"] == 0) else None)(
        vigil(cluster, "show", str(jid))), what="step 0 ended on every node")
    assert not any(e["type"] == "heartbeat" for e in job["timeline"])
    step0 = {s["node"]: s for s in job["steps"] if s["step"] == 0}
    assert sorted(step0) == ["n1", "n2", "n3"]
    for node, s in step0.items():
        assert 5 <= s["heartbeats"] <= 8, f"{node}: {s['heartbeats']} heartbeats in a 6 s step at 1 s"
        assert s["interval_s"] == 1
        assert s["max_gap_ms"] < 2000, f"{node}: a heartbeat gap of {s['max_gap_ms']} ms"
        assert s["rss_bytes"] > 0 and s["cpu_s"] >= 0
    # ... and as usage: node-seconds of the job on each node
    usage = vigil(cluster, "usage", "--job", str(jid), "--interval", "60")
    assert usage["node_hours"] * 3600 >= 3 * 5, usage


def test_user_identity_and_authorisation(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\n#SBATCH --vigil-label=alice-study\nsleep 1\n", user="vigil-alice")
    assert cluster.wait_job(jid) == "COMPLETED"
    mine = wait_for(lambda: vigil(cluster, "show", str(jid), user="vigil-alice"), what="alice sees her job")
    assert mine["user"] == "vigil-alice"
    start = next(e for e in mine["timeline"] if e["type"] == "job_start")
    import pwd
    assert start["attrs"]["uid"] == pwd.getpwnam("vigil-alice").pw_uid
    # bob can neither read alice's job nor see it listed
    r = vigil(cluster, "show", str(jid), user="vigil-bob", check=False, as_json=False)
    assert r.returncode != 0 and "denied" in r.stderr
    assert all(j["job"] != jid for j in vigil(cluster, "jobs", user="vigil-bob"))
    # root (admin) sees it
    assert any(j["job"] == jid for j in vigil(cluster, "jobs"))


def test_nested_sbatch_does_not_inherit_options(cluster, vigild):
    outer = cluster.sbatch("#!/bin/bash\n#SBATCH --vigil-label=outer --vigil-heartbeat=2\n"
                           f"sbatch --parsable -D {cluster.dir / 'jobs'} --wrap 'sleep 1' > inner.id\nsleep 1\n")
    assert cluster.wait_job(outer) == "COMPLETED"
    inner = int((cluster.dir / "jobs" / "inner.id").read_text().strip())
    assert cluster.wait_job(inner) == "COMPLETED"
    start = wait_for(lambda: next((e for e in events_of(cluster, inner) if e["type"] == "job_start"), None),
                     what="inner job_start")
    assert "label" not in start["attrs"]
    assert start["attrs"]["options"]["heartbeat_s"] == 5  # the site default, not the outer job's 2


def test_vigild_outage_does_not_touch_the_job_and_loses_nothing(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\n#SBATCH -N 2\n#SBATCH --vigil-heartbeat=1\n"
                         "srun -N2 bash -c 'sleep 8; echo done-$SLURM_PROCID'\n")
    wait_for(lambda: cluster.job_state(jid) == "RUNNING", what="job running")
    time.sleep(1)
    vigild.stop()
    down_at = time.time()
    time.sleep(4)
    vigild.start()
    up_at = time.time()
    assert cluster.wait_job(jid, timeout=60) == "COMPLETED"
    assert sorted(cluster.job_output(jid).split()) == ["done-0", "done-1"]
    tl = wait_for(lambda: (lambda t: t if any(e["type"] == "job_end" for e in t) else None)(events_of(cluster, jid)),
                  what="all events after the outage")
    ids = [e["id"] for e in tl]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    step0 = [e for e in tl if e.get("step") == 0]
    assert collections.Counter(e["type"] for e in step0 if e["type"] != "heartbeat") == \
        {"step_start": 2, "task_start": 2, "task_exit": 2, "step_end": 2}
    # heartbeats made while vigild was down arrived later, from both nodes: no
    # gap in either node's heartbeats, and about one a second for the 8 s
    assert up_at - down_at >= 4
    steps = {s["node"]: s for s in vigil(cluster, "show", str(jid))["steps"] if s["step"] == 0}
    for node in ("n1", "n2"):
        assert steps[node]["heartbeats"] >= 6, steps[node]
        assert steps[node]["max_gap_ms"] < 2500, steps[node]
    # each node's events arrived in the order they happened
    for node in ("n1", "n2"):
        mine = [e for e in step0 if e["node"] == node]
        assert [e["ts_ns"] for e in mine] == sorted(e["ts_ns"] for e in mine)


def test_checkpoint_on_request_reaches_every_node(cluster, vigild):
    # Each task traps USR1 and leaves a mark; vigil checkpoint must reach all of them.
    marks = cluster.dir / "jobs" / "marks"
    marks.mkdir(exist_ok=True)
    marks.chmod(0o777)  # alice's tasks write here
    jid = cluster.sbatch(
        "#!/bin/bash\n#SBATCH -N2 --ntasks-per-node=1\n#SBATCH --vigil-heartbeat=1 --vigil-checkpoint-signal=USR1\n"
        f"srun bash -c 'trap \"touch {marks}/$SLURM_JOB_ID.$SLURMD_NODENAME\" USR1; "
        "for i in $(seq 200); do sleep 0.1; done'\n", user="vigil-alice")
    wait_for(lambda: len([n for n in vigil(cluster, "nodes") if n["steps"] >= 1]) >= 2, timeout=30,
             what="steps on two nodes")
    time.sleep(1)
    # bob may not ask alice's job to checkpoint
    r = vigil(cluster, "checkpoint", str(jid), user="vigil-bob", check=False, as_json=False)
    assert r.returncode != 0 and "denied" in r.stderr
    out = vigil(cluster, "checkpoint", str(jid), "--wait", user="vigil-alice")
    assert {t["node"] for t in out["targets"]} == {"n1", "n2"}
    assert {d["node"] for d in out["deliveries"]} == {"n1", "n2"}
    assert all(d["attrs"]["delivered"] == 1 and d["attrs"]["reason"] == "request" for d in out["deliveries"])
    wait_for(lambda: {p.name for p in marks.iterdir()} >= {f"{jid}.n1", f"{jid}.n2"}, timeout=5,
             what="both tasks handled SIGUSR1")
    cluster.run(["scancel", str(jid)])


def relay_pid(cluster, node):
    return int((cluster.dir / "run" / f"relay-{node}.pid").read_text())


def newest_job(cluster):
    out = cluster.run(["scontrol", "show", "job", "-o"]).stdout
    return max(int(m) for m in re.findall(r"JobId=(\d+)", out))


def test_a_short_step_that_ends_while_vigild_is_down_arrives_without_another_step(cluster, vigild):
    # The node's relay (ADR 0014) carries the spool as soon as vigild is back;
    # no later step on the node is needed to replay it.
    vigild.stop()
    try:
        cluster.run(["srun", "-N1", "-w", "n2", "--vigil-heartbeat=1", "true"])
        jid = newest_job(cluster)
    finally:
        vigild.start()
    def timeline():
        r = vigil(cluster, "show", str(jid), check=False)
        return r["timeline"] if isinstance(r, dict) else []  # not heard of yet
    tl = wait_for(lambda: (lambda t: t if any(e["type"] == "step_end" for e in t) else None)(timeline()),
                  timeout=20, what="the step's events, carried from the spool by the relay")
    kinds = collections.Counter(e["type"] for e in tl if e["type"] != "heartbeat" and e.get("step") == 0)
    assert kinds == {"step_start": 1, "task_start": 1, "task_exit": 1, "step_end": 1}, kinds


def test_without_its_relay_a_node_talks_to_vigild_itself(cluster, vigild):
    os.kill(relay_pid(cluster, "n3"), 9)
    try:
        jid = cluster.sbatch("#!/bin/bash\n#SBATCH -N 1 -w n3\n#SBATCH --vigil-heartbeat=1\nsrun sleep 2\n")
        assert cluster.wait_job(jid, timeout=60) == "COMPLETED"
        tl = wait_for(lambda: (lambda t: t if any(e["type"] == "job_end" for e in t) else None)(events_of(cluster, jid)),
                      what="job_end event")
        ids = [e["id"] for e in tl]
        assert len(ids) == len(set(ids))
        assert collections.Counter(e["type"] for e in tl if e.get("step") == 0 and e["type"] != "heartbeat") == \
            {"step_start": 1, "task_start": 1, "task_exit": 1, "step_end": 1}
    finally:
        cluster.start_node("n3")  # brings the relay back
    assert relay_pid(cluster, "n3")
