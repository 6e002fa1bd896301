"""Checkpoint strategies, long-run protection and retention on the real
cluster (docs/adr/0013-checkpoint-strategies.md):
  - vigild asks a job to checkpoint before its time limit;
  - a protected job (--vigil-protect) is kept with a fresh verified checkpoint;
  - before a maintenance reservation on its nodes, an unprotected job is only
    checkpointed, a protected one is checkpointed, requeued
    cleanly once the checkpoint is verified, restarted off the reserved nodes
    from that checkpoint, and ends bit-identical to an uninterrupted run;
  - --vigil-keep-checkpoints=K leaves the newest K checkpoint files, deleting
    the others with the user's identity, each deletion on the timeline;
  - a checkpoint that cannot be written (disk full) is an event, older
    checkpoints are pruned to make room, and the job finishes correctly;
  - a retried job that writes an output again adds no second record, and its
    second copy is removed; a changed output is recorded as superseding;
  - a job preempted by one of the hidden "urgent" partition is asked to
    checkpoint at once, and after Slurm requeues it (GraceTime) it resumes from
    that checkpoint and ends bit-identical."""
import os
import subprocess
import time

import pytest

from job_support import ALICE, HEAT2D, expand, job_nodes, of_type, reference_sha, timeline, verified
from vigil_cluster import VIGIL, wait_for

NODES = 4
VIGILD_CONFIG = ("reconcile_interval_s: 1\nrestart_grace_s: 3\nretry_backoff_s: 1\n"
                 "checkpoint_before_end_s: 300\ncheckpoint_before_maintenance_s: 120\nprotect_wait_s: 30\n"
                 "protect_fresh_s: 6\n")


def run_heat2d(cluster, args, options="", ckpt_dir=None, extra=""):
    ckpt = ckpt_dir or f"{cluster.dir}/jobs/ckpt-$SLURM_JOB_ID"
    return cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 1 --open-mode=append --vigil-heartbeat=1 {extra} {options}
