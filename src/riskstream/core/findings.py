"""A finding: one stream's alarm attributed to its monitor and subject, with a stable id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from riskstream.core.specs import MonitorSpec
from riskstream.core.streams import StreamAlarm

__all__ = ["Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A stream alarm, attributed to its monitor and subject, with a stable id."""

    finding_id: str
    monitor: MonitorSpec
    stream_key: str
    subject: str
    alarm: StreamAlarm
    detail: dict[str, Any] | None = None  # e.g. the group's rate and the rest's
    episode: dict[str, Any] | None = None  # alarms so far in this incident's episode
    update: bool = False  # True: a later alarm of an incident already opened
    users: tuple[int, bool] | None = None  # distinct users since onset; whether all were kept
    fdr: dict[str, Any] | None = None  # the confirmation test that let it through
    limit: dict[str, Any] | None = None  # a stream-limit incident: the cap and what it dropped
