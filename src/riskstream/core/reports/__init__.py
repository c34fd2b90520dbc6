"""Reports made from an incident's record: for a regulator, for a post-mortem.

Pure: the record, the config and the time of reading go in; plain data and text
come out.  Whatever only a person can know is a placeholder, never a guess.
"""

from __future__ import annotations

import orjson

from riskstream.core.incident_records import IncidentRecord
from riskstream.core.reports.art73 import art73_report
from riskstream.core.reports.markdown import render_markdown
from riskstream.core.reports.postmortem import postmortem_report
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.reports.story import Story
from riskstream.core.routing import RoutingFlag
from riskstream.errors import ConfigError

__all__ = [
    "FORMATS",
    "KINDS",
    "Story",
    "art73_report",
    "postmortem_report",
    "render",
    "render_markdown",
]

KINDS = {"art73": art73_report, "postmortem": postmortem_report}
FORMATS = ("md", "json")


def render(
    kind: str,
    fmt: str,
    record: IncidentRecord,
    settings: ReportSettings,
    as_of: float,
    flag: RoutingFlag | None = None,
    story: Story | None = None,
) -> str:
    """One report as text: Markdown for people, JSON (same content) for tools.

    ``story``: the grouped story the incident belongs to, if any: the report opens
    on its root."""
    if kind not in KINDS or fmt not in FORMATS:
        raise ConfigError(
            f"report {kind!r} as {fmt!r}: the kinds are {', '.join(KINDS)}, "
            f"the formats {', '.join(FORMATS)}"
        )
    report = KINDS[kind](record, settings, as_of, flag, story)
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    return render_markdown(report)
