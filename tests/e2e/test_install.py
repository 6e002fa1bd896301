"""cmake --install puts every deliverable where a site expects it (staged with DESTDIR)."""
import os
import subprocess
import tempfile
from pathlib import Path

from vigil_cluster import BUILD


def test_install_stages_every_component():
    stage = Path(tempfile.mkdtemp(prefix="vigil-install-"))
    subprocess.run(["cmake", "--install", str(BUILD)], check=True, capture_output=True,
                   env=dict(os.environ, DESTDIR=str(stage)))
    files = {str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() or p.is_symlink()}
    cache = subprocess.run(["cmake", "-L", "-N", str(BUILD)], capture_output=True, text=True, check=True).stdout
    var = dict(l.split("=", 1) for l in cache.splitlines() if "=" in l)
    plugin_dir = var["VIGIL_SLURM_PLUGIN_DIR:STRING"]
    if not plugin_dir.startswith("/"):
        plugin_dir = var["CMAKE_INSTALL_PREFIX:PATH"] + "/" + plugin_dir
    assert plugin_dir.lstrip("/") + "/vigil.so" in files, sorted(files)
    assert plugin_dir.lstrip("/") + "/vigil_transport.so" in files, sorted(files)
    for suffix in ("/sbin/vigild", "/bin/vigil", "/include/vigil/sdk.h", "/vigil/vigild.yaml.example",
                   "/systemd/system/vigild.service", "/share/vigil/slurm-conf/plugstack.conf.d/vigil.conf",
                   "/sbin/vigil-relay", "/systemd/system/vigil-relay.service"):
        assert any(f.endswith(suffix) for f in files), f"nothing installed ending in {suffix}: {sorted(files)}"
    assert any("/libvigil.so" in f for f in files)
    subprocess.run(["rm", "-rf", str(stage)], check=True)
