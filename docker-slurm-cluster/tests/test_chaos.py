"""Chaos across hosts, on one release's docker cluster (VIGIL_DSC_CHAOS_RELEASE,
default 22.05): a compute container killed mid-run, a relay cut off from
vigild, the head container (slurmctld and vigild) killed and started again.
Each ends by checking the invariants: no acknowledged event lost or stored
twice (every result value in the dump once, in order), results bit-identical to
an undisturbed run (heat2d's final digest), no orphaned process on any node.
Detection and recovery times go to build/test-results/chaos.json for
`scripts/bench chaos`.

Not here yet: a paused node and a node cut off from the head while its job
runs there (both need the superseded attempt fenced: issue 12)."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from dsc import HERE, Cluster, wait_for

RELEASE = os.environ.get("VIGIL_DSC_CHAOS_RELEASE", "22.05")
HEAT2D = "/usr/libexec/vigil/examples/vigil_example_heat2d"
ARGS = "--n 32 --steps 2500 --emit-every 50 --checkpoint-every 250 --sleep-ms 8"
TIMES = Path(os.environ.get("VIGIL_DSC_CHAOS_TIMES", HERE.parent / "build" / "test-results" / "chaos.json"))


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(RELEASE)
    c.up()
    yield c
    c.down()


@pytest.fixture(scope="module")
def expected_sha(cluster):
    out = cluster.exec("head", ["bash", "-c", f"cd /tmp && {HEAT2D} {ARGS} --checkpoint-every 0"]).stdout
    return re.search(r"sha256=(\w+)", out).group(1)


def record(scenario, **figures):
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    data[scenario] = figures
    TIMES.write_text(json.dumps(data, indent=1))


def heat2d_job(cluster, nodes=2, heartbeat=1, extra="", sleep_ms=8):
    args = ARGS.replace("--sleep-ms 8", f"--sleep-ms {sleep_ms}")  # pace only: the result is the same
    return cluster.sbatch(f"""#!/bin/bash
#SBATCH -N {nodes} --ntasks-per-node=1 --open-mode=append
#SBATCH --vigil-heartbeat={heartbeat} --vigil-retries=2 {extra}
srun {HEAT2D} --checkpoint-dir /dsc/state/shared/ckpt-$SLURM_JOB_ID {args}
""")


def timeline(cluster, jid):
    r = cluster.vigil("show", str(jid), check=False)
    return r["timeline"] if isinstance(r, dict) else []


def of_type(tl, kind):
    return [e for e in tl if e["type"] == kind]


def job_nodes(cluster, jid):
    """The job's nodes now; [] while it has none (pending, requeued)."""
    out = cluster.exec("head", ["scontrol", "-o", "show", "job", str(jid)], check=False).stdout
    m = re.search(r" NodeList=(\S+)", out)
    if not m or m.group(1) == "(null)":
        return []
    r = cluster.exec("head", ["scontrol", "show", "hostnames", m.group(1)], check=False)
    return r.stdout.split()


def dump_rows(cluster, jid, metric):
    """(restart, step) of every row of one metric in the job's dump, in file order."""
    path = cluster.state / "shared" / "results" / "root" / f"{jid}.h5"
    code = (f"import h5py, json; d = h5py.File({str(path)!r}, 'r')['/stages/main/{metric}']; "
            "print(json.dumps([[int(r), int(s)] for r, s in zip(d['restart'], d['step'])]))")
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [tuple(x) for x in json.loads(r.stdout)]


def assert_invariants(cluster, jid, expected_sha, restarts):
    """The job's end state: its digest, its dump, and nothing left running."""
    out = cluster.job_output(jid)
    assert f"sha256={expected_sha}" in out.splitlines()[-1], out[-600:]
    final = wait_for(lambda: next((e["attrs"] for e in timeline(cluster, jid) if e["type"] == "results_final"), None),
                     60, "results_final")
    assert final["ok"], final
    rows = dump_rows(cluster, jid, "total_heat")
    assert len(rows) == len(set(rows)), "a value stored twice"
    assert rows == sorted(rows), "values out of order"
    last = max(r for r, _ in rows)
    assert last == restarts, rows
    # The last attempt's values run from where it resumed to the end, every one.
    steps = [s for r, s in rows if r == last]
    assert steps == list(range(steps[0], 2501, 50)), steps
    # And every earlier attempt's values up to where the next one resumed.
    for r in range(last):
        mine = [s for rr, s in rows if rr == r]
        nxt = min(s for rr, s in rows if rr == r + 1)
        assert mine == list(range(50, mine[-1] + 1, 50)) and mine[-1] >= nxt - 50, (r, mine, nxt)
    for node in ("c1", "c2", "c3"):
        if cluster.health(node) == "healthy":
            assert cluster.pids(node, "vigil_example_heat2d") == [], f"an orphaned heat2d on {node}"
            assert cluster.pids(node, "slurmstepd") == [], f"an orphaned slurmstepd on {node}"


