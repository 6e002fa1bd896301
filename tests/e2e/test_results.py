"""Live results on the real cluster: the heat2d sample simulation emits through
the SDK, vigild writes its HDF5 dump in SWMR mode, and tools nobody here wrote
(h5py in another process, h5dump) read it; early-signal rules, stop-and-gather,
a vigild SIGKILL mid-run, and another user's access. The dumps are synced every
second here, so values leave the store while the jobs run (ADR 0018) and
`vigil tail` reads them back from the files."""
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from vigil_cluster import BUILD, metric, vigil, wait_for

NODES = 2
VIGILD_CONFIG = "results_sync_s: 1\n"
HEAT2D = BUILD / "sdk" / "vigil_example_heat2d"
HEAT2D_PY = Path(__file__).resolve().parents[2] / "sdk" / "examples" / "heat2d.py"
VIGIL_CLI = BUILD / "cli" / "vigil"
READER = Path(__file__).with_name("swmr_reader.py")
ALICE = "vigil-alice"


def job_script(args, options=""):
    return f"""#!/bin/bash
#SBATCH -N 1
#SBATCH --vigil-heartbeat=1
{options}
mkdir -p ckpt-$SLURM_JOB_ID
srun {HEAT2D} --checkpoint-dir ckpt-$SLURM_JOB_ID {args}
"""


def dump_of(vigild, jid, user=ALICE):
    return vigild.dir / "results" / user / f"{jid}.h5"


def timeline(cluster, jid, user=ALICE):
    return vigil(cluster, "show", str(jid), user=user)["timeline"]


def final_of(cluster, jid, user=ALICE, timeout=30):
    def find():
        return next((e["attrs"] for e in timeline(cluster, jid, user) if e["type"] == "results_final"), None)
    return wait_for(find, timeout=timeout, what=f"results_final of job {jid}")


def h5py_read(cluster, path, code, user=ALICE):
    """Run a small h5py program as `user` (Debian's python3: h5py is its package)."""
    script = f"import h5py, json, sys\nf = h5py.File({str(path)!r}, 'r')\n{code}\n"
    return cluster.run(["/usr/bin/python3", "-c", script], user=user, check=False)


