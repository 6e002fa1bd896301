"""An independent HDF5 reader (h5py, SWMR mode) of a Vigil result dump.

Usage: swmr_reader.py FILE DATASET SECONDS
Waits for FILE, opens it read-only in SWMR mode, and every 50 ms refreshes
DATASET and records its length. Prints one JSON object: the lengths seen, the
steps of the last read, and any error. Run as the job's user.
"""
import json
import sys
import time

import h5py


def main():
    path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    out = {"lengths": [], "steps": [], "error": None}
    deadline = time.monotonic() + seconds
    f = None
    while time.monotonic() < deadline and f is None:
        try:
            f = h5py.File(path, "r", libver="latest", swmr=True)
            f[name]
        except (OSError, KeyError) as e:
            if f is not None:
                f.close()
            f = None
            out["error"] = f"waiting: {e}"
            time.sleep(0.05)
    if f is None:
        print(json.dumps(out))
        return 1
    out["error"] = None
    ds = f[name]
    while time.monotonic() < deadline:
        ds.refresh()
        n = ds.shape[0]
        if not out["lengths"] or out["lengths"][-1] != n:
            out["lengths"].append(n)
        time.sleep(0.05)
    ds.refresh()
    out["steps"] = [int(s) for s in ds["step"][:]] if ds.dtype.names else []
    f.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
