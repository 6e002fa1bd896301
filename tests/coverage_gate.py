"""coverage_gate.py — one line coverage figure over a set of files, as a CI test.

Reads gcovr's --json-summary, adds up the lines of every file whose path
(relative to the repo root, as gcovr writes it) matches one of the regexes, and
writes a JUnit XML file with one testcase, "coverage", that fails when the
combined line coverage is below MIN percent — or when no file matched, since a
gate over nothing would pass forever after a rename.

Usage: coverage_gate.py SUMMARY_JSON JUNIT_XML MIN REGEX...
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

summary, out_xml, minimum, patterns = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]


def gate():
    files = json.loads(summary.read_text())["files"]
    chosen = [f for f in files if any(re.search(p, f["filename"]) for p in patterns)]
    unmatched = [p for p in patterns if not any(re.search(p, f["filename"]) for f in files)]
    if unmatched:
        return None, f"no covered file matches {', '.join(unmatched)}: update COVERAGE_GATE in scripts/test"
    covered = sum(f["line_covered"] for f in chosen)
    total = sum(f["line_total"] for f in chosen)
    pct = 100.0 * covered / total if total else 0.0
    names = ", ".join(Path(f["filename"]).name for f in chosen)
    line = f"checkpoint and recovery code: {pct:.1f} % of {total} lines ({covered} covered; {names}); gate {minimum:g} %"
    return pct, line


try:
    pct, line = gate()
except (OSError, ValueError, KeyError) as e:
    pct, line = None, f"no coverage summary ({e})"
print(line)
suite = ET.Element("testsuite", name="coverage", tests="1")
case = ET.SubElement(suite, "testcase", classname="coverage", name="coverage")
ok = pct is not None and pct >= minimum
if not ok:
    ET.SubElement(case, "failure", message=line).text = line
suite.set("failures", "0" if ok else "1")
ET.ElementTree(suite).write(out_xml, encoding="unicode", xml_declaration=True)
sys.exit(0 if ok else 1)
