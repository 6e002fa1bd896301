"""The built vigil.so exports exactly what Slurm looks up, with C linkage."""
import re
import subprocess

from vigil_cluster import PLUGIN

EXPECTED = {
    "plugin_name", "plugin_type", "plugin_version", "spank_plugin_version",
    "slurm_spank_init", "slurm_spank_init_post_opt", "slurm_spank_task_post_fork",
    "slurm_spank_task_exit", "slurm_spank_exit",
}


def test_exported_symbols_are_exactly_the_plugin_interface():
    out = subprocess.run(["nm", "-D", "--defined-only", str(PLUGIN)], capture_output=True, text=True,
                         check=True).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[1] in "TDRBVW"}
    exported = {s for s in exported if not s.startswith("_")}  # _init/_fini/__bss_start...
    assert exported == EXPECTED
    assert not any(s.startswith("_Z") for s in exported), "a C++-mangled symbol leaked"


def test_plugin_version_matches_the_slurm_headers():
    header = open("/usr/include/slurm/slurm_version.h").read()
    want = int(re.search(r"#define SLURM_VERSION_NUMBER (0x[0-9a-fA-F]+)", header).group(1), 16)
    out = subprocess.run(["gdb", "-batch", "-ex", "print/x plugin_version", str(PLUGIN)], capture_output=True,
                         text=True).stdout
    m = re.search(r"= (0x[0-9a-f]+)", out)
    assert m, out
    assert int(m.group(1), 16) == want


def test_plugin_loads_no_heavy_library():
    """Slurm loads vigil.so into every sbatch/srun/slurmstepd: it must not pull in
    libzmq, libcrypto, libmunge or libstdc++.so (each costs milliseconds per
    process); the reporter dlopen()s vigil_transport.so, which has them."""
    deps = subprocess.run(["ldd", str(PLUGIN)], capture_output=True, text=True, check=True).stdout
    for heavy in ("libzmq", "libcrypto", "libmunge", "libstdc++"):
        assert heavy not in deps, f"vigil.so depends on {heavy}:\n{deps}"
    transport = PLUGIN.parent / "vigil_transport.so"
    out = subprocess.run(["nm", "-D", "--defined-only", str(transport)], capture_output=True, text=True,
                         check=True).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[1] == "T"}
    assert exported == {"vigil_transport_open", "vigil_transport_send", "vigil_transport_request", "vigil_transport_free",
                        "vigil_transport_close"}
