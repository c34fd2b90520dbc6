"""The example reports in docs/examples are what the code makes today."""

from __future__ import annotations

from pathlib import Path

import orjson

from riskstream.report_examples import example_files

DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_the_committed_examples_are_up_to_date() -> None:
    made = example_files()
    assert sorted(made) == ["medical-art73.json", "medical-art73.md", "medical-postmortem.md"]
    for name, text in made.items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/examples/{name} is stale: python docs/examples/generate.py"
    # The medical situation's config fills in what a config can; people fill the rest.
    art73 = orjson.loads(made["medical-art73.json"])
    assert not [p for p in art73["to_fill"] if p.startswith(("provider.", "ai_system."))]
    assert art73["ai_system"]["version"] == "dx-4.1"  # the deploy that caused it
    assert art73["corrective_actions"]["current_routing"]["version"] == "dx-4.0"
    assert art73["deadline"]["days_left"] > 0
    assert (
        "| Accountable | dr.a.okafor (clinical safety officer) |" in made["medical-postmortem.md"]
    )
