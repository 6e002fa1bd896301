"""Chaos across hosts, on one release's docker cluster (VIGIL_DSC_CHAOS_RELEASE,
default 22.05): a compute container killed mid-run, one paused for longer than
the heartbeat window, one cut off from the head node while its job keeps
running there, a relay cut off from vigild, the head container (slurmctld and
vigild) killed and started again. Each ends by checking the invariants: no
acknowledged event lost or stored twice (every result value in the dump once,
in order), results bit-identical to an undisturbed run (heat2d's final digest),
no orphaned process on any node; where an attempt is superseded while it still
runs (pause, cut), that its late reports were refused and its files kept apart
from its successor's (docs/adr/0022-fencing-superseded-attempts.md).
Detection and recovery times go to build/test-results/chaos.json for
`scripts/bench chaos`."""
import hashlib
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


def heat2d_job(cluster, nodes=2, heartbeat=1, extra="", sleep_ms=8, attempt_dirs=False):
    args = ARGS.replace("--sleep-ms 8", f"--sleep-ms {sleep_ms}")  # pace only: the result is the same
    if attempt_dirs:
        args += " --attempt-dirs 1"
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


def assert_invariants(cluster, jid, expected_sha, restarts, late=False):
    """The job's end state: its digest, its dump, and nothing left running.
    `late`: the superseded attempt's values from before its last sign of life
    may reach the dump after its successor's (a frozen or cut-off sender
    delivers them when it can): each attempt's rows are in order, once."""
    out = cluster.job_output(jid)
    assert f"sha256={expected_sha}" in out.splitlines()[-1], out[-600:]
    final = wait_for(lambda: next((e["attrs"] for e in timeline(cluster, jid) if e["type"] == "results_final"), None),
                     60, "results_final")
    assert final["ok"], final
    rows = dump_rows(cluster, jid, "total_heat")
    assert len(rows) == len(set(rows)), "a value stored twice"
    if late:
        for r in {r for r, _ in rows}:
            mine = [s for rr, s in rows if rr == r]
            assert mine == sorted(mine), ("values out of order", r, mine)
    else:
        assert rows == sorted(rows), "values out of order"
    last = max(r for r, _ in rows)
    assert last == restarts, rows
    # The last attempt's values run from where it resumed to the end, every one.
    steps = [s for r, s in rows if r == last]
    assert steps == list(range(steps[0], 2501, 50)), steps
    # And every earlier attempt's values up to where the next one resumed.
    # (The first from step 50; a later one from the step it resumed at.)
    for r in range(last):
        mine = [s for rr, s in rows if rr == r]
        if not mine and r > 0:
            continue  # an attempt ended before its first value
        nxt = min(s for rr, s in rows if rr > r)
        first = 50 if r == 0 else mine[0]
        assert mine == list(range(first, mine[-1] + 1, 50)) and mine[-1] >= nxt - 50, (r, mine, nxt)
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


def requeues(cluster, jid):
    """How many times vigild requeued the job: 1 for the loss, 2 when the old
    attempt's srun also killed the new attempt's step (then retried)."""
    tl = timeline(cluster, jid)
    return len([e for e in of_type(tl, "recovery") if e["attrs"]["action"] == "requeue"])


def superseded_checks(cluster, jid, node):
    """After a pause or a cut: attempt 0 was fenced at its last sign of life,
    what it reported after that was refused, and attempt 1's checkpoints are its
    own files, intact. Returns the fence (ns)."""
    tl = timeline(cluster, jid)
    decision = next(e["attrs"] for e in of_type(tl, "recovery") if e["attrs"]["action"] == "requeue")
    fence = decision["fence_after_ns"]
    lost = [e for e in of_type(tl, "node_lost") if e["node"] == node]
    assert lost and fence <= lost[0]["ts_ns"], (fence, lost)
    # Nothing attempt 0 emitted after the fence was stored.
    late = [e for e in tl if e["restart"] == 0 and e["ts_ns"] > fence
            and e["type"] in ("checkpoint", "output", "result")]
    assert not late, late
    # Attempt 1's checkpoints are under attempt-1/ and match what the ledger
    # verified (attempt 0 wrote on, into attempt-0/, while it was superseded).
    ok = [e["attrs"] for e in of_type(tl, "checkpoint_verified") if e["attrs"]["ok"]]
    mine = [v for v in ok if "/attempt-1/" in v["path"]]
    assert mine, ok
    for v in mine:
        host = cluster.state / "shared" / v["path"].removeprefix("/dsc/state/shared/")
        if host.exists():  # the newest two are kept (retention)
            assert hashlib.sha256(host.read_bytes()).hexdigest() == v["sha256"], v
    return fence


def start_single_node_job(cluster, sleep_ms):
    """heat2d alone on one node, in attempt directories, two checkpoints
    verified. Returns (job id, its node)."""
    jid = heat2d_job(cluster, nodes=1, sleep_ms=sleep_ms, attempt_dirs=True)
    wait_for(lambda: len([e for e in of_type(timeline(cluster, jid), "checkpoint_verified") if e["attrs"]["ok"]]) >= 2,
             90, "two verified checkpoints")
    return jid, job_nodes(cluster, jid)[0]  # not pinned with -w: a requeued job keeps its required nodes


