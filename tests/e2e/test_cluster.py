"""The local cluster itself: real slurmctld + 3 slurmd + private munged, plugin loaded."""
import os
import shutil
import re
import subprocess
import tempfile
from pathlib import Path

from vigil_cluster import CLUSTER, PLUGIN, Cluster

OPTIONS = ["--vigil-heartbeat", "--vigil-checkpoint", "--vigil-checkpoint-signal", "--vigil-results",
           "--vigil-results-dir", "--vigil-retries", "--vigil-protect", "--vigil-label", "--vigil-keep-checkpoints"]


def test_three_idle_nodes(cluster):
    assert cluster.sinfo_states() == {"n1": "idle", "n2": "idle", "n3": "idle"}


def test_srun_reaches_every_node(cluster):
    r = cluster.run(["srun", "-N3", "-l", "printenv", "SLURMD_NODENAME"], timeout=60)
    names = sorted(line.split(":", 1)[1].strip() for line in r.stdout.splitlines())
    assert names == ["n1", "n2", "n3"]


def test_sbatch_help_lists_plugin_options(cluster):
    r = cluster.run(["sbatch", "--help"])
    assert "Options provided by plugins:" in r.stdout
    section = r.stdout.split("Options provided by plugins:", 1)[1]
    for opt in OPTIONS:
        assert opt in section, f"{opt} missing from sbatch --help"


def test_invalid_option_rejected_at_submit_time(cluster):
    r = cluster.run(["sbatch", "--vigil-heartbeat=0", "--wrap", "true"], check=False)
    assert r.returncode != 0
    assert "--vigil-heartbeat: invalid value '0'; expected whole seconds in [1, 3600]" in r.stderr
    # the same through an #SBATCH line
    script = cluster.dir / "jobs" / "bad.sh"
    script.write_text("#!/bin/bash\n#SBATCH --vigil-checkpoint=soon\ntrue\n")
    r = cluster.run(["sbatch", str(script)], check=False)
    assert r.returncode != 0
    assert "--vigil-checkpoint: invalid value 'soon'" in r.stderr
    # and through the environment
    r = cluster.run(["sbatch", "--wrap", "true"], check=False, env={"SBATCH_VIGIL_RETRIES": "many"})
    assert r.returncode != 0
    assert "--vigil-retries: invalid value 'many'" in r.stderr
    # srun rejects too
    r = cluster.run(["srun", "--vigil-results=maybe", "true"], check=False)
    assert r.returncode != 0
    assert "--vigil-results: invalid value 'maybe'; expected on or off" in r.stderr


def test_job_of_a_test_user_runs_as_that_user(cluster):
    jid = cluster.sbatch("#!/bin/bash\nid -un\n", user="vigil-alice")
    assert cluster.wait_job(jid) == "COMPLETED"
    assert cluster.job_output(jid).strip() == "vigil-alice"


def _cluster_processes(directory):
    """PIDs whose environment or command line names this cluster directory."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes()
            cmd = (p / "cmdline").read_bytes()
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue  # exited, waiting for a late reaper
        if str(directory).encode() in env or str(directory).encode() in cmd:
            found.append(int(p.name))
    return found


def test_down_leaves_no_process_behind():
    d = Path(tempfile.mkdtemp(prefix="vigil-e2e-down-", dir="/tmp"))
    d.chmod(0o755)
    c = Cluster(d, nodes=2, port_base=16000).up()
    try:
        # a job still running when the cluster goes down
        jid = c.sbatch("#!/bin/bash\nsleep 300\n")
        c.run(["scontrol", "wait_job", str(jid)], check=False, timeout=30)
        assert _cluster_processes(d), "expected cluster processes while up"
    finally:
        r = c.down()
    assert r.returncode == 0, r.stderr
    assert _cluster_processes(d) == []
    r = subprocess.run([str(CLUSTER), "status", "--dir", str(d)], capture_output=True, text=True)
    assert r.returncode != 0
    shutil.rmtree(d, ignore_errors=True)