def test_a_killed_compute_container_is_detected_requeued_and_resumed(cluster, expected_sha):
    jid = heat2d_job(cluster)
    wait_for(lambda: len([e for e in of_type(timeline(cluster, jid), "checkpoint_verified") if e["attrs"]["ok"]]) >= 2,
             90, "two verified checkpoints")
    victim = job_nodes(cluster, jid)[-1]  # not the batch host
    killed = time.time()
    cluster.docker("kill", cluster.container(victim))
    try:
        lost = wait_for(lambda: [e for e in of_type(timeline(cluster, jid), "node_lost") if e["node"] == victim],
                        30, f"{victim} lost", interval=0.1)
        detected = lost[0]["ts_ns"] / 1e9 - killed
        wait_for(lambda: cluster.job_state(jid) == "RUNNING" and (n := job_nodes(cluster, jid)) and victim not in n, 60,
                 "the job running again without the dead node", interval=0.2)
        running_again = time.time() - killed
        assert cluster.wait_job(jid, timeout=240) == "COMPLETED"
        actions = [e["attrs"]["action"] for e in of_type(timeline(cluster, jid), "recovery")]
        actions = [a for a in actions if a != "fenced"]  # the batch host's late reports (ADR 0022)
        assert actions[:3] == ["requeue", "requeued", "resume"], actions
        assert_invariants(cluster, jid, expected_sha, restarts=1)
        record("kill-compute", detect_s=round(detected, 2), recover_s=round(running_again, 2), invariants=True)
    finally:
        cluster.revive(victim)


def test_a_relay_cut_off_from_vigild_spools_and_delivers_in_order_once(cluster, expected_sha):
    """c2's traffic to vigild (only: slurmd still reaches slurmctld) is dropped
    for 15 s while heat2d runs there alone. The heartbeat window (2 x 15 s) is
    longer, so vigild sees no loss. The relay holds the step's events in the
    node's spool and the SDK holds heat2d's values in its bounded queue; after
    the cut both arrive, in order, once."""
    jid = heat2d_job(cluster, nodes=1, heartbeat=15, extra="-w c2", sleep_ms=12)
    wait_for(lambda: of_type(timeline(cluster, jid), "task_start"), 30, "the task running")
    pid = cluster.docker("inspect", "-f", "{{.State.Pid}}", cluster.container("c2")).stdout.strip()
    rule = ["-d", f"{cluster.net}.10", "-p", "tcp", "--dport", "7100", "-j", "DROP"]
    nsenter = ["nsenter", "-t", pid, "-n", "iptables"]
    subprocess.run(nsenter + ["-I", "OUTPUT"] + rule, check=True)
    cut = time.time()
    spool_max = 0
    try:
        while time.time() - cut < 15:
            r = cluster.exec("c2", ["du", "-sb", "/var/spool/vigil"], check=False)
            spool_max = max(spool_max, int(r.stdout.split()[0]) if r.returncode == 0 else 0)
            time.sleep(1)
    finally:
        subprocess.run(nsenter + ["-D", "OUTPUT"] + rule, check=True)
    healed = time.time()
    assert cluster.wait_job(jid, timeout=120) == "COMPLETED"
    # Values still on their way when the job ended reach the dump later, and it
    # is finalised again with them (ADR 0010).
    final = wait_for(lambda: [f for f in (e["attrs"] for e in of_type(timeline(cluster, jid), "results_final"))
                              if f["ok"] and f["last_step"] == 2500], 90, "a results_final up to step 2500")
    assert final
    caught_up = time.time() - healed
    assert not of_type(timeline(cluster, jid), "node_lost"), "a cut shorter than the window is not a loss"
    tl = timeline(cluster, jid)
    for kind in ("step_start", "task_start", "task_exit", "step_end"):
        mine = [e for e in of_type(tl, kind) if e["node"] == "c2" and e["step"] == 0]
        assert len(mine) == 1, (kind, mine)
    assert_invariants(cluster, jid, expected_sha, restarts=0)
    assert spool_max < 1 << 20, f"the spool grew to {spool_max} bytes"
    left = int(cluster.exec("c2", ["du", "-sb", "/var/spool/vigil"]).stdout.split()[0])
    record("cut-relay", cut_s=round(healed - cut, 1), caught_up_s=round(caught_up, 1), spool_max_bytes=spool_max,
           spool_after_bytes=left, invariants=True)


def test_the_head_container_killed_and_started_again_loses_nothing(cluster, expected_sha):
    """The run is long enough (about a minute) that vigild is back well before
    it ends: values a simulation emits while vigild is away wait in the SDK's
    bounded queue, but the SDK drops what is still queued when the process
    exits (sdk/README.md, failure behaviour)."""
    jid = heat2d_job(cluster, sleep_ms=20)
    wait_for(lambda: of_type(timeline(cluster, jid), "checkpoint_verified"), 90, "a verified checkpoint")
    head = cluster.container("head")
    killed = time.time()
    cluster.docker("kill", head)
    time.sleep(8)
    cluster.docker("start", head)
    cluster.wait_healthy("head")
    back = time.time() - killed
    assert cluster.wait_job(jid, timeout=240) == "COMPLETED"
    state = wait_for(lambda: (s := cluster.vigil("show", str(jid), check=False)) and isinstance(s, dict)
                     and s["state"] == "COMPLETED" and s, 60, "vigild to see the job completed")
    assert not of_type(state["timeline"], "recovery"), "nothing to recover: the nodes kept running it"
    assert_invariants(cluster, jid, expected_sha, restarts=0)
    verified = [e for e in of_type(state["timeline"], "checkpoint_verified") if e["attrs"]["ok"]]
    assert len(verified) + len(of_type(state["timeline"], "checkpoint_pruned")) == 10, "every checkpoint, once"
    record("kill-head", down_s=8, head_back_s=round(back, 1), invariants=True)
