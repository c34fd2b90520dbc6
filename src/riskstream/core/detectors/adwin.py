"""ADWIN, River's adaptive-windowing detector, with an onset estimate and evidence."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from riskstream.core.detectors import _river
from riskstream.core.detectors.base import Alarm, BaseDetector, WindowStats, check_probability
from riskstream.core.detectors.snapshot import check_header, unpack_error
from riskstream.errors import SnapshotError

__all__ = ["ADWIN"]


class ADWIN(BaseDetector):
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
        self.delta = check_probability(self.kind, "delta", delta)
        self._det = _river.drift_class("adwin", "ADWIN")(delta=self.delta)
        self._n = 0

    def update(self, x: float) -> Alarm | None:
        det = self._det
        helper = det._helper
        width_before = helper.get_width()
        total_before = helper.get_total()
        det.update(x)
        self._n += 1
        if not det._drift_detected:  # River's drift_detected property, without the call
            return None
        helper = det._helper
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

    def pack(self) -> tuple[bytes, bytes] | None:
        """River's state bytes cut in two (see :mod:`.snapshot`): the hot part is the
        window's totals and its :data:`HOT_ROWS` newest bucket rows, which most updates
        move; the tag is the rest, the older rows, which move every ``2**HOT_ROWS``
        updates or so.  Rows are written without their unused slots, which River never
        reads.  None when River's bytes are not laid out as this code knows."""
        if not (_layout and _layout[0]) and not _layout_known():
            return None
        raw: bytes = self._det._helper.__getstate__()
        cut = _ROWS_AT + _ROW * min((len(raw) - _ROWS_AT - _TRAILER) // _ROW, HOT_ROWS)
        parts = [_HOT.pack(self._n, self._det._drift_detected), raw[_HEAD:_ROWS_AT]]
        for at in range(_ROWS_AT, cut, _ROW):
            used = raw[at + 8]
            t, v = at + _TOTALS, at + _VARIANCES
            parts += (_USED[used], raw[t : t + 8 * used], raw[v : v + 8 * used])
        return b"".join(parts), raw[cut:]

    def pack_cold(self, tag: bytes) -> bytes:
        """The cold part for :meth:`pack`'s ``tag``: the setting, River's settings bytes
        and the older bucket rows, their unused slots left out."""
        head: bytes = self._det._helper.__getstate__()[:_HEAD]
        return _COLD.pack(self.delta) + head + _squeeze_tail(tag)

    @classmethod
    def unpack(cls, hot: bytes, cold: bytes) -> ADWIN:
        """Rebuild an ADWIN from :meth:`pack` output, bit for bit."""
        try:
            (delta,) = _COLD.unpack_from(cold)
            n, drift = _HOT.unpack_from(hot)
            at = _HOT.size + _ROWS_AT - _HEAD
            window = hot[_HOT.size : at]
            (rows,) = struct.unpack_from("<Q", window, _ROWS_AT - _HEAD - 8)
            newest, at = _expand_rows(hot, at, min(rows, HOT_ROWS))
            if at != len(hot):
                raise ValueError(f"{len(hot) - at} bytes after the newest bucket rows")
            tail = _expand_tail(cold[_COLD.size + _HEAD :])
            det = cls(delta=delta)
        except (struct.error, ValueError, IndexError) as exc:
            raise unpack_error(cls.kind, exc) from None
        raw = cold[_COLD.size : _COLD.size + _HEAD] + window + newest + tail
        det._n = n
        det._det._helper = _river_state(raw)
        det._det._drift_detected = bool(drift)
        return det

    def snapshot(self) -> dict[str, Any]:
        """The setting, the sample count and River's own state bytes, base64-encoded.

        Unlike the other kinds, ADWIN's window is not written out field by field:
        River keeps it in Rust, and the bytes of its ``__getstate__`` are ten times
        cheaper to take than a pickle and stable within River's version range.  The
        layout (``delta`` at the top, no ``params``) is ADWIN's version 1, kept so
        that saved state still restores.
        """
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
        """Rebuild an ADWIN from :meth:`snapshot` output, refusing bytes River rejects."""
        fields = check_header(cls.kind, cls.SNAPSHOT_VERSION, snap)
        det = cls(delta=fields.number("delta"))
        det._n = fields.integer("n")
        drift = fields.flag("drift")
        window = fields.get("window")
        try:
            state = base64.b64decode(window, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise fields.bad("window", "base64 text", window) from None
        det._det._helper = _river_state(state)
        det._det._drift_detected = drift
        return det


def _river_state(state: bytes) -> Any:
    """River's ``AdaptiveWindowing`` from its state bytes, refusing bytes River rejects."""
    windowing = _river.rust_drift().AdaptiveWindowing
    helper = windowing.__new__(windowing)
    try:
        helper.__setstate__(state)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # River's Rust code panics (a BaseException) on bad bytes
        raise SnapshotError(f"adwin: snapshot field 'window' is not River state: {exc}") from None
    return helper


# River's state bytes (bincode of its Rust AdaptiveWindowing), as River 0.22-0.26 lay them
# out: settings (_HEAD bytes), the window's totals and counters and the number of bucket
# rows (up to _ROWS_AT), the rows (_ROW bytes each: the row's capacity, how many of its
# max_buckets + 1 slots are used, then its totals and variances, each a length and that
# many float64s, unused slots zero), then _TRAILER bytes of settings again.
# _layout_known() checks this once on a new window; a River that lays them out otherwise
# gets the JSON snapshot (never a wrong one).  Packed, a row is its used count (one byte)
# and its used totals and variances: River reads no slot past the used ones.
_HEAD = 36
_ROWS_AT = 92
_ROW = 128
_SLOTS = 6  # max_buckets + 1, River's default max_buckets being 5
_TOTALS = 24  # within a row
_VARIANCES = _TOTALS + 8 * _SLOTS + 8
_TRAILER = 28
HOT_ROWS = 3
_HOT = struct.Struct("<q?")  # n, drift
_COLD = struct.Struct("<d")  # delta
_ROW_HEAD = struct.Struct("<QQQ")  # capacity, used, slots
_SLOTS_LEN = struct.pack("<Q", _SLOTS)
_USED = [bytes((i,)) for i in range(_SLOTS + 1)]
_ZERO = bytes(_ROW)
_layout: list[bool] = []


def _layout_known() -> bool:
    if not _layout:
        probe = _river.rust_drift().AdaptiveWindowing(0.002, 32, 5, 5, 10)
        for x in (1.0, 2.0, 3.0):
            probe.update(x)
        raw = bytes(probe.__getstate__())
        _layout.append(
            len(raw) == _ROWS_AT + _ROW + _TRAILER
            and struct.unpack_from("<dIQdd", raw) == (0.002, 32, 5, 5.0, 10.0)
            and struct.unpack_from("<d8xd24xQ", raw, _HEAD) == (6.0, 3.0, 1)
            and _ROW_HEAD.unpack_from(raw, _ROWS_AT) == (5, 3, _SLOTS)
            and _squeeze_tail(raw[_ROWS_AT:])[:1] == b"\x01"
            and _expand_tail(_squeeze_tail(raw[_ROWS_AT:])) == raw[_ROWS_AT:]
        )
    return _layout[0]


def _squeeze_tail(tail: bytes) -> bytes:
    """The older bucket rows and the trailer, rows without their unused slots: ``b"\x01"``
    then the rows then the trailer; or ``b"\x00"`` and the bytes as they are when they are
    not laid out as expected (the layout itself is checked once, by _layout_known)."""
    rows, extra = divmod(len(tail) - _TRAILER, _ROW)
    if extra or rows < 0:
        return b"\x00" + tail
    parts = [b"\x01"]
    for at in range(0, rows * _ROW, _ROW):
        used = tail[at + 8]
        if used > _SLOTS:
            return b"\x00" + tail
        t, v = at + _TOTALS, at + _VARIANCES
        parts += (_USED[used], tail[t : t + 8 * used], tail[v : v + 8 * used])
    parts.append(tail[rows * _ROW :])
    return b"".join(parts)


def _expand_rows(packed: bytes, at: int, rows: int) -> tuple[bytes, int]:
    """``rows`` packed bucket rows from ``packed[at:]`` as River lays them out; and where
    they end."""
    parts: list[bytes] = []
    for _ in range(rows):
        used = packed[at]
        if used > _SLOTS:
            raise ValueError(f"a bucket row with {used} of {_SLOTS} slots used")
        size = 8 * used
        pad = _ZERO[: 8 * _SLOTS - size]
        t, v = packed[at + 1 : at + 1 + size], packed[at + 1 + size : at + 1 + 2 * size]
        if len(v) != size:
            raise ValueError("a bucket row is cut short")
        parts += (_ROW_HEAD.pack(_SLOTS - 1, used, _SLOTS), t, pad, _SLOTS_LEN, v, pad)
        at += 1 + 2 * size
    return b"".join(parts), at


def _expand_tail(packed: bytes) -> bytes:
    """The older bucket rows and trailer that :func:`_squeeze_tail` packed."""
    if packed[:1] == b"\x00":
        return packed[1:]
    if packed[:1] != b"\x01":
        raise ValueError(f"unknown bucket-row encoding {packed[:1]!r}")
    parts: list[bytes] = []
    at, end = 1, len(packed) - _TRAILER
    while at < end:
        rows, at = _expand_rows(packed, at, 1)
        parts.append(rows)
    if at != end:
        raise ValueError("the bucket rows are cut short")
    parts.append(packed[end:])
    return b"".join(parts)
