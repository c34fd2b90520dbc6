"""ADWIN, River's adaptive-windowing detector, with an onset estimate and evidence."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from riskstream.core.detectors import _river
from riskstream.core.detectors.base import Alarm, BaseDetector, WindowStats, check_probability
from riskstream.core.detectors.snapshot import check_header
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
        windowing = _river.rust_drift().AdaptiveWindowing
        helper = windowing.__new__(windowing)
        try:
            helper.__setstate__(state)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # River's Rust code panics (a BaseException) on bad bytes
            raise SnapshotError(
                f"adwin: snapshot field 'window' is not River state: {exc}"
            ) from None
        det._det._helper = helper
        det._det._drift_detected = drift
        return det
