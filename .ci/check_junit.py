"""Refuse a green run that did not test: no tests, skipped tests, no integration tests."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    cases = ET.parse(path).getroot().iter("testcase")
    total = integration = 0
    problems: list[str] = []
    for case in cases:
        total += 1
        name = f"{case.get('classname')}::{case.get('name')}"
        classname = f".{case.get('classname')}."
        if ".integration." in classname or ".e2e." in classname:
            integration += 1
        for child in case:
            if child.tag in {"skipped", "failure", "error"}:
                problems.append(f"{child.tag}: {name}: {child.get('message', '')[:200]}")
    if total == 0:
        problems.append("no test ran")
    if integration == 0:
        problems.append("no integration test ran")
    for p in problems:
        print(f"ci: {p}", file=sys.stderr)
    print(f"ci: {total} tests, {integration} integration/e2e, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
