"""The version matrix's smoke job: on each release's cluster (Vigil built
inside against that release), a 3-node job with Vigil options and results
runs to the end, vigild has heard every node, and the HDF5 dump holds every
value, read on the host by h5dump and h5py.

Releases: VIGIL_DSC_RELEASES (space-separated; default every line of
docker-slurm-cluster/releases).
"""
import json
import os
import subprocess

import pytest

from dsc import HERE, Cluster, wait_for

RELEASES = os.environ.get("VIGIL_DSC_RELEASES", "").split() or [
    line.split()[0] for line in (HERE / "releases").read_text().splitlines() if line.strip() and not line.startswith("#")]

JOB = """#!/bin/bash
#SBATCH -N 3 --vigil-heartbeat=2 --vigil-label=smoke/one
srun -N3 sleep 8 &
for i in 1 2 3 4 5; do vigil emit --step $i energy $((i * i)); sleep 1; done
wait
"""


@pytest.fixture(params=RELEASES, scope="module")
def cluster(request):
    c = Cluster(request.param)
    c.up()
    yield c
    c.down()


def test_a_three_node_job_reports_from_every_node_and_its_dump_holds_every_value(cluster):
    jid = cluster.sbatch(JOB)
    assert cluster.wait_job(jid, timeout=120) == "COMPLETED"
    show = wait_for(lambda: (s := cluster.vigil("show", str(jid))) and s["state"] == "COMPLETED" and s,
                    timeout=30, what=f"vigild to see job {jid} completed")
    beating = {s["node"] for s in show["steps"] if s["heartbeats"] > 0}
    assert beating == {"c1", "c2", "c3"}, show["steps"]
    final = wait_for(lambda: next((e["attrs"] for e in cluster.vigil("show", str(jid))["timeline"]
                                   if e["type"] == "results_final"), None), timeout=30, what="results_final")
    assert final["ok"] and final["records"] == 5, final
    # The dump is on the shared file system the host sees too: tools nobody
    # here wrote read it.
    path = cluster.state / "shared" / "results" / "root" / f"{jid}.h5"
    # h5dump of the release's own HDF5 in the container, h5py of the host's.
    dump = cluster.exec("head", ["h5dump", "-d", "/stages/main/energy", f"/dsc/state/shared/results/root/{jid}.h5"])
    assert "( 5 )" in dump.stdout, dump.stdout
    code = (f"import h5py, json; f = h5py.File({str(path)!r}, 'r'); d = f['/stages/main/energy']; "
            "print(json.dumps([list(map(int, d['step'])), list(map(float, d['value']))]))")
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [[1, 2, 3, 4, 5], [1.0, 4.0, 9.0, 16.0, 25.0]]
    # The plugin and vigild in this image were built against this release.
    ver = cluster.exec("head", ["scontrol", "--version"]).stdout.split()[1]
    assert ver.startswith(cluster.release), ver
