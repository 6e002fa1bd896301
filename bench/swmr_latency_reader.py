"""swmr_latency_reader.py — how long after `emit` a value is visible to an
independent h5py reader in SWMR mode.

Usage: swmr_latency_reader.py FILE DATASET SECONDS
Opens FILE (waiting for it) read-only with swmr=True and finds DATASET there or,
as docs/user/results.md tells users, in one of the segment files the main file
lists in /vigil/segments (a metric whose first value reached vigild in a later
commit than the first values of the others lives in a segment). Then refreshes
DATASET every 2 ms, and for every new row computes now - wall_time (wall_time
is the moment the simulation called emit, recorded by the SDK; same host, same
clock). Prints one JSON object: the latencies in ms in arrival order, and
which file held the dataset.
"""
import json
import os
import sys
import time

import h5py


def open_swmr(path):
    return h5py.File(path, "r", libver="latest", swmr=True)


def find(path, name):
    """(file, dataset, where) or None: the main file first, then its segments."""
    f = open_swmr(path)
    if name in f:
        return f, f[name], os.path.basename(path)
    segs = []
    if "/vigil/segments" in f:
        d = f["/vigil/segments"]
        d.refresh()
        segs = [s.decode().rstrip("\0") if isinstance(s, bytes) else str(s) for s in d[()]]
    f.close()
    for seg in segs:
        g = open_swmr(os.path.join(os.path.dirname(path), seg))
        if name in g:
            return g, g[name], seg
        g.close()
    return None


def main():
    path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + seconds + 30
    found = None
    while found is None:
        try:
            found = find(path, name)
        except OSError:
            found = None
        if found is None:
            if time.monotonic() > deadline:
                print(json.dumps({"error": f"{path}:{name} never appeared", "latency_ms": []}))
                return 1
            time.sleep(0.01)
    f, ds, where = found
    end = time.monotonic() + seconds
    seen, lat = 0, []
    while time.monotonic() < end:
        ds.refresh()
        n = ds.shape[0]
        if n > seen:
            rows = ds[seen:n]
            now = time.time()
            lat.extend(round((now - w) * 1000.0, 3) for w in rows["wall_time"])
            seen = n
        time.sleep(0.002)
    f.close()
    print(json.dumps({"error": None, "latency_ms": lat, "file": where}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
