"""demo_h5_peek.py FILE SECONDS — print how a running job's total_heat dataset
grows, as seen by h5py in SWMR mode (an independent reader; refresh and poll)."""
import sys
import time

import h5py

path, seconds = sys.argv[1], float(sys.argv[2])
with h5py.File(path, "r", libver="latest", swmr=True) as f:
    ds = f["/stages/main/total_heat"]
    for _ in range(int(seconds)):
        ds.refresh()
        n = ds.shape[0]
        last = ds[n - 1] if n else None
        print(f"{n:5d} rows" + (f"   latest: step {last['step']}, value {last['value']:.6f}" if n else ""))
        time.sleep(1)