def test_swmr_reader_sees_values_grow_then_h5dump_reads_the_final_file(cluster, vigild):
    jid = cluster.sbatch(job_script("--n 32 --steps 400 --emit-every 5 --snapshot-every 100 --sleep-ms 15"),
                         user=ALICE)
    path = dump_of(vigild, jid)
    reader = cluster.run(["/usr/bin/python3", str(READER), str(path), "/stages/main/total_heat", "5"], user=ALICE,
                         check=False, timeout=30)
    seen = json.loads(reader.stdout)
    assert seen["error"] is None, seen
    assert len(seen["lengths"]) >= 3 and seen["lengths"] == sorted(seen["lengths"]), \
        f"an independent SWMR reader saw the dataset grow: {seen['lengths']}"
    assert cluster.wait_job(jid, timeout=90) == "COMPLETED"
    final = final_of(cluster, jid)
    assert final["ok"] and final["last_step"] == 400
    # 80 emits x 4 scalars + 4 snapshots
    assert final["records"] == 80 * 4 + 4
    for f in final["files"]:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["sha256"]
    # A tool nobody here wrote reads the finished file, including the snapshot
    # that lives in a segment (linked from the main file).
    dump = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert "vigil_layout_version" in dump.stdout and "temperature" in dump.stdout, dump.stdout
    dump = subprocess.run(["h5dump", "-d", "/stages/main/total_heat", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0 and "sim_time" in dump.stdout and "( 80 )" in dump.stdout, dump.stderr
    r = h5py_read(cluster, path, "t = f['/stages/main/temperature']\n"
                  "print(json.dumps([t['values'].shape, list(map(int, t['index']['step'])), "
                  "list(map(int, f['/stages/main/total_heat']['step']))]))")
    assert r.returncode == 0, r.stderr
    shape, snap_steps, steps = json.loads(r.stdout)
    assert shape == [4, 32, 32] and snap_steps == [100, 200, 300, 400]
    assert steps == list(range(5, 401, 5)), "every emitted value once, in order"
    # vigil tail works after the end too
    tail = vigil(cluster, "tail", str(jid), user=ALICE)
    assert tail["metrics"]["main/total_heat"]["count"] == 80
    assert tail["metrics"]["main/temperature"]["kind"] == "array"
    assert tail["final"]["records"] == final["records"]
    # --follow --json streams one value per line and returns once the job has ended;
    # --metric narrows it.
    r = vigil(cluster, "tail", str(jid), "-f", "-m", "total_heat", "-m", "main/residual", user=ALICE,
              as_json=False, check=False, timeout=30)
    assert r.returncode == 0 and "main/total_heat" in r.stdout and "main/max_temp" not in r.stdout, r.stdout
    lines = vigil(cluster, "tail", str(jid), "-f", "-m", "total_heat", user=ALICE)
    assert len(lines) == 80 and {v["name"] for v in lines} == {"total_heat"}


def test_another_user_cannot_read_the_dump_or_tail_the_job(cluster, vigild):
    jid = cluster.sbatch(job_script("--n 16 --steps 20 --emit-every 5"), user=ALICE)
    assert cluster.wait_job(jid, timeout=60) == "COMPLETED"
    final_of(cluster, jid)
    path = dump_of(vigild, jid)
    assert path.stat().st_mode & 0o777 == 0o600
    r = h5py_read(cluster, path, "print(len(f))", user="vigil-bob")
    assert r.returncode != 0 and "ermission denied" in r.stderr, r.stderr
    assert h5py_read(cluster, path, "print(len(f))", user=ALICE).returncode == 0
    r = vigil(cluster, "tail", str(jid), user="vigil-bob", check=False, as_json=False)
    assert r.returncode != 0 and "not yours" in r.stderr


def test_a_nan_rule_stops_the_run_with_the_value_on_its_timeline(cluster, vigild):
    jid = cluster.sbatch(job_script("--n 16 --steps 100000 --emit-every 5 --sleep-ms 10 --nan-at 60",
                                    "#SBATCH --vigil-rules=nan@stop"), user=ALICE)
    assert cluster.wait_job(jid, timeout=90) == "CANCELLED"
    tl = timeline(cluster, jid)
    fired = [e["attrs"] for e in tl if e["type"] == "rule_fired"]
    assert len(fired) == 1, fired
    assert fired[0]["rule"] == "nan@stop" and fired[0]["value"] == "nan" and fired[0]["step"] == 60
    stops = [e["attrs"]["what"] for e in tl if e["type"] == "stop"]
    assert stops == ["requested", "cancelled"]
    wait_for(lambda: vigil(cluster, "show", str(jid), user=ALICE)["state"] == "STOPPED", what="STOPPED")
    assert final_of(cluster, jid)["ok"]


def test_bad_rules_are_rejected_at_submit_time(cluster):
    r = cluster.run(["sbatch", "--vigil-rules=residual>>3", "--wrap", "true"], user=ALICE, check=False)
    assert r.returncode != 0
    assert "--vigil-rules" in r.stderr and "threshold" in r.stderr, r.stderr


def tail_metrics(cluster, jid, user=ALICE):
    r = vigil(cluster, "tail", str(jid), user=user, check=False)
    return r["metrics"] if isinstance(r, dict) else None


def test_stop_and_gather_a_running_job(cluster, vigild):
    jid = cluster.sbatch(job_script("--n 32 --steps 100000 --emit-every 10 --sleep-ms 5"), user=ALICE)
    wait_for(lambda: tail_metrics(cluster, jid), timeout=30, what="first results")
    r = vigil(cluster, "stop", str(jid), "--gather", "--timeout", "20", user=ALICE, as_json=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checkpoint reported" in r.stdout and "sha256" in r.stdout, r.stdout
    assert cluster.wait_job(jid, timeout=30) == "CANCELLED"
    tl = timeline(cluster, jid)
    ckpts = [e["attrs"] for e in tl if e["type"] == "checkpoint"]
    assert ckpts and Path(ckpts[-1]["path"]).exists()
    final = final_of(cluster, jid)
    assert final["last_step"] >= ckpts[-1]["step"]
    assert vigil(cluster, "show", str(jid), user=ALICE)["state"] == "STOPPED"
    # bob may not stop alice's job
    jid2 = cluster.sbatch(job_script("--n 16 --steps 100000 --sleep-ms 10"), user=ALICE)
    # Running, and known to vigild (its start reaches vigild through the node's relay).
    wait_for(lambda: cluster.job_state(jid2) == "RUNNING" and
             isinstance(vigil(cluster, "show", str(jid2), user=ALICE, check=False), dict), what="second job running")
    r = vigil(cluster, "stop", str(jid2), user="vigil-bob", check=False, as_json=False)
    assert r.returncode != 0 and "not yours" in r.stderr
    vigil(cluster, "stop", str(jid2), user=ALICE, as_json=False)
    assert cluster.wait_job(jid2, timeout=30) == "CANCELLED"


def test_vigild_killed_mid_run_leaves_no_duplicate_or_missing_record(cluster, vigild):
    jid = cluster.sbatch(job_script("--n 16 --steps 600 --emit-every 1 --sleep-ms 8"), user=ALICE)
    wait_for(lambda: dump_of(vigild, jid).exists(), timeout=30, what="dump file")
    # Killed after some values left the store for the (synced) file, and with
    # more appended since: the file is reopened and cut back to its last sync.
    wait_for(lambda: vigil(cluster, "show", str(jid), user=ALICE)["results_in_dump_upto"] > 0,
             timeout=30, what="values leaving the store")
    time.sleep(0.5)
    vigild.kill()
    time.sleep(1.5)
    vigild.start()
    assert cluster.wait_job(jid, timeout=90) == "COMPLETED"
    assert metric(vigild, "vigil_result_resumed_total") >= 1
    assert metric(vigild, "vigil_result_lost_total") == 0
    final = final_of(cluster, jid, timeout=60)
    assert final["ok"] and final["records"] == 600 * 4 + 6  # and 6 snapshots
    assert vigil(cluster, "show", str(jid), user=ALICE)["results"] == final["records"]
    r = h5py_read(cluster, dump_of(vigild, jid),
                  "print(json.dumps({k: list(map(int, f['/stages/main/' + k]['step'])) "
                  "for k in ('total_heat', 'residual')}))")
    assert r.returncode == 0, r.stderr
    for name, steps in json.loads(r.stdout).items():
        assert steps == list(range(1, 601)), f"{name}: {len(steps)} rows, duplicates or gaps"
    # Every value is in the file only now; vigil tail reads it from there.
    tail = vigil(cluster, "tail", str(jid), user=ALICE)
    assert tail["metrics"]["main/total_heat"]["count"] == 600


def test_python_and_shell_simulations_report_through_the_sdk(cluster, vigild):
    """The Python sample (numpy + the `vigil` module) and the C++ one compute the
    same field, so their dumps hold the same values; the shell SDK emits a
    scalar, an array and a checkpoint."""
    args = "--n 24 --steps 200 --emit-every 10 --snapshot-every 100"
    cpp = cluster.sbatch(job_script(args), user=ALICE)
    py = cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 1
mkdir -p ckpt-$SLURM_JOB_ID
srun /usr/bin/python3 {HEAT2D_PY} --checkpoint-dir ckpt-$SLURM_JOB_ID {args}
""", user=ALICE)
    sh = cluster.sbatch(f"""#!/bin/bash
#SBATCH -N 1
srun bash -c '{VIGIL_CLI} emit loss 0.5 --step 1 --stage train --units 1 &&
  {VIGIL_CLI} emit loss -0.25 --step 2 --stage train &&
  {VIGIL_CLI} emit grid 1 2 3 4 5 6 --dims 2x3 --step 2 &&
  echo x > ckpt.dat && {VIGIL_CLI} report-checkpoint $PWD/ckpt.dat --step 2'
""", user=ALICE)
    for jid in (cpp, py, sh):
        assert cluster.wait_job(jid, timeout=90) == "COMPLETED", cluster.job_output(jid)
    finals = {jid: final_of(cluster, jid) for jid in (cpp, py, sh)}
    assert finals[cpp]["records"] == finals[py]["records"] == 20 * 4 + 2
    read = "print(json.dumps({k: [float(x) for x in f['/stages/main/' + k]['value']] for k in ('total_heat', 'residual')}))"
    values = [json.loads(h5py_read(cluster, dump_of(vigild, j), read).stdout) for j in (cpp, py)]
    assert values[0] == values[1], "C++ and Python simulations dump identical values"
    r = h5py_read(cluster, dump_of(vigild, sh),
                  "print(json.dumps([list(map(float, f['/stages/train/loss']['value'])), "
                  "f['/stages/main/grid/values'][0].tolist(), f['/stages/train/loss'].attrs['units'].decode()]))")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [[0.5, -0.25], [[1, 2, 3], [4, 5, 6]], "1"]
    assert [e["attrs"]["step"] for e in timeline(cluster, sh) if e["type"] == "checkpoint"] == [2]
