"""vigil_cluster.py — drive a real local Slurm cluster with Vigil for end-to-end tests.

`Cluster` wraps scripts/cluster (the same script the demo uses); `Vigild` runs the
real daemon from the build tree; `vigil()` runs the real CLI. Nothing here
imitates Slurm, MUNGE or vigild: a missing dependency makes the test fail.
"""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VIGIL_BUILD_DIR", REPO / "build"))
CLUSTER = REPO / "scripts" / "cluster"
VIGILD = BUILD / "controller" / "vigild"
VIGIL = BUILD / "cli" / "vigil"
PLUGIN = BUILD / "spank" / "vigil.so"

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}


class Cluster:
    def __init__(self, directory, nodes=3, port_base=17000, plugin=True, plugin_args=""):
        self.dir = Path(directory)
        self.nodes = nodes
        self.port_base = port_base
        self.plugin = plugin
        self.plugin_args = plugin_args
        self.env = None

    def _cmd(self, *args, check=True, timeout=120):
        return subprocess.run([str(CLUSTER), *args, "--dir", str(self.dir)], capture_output=True, text=True,
                              check=check, timeout=timeout)

    def up(self):
        args = ["up", "--nodes", str(self.nodes), "--port-base", str(self.port_base)]
        if self.plugin:
            args += ["--plugin", str(PLUGIN)]
            if self.plugin_args:
                args += ["--plugin-args", self.plugin_args]
        else:
            args.append("--no-plugin")
        r = self._cmd(*args, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/cluster up failed:\n{r.stdout}\n{r.stderr}")
        return self.attach()

    def attach(self):
        """Use a cluster that is already up: read its env file (SLURM_CONF, VIGIL_*)."""
        self.env = dict(os.environ)
        for line in (self.dir / "env").read_text().splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                self.env[m.group(1)] = m.group(2)
        return self

    def down(self):
        return self._cmd("down", check=False)

    def kill_node(self, node):
        return self._cmd("kill-node", node)

    def start_node(self, node):
        return self._cmd("start-node", node)

    @property
    def endpoint(self):
        return self.env["VIGIL_ENDPOINT"]

    @property
    def munge_socket(self):
        return self.env["VIGIL_MUNGE_SOCKET"]

    def run(self, cmd, user=None, check=True, timeout=60, env=None):
        """Run a Slurm client (or any command) against this cluster, optionally as a test user."""
        e = dict(self.env)
        e.update(env or {})
        if user:
            keep = ["SLURM_CONF", "VIGIL_ENDPOINT", "VIGIL_MUNGE_SOCKET", "PATH"] + list((env or {}).keys())
            cmd = ["runuser", "-u", user, "--", "env"] + [f"{k}={e[k]}" for k in keep if k in e] + list(cmd)
        return subprocess.run(list(cmd), capture_output=True, text=True, env=e, check=check, timeout=timeout,
                              cwd=str(self.dir / "jobs"))

    def sbatch(self, script, args=(), user=None, name="job"):
        path = self.dir / "jobs" / f"{name}-{time.monotonic_ns()}.sh"
        path.write_text(script)
        path.chmod(0o755)
        r = self.run(["sbatch", "--parsable", "-D", str(self.dir / "jobs"), *args, str(path)], user=user,
                     check=False)
        if r.returncode != 0:
            raise RuntimeError(f"sbatch failed ({r.returncode}): {r.stderr}")
        return int(r.stdout.strip().split(";")[0])

    def job_state(self, jobid):
        r = self.run(["scontrol", "show", "job", "-o", str(jobid)], check=False)
        m = re.search(r"JobState=(\S+)", r.stdout)
        return m.group(1) if m else None

    def wait_job(self, jobid, timeout=60):
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.job_state(jobid)
            if state in TERMINAL:
                return state
            time.sleep(0.2)
        raise TimeoutError(f"job {jobid} still {state} after {timeout}s")

    def job_output(self, jobid):
        return (self.dir / "jobs" / f"slurm-{jobid}.out").read_text()

    def sinfo_states(self):
        r = self.run(["sinfo", "-h", "-N", "-o", "%N %t"])
        return dict(line.split() for line in r.stdout.splitlines())


class Vigild:
    """The real vigild from the build tree, on the cluster's endpoint and munged."""

    def __init__(self, cluster, extra_config=None):
        self.cluster = cluster
        self.dir = cluster.dir / "vigild"
        self.dir.mkdir(exist_ok=True)
        self.db = self.dir / "vigild.db"
        self.config = self.dir / "vigild.yaml"
        self.config.write_text(f"listen: {cluster.endpoint}\nmunge_socket: {cluster.munge_socket}\n"
                               f"database: {self.db}\nlog_level: debug\nhttp_listen: 127.0.0.1:0\n"
                               f"results_dir: {self.dir / 'results'}\n"
                               f"{extra_config or ''}")
        self.log = self.dir / "vigild.log"
        self.proc = None

    def start(self):
        ready = self.dir / "ready"
        ready.unlink(missing_ok=True)
        logf = open(self.log, "a")
        # SLURM_CONF: vigild talks to this cluster's slurmctld (e.g. to drain a node).
        self.proc = subprocess.Popen([str(VIGILD), "-c", str(self.config), "--ready-file", str(ready)],
                                     stdout=logf, stderr=subprocess.STDOUT, env=self.cluster.env)
        deadline = time.monotonic() + 10
        while not (ready.exists() and len(ready.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vigild did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.http = "http://" + ready.read_text().splitlines()[1]  # the bound HTTP API
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)


def metric(vigild, name):
    """One unlabelled sample of vigild's Prometheus /metrics (0 when absent)."""
    import urllib.request
    with urllib.request.urlopen(vigild.http + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def vigil(cluster, *args, user=None, check=True, as_json=True, timeout=30):
    """Run the real `vigil` CLI; returns parsed JSON (or the CompletedProcess)."""
    cmd = [str(VIGIL), "--endpoint", cluster.endpoint, "--munge-socket", cluster.munge_socket]
    if as_json:
        cmd.append("--json")
    r = cluster.run(cmd + list(args), user=user, check=False, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"vigil {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    if as_json and r.returncode == 0:
        out = r.stdout.strip()
        if not out:
            return []  # `events --json` prints one object per line, so none is nothing
        if "\n" in out and not out.startswith(("[", "{\n")):
            return [json.loads(line) for line in out.splitlines()]
        return json.loads(out)
    return r


def heartbeats_from(cluster, jid):
    """Nodes that sent the job heartbeats (the job's steps rows: heartbeats are not timeline events)."""
    job = vigil(cluster, "show", str(jid), check=False)
    return {s["node"] for s in job.get("steps", []) if s["heartbeats"] > 0} if isinstance(job, dict) else set()


def wait_for(predicate, timeout=15, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
