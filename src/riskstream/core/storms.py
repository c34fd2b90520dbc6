"""Incident storms: many incidents of one monitor in a short window, decided once.

When one monitor opens incidents on hundreds of subjects within a minute, the
cause is rarely hundreds of independent failures: an upstream outage, a bad
deploy of a shared feature, a misconfigured detector.  Containing each subject
on its own would flip hundreds of flags before anyone looked, and a person then
faces hundreds of approvals.  So past ``incidents`` incidents of one monitor within
``window_s`` seconds, the further ones join one *grouped* action per playbook
action that a person approves (or rejects) once; the first ones are contained as
usual.  The storm lasts while its incidents keep coming less than a window apart.

Time is the worker's clock when each incident arrives.  The counts live in memory:
after a restart a storm is counted afresh (its grouped actions stay stored).

>>> storms = StormControl(Storms(incidents=3, window_s=60.0))
>>> [storms.admit("drift", t) for t in (0.0, 1.0, 2.0, 3.0, 4.0)]
[None, None, None, 'drift@3', 'drift@3']
>>> storms.admit("drift", 100.0) is None  # a window of quiet ends the storm
True
>>> storms.renew("drift", 5.0)  # its grouped action was decided: a new group
'drift@5.1'
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from riskstream.errors import ConfigError

__all__ = ["StormControl", "Storms"]


@dataclass(frozen=True, slots=True)
class Storms:
    """How many incidents of one monitor within how many seconds make a storm (0: never)."""

    incidents: int = 20
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.incidents < 0 or not 0 < self.window_s < math.inf:
            raise ConfigError(
                "limits.storm_incidents must be >= 0 (0: no storm control) and "
                f"limits.storm_window > 0 seconds, got {self.incidents} and {self.window_s}"
            )


class StormControl:
    """The recent incidents of each monitor, and the storm each is in, if any."""

    def __init__(self, settings: Storms) -> None:
        self._settings = settings
        self._recent: dict[str, deque[float]] = {}
        self._storm: dict[str, tuple[str, float]] = {}  # monitor -> (storm id, last incident)
        self._renewed = 0

    def admit(self, monitor: str, at: float) -> str | None:
        """Count one incident; the id of the storm it belongs to, or None."""
        limit, window = self._settings.incidents, self._settings.window_s
        if limit <= 0:
            return None
        recent = self._recent.setdefault(monitor, deque())
        while recent and recent[0] <= at - window:
            recent.popleft()
        recent.append(at)
        if len(recent) > limit + 1:
            recent.popleft()  # only whether there are more than `limit` matters
        storm = self._storm.get(monitor)
        if storm is not None and at - storm[1] > window:
            del self._storm[monitor]
            storm = None
        if storm is None and len(recent) <= limit:
            if not recent:
                del self._recent[monitor]
            return None
        storm_id = storm[0] if storm is not None else _storm_id(monitor, at)
        self._storm[monitor] = (storm_id, at)
        return storm_id

    def renew(self, monitor: str, at: float) -> str:
        """A new storm id for a monitor whose grouped action was decided meanwhile."""
        self._renewed += 1
        storm_id = f"{_storm_id(monitor, at)}.{self._renewed}"
        self._storm[monitor] = (storm_id, at)
        return storm_id


def _storm_id(monitor: str, at: float) -> str:
    return f"{monitor}@{at:.0f}"
