"""Fixtures: a real cluster + vigild per test module, always torn down."""
import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from vigil_cluster import PLUGIN, VIGILD, Cluster, Vigild

# Each module gets its own port range so a lingering socket of the previous
# module can never be mistaken for this one's daemons.
_ports = itertools.count(int(os.environ.get("VIGIL_E2E_PORT_BASE", "21000")), 200)


@pytest.fixture(scope="module")
def cluster(request):
    for binary in (PLUGIN, VIGILD):
        if not binary.exists():
            pytest.fail(f"{binary} is missing: build first (scripts/build)")
    base = Path(os.environ.get("VIGIL_E2E_DIR", "/tmp"))
    d = Path(tempfile.mkdtemp(prefix=f"vigil-e2e-{request.module.__name__}-", dir=base))
    d.chmod(0o755)  # test users must reach slurm.conf and the munge socket
    nodes = getattr(request.module, "NODES", 3)
    c = Cluster(d, nodes=nodes, port_base=next(_ports), plugin_args=getattr(request.module, "PLUGIN_ARGS", ""))
    c.vigild_config = getattr(request.module, "VIGILD_CONFIG", None)
    try:
        c.up()
        yield c
    finally:
        r = c.down()
        if r.returncode != 0:
            print(r.stdout, r.stderr)
        failed = request.session.testsfailed
        if failed:
            print(f"cluster logs kept in {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def vigild(cluster):
    v = Vigild(cluster, getattr(cluster, "vigild_config", None)).start()
    try:
        yield v
    finally:
        v.stop()