srun {HEAT2D} --checkpoint-dir {ckpt} {args}
""", user=ALICE)


def requested(cluster, jid, trigger):
    return [e for e in of_type(timeline(cluster, jid), "checkpoint_requested") if e["attrs"]["trigger"] == trigger]


def cancel(cluster, *jids):
    for j in jids:
        cluster.run(["scancel", str(j)], check=False)


def test_a_checkpoint_is_asked_for_before_the_time_limit(cluster, vigild):
    # One minute: asked at half of it (the site's 300 s margin is longer than the job).
    jid = run_heat2d(cluster, "--n 32 --steps 100000 --emit-every 500 --checkpoint-every 0 --sleep-ms 5",
                     extra="--time=1")
    try:
        ask = wait_for(lambda: requested(cluster, jid, "time_limit"), timeout=60, what="a time-limit request")[0]
        assert "time limit in" in ask["attrs"]["reason"] and "command" in ask["attrs"], ask
        asked_s = ask["ts_ns"] / 1e9
        ok = wait_for(lambda: verified(cluster, jid, 1), timeout=20, what="the checkpoint it asked for")
        assert ok[0]["ts_ns"] / 1e9 >= asked_s
        sig = [e for e in of_type(timeline(cluster, jid), "checkpoint_signal") if e["attrs"]["reason"] == "time_limit"]
        assert sig and sig[0]["attrs"]["delivered"] == 1, sig
    finally:
        cancel(cluster, jid)


@pytest.fixture
def maintenance(cluster):
    made = []

    def create(nodes, start_in_s=90):
        name = f"vigil-maint-{len(made)}-{os.getpid()}"
        cluster.run(["scontrol", "create", "reservation", f"ReservationName={name}", f"StartTime=now+{start_in_s}",
                     "Duration=10", f"Nodes={','.join(nodes)}", "Flags=MAINT,IGNORE_JOBS", "Users=root"])
        made.append(name)
        return name
    yield create
    for name in made:
        cluster.run(["scontrol", "delete", f"ReservationName={name}"], check=False)


def test_maintenance_checkpoints_every_job_and_requeues_the_protected_one(cluster, vigild, maintenance):
    args = "--n 32 --steps 4000 --emit-every 100 --checkpoint-every 0 --sleep-ms 6"
    expected = reference_sha(args)
    protected = run_heat2d(cluster, args, options="--vigil-protect")
    plain = run_heat2d(cluster, args.replace("4000", "100000"))
    try:
        for j in (protected, plain):
            wait_for(lambda: cluster.job_state(j) == "RUNNING" and timeline(cluster, j), timeout=30, what="running")
        time.sleep(2)  # some steps done, so the checkpoint is not at step 0
        before = {j: expand(job_nodes(cluster, j)) for j in (protected, plain)}
        resv = maintenance(before[protected] + before[plain])
        # Both are asked; only the protected one is requeued, after its checkpoint is verified.
        for j in (protected, plain):
            ask = wait_for(lambda: requested(cluster, j, "maintenance"), timeout=20, what="a maintenance request")
            assert resv in ask[0]["attrs"]["reason"]
        assert cluster.wait_job(protected, timeout=120) == "COMPLETED"
        tl = timeline(cluster, protected)
        decisions = [e["attrs"] for e in of_type(tl, "recovery")]
        actions = [d["action"] for d in decisions]
        assert actions[:3] == ["requeue", "requeued", "resume"], decisions
        assert decisions[0]["planned"] is True and "after its checkpoint was verified" in decisions[0]["reason"]
        assert decisions[2]["step"] > 0
        assert not set(expand(job_nodes(cluster, protected))) & set(before[protected] + before[plain]), \
            "the restart kept off the reserved nodes"
        assert f"sha256={expected}" in cluster.job_output(protected).splitlines()[-1]
        # Protected, it is also kept with a verified checkpoint at most protect_fresh_s old.
        assert requested(cluster, protected, "protection")
        assert not requested(cluster, plain, "protection")
        assert not [e for e in of_type(timeline(cluster, plain), "recovery")], "an unprotected job is not requeued"
        assert verified(cluster, plain, 1)
        assert cluster.job_state(plain) == "RUNNING"
    finally:
        cancel(cluster, protected, plain)


def test_keep_checkpoints_leaves_the_newest_k_files(cluster, vigild):
    d = cluster.dir / "jobs" / "keep"
    d.mkdir()
    subprocess.run(["chown", ALICE, str(d)], check=True)
    jid = run_heat2d(cluster, "--n 32 --steps 2000 --emit-every 100 --checkpoint-every 200 --sleep-ms 3",
                     options="--vigil-keep-checkpoints=2", ckpt_dir=str(d))
    assert cluster.wait_job(jid, timeout=60) == "COMPLETED"
    ok = wait_for(lambda: verified(cluster, jid, 10), timeout=20, what="10 verified checkpoints")
    pruned = wait_for(lambda: (lambda p: p if len(p) >= 8 else None)(of_type(timeline(cluster, jid),
                                                                            "checkpoint_pruned")),
                      timeout=20, what="8 pruned")
    assert all(p["attrs"]["deleted"] and "newest 2" in p["attrs"]["reason"] for p in pruned), pruned
    # Folded: each pruned checkpoint's report and verification left the timeline.
    assert all(p["attrs"]["folded"] == 2 and p["attrs"]["reported_ns"] > 0 for p in pruned), pruned
    assert len(ok) == 2, ok
    left = sorted(p.name for p in d.iterdir())
    newest = sorted(os.path.basename(e["attrs"]["path"]) for e in ok[-2:])
    assert left == newest, (left, newest)


@pytest.fixture
def small_disk(cluster):
    d = cluster.dir / "jobs" / "small"
    d.mkdir()
    # Room for two 128x128 checkpoints (~131 KB each) and not a third.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k,mode=0755", "tmpfs", str(d)], check=True)
    subprocess.run(["chown", ALICE, str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_full_disk_during_a_checkpoint_is_an_event_and_the_job_goes_on(cluster, vigild, small_disk):
    args = "--n 128 --steps 1200 --emit-every 100 --checkpoint-every 200 --sleep-ms 4"
    expected = reference_sha(args)
    jid = run_heat2d(cluster, args, ckpt_dir=str(small_disk))
    assert cluster.wait_job(jid, timeout=90) == "COMPLETED"
    out = cluster.job_output(jid)
    assert f"sha256={expected}" in out.splitlines()[-1], out[-800:]
    tl = timeline(cluster, jid)
    failed = [e["attrs"] for e in of_type(tl, "checkpoint") if e["attrs"].get("failed")]
    assert failed and failed[0]["errno"] == 28 and "space" in failed[0]["error"].lower(), failed
    pruned = [e["attrs"] for e in of_type(tl, "checkpoint_pruned")]
    assert pruned and all(p["reason"].startswith("disk full") and p["deleted"] for p in pruned), pruned
    ok = [e for e in of_type(tl, "checkpoint_verified") if e["attrs"]["ok"]]
    assert ok[-1]["attrs"]["step"] > failed[0]["step"], "a later checkpoint found room again"


def test_a_retried_job_does_not_register_its_outputs_twice(cluster, vigild):
    d = cluster.dir / "jobs" / "outputs"
    d.mkdir()
    subprocess.run(["chown", ALICE, str(d)], check=True)
    # Each attempt writes the same final result to a path of its own, and a log
    # whose content differs per attempt; the first attempt then waits to be requeued.
    jid = cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 1 --open-mode=append --vigil-heartbeat=1
rc=${{SLURM_RESTART_COUNT:-0}}
srun bash -c 'echo "T_final=1.2345" > {d}/result-'$rc'.dat &&
  {VIGIL} report-output {d}/result-'$rc'.dat --name result --step 100 &&
  echo "attempt '$rc'" > {d}/log.txt && {VIGIL} report-output {d}/log.txt'
[ "$rc" = 0 ] && sleep 60
exit 0
""", user=ALICE)
    first = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(
        of_type(timeline(cluster, jid), "output_registered")), timeout=30, what="two outputs registered")
    cluster.run(["scontrol", "requeue", str(jid)])
    wait_for(lambda: cluster.job_state(jid) == "PENDING", timeout=20, what="requeued")
    # Slurm revokes the old attempt's credential with one-second resolution: a
    # restart on the same node within that second is killed ("credential revoked").
    time.sleep(2)
    # Skip Slurm's requeue hold; it takes once the old attempt has left its node.
    wait_for(lambda: cluster.run(["scontrol", "update", f"jobid={jid}", "starttime=now"], check=False).returncode == 0,
             timeout=20, interval=0.5, what="the requeued job released")
    assert cluster.wait_job(jid, timeout=60) == "COMPLETED"
    time.sleep(2)  # the second attempt's reports are digested
    regs = [e["attrs"] for e in of_type(timeline(cluster, jid), "output_registered")]
    by_name = {}
    for r in regs:
        by_name.setdefault(r["name"], []).append(r)
    assert len(by_name["result"]) == 1, regs  # same name, same content: one record
    assert by_name["result"][0]["path"] == f"{d}/result-0.dat" and by_name["result"][0]["ok"]
    assert not (d / "result-1.dat").exists(), "the retry's duplicate copy was removed"
    assert (d / "result-0.dat").exists()
    log = by_name[f"{d}/log.txt"]
    assert len(log) == 2 and log[1]["supersedes"] == log[0]["sha256"] != log[1]["sha256"], log
    assert first[0]["restart"] == 0


