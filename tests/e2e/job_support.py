"""Helpers shared by the end-to-end tests that run the sample simulation
(heat2d) under Vigil: reference digests, the job's timeline, its nodes."""
import re
import subprocess

from vigil_cluster import BUILD, vigil, wait_for

HEAT2D = BUILD / "sdk" / "vigil_example_heat2d"
ALICE = "vigil-alice"


def reference_sha(args):
    """The final field's digest of an uninterrupted run without Vigil."""
    out = subprocess.run([str(HEAT2D), *args.split(), "--checkpoint-every", "0"], capture_output=True, text=True,
                         check=True, cwd="/tmp").stdout
    return re.search(r"sha256=(\w+)", out).group(1)


def timeline(cluster, jid, user=ALICE):
    r = vigil(cluster, "show", str(jid), user=user, check=False)
    return r["timeline"] if isinstance(r, dict) else []  # [] until vigild has heard of the job


def of_type(tl, kind):
    return [e for e in tl if e["type"] == kind]


def verified(cluster, jid, n):
    """The job's kept verified checkpoints, once n have been verified in all: a
    pruned one's verification is folded into its checkpoint_pruned (ADR 0019)."""
    tl = timeline(cluster, jid)
    ok = [e for e in of_type(tl, "checkpoint_verified") if e["attrs"]["ok"]]
    return ok if len(ok) + len(of_type(tl, "checkpoint_pruned")) >= n else None


def job_nodes(cluster, jid):
    r = cluster.run(["scontrol", "show", "job", "-o", str(jid)])
    return re.search(r" NodeList=(\S+)", r.stdout).group(1)


def expand(nodelist):
    """n[1-2,4] -> ['n1', 'n2', 'n4'] (the test cluster's names only)."""
    m = re.fullmatch(r"n\[([\d,-]+)\]", nodelist)
    if not m:
        return nodelist.split(",")
    out = []
    for part in m.group(1).split(","):
        lo, _, hi = part.partition("-")
        out += [f"n{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def final_state(cluster, jid, want, user=ALICE):
    return wait_for(lambda: (lambda j: j if j["state"] == want else None)(
        vigil(cluster, "show", str(jid), user=user)), what=f"vigild's state {want}")
