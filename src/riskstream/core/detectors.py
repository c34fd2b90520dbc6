"""Drift detectors with a small uniform API and plain-data snapshots.

Each detector takes one float per ``update`` and returns an :class:`Alarm` when it
decides the stream changed.  An alarm carries *when the change began* (``onset``,
as a sample index) as well as when it was noticed, plus the window statistics
before and after, because an operator at 3 a.m. needs the evidence, not a flag.

State is saved with :meth:`snapshot` as plain, versioned data (numbers, strings,
lists) rather than pickle: a pickle loaded from a shared store runs code, and breaks
when a library renames an attribute.  Every River-backed detector therefore writes
out each attribute of River's state explicitly and rebuilds it on :meth:`restore`;
non-finite floats (River starts some minima at infinity) are written as the strings
``"inf"``, ``"-inf"`` and ``"nan"``, because JSON has no such numbers.

After an alarm a River-backed detector resets itself at once, exactly as River
would at the start of the next update, so a snapshot never holds a pending reset.

Kinds (see :data:`DETECTOR_KINDS`): ``adwin``, ``page-hinkley``, ``kswin`` for
continuous values; ``ddm``, ``eddm`` for 0/1 error indicators; ``hddm-a``,
``hddm-w`` for values in [0, 1]; and the plain rules ``threshold``,
``out-of-range`` and ``stuck``.
"""

from __future__ import annotations

import base64
import binascii
import math
import numbers
import random
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

from river import drift as river_drift
from river import stats as river_stats
from river._river_rust import drift as river_rust_drift
from river.drift import binary as river_binary
from river.drift.binary.hddm_w import SampleInfo as _RiverSampleInfo

from riskstream.errors import ConfigError

