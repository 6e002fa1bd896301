"""swmr_latency_reader.py — how long after `emit` a value is visible to an
independent h5py reader in SWMR mode.

Usage: swmr_latency_reader.py FILE DATASET SECONDS
Opens FILE (waiting for it) read-only with swmr=True, refreshes DATASET every
2 ms, and for every new row computes now - wall_time (wall_time is the moment
the simulation called emit, recorded by the SDK; same host, same clock). Prints
one JSON object: the latencies in ms, in arrival order.
"""
import json
import sys
import time

import h5py


def main():
    path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + seconds + 30
    f = None
    while f is None:
        try:
            f = h5py.File(path, "r", libver="latest", swmr=True)
            ds = f[name]
        except (OSError, KeyError):
            if f is not None:
                f.close()
            f = None
            if time.monotonic() > deadline:
                print(json.dumps({"error": f"{path}:{name} never appeared", "latency_ms": []}))
                return 1
            time.sleep(0.01)
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
    print(json.dumps({"error": None, "latency_ms": lat}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
