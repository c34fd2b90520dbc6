"""Noise control: one incident per (monitor, subject) episode, updated as evidence grows.

A failing model keeps failing: its streams re-learn their reference after an
alarm and may alarm again, and several streams of one subject (groups, segments)
may alarm in turn.  People want one incident that grows, not a storm.  So an alarm
within ``episode_s`` (data time) of the last alarm of the same monitor on the same
subject updates that incident — same id, the count of alarms and the streams
involved in its evidence — instead of opening a new one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from riskstream.core.state_keys import EPISODE_MARK
from riskstream.core.timeutil import format_time
from riskstream.errors import SnapshotError

if TYPE_CHECKING:
    from riskstream.core.findings import Finding

__all__ = ["Episodes"]
SNAPSHOT_VERSION = 1
MAX_STREAMS = 20


class Episodes:
    """Open episodes of one partition, by ``(monitor, subject)``."""

    __slots__ = ("_open", "dirty")

    def __init__(self) -> None:
        # monitor\x1f\x1dsubject -> [incident id, first, last, alarms, streams]
        self._open: dict[str, list[Any]] = {}
        self.dirty: set[str] = set()

    def assign(self, finding: Finding, separator: str) -> Finding:
        """The finding as the opening or an update of its episode."""
        window = finding.monitor.episode_s
        if window <= 0:
            return finding
        key = f"{finding.monitor.name}{separator}{EPISODE_MARK}{finding.subject}"
        t = finding.alarm.detected_at
        episode = self._open.get(key)
        update = episode is not None and t - episode[2] <= window
        if episode is not None and update:
            episode[2], episode[3] = t, episode[3] + 1
            if finding.stream_key not in episode[4] and len(episode[4]) < MAX_STREAMS:
                episode[4].append(finding.stream_key)
        else:
            episode = self._open[key] = [finding.finding_id, t, t, 1, [finding.stream_key]]
        self.dirty.add(key)
        detail = {
            "alarms": episode[3],
            "streams": list(episode[4]),
            "first_detected_at": format_time(episode[1]),
        }
        return replace(finding, finding_id=episode[0], episode=detail, update=update)

    def snapshot(self, key: str) -> list[Any]:
        return [SNAPSHOT_VERSION, *self._open[key]]

    def load(self, key: str, snap: list[Any]) -> None:
        if not snap or snap[0] != SNAPSHOT_VERSION:
            raise SnapshotError(f"episode snapshot version {snap[:1]} is not {SNAPSHOT_VERSION}")
        incident_id, first, last, alarms, streams = snap[1:]
        self._open[key] = [str(incident_id), float(first), float(last), int(alarms), list(streams)]

    def open_keys(self) -> list[str]:
        return list(self._open)
