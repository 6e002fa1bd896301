"""vigild's HTTP/JSON API and Prometheus /metrics, read by tools nobody here wrote
(urllib, prometheus_client's parser, the munge CLI for credentials)."""
import json
import subprocess
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from vigil_cluster import vigil, wait_for

NODES = 2


def credential(cluster, user=None):
    cmd = ["munge", "-n", "-S", cluster.munge_socket]
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def get(vigild, path, cred=None):
    req = urllib.request.Request(vigild.http + path)
    if cred:
        req.add_header("Authorization", "MUNGE " + cred)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read().decode()
            return r.status, (json.loads(body) if r.headers.get_content_type() == "application/json" else body)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def test_health_and_metrics(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\n#SBATCH -N2\n#SBATCH --vigil-heartbeat=1\nsrun sleep 3\n")
    wait_for(lambda: len(vigil(cluster, "nodes")) == 2, timeout=30, what="two nodes watched")
    status, health = get(vigild, "/v1/health")
    assert status == 200 and health["status"] == "ok"
    status, text = get(vigild, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("vigil_events_stored", "vigil_rejected", "vigil_ack_latency_seconds", "vigil_node_heartbeat_age_seconds",
                 "vigil_jobs", "vigil_intake_queue_frames", "vigil_intake_queue_age_seconds", "vigil_sessions"):
        assert name in families, f"{name} missing; have {sorted(families)}"
    stored = next(s.value for s in families["vigil_events_stored"].samples if s.name == "vigil_events_stored_total")
    assert stored > 0
    ages = {s.labels["node"]: s.value for s in families["vigil_node_heartbeat_age_seconds"].samples}
    assert set(ages) == {"n1", "n2"} and all(0 <= a < 3 for a in ages.values())
    count = next(s.value for s in families["vigil_ack_latency_seconds"].samples
                 if s.name == "vigil_ack_latency_seconds_count")
    assert count > 0
    assert cluster.wait_job(jid) == "COMPLETED"


def test_reads_are_authenticated_and_scoped(cluster, vigild):
    jid = cluster.sbatch("#!/bin/bash\nsleep 1\n", user="vigil-alice")
    assert cluster.wait_job(jid) == "COMPLETED"
    wait_for(lambda: vigil(cluster, "show", str(jid))["state"] == "COMPLETED", what="job known")
    # no credential
    status, body = get(vigild, "/v1/jobs")
    assert status == 401 and body["error"] == "unauthenticated"
    # alice sees her job with its timeline and hardware
    status, job = get(vigild, f"/v1/jobs/{jid}", credential(cluster, "vigil-alice"))
    assert status == 200 and job["user"] == "vigil-alice" and job["state"] == "COMPLETED"
    start = next(e for e in job["timeline"] if e["type"] == "job_start")
    assert start["attrs"]["hardware"]["cpu_model"]
    assert [t["to"] for t in job["transitions"]][-1] == "COMPLETED"
    status, jobs = get(vigild, "/v1/jobs", credential(cluster, "vigil-alice"))
    assert status == 200 and {j["job"] for j in jobs} == {jid}
    # bob may not
    status, body = get(vigild, f"/v1/jobs/{jid}", credential(cluster, "vigil-bob"))
    assert status == 403 and body["error"] == "denied"
    status, jobs = get(vigild, "/v1/jobs", credential(cluster, "vigil-bob"))
    assert status == 200 and jobs == []
    # root (admin) sees everything; a replayed credential is refused
    cred = credential(cluster)
    status, jobs = get(vigild, "/v1/jobs", cred)
    assert status == 200 and jid in {j["job"] for j in jobs}
    status, body = get(vigild, "/v1/jobs", cred)
    assert status == 401 and body["error"] == "replayed"
    status, body = get(vigild, "/v1/nowhere")
    assert status == 404
