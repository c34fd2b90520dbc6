"""KSWIN, River's Kolmogorov-Smirnov windowed test, with a replayable random generator."""

from __future__ import annotations

import base64
import binascii
import math
import random
import struct
from collections import deque
from typing import Any, ClassVar

from riskstream.core.detectors import _river
from riskstream.core.detectors.base import (
    Alarm,
    BaseDetector,
    check_integer,
    check_probability,
    window_stats,
)
from riskstream.core.detectors.snapshot import Fields, encode_float
from riskstream.errors import ConfigError

__all__ = ["KSWIN"]


_MT_WORDS = 625  # random.Random's Mersenne Twister state: 624 words and a position
_MT_STRUCT = struct.Struct(f"<{_MT_WORDS}I")


def _dump_rng(rng: random.Random) -> dict[str, Any]:
    version, words, gauss_next = rng.getstate()
    return {
        "version": version,
        "mt": base64.b64encode(_MT_STRUCT.pack(*words)).decode("ascii"),
        "gauss_next": None if gauss_next is None else encode_float(gauss_next),
    }


def _load_rng(fields: Fields, key: str) -> random.Random:
    sub = fields.sub(key)
    mt = sub.get("mt")
    try:
        words = _MT_STRUCT.unpack(base64.b64decode(mt, validate=True))
        rng = random.Random()
        rng.setstate((sub.integer("version"), words, sub.optional_number("gauss_next")))
    except (TypeError, ValueError, binascii.Error, struct.error):
        raise sub.bad("mt", f"base64 of {_MT_WORDS} little-endian uint32 words", mt) from None
    return rng


class KSWIN(BaseDetector):
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
        self.alpha = check_probability(k, "alpha", alpha)
        self.window_size = check_integer(k, "window_size", window_size, 2)
        self.stat_size = check_integer(k, "stat_size", stat_size, 1)
        if 2 * self.stat_size > self.window_size:
            raise ConfigError(
                f"{k}: stat_size must be at most half of window_size (it samples stat_size "
                f"of the older window_size - stat_size values), got stat_size={stat_size!r} "
                f"window_size={window_size!r}"
            )
        self.seed = check_integer(k, "seed", seed, 0)
        if self.seed >= 2**63:  # keep the snapshot within JSON's 64-bit integers
            raise ConfigError(f"{k}: seed must be below 2**63, got {seed!r}")
        self._det: Any = _river.drift().KSWIN(
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
            before=window_stats(len(older), math.fsum(older)),
            after=window_stats(len(recent), math.fsum(recent)),
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
                "p_value": encode_float(det.p_value),
                "window": [encode_float(v) for v in det.window],
                "rng": _dump_rng(det._rng),
            },
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        river = fields.sub("river")
        det = self._det
        det.n = river.integer("n")
        det.p_value = river.number("p_value")
        det.window = deque(river.numbers("window", self.window_size), maxlen=self.window_size)
        det._rng = _load_rng(river, "rng")
