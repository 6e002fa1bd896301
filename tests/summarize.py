"""summarize.py — add up JUnit XML results into the one line scripts/test ends with.

Usage: summarize.py RESULTS_DIR EXTRA_FAILED
Prints "N passed, N failed" and exits 1 if anything failed or no test ran.
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = 0
for xml in sorted(Path(sys.argv[1]).glob("*.xml")):
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        print(f"{xml.name}: unreadable ({e})")
        failed += 1
        continue
    p = f = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            f += 1
        elif case.find("skipped") is not None:
            # Nothing in Vigil's suite may skip: a missing dependency is a failure.
            f += 1
        else:
            p += 1
    print(f"{xml.stem:>6}: {p} passed, {f} failed")
    passed += p
    failed += f
failed += int(sys.argv[2])
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 and passed > 0 else 1)
