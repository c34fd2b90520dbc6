"""What every detector shares: the alarm it raises, the API a monitor calls, and the
base class that turns settings and state into a snapshot and back.

A detector takes one float per ``update`` and returns an :class:`Alarm` when it
decides the stream changed.  An alarm carries *when the change began* (``onset``,
as a sample index) as well as when it was noticed, plus the window statistics
before and after, because an operator at 3 a.m. needs the evidence, not a flag.

Subclasses of :class:`BaseDetector` declare ``kind``, ``PARAMS`` and
``SNAPSHOT_VERSION``, check their settings in ``__init__`` with the ``check_*``
helpers (a bad setting is a :class:`~riskstream.errors.ConfigError` naming it), and
write ``_dump`` / ``_load`` for their state; the snapshot's header and settings are
handled here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

from riskstream.core.detectors.snapshot import Fields, check_header, encode_float
from riskstream.errors import ConfigError, SnapshotError

__all__ = [
    "Alarm",
    "BaseDetector",
    "Detector",
    "Run",
    "WindowStats",
    "check_flag",
    "check_integer",
    "check_number",
    "check_probability",
    "construct",
    "split_at",
    "window_stats",
]


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Summary of one side of a change: how many samples and their mean."""

    count: int
    mean: float


@dataclass(frozen=True, slots=True)
class Alarm:
    """A detector's decision that the stream changed.

    ``index`` is the 1-based number of the sample that triggered the alarm;
    ``onset`` the estimated 1-based index of the first sample after the change.
    ``statistic`` is the decision quantity and ``threshold`` the bound it crossed
    (``None`` where a kind has none).  Most kinds alarm when the statistic rises
    above the threshold; ``kswin`` alarms when its p-value falls to ``alpha`` or
    below, ``eddm`` when its level falls below ``beta``.
    """

    index: int
    onset: int
    before: WindowStats
    after: WindowStats
    detector: str
    statistic: float | None = None
    threshold: float | None = None


class Detector(Protocol):
    """What every detector offers to a monitor."""

    kind: ClassVar[str]
    PARAMS: ClassVar[tuple[str, ...]]

    def update(self, x: float) -> Alarm | None: ...

    def snapshot(self) -> dict[str, Any]: ...

    @classmethod
    def restore(cls, snap: Mapping[str, Any]) -> Self: ...


def window_stats(count: int, total: float) -> WindowStats:
    """``count`` samples summing to ``total``; the mean of none is 0."""
    return WindowStats(count, total / count if count > 0 else 0.0)


def check_integer(kind: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{kind}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(
    kind: str, name: str, value: object, ok: Callable[[float], bool], want: str
) -> float:
    v = math.nan if isinstance(value, bool) or not isinstance(value, int | float) else float(value)
    if not (math.isfinite(v) and ok(v)):
        want = f"a finite number {want}".rstrip()
        raise ConfigError(f"{kind}: {name} must be {want}, got {value!r}")
    return v


def check_flag(kind: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{kind}: {name} must be true or false, got {value!r}")
    return value


def check_probability(kind: str, name: str, value: object) -> float:
    return check_number(kind, name, value, lambda v: 0.0 < v < 1.0, "in (0, 1)")


class Run:
    """Sum of the samples from 1-based index ``start`` on; ``start == 0`` means unset.

    Detectors keep a few of these to report before/after evidence in O(1): the
    count is ``n - start + 1`` at sample ``n``.
    """

    __slots__ = ("start", "total")

    def __init__(self, start: int, total: float = 0.0) -> None:
        self.start = start
        self.total = total

    def dump(self) -> list[int | float | str]:
        return [self.start, encode_float(self.total)]

    @classmethod
    def read(cls, fields: Fields, key: str) -> Run:
        """The run that :meth:`dump` wrote under ``key``."""
        return cls(*fields.run(key))


_T = TypeVar("_T")


def construct(cls: type[_T], kind: str, accepted: tuple[str, ...], params: object) -> _T:
    """``cls(**params)``, refusing parameters it does not accept by name."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{kind}: parameters must be a mapping, got {params!r}")
    unknown = sorted(str(k) for k in params if k not in accepted)
    if unknown:
        raise ConfigError(
            f"{kind}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )
    factory: Callable[..., _T] = cls
    return factory(**params)


def split_at(n: int, seg: Run, onset: int, after_total: float) -> tuple[WindowStats, WindowStats]:
    """Before/after evidence: ``seg`` holds the samples since the detector's last
    reset, ``after_total`` the sum of those from ``onset`` to ``n``."""
    return (
        window_stats(onset - seg.start, seg.total - after_total),
        window_stats(n - onset + 1, after_total),
    )


class BaseDetector:
    """Shared snapshot/restore plumbing: subclasses write ``_dump`` and ``_load``."""

    kind: ClassVar[str]
    PARAMS: ClassVar[tuple[str, ...]]
    SNAPSHOT_VERSION: ClassVar[int] = 1

    __slots__ = ()

    def params(self) -> dict[str, Any]:
        """The constructor arguments, normalized (numbers as floats)."""
        return {name: getattr(self, name) for name in self.PARAMS}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def snapshot(self) -> dict[str, Any]:
        """Plain data: kind, version, settings and every piece of state."""
        return {
            "kind": self.kind,
            "v": self.SNAPSHOT_VERSION,
            "params": self.params(),
            **self._dump(),
        }

    @classmethod
    def restore(cls, snap: Mapping[str, Any]) -> Self:
        """Rebuild a detector from :meth:`snapshot` output (after a JSON round trip)."""
        fields = check_header(cls.kind, cls.SNAPSHOT_VERSION, snap)
        params = fields.get("params")
        if not isinstance(params, Mapping):
            raise fields.bad("params", "a mapping", params)
        try:
            det = construct(cls, cls.kind, cls.PARAMS, params)
        except ConfigError as exc:  # settings no constructor accepts: the snapshot is bad
            raise SnapshotError(f"{cls.kind}: snapshot field 'params': {exc}") from None
        det._load(fields)
        return det

    def _dump(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, fields: Fields) -> None:
        raise NotImplementedError
