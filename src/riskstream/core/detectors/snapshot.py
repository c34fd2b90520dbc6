"""The snapshot codec: detector state as plain, versioned JSON data.

A snapshot is a mapping ``{"kind": ..., "v": ..., ...}`` of numbers, strings, lists
and mappings only -- never a pickle, because loading a pickle from a shared store
runs code, and a pickle breaks when a library renames an attribute.  Non-finite
floats (River starts some minima at infinity) are written as the strings ``"inf"``,
``"-inf"`` and ``"nan"``, because JSON has no such numbers.

:func:`check_header` refuses a snapshot of another kind or version, and
:class:`Fields` reads one field at a time with its type checked, so a corrupt or
foreign snapshot fails with a message naming the field rather than with an
``AttributeError`` deep inside River.

**The packed form.**  A checkpoint writes every changed stream, so the common kinds
(Page-Hinkley and ADWIN, in a :class:`~riskstream.core.streams.StreamDetector`)
also have a binary form: ``pack()`` returns the *hot* part, the state an update may
move, as little-endian float64 and int64 fields (``struct``: non-finite floats and
every bit survive), and a *tag* of the cold part, the state that rarely moves
(settings; ADWIN's older bucket rows).  ``pack_cold(tag)`` builds the cold part's
bytes, which the stream saves only when the tag differs from the one it saved last;
``unpack(hot, cold)`` rebuilds a detector that behaves bit for bit as the one packed.
The layouts are versioned by the stream's header (:mod:`riskstream.core.streams`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from riskstream.core.detectors import _river
from riskstream.errors import SnapshotError

__all__ = ["Fields", "check_header", "dump_mean", "encode_float", "unpack_error"]

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def encode_float(x: float) -> float | str:
    """A float as plain JSON data; finite floats survive orjson bit-for-bit."""
    x = float(x)
    if math.isfinite(x):
        return x
    if x != x:
        return "nan"
    return "inf" if x > 0 else "-inf"


def check_header(kind: str, version: int, snap: object) -> Fields:
    """Refuse a snapshot of another kind or version, naming what was found."""
    if isinstance(snap, Mapping):
        if snap.get("kind") == kind and snap.get("v") == version:
            return Fields(kind, snap)
        found = f"kind={snap.get('kind')!r} v={snap.get('v')!r}"
    else:
        found = f"of type {type(snap).__name__}"
    raise SnapshotError(
        f"{kind}: cannot restore snapshot {found}; expected kind={kind!r} v={version}"
    )


class Fields:
    """Typed reads from a snapshot; a bad field raises a SnapshotError naming it."""

    __slots__ = ("_data", "_kind", "_prefix")

    def __init__(self, kind: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self._kind = kind
        self._data = data
        self._prefix = prefix

    def bad(self, key: str, want: str, got: object) -> SnapshotError:
        name = f"{self._prefix}{key}"
        return SnapshotError(f"{self._kind}: snapshot field {name!r} must be {want}, got {got!r}")

    def get(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            name = f"{self._prefix}{key}"
            raise SnapshotError(f"{self._kind}: snapshot has no field {name!r}") from None

    def sub(self, key: str) -> Fields:
        value = self.get(key)
        if not isinstance(value, Mapping):
            raise self.bad(key, "a mapping", value)
        return Fields(self._kind, value, f"{self._prefix}{key}.")

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
        return self.as_number(key, self.get(key))

    def optional_number(self, key: str) -> float | None:
        value = self.get(key)
        return None if value is None else self.as_number(key, value)

    def numbers(self, key: str, max_len: int) -> list[float]:
        value = self.get(key)
        if not isinstance(value, list) or len(value) > max_len:
            raise self.bad(key, f"a list of at most {max_len} numbers", value)
        return [self.as_number(key, v) for v in value]

    def pair(self, key: str) -> tuple[float, float]:
        """A ``[count, total]`` or ``[n, mean]`` pair of numbers."""
        value = self.get(key)
        if not isinstance(value, list) or len(value) != 2:
            raise self.bad(key, "a [number, number] pair", value)
        return self.as_number(key, value[0]), self.as_number(key, value[1])

    def run(self, key: str) -> tuple[int, float]:
        """A ``[start index, total]`` pair, as written by ``Run.dump``."""
        value = self.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or isinstance(value[0], bool)
            or not isinstance(value[0], int)
            or value[0] < 0
        ):
            raise self.bad(key, "a [start index, total] pair", value)
        return value[0], self.as_number(key, value[1])

    def mean(self, key: str) -> Any:
        """A river ``stats.Mean`` written as ``[n, mean]``."""
        n, mean = self.pair(key)
        if n < 0:
            raise self.bad(key, "[n >= 0, mean]", self.get(key))
        m = _river.stats().Mean()
        m.n, m._mean = n, mean
        return m

    def as_number(self, key: str, value: object) -> float:
        """``value`` (read from field ``key``) as a float, non-finite strings included."""
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.bad(key, 'a number (or "inf", "-inf", "nan")', value)
        return float(value)


def dump_mean(m: Any) -> list[float | str]:
    """A river ``stats.Mean`` as ``[n, mean]``, the form :meth:`Fields.mean` reads."""
    return [encode_float(m.n), encode_float(m._mean)]


def unpack_error(kind: str, exc: Exception) -> SnapshotError:
    """A packed snapshot of ``kind`` that does not unpack, with what was wrong."""
    return SnapshotError(f"{kind}: packed snapshot does not unpack ({type(exc).__name__}: {exc})")