__all__ = [
    "ADWIN",
    "DDM",
    "DETECTOR_KINDS",
    "EDDM",
    "HDDMA",
    "HDDMW",
    "KSWIN",
    "Alarm",
    "Detector",
    "OutOfRange",
    "PageHinkley",
    "Stuck",
    "Threshold",
    "WindowStats",
    "make_detector",
    "restore_detector",
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


# --------------------------------------------------------------------------- helpers

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _fenc(x: float) -> float | str:
    """A float as plain JSON data; finite floats survive orjson bit-for-bit."""
    x = float(x)
    if math.isfinite(x):
        return x
    if x != x:
        return "nan"
    return "inf" if x > 0 else "-inf"


def _stats(count: int, total: float) -> WindowStats:
    return WindowStats(count, total / count if count > 0 else 0.0)


def _integer(kind: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{kind}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(kind: str, name: str, value: object, ok: Callable[[float], bool], want: str) -> float:
    v = math.nan if isinstance(value, bool) or not isinstance(value, int | float) else float(value)
    if not (math.isfinite(v) and ok(v)):
        want = f"a finite number {want}".rstrip()
        raise ConfigError(f"{kind}: {name} must be {want}, got {value!r}")
    return v


def _flag(kind: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{kind}: {name} must be true or false, got {value!r}")
    return value


def _probability(kind: str, name: str, value: object) -> float:
    return _number(kind, name, value, lambda v: 0.0 < v < 1.0, "in (0, 1)")


def _check_header(kind: str, version: int, snap: object) -> _Fields:
    """Refuse a snapshot of another kind or version, naming what was found."""
    if isinstance(snap, Mapping):
        if snap.get("kind") == kind and snap.get("v") == version:
            return _Fields(kind, snap)
        found = f"kind={snap.get('kind')!r} v={snap.get('v')!r}"
    else:
        found = f"of type {type(snap).__name__}"
    raise ConfigError(
        f"{kind}: cannot restore snapshot {found}; expected kind={kind!r} v={version}"
    )


class _Fields:
    """Typed reads from a snapshot; a bad field raises a ConfigError naming it."""

    __slots__ = ("_data", "_kind", "_prefix")

    def __init__(self, kind: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self._kind = kind
        self._data = data
        self._prefix = prefix

    def bad(self, key: str, want: str, got: object) -> ConfigError:
        name = f"{self._prefix}{key}"
        return ConfigError(f"{self._kind}: snapshot field {name!r} must be {want}, got {got!r}")

    def get(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            name = f"{self._prefix}{key}"
            raise ConfigError(f"{self._kind}: snapshot has no field {name!r}") from None

    def sub(self, key: str) -> _Fields:
        value = self.get(key)
        if not isinstance(value, Mapping):
            raise self.bad(key, "a mapping", value)
        return _Fields(self._kind, value, f"{self._prefix}{key}.")

    def integer(self, key: str, minimum: int = 0) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.bad(key, f"an integer >= {minimum}", value)
        return value

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.bad(key, "true or false", value)
        return value

    def number(self, key: str) -> float:
        return self._as_number(key, self.get(key))

    def optional_number(self, key: str) -> float | None:
        value = self.get(key)
        return None if value is None else self._as_number(key, value)

    def numbers(self, key: str, max_len: int) -> list[float]:
        value = self.get(key)
        if not isinstance(value, list) or len(value) > max_len:
            raise self.bad(key, f"a list of at most {max_len} numbers", value)
        return [self._as_number(key, v) for v in value]

    def pair(self, key: str) -> tuple[float, float]:
        """A ``[count, total]`` or ``[n, mean]`` pair of numbers."""
        value = self.get(key)
        if not isinstance(value, list) or len(value) != 2:
            raise self.bad(key, "a [number, number] pair", value)
        return self._as_number(key, value[0]), self._as_number(key, value[1])

    def run(self, key: str) -> _Run:
        value = self.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or isinstance(value[0], bool)
            or not isinstance(value[0], int)
            or value[0] < 0
        ):
            raise self.bad(key, "a [start index, total] pair", value)
        return _Run(value[0], self._as_number(key, value[1]))

    def mean(self, key: str) -> Any:
        """A river ``stats.Mean`` written as ``[n, mean]``."""
        n, mean = self.pair(key)
        if n < 0:
            raise self.bad(key, "[n >= 0, mean]", self.get(key))
        m = river_stats.Mean()
        m.n, m._mean = n, mean
        return m

    def _as_number(self, key: str, value: object) -> float:
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.bad(key, 'a number (or "inf", "-inf", "nan")', value)
        return float(value)


def _dump_mean(m: Any) -> list[float | str]:
    return [_fenc(m.n), _fenc(m._mean)]


class _Run:
    """Sum of the samples from 1-based index ``start`` on; ``start == 0`` means unset.

    Detectors keep a few of these to report before/after evidence in O(1): the
    count is ``n - start + 1`` at sample ``n``.
    """

    __slots__ = ("start", "total")

    def __init__(self, start: int, total: float = 0.0) -> None:
        self.start = start
        self.total = total

    def dump(self) -> list[int | float | str]:
        return [self.start, _fenc(self.total)]


_T = TypeVar("_T")


def _construct(cls: type[_T], kind: str, accepted: tuple[str, ...], params: object) -> _T:
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


def _split(n: int, seg: _Run, onset: int, after_total: float) -> tuple[WindowStats, WindowStats]:
    """Before/after evidence: ``seg`` holds the samples since the detector's last
    reset, ``after_total`` the sum of those from ``onset`` to ``n``."""
    return (
        _stats(onset - seg.start, seg.total - after_total),
        _stats(n - onset + 1, after_total),
    )


class _BaseDetector:
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
        fields = _check_header(cls.kind, cls.SNAPSHOT_VERSION, snap)
        params = fields.get("params")
        if not isinstance(params, Mapping):
            raise fields.bad("params", "a mapping", params)
        det = _construct(cls, cls.kind, cls.PARAMS, params)
        det._load(fields)
        return det

    def _dump(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, fields: _Fields) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- ADWIN


class ADWIN:
    """River's ADWIN (adaptive windowing) with an onset estimate and evidence.

    ADWIN keeps a variable-length window and cuts it where two sub-windows have
    significantly different means (Bifet & Gavaldà, 2007, "Learning from
    time-changing data with adaptive windowing").  The cut point is a *late* onset
    estimate: ADWIN drops only as much history as its test needs, so the surviving
    window usually still holds samples from before the change.

    >>> det = ADWIN()
    >>> alarms = [a for x in [0.0] * 500 + [1.0] * 500 if (a := det.update(x))]
    >>> a = alarms[0]
    >>> 500 < a.index < 600 and a.onset <= a.index
    True
    >>> a.before.mean < a.after.mean
    True
    """

    kind: ClassVar[str] = "adwin"
    PARAMS: ClassVar[tuple[str, ...]] = ("delta",)
    SNAPSHOT_VERSION: ClassVar[int] = 1

    __slots__ = ("_det", "_n", "delta")

    def __init__(self, delta: float = 0.002) -> None:
        self.delta = _probability(self.kind, "delta", delta)
        self._det = river_drift.ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]
        self._n = 0

    def params(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def update(self, x: float) -> Alarm | None:
        helper = self._det._helper
        width_before = helper.get_width()
        total_before = helper.get_total()
        self._det.update(x)  # type: ignore[no-untyped-call]
        self._n += 1
        if not self._det.drift_detected:
            return None
        helper = self._det._helper
        width_after = int(helper.get_width())
        mean_after = helper.get_total() / width_after if width_after else 0.0
        dropped = int(width_before) + 1 - width_after
        dropped_sum = total_before + x - helper.get_total()
        return Alarm(
            index=self._n,
            onset=self._n - width_after + 1,
            before=WindowStats(dropped, dropped_sum / dropped if dropped else 0.0),
            after=WindowStats(width_after, mean_after),
            detector=self.kind,
        )

    def snapshot(self) -> dict[str, Any]:
        """Plain data: the settings, the sample count and River's own state bytes."""
        state = self._det._helper.__getstate__()
        return {
            "kind": self.kind,
            "v": self.SNAPSHOT_VERSION,
            "delta": self.delta,
            "n": self._n,
            "drift": self._det.drift_detected,
            "window": base64.b64encode(state).decode("ascii"),
        }

    @classmethod
    def restore(cls, snap: Mapping[str, Any]) -> Self:
        fields = _check_header(cls.kind, cls.SNAPSHOT_VERSION, snap)
        det = cls(delta=fields.number("delta"))
        det._n = fields.integer("n")
        drift = fields.flag("drift")
        window = fields.get("window")
        try:
            state = base64.b64decode(window, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise fields.bad("window", "base64 text", window) from None
        helper = river_rust_drift.AdaptiveWindowing.__new__(river_rust_drift.AdaptiveWindowing)
        try:
            helper.__setstate__(state)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # River's Rust code panics (a BaseException) on bad bytes
            raise ConfigError(f"adwin: snapshot field 'window' is not River state: {exc}") from None
        det._det._helper = helper
        det._det._drift_detected = drift
        return det


# --------------------------------------------------------------------------- Page-Hinkley


class PageHinkley(_BaseDetector):
    """River's Page-Hinkley test, with the classic change-point estimate as onset.

    Page-Hinkley accumulates deviations from the running mean (minus ``delta``) and
    alarms when the sum climbs more than ``threshold`` above its running minimum
    (or, for decreases, falls that far below its maximum); Page, E. S. (1954),
    "Continuous inspection schemes", Biometrika 41, 100-115.  The sample after the
    cumulative sum last touched that minimum (maximum) is where the rise (fall)
    began: that is the onset reported, and ``before``/``after`` are the means on
    either side of it since the last reset.  ``alpha`` is River's forgetting factor.

    >>> import random
    >>> rng = random.Random(7)
    >>> xs = [rng.gauss(0.0, 1.0) for _ in range(1000)] + [rng.gauss(2.0, 1.0) for _ in range(300)]
    >>> det = PageHinkley(delta=0.5, threshold=25.0)
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 1000 < a.index <= 1050, abs(a.onset - 1001) <= 5
    (True, True)
    >>> round(a.before.mean), round(a.after.mean)
    (0, 2)
    """

    kind: ClassVar[str] = "page-hinkley"
    PARAMS: ClassVar[tuple[str, ...]] = ("min_instances", "delta", "threshold", "alpha", "mode")
    MODES: ClassVar[tuple[str, ...]] = ("up", "down", "both")

    __slots__ = (
        "_det",
        "_down",
        "_n",
        "_seg",
        "_up",
        "alpha",
        "delta",
        "min_instances",
        "mode",
        "threshold",
    )

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        k = self.kind
        self.min_instances = _integer(k, "min_instances", min_instances, 1)
        self.delta = _number(k, "delta", delta, lambda v: v >= 0.0, ">= 0")
        self.threshold = _number(k, "threshold", threshold, lambda v: v > 0.0, "> 0")
        self.alpha = _number(k, "alpha", alpha, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        if mode not in self.MODES:
            raise ConfigError(f"{k}: mode must be one of 'up', 'down', 'both', got {mode!r}")
        self.mode = mode
        self._det: Any = river_drift.PageHinkley(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.alpha,
            mode=mode,
        )
        self._n = 0
        self._seg = _Run(1)  # samples since River's last reset
        self._up = _Run(1)  # samples after the increase statistic's running minimum
        self._down = _Run(1)  # samples after the decrease statistic's running maximum

    def update(self, x: float) -> Alarm | None:
        det = self._det
        n = self._n = self._n + 1
        low, high = det._min_increase, det._max_decrease
        det.update(x)
        self._seg.total += x
        up, down = self._up, self._down
        if det._min_increase != low:  # River updates the extremes strictly: a change is new
            up.start, up.total = n + 1, 0.0
        else:
            up.total += x
        if det._max_decrease != high:
            down.start, down.total = n + 1, 0.0
        else:
            down.total += x
        if not det._drift_detected:
            return None
        rise = det._sum_increase - det._min_increase
        fall = det._max_decrease - det._sum_decrease
        fired_up = self.mode != "down" and rise > self.threshold
        fired_down = self.mode != "up" and fall > self.threshold
        upward = fired_up and not (fired_down and fall > rise)
        run = up if upward else down
        before, after = _split(n, self._seg, run.start, run.total)
        det._reset()
        self._seg, self._up, self._down = _Run(n + 1), _Run(n + 1), _Run(n + 1)
        return Alarm(
            index=n,
            onset=run.start,
            before=before,
            after=after,
            detector=self.kind,
            statistic=rise if upward else fall,
            threshold=self.threshold,
        )

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "up": self._up.dump(),
            "down": self._down.dump(),
            "river": {
                "mean": _dump_mean(det._x_mean),
                "sum_increase": _fenc(det._sum_increase),
                "sum_decrease": _fenc(det._sum_decrease),
                "min_increase": _fenc(det._min_increase),
                "max_decrease": _fenc(det._max_decrease),
            },
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._up, self._down = fields.run("seg"), fields.run("up"), fields.run("down")
        river = fields.sub("river")
        det = self._det
        det._x_mean = river.mean("mean")
        det._sum_increase = river.number("sum_increase")
        det._sum_decrease = river.number("sum_decrease")
        det._min_increase = river.number("min_increase")
        det._max_decrease = river.number("max_decrease")


# --------------------------------------------------------------------------- KSWIN

_MT_WORDS = 625  # random.Random's Mersenne Twister state: 624 words and a position
_MT_STRUCT = struct.Struct(f"<{_MT_WORDS}I")


def _dump_rng(rng: random.Random) -> dict[str, Any]:
    version, words, gauss_next = rng.getstate()
    return {
        "version": version,
        "mt": base64.b64encode(_MT_STRUCT.pack(*words)).decode("ascii"),
        "gauss_next": None if gauss_next is None else _fenc(gauss_next),
    }


def _load_rng(fields: _Fields, key: str) -> random.Random:
    sub = fields.sub(key)
    mt = sub.get("mt")
    try:
        words = _MT_STRUCT.unpack(base64.b64decode(mt, validate=True))
        rng = random.Random()
        rng.setstate((sub.integer("version"), words, sub.optional_number("gauss_next")))
    except (TypeError, ValueError, binascii.Error, struct.error):
        raise sub.bad("mt", f"base64 of {_MT_WORDS} little-endian uint32 words", mt) from None
    return rng


class KSWIN(_BaseDetector):
    """River's KSWIN: a Kolmogorov-Smirnov test between recent and older samples.

    KSWIN keeps the last ``window_size`` samples and, at each update, compares the
    newest ``stat_size`` of them with ``stat_size`` drawn at random from the rest;
    it alarms when the KS p-value is at most ``alpha`` (Raab, Heusinger & Schleif,
    2020, "Reactive soft prototype computing for concept drift streams",
    Neurocomputing 416, 340-351).  The onset is the start of the recent block;
    ``before`` is the older part of the window and ``after`` the recent block.

    River re-seeds its random generator from ``seed`` after every alarm, so the seed
    must be an integer: with ``None`` a replay from a snapshot could not be exact.
    Each update runs a SciPy KS test, so KSWIN costs far more CPU than the others.

    >>> det = KSWIN(alpha=0.0001, seed=1)
    >>> xs = [float(i % 7) for i in range(300)] + [10.0 + i % 7 for i in range(100)]
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 300 < a.index < 330, a.onset == a.index - 29, a.before.mean < a.after.mean
    (True, True, True)
    """

    kind: ClassVar[str] = "kswin"
    PARAMS: ClassVar[tuple[str, ...]] = ("alpha", "window_size", "stat_size", "seed")

    __slots__ = ("_det", "_n", "alpha", "seed", "stat_size", "window_size")

    def __init__(
        self, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30, seed: int = 42
    ) -> None:
        k = self.kind
        self.alpha = _probability(k, "alpha", alpha)
        self.window_size = _integer(k, "window_size", window_size, 2)
        self.stat_size = _integer(k, "stat_size", stat_size, 1)
        if 2 * self.stat_size > self.window_size:
            raise ConfigError(
                f"{k}: stat_size must be at most half of window_size (it samples stat_size "
                f"of the older window_size - stat_size values), got stat_size={stat_size!r} "
                f"window_size={window_size!r}"
            )
        self.seed = _integer(k, "seed", seed, 0)
        if self.seed >= 2**63:  # keep the snapshot within JSON's 64-bit integers
            raise ConfigError(f"{k}: seed must be below 2**63, got {seed!r}")
        self._det: Any = river_drift.KSWIN(
            alpha=self.alpha, window_size=self.window_size, stat_size=self.stat_size, seed=self.seed
        )
        self._n = 0

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        window = det.window  # River swaps in a new deque on drift; this one keeps all
        self._n += 1
        det.update(x)
        if not det._drift_detected:
            return None
        n = self._n
        values = list(window)
        split = len(values) - self.stat_size
        older, recent = values[:split], values[split:]
        alarm = Alarm(
            index=n,
            onset=n - self.stat_size + 1,
            before=_stats(len(older), math.fsum(older)),
            after=_stats(len(recent), math.fsum(recent)),
            detector=self.kind,
            statistic=float(det.p_value),
            threshold=self.alpha,
        )
        det._reset()
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "river": {
                "n": det.n,
                "p_value": _fenc(det.p_value),
                "window": [_fenc(v) for v in det.window],
                "rng": _dump_rng(det._rng),
            },
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        river = fields.sub("river")
        det = self._det
        det.n = river.integer("n")
        det.p_value = river.number("p_value")
        det.window = deque(river.numbers("window", self.window_size), maxlen=self.window_size)
        det._rng = _load_rng(river, "rng")


# --------------------------------------------------------------------------- DDM / EDDM


class DDM(_BaseDetector):
    """River's DDM (drift detection method) on 0/1 error indicators.

    DDM tracks the error rate ``p`` and its binomial spread ``s`` and alarms when
    ``p + s`` exceeds its historical minimum ``p_min + s_min`` by ``drift_threshold``
    spreads, warning from ``warning_threshold`` (Gama, Medas, Castillo & Rodrigues,
    2004, "Learning with drift detection", SBIA 2004, LNCS 3171).  The onset is the
    start of the warning zone that preceded the alarm (Gama et al. retrain from
    there), else the sample after ``p + s`` last reached its minimum.  ``before``
    and ``after`` are error rates on either side of the onset since the last reset.

    A caution from the method itself: if no error occurs during ``warm_start``,
    ``s_min`` is 0 and the first error raises an alarm.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.1) for _ in range(2000)] + [
    ...     int(rng.random() < 0.5) for _ in range(500)]
    >>> det = DDM()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2100, 1950 < a.onset <= a.index
    (True, True)
    >>> round(a.before.mean, 1), round(a.after.mean, 1)
    (0.1, 0.4)
    """

    kind: ClassVar[str] = "ddm"
    PARAMS: ClassVar[tuple[str, ...]] = ("warm_start", "warning_threshold", "drift_threshold")

    __slots__ = (
        "_det",
        "_low",
        "_n",
        "_seg",
        "_warn",
        "drift_threshold",
        "warm_start",
        "warning_threshold",
    )

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        k = self.kind
        self.warm_start = _integer(k, "warm_start", warm_start, 1)
        self.warning_threshold = _number(
            k, "warning_threshold", warning_threshold, lambda v: v > 0.0, "> 0"
        )
        self.drift_threshold = _number(
            k, "drift_threshold", drift_threshold, lambda v: v > 0.0, "> 0"
        )
        self._det: Any = river_binary.DDM(
            warm_start=self.warm_start,
            warning_threshold=self.warning_threshold,
            drift_threshold=self.drift_threshold,
        )
        self._n = 0
        self._seg = _Run(1)  # samples since the last reset
        self._low = _Run(1)  # samples after p + s last reached its minimum
        self._warn = _Run(0)  # samples of the current warning zone (start 0: none)

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        n = self._n = self._n + 1
        best = det._ps_min
        det.update(x)
        self._seg.total += x
        p = det._p
        p_i = p._mean
        # River keeps min(p + s) with `<=`, so the value may not change: replay its test.
        if p.n > self.warm_start and p_i + math.sqrt(p_i * (1 - p_i) / p.n) <= best:
            self._low.start, self._low.total = n + 1, 0.0
        else:
            self._low.total += x
        warn = self._warn
        if warn.start:
            warn.total += x
        if det._drift_detected:
            return self._alarm(n)
        if not det._warning_detected:
            warn.start, warn.total = 0, 0.0
        elif not warn.start:
            warn.start, warn.total = n, x
        return None

    def _alarm(self, n: int) -> Alarm:
        det = self._det
        p = det._p
        p_i = p._mean
        run = self._warn if self._warn.start > self._low.start else self._low
        before, after = _split(n, self._seg, run.start, run.total)
        alarm = Alarm(
            index=n,
            onset=run.start,
            before=before,
            after=after,
            detector=self.kind,
            statistic=p_i + math.sqrt(p_i * (1 - p_i) / p.n),
            threshold=det._p_min + self.drift_threshold * det._s_min,
        )
        det._reset()
        self._seg, self._low, self._warn = _Run(n + 1), _Run(n + 1), _Run(0)
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "low": self._low.dump(),
            "warn": self._warn.dump(),
            "river": {
                "p": _dump_mean(det._p),
                "p_min": None if det._p_min is None else _fenc(det._p_min),
                "s_min": None if det._s_min is None else _fenc(det._s_min),
                "ps_min": _fenc(det._ps_min),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._low, self._warn = fields.run("seg"), fields.run("low"), fields.run("warn")
        river = fields.sub("river")
        det = self._det
        det._p = river.mean("p")
        det._p_min = river.optional_number("p_min")
        det._s_min = river.optional_number("s_min")
        det._ps_min = river.number("ps_min")
        det._warning_detected = river.flag("warning")


class EDDM(_BaseDetector):
    """River's EDDM (early drift detection method) on 0/1 error indicators.

    EDDM watches the *distance between errors*: with mean ``p'`` and spread ``s'``
    of those distances, it alarms when ``(p' + 2 s') / max(p' + 2 s')`` falls below
    ``beta`` and warns below ``alpha`` (Baena-García, del Campo-Ávila, Fidalgo,
    Bifet, Gavaldà & Morales-Bueno, 2006, "Early drift detection method", 4th
    ECML PKDD Workshop on Knowledge Discovery from Data Streams).  It reacts to
    gradual changes sooner than DDM.  The onset is the start of the warning zone
    that preceded the alarm, else the sample after the previous error (the newest
    distance, the freshest evidence); ``before``/``after`` are error rates on
    either side of it.  River only re-tests on error samples, so a warning lasts
    until the next error clears it, and one begun before the statistic's latest
    maximum is stale and ignored.  The statistic is cumulative since the last
    reset, and its maximum is often set by early noise, so that maximum would be
    a poor onset.  With River's defaults EDDM raises many alarms on stationary
    error streams: 3 to 46 per 20,000 samples at a 10% error rate, by seed.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.01) for _ in range(2000)] + [
    ...     int(rng.random() < 0.3) for _ in range(500)]
    >>> det = EDDM()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2050, a.statistic < a.threshold, a.before.mean < a.after.mean
    (True, True, True)
    """

    kind: ClassVar[str] = "eddm"
    PARAMS: ClassVar[tuple[str, ...]] = ("warm_start", "alpha", "beta")

    __slots__ = ("_det", "_n", "_seg", "_top", "_warn", "alpha", "beta", "warm_start")
    # _top: first sample after the statistic's latest maximum (a warning from before
    # it is stale); _warn: the current warning zone (start 0: none).

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        k = self.kind
        self.warm_start = _integer(k, "warm_start", warm_start, 1)
        self.alpha = _number(k, "alpha", alpha, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        self.beta = _number(k, "beta", beta, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        if self.alpha < self.beta:
            raise ConfigError(
                f"{k}: alpha (warning level) must be >= beta (drift level), "
                f"got alpha={alpha!r} beta={beta!r}"
            )
        self._det: Any = river_binary.EDDM(
            warm_start=self.warm_start, alpha=self.alpha, beta=self.beta
        )
        self._n = 0
        self._seg = _Run(1)  # samples since the last reset
        self._top = 1
        self._warn = _Run(0)

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        n = self._n = self._n + 1
        best, last_error = det._p2s_prime_max, det._last_error
        det.update(x)
        self._seg.total += x
        if det._p2s_prime_max != best:  # River raises its maximum strictly
            self._top = n + 1
        warn = self._warn
        if warn.start:
            warn.total += x
        if det._drift_detected:
            return self._alarm(n, x, last_error)
        if not det._warning_detected:
            warn.start, warn.total = 0, 0.0
        elif not warn.start:
            warn.start, warn.total = n, x
        return None

    def _alarm(self, n: int, x: float, last_error: int) -> Alarm:
        det = self._det
        dist = det._error_distances
        level = (dist.mean.get() + 2 * dist.get() ** 0.5) / det._p2s_prime_max
        warn, seg = self._warn, self._seg
        if warn.start > self._top:
            onset, after_total = warn.start, warn.total
        else:
            # River counts its samples (and the previous error) from the last reset;
            # every sample after that error is a 0 until this one.
            onset, after_total = seg.start + last_error, x
        before, after = _split(n, seg, onset, after_total)
        alarm = Alarm(
            index=n,
            onset=onset,
            before=before,
            after=after,
            detector=self.kind,
            statistic=level,
            threshold=self.beta,
        )
        det._reset()
        self._seg, self._top, self._warn = _Run(n + 1), n + 1, _Run(0)
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        dist = det._error_distances
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "top": self._top,
            "warn": self._warn.dump(),
            "river": {
                "distances": {
                    "ddof": dist.ddof,
                    "mean": _dump_mean(dist.mean),
                    "S": _fenc(dist._S),
                },
                "n": det._n,
                "last_error": det._last_error,
                "n_errors": det._n_errors,
                "p2s_prime_max": _fenc(det._p2s_prime_max),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._top, self._warn = (
            fields.run("seg"),
            fields.integer("top"),
            fields.run("warn"),
        )
        river = fields.sub("river")
        det = self._det
        dist_fields = river.sub("distances")
        dist = river_stats.Var(ddof=dist_fields.integer("ddof"))
        dist.mean = dist_fields.mean("mean")
        dist._S = dist_fields.number("S")
        det._error_distances = dist
        det._n = river.integer("n")
        det._last_error = river.integer("last_error")
        det._n_errors = river.integer("n_errors")
        det._p2s_prime_max = river.number("p2s_prime_max")
        det._warning_detected = river.flag("warning")


# --------------------------------------------------------------------------- HDDM


class HDDMA(_BaseDetector):
    """River's HDDM_A: Hoeffding-bound test on averages, for values in [0, 1].

    HDDM_A compares the mean of everything since the last reset with the mean up to
    a cut point (where the prefix mean was lowest, allowing for its bound) and
    alarms when the difference exceeds a Hoeffding bound at ``drift_confidence``
    (Frías-Blanco, del Campo-Ávila, Ramos-Jiménez, Morales-Bueno, Ortiz-Díaz &
    Caballero-Mota, 2015, "Online and non-parametric drift detection methods based
    on Hoeffding's bounds", IEEE TKDE 27(3), 810-823).  By default only increases
    are tested (``two_sided_test=False``), as suits error rates.  The onset is the
    sample after the cut point; ``before`` is River's prefix mean up to the cut
    and ``after`` the mean since.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.1) for _ in range(2000)] + [
    ...     int(rng.random() < 0.5) for _ in range(500)]
    >>> det = HDDMA()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2100, a.onset < a.index, a.before.mean < a.after.mean
    (True, True, True)
    """

    kind: ClassVar[str] = "hddm-a"
    PARAMS: ClassVar[tuple[str, ...]] = ("drift_confidence", "warning_confidence", "two_sided_test")

    __slots__ = ("_det", "_n", "drift_confidence", "two_sided_test", "warning_confidence")

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        k = self.kind
        self.drift_confidence = _probability(k, "drift_confidence", drift_confidence)
        self.warning_confidence = _probability(k, "warning_confidence", warning_confidence)
        self.two_sided_test = _flag(k, "two_sided_test", two_sided_test)
        self._det: Any = river_binary.HDDMA(  # type: ignore[no-untyped-call]
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence,
            two_sided_test=self.two_sided_test,
        )
        self._n = 0

    def update(self, x: float) -> Alarm | None:
        det = self._det
        self._n += 1
        det.update(x)
        if not det._drift_detected:
            return None
        n = self._n
        z = det._z
        upward = det._mean_incr(self.drift_confidence)
        cut = det._x_min if upward else det._x_max
        cut_n = int(cut.n)
        after_n = int(z.n) - cut_n
        after_mean = (z.get() * z.n - cut.get() * cut.n) / after_n if after_n else 0.0
        m = (z.n - cut.n) / cut.n * (1.0 / z.n)
        bound = math.sqrt(m / 2 * math.log(2.0 / self.drift_confidence))
        alarm = Alarm(
            index=n,
            onset=n - after_n + 1,
            before=WindowStats(cut_n, cut.get()),
            after=WindowStats(after_n, after_mean),
            detector=self.kind,
            statistic=z.get() - cut.get() if upward else cut.get() - z.get(),
            threshold=bound,
        )
        det._reset()
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "river": {
                "z": _dump_mean(det._z),
                "x_min": _dump_mean(det._x_min),
                "x_max": _dump_mean(det._x_max),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        river = fields.sub("river")
        det = self._det
        det._z = river.mean("z")
        det._x_min = river.mean("x_min")
        det._x_max = river.mean("x_max")
        det._warning_detected = river.flag("warning")


def _dump_sample_info(info: Any) -> list[float | str | bool]:
    return [_fenc(info.ewma), info._is_init, _fenc(info._ibc)]


class HDDMW(_BaseDetector):
    """River's HDDM_W: McDiarmid-bound test on weighted averages, for values in [0, 1].

    Like HDDM_A, but the means are exponentially weighted (``lambda_val``), which
    favours recent samples and catches gradual changes (Frías-Blanco et al., 2015,
    "Online and non-parametric drift detection methods based on Hoeffding's
    bounds", IEEE TKDE 27(3), 810-823).  The onset is the start of the warning
    zone that preceded the alarm (else the alarm itself): a late estimate, but
    River's cut point is the historical low of a noisy weighted mean, often
    hundreds of samples before the change, so it makes a poor onset.
    ``before``/``after`` are plain means on either side of the onset since the
    last reset; ``statistic`` and ``threshold`` are River's weighted-mean gap and
    its McDiarmid bound.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.1) for _ in range(2000)] + [
    ...     int(rng.random() < 0.6) for _ in range(500)]
    >>> det = HDDMW()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2050, a.onset <= a.index, a.statistic > a.threshold
    (True, True, True)
    """

    kind: ClassVar[str] = "hddm-w"
    PARAMS: ClassVar[tuple[str, ...]] = (
        "drift_confidence",
        "warning_confidence",
        "lambda_val",
        "two_sided_test",
    )

    __slots__ = (
        "_det",
        "_n",
        "_seg",
        "_warn",
        "drift_confidence",
        "lambda_val",
        "two_sided_test",
        "warning_confidence",
    )

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        k = self.kind
        self.drift_confidence = _probability(k, "drift_confidence", drift_confidence)
        self.warning_confidence = _probability(k, "warning_confidence", warning_confidence)
        self.lambda_val = _number(
            k, "lambda_val", lambda_val, lambda v: 0.0 < v <= 1.0, "in (0, 1]"
        )
        self.two_sided_test = _flag(k, "two_sided_test", two_sided_test)
        self._det: Any = river_binary.HDDMW(  # type: ignore[no-untyped-call]
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence,
            lambda_val=self.lambda_val,
            two_sided_test=self.two_sided_test,
        )
        self._n = 0
        self._seg = _Run(1)  # samples since the last reset
        self._warn = _Run(0)  # samples of the current warning zone (start 0: none)

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        n = self._n = self._n + 1
        det.update(x)
        self._seg.total += x
        warn = self._warn
        if warn.start:
            warn.total += x
        if det._drift_detected:
            return self._alarm(n, x)
        if not det._warning_detected:
            warn.start, warn.total = 0, 0.0
        elif not warn.start:
            warn.start, warn.total = n, x
        return None

    def _alarm(self, n: int, x: float) -> Alarm:
        det = self._det
        conf = self.drift_confidence
        if det._detect_mean_incr(conf):
            first, second = det._s1_incr, det._s2_incr
        else:
            first, second = det._s2_decr, det._s1_decr
        warn = self._warn
        onset, after_total = (warn.start, warn.total) if warn.start else (n, x)
        before, after = _split(n, self._seg, onset, after_total)
        alarm = Alarm(
            index=n,
            onset=onset,
            before=before,
            after=after,
            detector=self.kind,
            statistic=second.ewma - first.ewma,
            threshold=det._mcdiarmid_bound(first.ibc + second.ibc, conf),
        )
        det._reset()
        self._seg, self._warn = _Run(n + 1), _Run(0)
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "warn": self._warn.dump(),
            "river": {
                "total": _dump_sample_info(det._total),
                "s1_incr": _dump_sample_info(det._s1_incr),
                "s2_incr": _dump_sample_info(det._s2_incr),
                "s1_decr": _dump_sample_info(det._s1_decr),
                "s2_decr": _dump_sample_info(det._s2_decr),
                "incr_cutpoint": _fenc(det._incr_cutpoint),
                "decr_cutpoint": _fenc(det._decr_cutpoint),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._warn = fields.run("seg"), fields.run("warn")
        river = fields.sub("river")
        det = self._det
        for name in ("total", "s1_incr", "s2_incr", "s1_decr", "s2_decr"):
            setattr(det, f"_{name}", self._load_sample_info(river, name))
        det._incr_cutpoint = river.number("incr_cutpoint")
        det._decr_cutpoint = river.number("decr_cutpoint")
        det._warning_detected = river.flag("warning")

    def _load_sample_info(self, fields: _Fields, key: str) -> Any:
        value = fields.get(key)
        if not (isinstance(value, list) and len(value) == 3 and isinstance(value[1], bool)):
            raise fields.bad(key, "[ewma, initialized, ibc]", value)
        ewma = fields._as_number(key, value[0])
        ibc = fields._as_number(key, value[2])
        info = _RiverSampleInfo(self.lambda_val)
        info._is_init = value[1]
        info._ibc = ibc
        if value[1]:
            # River's Rust EWMean is (mean, alpha, initialized): its first update sets the
            # mean to x exactly, which rebuilds the state bit for bit.
            info._ewma.update(ewma)
        return info


# --------------------------------------------------------------------------- plain rules


class _Bounds(_BaseDetector):
    """Alarm once per excursion, after ``consecutive`` samples in a row outside
    ``[lo, hi]``; NaN counts as outside (it is no valid reading)."""

    __slots__ = ("_calm", "_hi", "_lo", "_n", "_run", "_run_total", "consecutive")

    def _setup(self, lo: float, hi: float, consecutive: object) -> None:
        self._lo, self._hi = lo, hi
        self.consecutive = _integer(self.kind, "consecutive", consecutive, 1)
        self._n = 0
        self._run = 0  # samples in a row outside the bounds
        self._run_total = 0.0
        self._calm = [0, 0.0]  # count and sum of in-bound samples since the last alarm

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        n = self._n = self._n + 1
        if self._lo <= x <= self._hi:
            self._run, self._run_total = 0, 0.0
            calm = self._calm
            calm[0] += 1
            calm[1] += x
            return None
        self._run += 1
        self._run_total += x
        if self._run != self.consecutive:
            return None
        calm = self._calm
        before = _stats(int(calm[0]), calm[1])
        self._calm = [0, 0.0]
        bound = self._hi if x > self._hi else self._lo if x < self._lo else None
        return Alarm(
            index=n,
            onset=n - self._run + 1,
            before=before,
            after=_stats(self._run, self._run_total),
            detector=self.kind,
            statistic=x,
            threshold=bound,
        )

    def _dump(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "run": self._run,
            "run_total": _fenc(self._run_total),
            "calm": [self._calm[0], _fenc(self._calm[1])],
        }

    def _load(self, fields: _Fields) -> None:
        self._n = fields.integer("n")
        self._run = fields.integer("run")
        self._run_total = fields.number("run_total")
        count, total = fields.pair("calm")
        if count != int(count) or count < 0:
            raise fields.bad("calm", "[count, total]", fields.get("calm"))
        self._calm = [int(count), total]


def _optional_bound(kind: str, name: str, value: object) -> float | None:
    if value is None:
        return None
    return _number(kind, name, value, lambda v: True, "(or null)")


class Threshold(_Bounds):
    """Alarm when ``x > upper`` or ``x < lower`` for ``consecutive`` samples in a row.

    Either bound may be left out.  One alarm per excursion: the rule re-arms when a
    sample is back within the bounds.  The onset is the first sample of the
    excursion; ``after`` covers the excursion so far and ``before`` the in-bound
    samples since the previous alarm.  NaN counts as beyond the bounds.

    >>> det = Threshold(upper=8.0, consecutive=2)
    >>> [a.index for x in [1.0, 9.0, 1.0, 9.0, 9.5, 9.9, 2.0] if (a := det.update(x))]
    [5]
    >>> a = Threshold(upper=8.0, consecutive=2)
    >>> [r for x in [1.0, 3.0, 9.0, 10.0] if (r := a.update(x))][0].after
    WindowStats(count=2, mean=9.5)
    """

    kind: ClassVar[str] = "threshold"
    PARAMS: ClassVar[tuple[str, ...]] = ("lower", "upper", "consecutive")

    __slots__ = ("lower", "upper")

    def __init__(
        self, lower: float | None = None, upper: float | None = None, consecutive: int = 1
    ) -> None:
        k = self.kind
        self.lower = _optional_bound(k, "lower", lower)
        self.upper = _optional_bound(k, "upper", upper)
        if self.lower is None and self.upper is None:
            raise ConfigError(f"{k}: give upper, lower or both")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ConfigError(f"{k}: lower must be < upper, got lower={lower!r} upper={upper!r}")
        self._setup(
            -math.inf if self.lower is None else self.lower,
            math.inf if self.upper is None else self.upper,
            consecutive,
        )


class OutOfRange(_Bounds):
    """Alarm when a reading leaves its physical valid range ``[low, high]``.

    The same rule as :class:`Threshold` with both bounds required, kept as its own
    kind because it means "impossible reading" rather than "worrying level".

    >>> det = OutOfRange(low=-40.0, high=125.0)
    >>> [(a.index, a.threshold) for x in [20.0, 21.0, 300.0, 22.0, -41.0] if (a := det.update(x))]
    [(3, 125.0), (5, -40.0)]
    """

    kind: ClassVar[str] = "out-of-range"
    PARAMS: ClassVar[tuple[str, ...]] = ("low", "high", "consecutive")

    __slots__ = ("high", "low")

    def __init__(self, low: float, high: float, consecutive: int = 1) -> None:
        k = self.kind
        self.low = _number(k, "low", low, lambda v: True, "")
        self.high = _number(k, "high", high, lambda v: True, "")
        if not self.low < self.high:
            raise ConfigError(f"{k}: low must be < high, got low={low!r} high={high!r}")
        self._setup(self.low, self.high, consecutive)


class Stuck(_BaseDetector):
    """Alarm when the last ``window`` samples vary by at most ``tolerance``.

    A frozen sensor repeats one value.  The spread ``max - min`` of the last
    ``window`` samples is kept in amortized O(1) time with two monotonic deques;
    memory stays O(window).  One alarm per stuck episode: the rule re-arms once
    the values move again.  The onset is the first sample of the stuck window
    (exact: the window was not stuck one sample earlier); ``after`` is that
    window and ``before`` the samples between the previous alarm and the onset.
    NaN never counts as stuck.

    >>> det = Stuck(window=3)
    >>> xs = [1.0, 2.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0]
    >>> [(a.index, a.onset, a.after.mean) for x in xs if (a := det.update(x))]
    [(5, 3, 5.0), (9, 7, 6.0)]
    """

    kind: ClassVar[str] = "stuck"
    PARAMS: ClassVar[tuple[str, ...]] = ("window", "tolerance")

    __slots__ = (
        "_armed",
        "_last_nan",
        "_maxq",
        "_minq",
        "_n",
        "_since",
        "_values",
        "tolerance",
        "window",
    )

    def __init__(self, window: int = 50, tolerance: float = 0.0) -> None:
        k = self.kind
        self.window = _integer(k, "window", window, 2)
        self.tolerance = _number(k, "tolerance", tolerance, lambda v: v >= 0.0, ">= 0")
        self._n = 0
        self._armed = True
        self._since = _Run(1)  # samples since the previous alarm
        self._values: deque[float] = deque(maxlen=self.window)
        self._maxq: deque[tuple[int, float]] = deque()  # (index, value), values decreasing
        self._minq: deque[tuple[int, float]] = deque()  # (index, value), values increasing
        self._last_nan = 0

    def _push(self, n: int, x: float) -> None:
        if x != x:
            self._last_nan = n
            return
        maxq, minq = self._maxq, self._minq
        while maxq and maxq[-1][1] <= x:
            maxq.pop()
        maxq.append((n, x))
        while minq and minq[-1][1] >= x:
            minq.pop()
        minq.append((n, x))

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        n = self._n = self._n + 1
        self._values.append(x)
        self._since.total += x
        self._push(n, x)
        oldest = n - self.window  # the index that just left the window
        maxq, minq = self._maxq, self._minq
        if maxq and maxq[0][0] <= oldest:
            maxq.popleft()
        if minq and minq[0][0] <= oldest:
            minq.popleft()
        if n < self.window:
            return None
        if self._last_nan > oldest or not maxq or not maxq[0][1] - minq[0][1] <= self.tolerance:
            self._armed = True
            return None
        if not self._armed:
            return None
        self._armed = False
        onset = oldest + 1
        stuck_total = math.fsum(self._values)
        since = self._since
        before = (
            _stats(onset - since.start, since.total - stuck_total)
            if since.start <= onset
            else WindowStats(0, 0.0)
        )
        self._since = _Run(n + 1)
        return Alarm(
            index=n,
            onset=onset,
            before=before,
            after=_stats(self.window, stuck_total),
            detector=self.kind,
            statistic=maxq[0][1] - minq[0][1],
            threshold=self.tolerance,
        )

    def _dump(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "armed": self._armed,
            "since": self._since.dump(),
            "values": [_fenc(v) for v in self._values],
        }

    def _load(self, fields: _Fields) -> None:
        n = self._n = fields.integer("n")
        self._armed = fields.flag("armed")
        self._since = fields.run("since")
        values = fields.numbers("values", self.window)
        if len(values) != min(n, self.window):
            raise fields.bad("values", f"the last min(n, {self.window}) samples", values)
        self._values.extend(values)
        # The monotonic deques depend only on the window's contents: replay them.
        first = n - len(values) + 1
        for i, v in enumerate(values):
            self._push(first + i, v)


# --------------------------------------------------------------------------- registry

DETECTOR_KINDS: dict[str, type[Detector]] = {
    cls.kind: cls
    for cls in (
        ADWIN,
        PageHinkley,
        KSWIN,
        DDM,
        EDDM,
        HDDMA,
        HDDMW,
        Threshold,
        OutOfRange,
        Stuck,
    )
}


def _kind_class(kind: object) -> type[Detector]:
    cls = DETECTOR_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"unknown detector kind {kind!r}; known: {', '.join(DETECTOR_KINDS)}")
    return cls


def make_detector(kind: str, params: Mapping[str, Any] | None = None) -> Detector:
    """A new detector of ``kind``; ConfigError names any unknown or invalid parameter.

    >>> make_detector("threshold", {"upper": 3})
    Threshold(lower=None, upper=3.0, consecutive=1)
    >>> make_detector("threshold", {"uper": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskstream.errors.ConfigError: threshold: unknown parameter(s) uper; accepted: lower, upper, ...
    """
    cls = _kind_class(kind)
    return _construct(cls, kind, cls.PARAMS, {} if params is None else params)


def restore_detector(snap: Mapping[str, Any]) -> Detector:
    """Rebuild any detector from its :meth:`snapshot`, dispatching on ``snap["kind"]``."""
    if not isinstance(snap, Mapping):
        raise ConfigError(f"a detector snapshot must be a mapping, got {type(snap).__name__}")
    return _kind_class(snap.get("kind")).restore(snap)
