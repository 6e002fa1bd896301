"""demo_summary.py SHOW_JSON TAIL_JSON — what the demo highlights from `vigil --json
show JOB` (the timeline) and `vigil --json tail JOB` (the results)."""
import json
import sys

job = json.load(open(sys.argv[1]))
tail = json.load(open(sys.argv[2]))
tl = job["timeline"]
start = next(e for e in tl if e["type"] == "step_start" and e["node"] == "n2")
print("hardware reported by node n2 for step 0:")
for key, value in sorted(start["attrs"]["hardware"].items()):
    print(f"  {key:12} {value}")
steps = [s for s in job.get("steps", []) if s["heartbeats"] > 0]
beats = sum(s["heartbeats"] for s in steps)
nodes = ", ".join(sorted({s["node"] for s in steps}))
cpu = sum(s["cpu_s"] for s in steps)
print(f"\n{job['results']} result values; {beats} heartbeats from nodes {nodes} ({cpu:.1f} CPU-seconds)")
for name, m in sorted(tail["metrics"].items()):
    print(f"  {name:16} {m['count']:4d} values, latest {m['latest']:.6f} at step {m['step']}")