def test_preemption_checkpoints_and_the_requeued_job_resumes_from_it(cluster, vigild):
    # The job treats SIGTERM (what Slurm sends at preemption with GraceTime) as
    # its checkpoint signal, as a preemptible code should; Vigil asks too.
    # Longer than the partition's GraceTime (15 s) plus slurmctld's 30 s round
    # of time-limit checks, so Slurm stops and requeues it before it finishes.
    args = "--n 32 --steps 20000 --emit-every 200 --checkpoint-every 0 --sleep-ms 3"
    expected = reference_sha(args)
    jid = run_heat2d(cluster, args, options="--vigil-checkpoint-signal=TERM", extra="-w n4")
    urgent = None
    try:
        wait_for(lambda: cluster.job_state(jid) == "RUNNING" and timeline(cluster, jid), timeout=30, what="running")
        time.sleep(3)
        urgent = cluster.sbatch("#!/bin/bash\n#SBATCH -p urgent -w n4 --exclusive\nsleep 2\n")
        ask = wait_for(lambda: requested(cluster, jid, "preemption"), timeout=30, what="a preemption request")[0]
        ok = wait_for(lambda: [e for e in of_type(timeline(cluster, jid), "checkpoint_verified")
                               if e["attrs"]["ok"] and e["ts_ns"] >= ask["ts_ns"]], timeout=20,
                      what="a checkpoint verified after the request")
        # Slurm requeues the job after GraceTime and holds it (as any requeued job); release it.
        wait_for(lambda: cluster.job_state(jid) == "PENDING", timeout=90, what="requeued by Slurm")
        time.sleep(2)  # past the old credential's revocation second (see the outputs test)
        wait_for(lambda: cluster.run(["scontrol", "update", f"jobid={jid}", "starttime=now"],
                                     check=False).returncode == 0, timeout=30, interval=0.5, what="released")
        assert cluster.wait_job(jid, timeout=150) == "COMPLETED", cluster.job_output(jid)[-1500:]
        resume = [e["attrs"] for e in of_type(timeline(cluster, jid), "recovery") if e["attrs"]["action"] == "resume"]
        assert resume and resume[0]["step"] >= ok[0]["attrs"]["step"] > 0, (resume, ok)
        assert f"sha256={expected}" in cluster.job_output(jid).splitlines()[-1]
    finally:
        cancel(cluster, jid, *([urgent] if urgent else []))