def after_superseded(cluster, jid, victim, expected_sha, since, orphan_timeout):
    """The end of a pause or cut: the job COMPLETED, the old attempt fenced and
    gone from `victim`, the invariants held. Returns the figures to record."""
    # Slurm may end the new attempt FAILED first: the old srun, thawed or
    # reconnected, cancels step 0 of the job — now the new attempt's. vigild
    # retries it (ADR 0022), so COMPLETED is the state to wait for.
    wait_for(lambda: cluster.job_state(jid) == "COMPLETED", 300, f"job {jid} COMPLETED", interval=1)
    fence = superseded_checks(cluster, jid, victim)
    # The old attempt's tasks are gone from the node once slurmd has heard from slurmctld.
    wait_for(lambda: not cluster.pids(victim, "vigil_example_heat2d"), orphan_timeout,
             f"the old attempt gone from {victim}")
    orphans_gone = time.time() - since
    assert_invariants(cluster, jid, expected_sha, restarts=requeues(cluster, jid), late=True)
    fenced = [e for e in of_type(timeline(cluster, jid), "recovery") if e["attrs"]["action"] == "fenced"]
    return fence, {"requeues": requeues(cluster, jid), "orphans_gone_s": round(orphans_gone, 1), "fenced": len(fenced)}


def test_a_paused_compute_container_is_recovered_and_its_late_reports_refused(cluster, expected_sha):
    """The job's node frozen (docker pause) for 12 s, longer than the 2 s heartbeat window:
    vigild declares it lost and requeues the job elsewhere. When it thaws, the
    old attempt runs on for a moment and its relay and SDK deliver what they
    held; vigild refuses what it emitted after its last sign of life (ADR 0022)
    and slurmd, told by slurmctld, ends the old tasks."""
    jid, victim = start_single_node_job(cluster, sleep_ms=12)
    box = cluster.container(victim)
    paused = time.time()
    cluster.docker("pause", box)
    try:
        lost = wait_for(lambda: [e for e in of_type(timeline(cluster, jid), "node_lost") if e["node"] == victim],
                        30, f"{victim} lost", interval=0.1)
        detected = lost[0]["ts_ns"] / 1e9 - paused
        time.sleep(max(0.0, 12 - (time.time() - paused)))
    finally:
        cluster.docker("unpause", box)
    thawed = time.time()
    try:
        fence, figures = after_superseded(cluster, jid, victim, expected_sha, since=thawed, orphan_timeout=60)
        record("pause-compute", paused_s=12, detect_s=round(detected, 2), **figures,
               fence_before_pause_s=round(paused - fence / 1e9, 2), invariants=True)
    finally:
        cluster.revive(victim)


def test_a_compute_container_cut_off_from_the_head_is_recovered_elsewhere_and_fenced(cluster, expected_sha):
    """Everything between the job's node and the head container (slurmctld and vigild) is
    dropped for 30 s while the job runs there alone: vigild declares the node lost
    and requeues the job on another node. There the old attempt keeps running,
    writing checkpoints (into attempt-0/) and spooling its reports. When the
    cut heals, its late reports are refused, slurmctld has slurmd end it, and
    the new attempt's checkpoints and dump are untouched."""
    jid, victim = start_single_node_job(cluster, sleep_ms=20)
    pid = cluster.docker("inspect", "-f", "{{.State.Pid}}", cluster.container(victim)).stdout.strip()
    head = f"{cluster.net}.10"
    rules = [["OUTPUT", "-d", head, "-j", "DROP"], ["INPUT", "-s", head, "-j", "DROP"]]
    nsenter = ["nsenter", "-t", pid, "-n", "iptables"]
    for chain, *rule in rules:
        subprocess.run(nsenter + ["-I", chain] + rule, check=True)
    cut = time.time()
    try:
        lost = wait_for(lambda: [e for e in of_type(timeline(cluster, jid), "node_lost") if e["node"] == victim],
                        30, f"{victim} lost", interval=0.1)
        detected = lost[0]["ts_ns"] / 1e9 - cut
        wait_for(lambda: cluster.job_state(jid) == "RUNNING" and (n := job_nodes(cluster, jid)) and victim not in n, 90,
                 "the job running again elsewhere", interval=0.2)
        running_again = time.time() - cut
        assert cluster.pids(victim, "vigil_example_heat2d"), "the old attempt still runs there during the cut"
        time.sleep(max(0.0, 30 - (time.time() - cut)))
    finally:
        for chain, *rule in rules:
            subprocess.run(nsenter + ["-D", chain] + rule, check=True)
    healed = time.time()
    try:
        fence, figures = after_superseded(cluster, jid, victim, expected_sha, since=healed, orphan_timeout=120)
        # The old attempt wrote on during the cut, in its own directory only.
        old = sorted((cluster.state / "shared" / f"ckpt-{jid}" / "attempt-0").glob("heat2d-*.ckpt"))
        assert old, "attempt 0 kept checkpointing during the cut"
        assert figures["fenced"], "attempt 0 reported after its last sign of life and was refused"
        record("cut-compute", cut_s=round(healed - cut, 1), detect_s=round(detected, 2),
               recover_s=round(running_again, 2), **figures, fence_before_cut_s=round(cut - fence / 1e9, 2),
               invariants=True)
    finally:
        cluster.revive(victim)
