"""The example reports in ``docs/examples/``, made from the medical situation.

They are generated, never hand-written: the medical situation runs on the
embedded pipeline with a fixed seed, the clinical rollback is approved as in
``riskstream demo``, and the reports are rendered from the incident's record.
A unit test regenerates them and compares, so the docs cannot drift from the code.
``python docs/examples/generate.py`` rewrites them.
"""

from __future__ import annotations

from riskstream.core.reports import render
from riskstream.demo import run_situation

__all__ = ["SEED", "example_files"]

SEED = 7


def example_files(seed: int = SEED) -> dict[str, str]:
    """File name -> content, for the incident the medical situation opens."""
    _, pipeline = run_situation("medical", seed=seed)
    records = pipeline.records.recent()
    record = next((r for r in records if r.incident.get("regulatory")), records[0])
    flag = pipeline.flags().get(record.subject)
    as_of = record.timeline[-1].at  # read as soon as the last act is recorded
    settings = pipeline.config.reporting
    return {
        f"medical-{kind}.{fmt}": render(kind, fmt, record, settings, as_of, flag)
        for kind, fmt in (("art73", "md"), ("art73", "json"), ("postmortem", "md"))
    }
