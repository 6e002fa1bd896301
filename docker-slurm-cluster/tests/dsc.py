"""dsc.py — drive a docker-slurm-cluster from pytest (smoke and chaos tests).

A `Cluster` is one release's cluster: `up()` runs ../up, `exec()` runs a
command in one of its containers (db, head, c1..c3), `sbatch()`/`wait_job()`
talk to its slurmctld, `vigil()` to its vigild, and `state` is the host
directory the containers share (results, logs, vigild's database).
Docker, the images and the cluster are real; a test that cannot get them fails.
"""
import json
import os
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def wait_for(fn, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Cluster:
    def __init__(self, release):
        self.release = release
        self.project = "vigil-dsc-" + release.replace(".", "")
        self.net = "172.31." + release.split(".")[0]
        self.state = Path(os.environ.get("VIGIL_DSC_STATE", "/tmp/vigil-dsc")) / release

    def _env(self):
        return dict(os.environ, RELEASE=self.release, NET=self.net, STATE=str(self.state))

    def script(self, name, *args, timeout=1800, check=True):
        r = subprocess.run([str(HERE / name), self.release, *args], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"docker-slurm-cluster/{name} {self.release} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def up(self, *args):
        return self.script("up", *args)

    def down(self):
        return self.script("down", check=False)

    def container(self, svc):
        r = subprocess.run(["docker-compose", "--ansi", "never", "-p", self.project, "-f", str(HERE / "compose.yml"),
                            "ps", "-q", svc], capture_output=True, text=True, env=self._env())
        cid = r.stdout.strip()
        assert cid, f"no container for {svc}: {r.stderr}"
        return cid

    def exec(self, svc, cmd, check=True, timeout=60, user=None):
        argv = ["docker", "exec"] + (["-u", user] if user else []) + [self.container(svc)] + list(cmd)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{svc}: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def sbatch(self, script_text, *opts):
        path = self.state / "shared" / f"job-{time.monotonic_ns()}.sh"
        path.write_text(script_text)
        path.chmod(0o755)
        r = self.exec("head", ["sbatch", "--parsable", "-D", "/dsc/state/shared", *opts, f"/dsc/state/shared/{path.name}"])
        return int(r.stdout.strip().split(";")[0])

    def job_state(self, jid):
        r = self.exec("head", ["scontrol", "-o", "show", "job", str(jid)], check=False)
        for field in r.stdout.split():
            if field.startswith("JobState="):
                return field.split("=", 1)[1]
        return None

    def wait_job(self, jid, timeout=120):
        done = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
        return wait_for(lambda: (s := self.job_state(jid)) in done and s, timeout, f"job {jid} to end")

    def vigil(self, *args, check=True):
        r = self.exec("head", ["vigil", "--endpoint", "tcp://127.0.0.1:7100", "--json", *args], check=check)
        return json.loads(r.stdout) if r.returncode == 0 else r

    # ---------------------------------------------------------------- chaos

    def docker(self, *args, check=True):
        r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {r.stderr}")
        return r

    def health(self, svc):
        r = self.docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                        self.container(svc), check=False)
        return r.stdout.strip()

    def wait_healthy(self, svc, timeout=120):
        return wait_for(lambda: self.health(svc) == "healthy", timeout, f"{svc} healthy")

    def node_state(self, node):
        r = self.exec("head", ["sinfo", "-h", "-N", "-n", node, "-o", "%t"], check=False)
        return r.stdout.strip()

    def revive(self, node):
        """A compute container that was killed: started again, healthy, and
        given back to Slurm."""
        if self.health(node) != "healthy":
            self.docker("start", self.container(node), check=False)
            self.wait_healthy(node)
        self.exec("head", ["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
        wait_for(lambda: self.node_state(node) in ("idle", "mix", "alloc"), 60, f"{node} back in Slurm")

    def pids(self, svc, pattern):
        r = self.exec(svc, ["pgrep", "-f", pattern], check=False)
        return [int(p) for p in r.stdout.split()]

    def job_output(self, jid):
        return (self.state / "shared" / f"slurm-{jid}.out").read_text()
