"""Missing data: streams that stop sending, judged in data time.

A sensor that dies sends nothing, so no per-sample detector can notice it.  A
stream is *silent* when the partition's data time (the newest event time any of
this monitor's streams has sent) has moved ``after`` seconds past the stream's
last event.  Data time, not wall time, keeps a replay and a restart deterministic;
the price is that a partition that goes silent as a whole is seen by consumer-lag
and heartbeat alerts on the processor, not here.

Streams are kept in order of their last event, so each event costs O(1): only the
stalest stream is ever looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from riskstream.errors import ConfigError

__all__ = ["SilenceWatch", "Silent", "check_silence_params"]

SNAPSHOT_VERSION = 1


def check_silence_params(params: dict[str, Any]) -> float:
    """Validate ``{after: seconds}`` and return it."""
    unknown = set(params) - {"after"}
    if unknown:
        raise ConfigError(f"missing: unknown parameter(s) {sorted(unknown)}; accepted: after")
    after = params.get("after")
    if isinstance(after, bool) or not isinstance(after, int | float) or after <= 0:
        raise ConfigError(f"missing: 'after' must be a number of seconds > 0, got {after!r}")
    return float(after)


@dataclass(frozen=True, slots=True)
class Silent:
    """One stream found silent: its last event, the data time it was noticed, its count."""

    key: str
    last_seen: float
    noticed_at: float
    events: int


class SilenceWatch:
    """Last-seen times of one monitor's streams on one partition.

    >>> w = SilenceWatch(after=60)
    >>> w.see("a", 0.0); w.see("b", 10.0)
    >>> list(w.silent())
    []
    >>> w.see("b", 65.0)
    >>> [(s.key, s.last_seen, s.noticed_at) for s in w.silent()]
    [('a', 0.0, 65.0)]
    >>> w.see("b", 200.0); list(w.silent())  # 'a' is reported once per silence
    []
    """

    __slots__ = ("_after", "_counts", "_last", "_seq", "_silent", "_ticks", "dirty", "watermark")

    def __init__(self, after: float) -> None:
        self._after = after
        self._last: dict[str, float] = {}  # insertion order = order of last event
        self._silent: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._seq: dict[str, int] = {}  # when each stream last moved to the back
        self._ticks = 0
        self.watermark = float("-inf")
        self.dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self._counts)

    def streams(self) -> list[str]:
        return list(self._counts)

    def see(self, key: str, t: float) -> None:
        last = self._last.pop(key, None)
        if last is None:
            last = self._silent.pop(key, None)
        self._last[key] = t if last is None or t > last else last
        self._counts[key] = self._counts.get(key, 0) + 1
        self._ticks += 1
        self._seq[key] = self._ticks
        if t > self.watermark:
            self.watermark = t
        self.dirty.add(key)

    def silent(self) -> Iterator[Silent]:
        """Streams that just fell silent (each once per silence)."""
        cutoff = self.watermark - self._after
        while self._last:
            key = next(iter(self._last))
            last = self._last[key]
            if last >= cutoff:
                return
            del self._last[key]
            self._silent[key] = last
            self.dirty.add(key)
            yield Silent(key, last, self.watermark, self._counts[key])

    def snapshot(self, key: str) -> list[Any]:
        silent = key not in self._last
        last = self._silent[key] if silent else self._last[key]
        return [SNAPSHOT_VERSION, last, self._counts[key], int(silent), self._seq[key]]

    def load(self, items: dict[str, list[Any]]) -> None:
        """Restore streams from snapshots (any order); rebuilds the exact stream order."""
        for key, snap in sorted(items.items(), key=lambda kv: kv[1][4]):
            version, last, count, silent, seq = snap
            if version != SNAPSHOT_VERSION:
                raise ConfigError(
                    f"missing: snapshot version {version!r} is not {SNAPSHOT_VERSION}"
                )
            (self._silent if silent else self._last)[key] = float(last)
            self._counts[key] = int(count)
            self._seq[key] = int(seq)
            self._ticks = max(self._ticks, int(seq))
            self.watermark = max(self.watermark, float(last))
