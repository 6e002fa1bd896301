"""plugin_overhead.py — step launch latency with and without the Vigil plugin.

One cluster, one vigild; plugstack.conf is swapped between the Vigil line and an
empty file before each launch (srun and slurmstepd read it at every step), so
both variants see the same machine state, interleaved: A B B A A B ...
Reports the median ratio (with plugin / without) for `srun -N1 true` and a
3-node `srun -N3 true`, and slurmstepd CPU per heartbeat from a 1 s-heartbeat job.

Usage: plugin_overhead.py CLUSTER_DIR ROUNDS
"""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from vigil_cluster import Cluster  # noqa: E402

cdir = Path(sys.argv[1])
rounds = int(sys.argv[2])
env = Cluster(cdir).attach().env
plugstack = cdir / "etc" / "plugstack.conf"
with_plugin = plugstack.read_text()
if os.environ.get("VIGIL_BENCH_PLUGIN_EXTRA"):  # diagnosis: extra plugstack arguments, e.g. transport=/nonexistent
    with_plugin = "\n".join(line + " " + os.environ["VIGIL_BENCH_PLUGIN_EXTRA"] if "vigil.so" in line else line
                             for line in with_plugin.splitlines()) + "\n"
without = "# empty: plugin-overhead baseline\n"


def set_plugstack(text):
    tmp = plugstack.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(plugstack)


GAP_S = float(os.environ.get("VIGIL_BENCH_GAP_S", "0"))  # idle time before each launch (diagnosis)


def launch(nodes):
    if GAP_S:
        time.sleep(GAP_S)
    t0 = time.perf_counter()
    subprocess.run(["srun", f"-N{nodes}", "true"], env=env, check=True, capture_output=True,
                   cwd=str(cdir / "jobs"))
    return time.perf_counter() - t0


results = {}
for nodes in (1, 3):
    a, b = [], []
    launch(nodes)  # warm-up
    for i in range(rounds):
        order = [(with_plugin, a), (without, b)] if i % 2 == 0 else [(without, b), (with_plugin, a)]
        for text, sink in order:
            set_plugstack(text)
            sink.append(launch(nodes))
    set_plugstack(with_plugin)
    ratio = statistics.median(a) / statistics.median(b)
    results[f"srun_N{nodes}"] = {"median_with_s": round(statistics.median(a), 4),
                                 "median_without_s": round(statistics.median(b), 4),
                                 "ratio": round(ratio, 4), "rounds": rounds}
    print(json.dumps({f"srun_N{nodes}": results[f"srun_N{nodes}"]}), flush=True)

# slurmstepd CPU per heartbeat: a 1-node step sleeping 20 s (VIGIL_BENCH_STEPD_SECONDS)
# with 1 s heartbeats, versus the same step without the plugin; difference / heartbeats.
STEPD_SECONDS = max(6, int(os.environ.get("VIGIL_BENCH_STEPD_SECONDS", "20")))  # window: 4 s less


def stepd_cpu(text, seconds=STEPD_SECONDS):
    set_plugstack(text)
    p = subprocess.Popen(["srun", "-N1", "-w", "n1", "--vigil-heartbeat=1" if text == with_plugin else "-Q",
                          "sleep", str(seconds)], env=env, cwd=str(cdir / "jobs"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    pids = subprocess.run(["pgrep", "-f", "slurmstepd: \\[[0-9]+\\.[0-9]+\\]"], capture_output=True, text=True).stdout.split()
    def ticks():
        total = 0
        for pid in pids:
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
            except (OSError, IndexError):
                pass
        return total
    t0 = ticks()
    time.sleep(seconds - 4)
    t1 = ticks()
    p.wait()
    set_plugstack(with_plugin)
    return (t1 - t0) / os.sysconf("SC_CLK_TCK"), seconds - 4


cpu_with, span = stepd_cpu(with_plugin)
cpu_without, _ = stepd_cpu(without)
per_hb_ms = max(cpu_with - cpu_without, 0) / span * 1000
print(json.dumps({"slurmstepd_cpu_s_with": cpu_with, "slurmstepd_cpu_s_without": cpu_without,
                  "window_s": span, "cpu_ms_per_heartbeat": round(per_hb_ms, 3)}), flush=True)
worst = max(results["srun_N1"]["ratio"], results["srun_N3"]["ratio"])
print(json.dumps({"bench": "plugin-overhead", "value": worst, "unit": "ratio (median step launch, with/without plugin, worse of -N1 and -N3)",
                  "goal": "<= 1.05"}))
