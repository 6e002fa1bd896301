"""demo_summary.py — read `vigil --json show JOB` on stdin, print what the demo highlights."""
import json
import sys

tl = json.load(sys.stdin)["timeline"]
start = next(e for e in tl if e["type"] == "step_start" and e["node"] == "n2")
print("hardware reported by node n2 for step 0:")
for key, value in sorted(start["attrs"]["hardware"].items()):
    print(f"  {key:12} {value}")
results = [e for e in tl if e["type"] == "result"]
beats = [e for e in tl if e["type"] == "heartbeat"]
tasks = sorted({e["task"] for e in results})
nodes = ", ".join(sorted({e["node"] for e in beats}))
print(f"\n{len(results)} results from tasks {tasks}; {len(beats)} heartbeats from nodes {nodes}")
ys = [e for e in results if e["attrs"]["name"] == "y" and e["task"] == 0]
last = max(ys, key=lambda e: e["attrs"]["step"])
print(f"last y of task 0: step {last['attrs']['step']}, t = {last['attrs']['sim_t']:.2f}, y = {last['attrs']['v']:.6f}")
