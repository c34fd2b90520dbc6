"""Refuse a green run that did not test: no tests, skipped tests, no integration tests,
no cluster-stage tests.  Print what the cluster scenarios printed (their counts)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    cases = ET.parse(path).getroot().iter("testcase")
    total = integration = cluster = 0
    problems: list[str] = []
    for case in cases:
        total += 1
        name = f"{case.get('classname')}::{case.get('name')}"
        classname = f".{case.get('classname')}."
        if ".cluster." in classname:
            cluster += 1
            out = case.find("system-out")  # what a cluster scenario printed: its counts
            for line in (out.text or "").splitlines() if out is not None else ():
                if line.strip() and not line.startswith("-"):
                    print(f"ci: cluster {case.get('name')}: {line.strip()}")
        if any(f".{stage}." in classname for stage in ("integration", "e2e", "cluster")):
            integration += 1
        for child in case:
            if child.tag in {"skipped", "failure", "error"}:
                problems.append(f"{child.tag}: {name}: {child.get('message', '')[:200]}")
    if total == 0:
        problems.append("no test ran")
    if integration == 0:
        problems.append("no integration test ran")
    if cluster == 0:
        problems.append("no cluster-stage test ran (tests/cluster)")
    for p in problems:
        print(f"ci: {p}", file=sys.stderr)
    print(
        f"ci: {total} tests, {integration} integration/e2e/cluster ({cluster} cluster), "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
