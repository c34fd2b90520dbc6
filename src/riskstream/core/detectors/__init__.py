"""Drift detectors with a small uniform API and plain-data snapshots.

Each detector takes one float per ``update`` and returns an :class:`Alarm` when it
decides the stream changed, with the estimated onset and the evidence on both sides
(see :mod:`.base`).  One detector per module, its paper and a doctest beside it:

- :mod:`.adwin`, :mod:`.page_hinkley`, :mod:`.kswin` for continuous values;
- :mod:`.binary` (DDM, EDDM, HDDM_A, HDDM_W) for 0/1 error indicators and rates;
- :mod:`.rules` for the plain rules ``threshold``, ``out-of-range`` and ``stuck``.

State is saved with ``snapshot()`` as plain, versioned data rather than pickle
(:mod:`.snapshot` says why).  Most River-backed kinds write out each attribute of
River's state explicitly and rebuild it on ``restore()``; ADWIN, whose window River
keeps in Rust, stores River's own state bytes (``__getstate__``) as base64 text.
Page-Hinkley and ADWIN also pack their state into bytes (``pack`` / ``unpack``), the
form a checkpoint writes for them: :mod:`.snapshot` says how.  After an alarm a
River-backed detector resets itself at once, exactly as River would at the start of
the next update, so a snapshot never holds a pending reset.

:data:`DETECTOR_KINDS` is the registry: the one mapping from a kind's name (as
written in the config) to its class.  A new kind is a module here and a line there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from riskstream.core.detectors.adwin import ADWIN
from riskstream.core.detectors.base import Alarm, Detector, WindowStats, construct
from riskstream.core.detectors.binary import DDM, EDDM, HDDMA, HDDMW
from riskstream.core.detectors.kswin import KSWIN
from riskstream.core.detectors.page_hinkley import PageHinkley
from riskstream.core.detectors.rules import OutOfRange, Stuck, Threshold
from riskstream.errors import ConfigError, RiskstreamError, SnapshotError

__all__ = [
    "ADWIN",
    "DDM",
    "DETECTOR_KINDS",
    "EDDM",
    "HDDMA",
    "HDDMW",
    "KSWIN",
    "PACKED_KINDS",
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

#: Every detector kind by the name a config uses for it (each class's ``kind``).
DETECTOR_KINDS: dict[str, type[Detector]] = {
    "adwin": ADWIN,
    "page-hinkley": PageHinkley,
    "kswin": KSWIN,
    "ddm": DDM,
    "eddm": EDDM,
    "hddm-a": HDDMA,
    "hddm-w": HDDMW,
    "threshold": Threshold,
    "out-of-range": OutOfRange,
    "stuck": Stuck,
}

#: The kinds with a packed form, by the code a packed stream snapshot names them with
#: (a code is never reused for another kind).
PACKED_KINDS: dict[int, type[PageHinkley] | type[ADWIN]] = {1: PageHinkley, 2: ADWIN}


def _kind_class(kind: object, error: type[RiskstreamError] = ConfigError) -> type[Detector]:
    cls = DETECTOR_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise error(f"unknown detector kind {kind!r}; known: {', '.join(DETECTOR_KINDS)}")
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
    return construct(cls, kind, cls.PARAMS, {} if params is None else params)


def restore_detector(snap: Mapping[str, Any]) -> Detector:
    """Rebuild any detector from its :meth:`snapshot`, dispatching on ``snap["kind"]``."""
    if not isinstance(snap, Mapping):
        raise SnapshotError(f"a detector snapshot must be a mapping, got {type(snap).__name__}")
    return _kind_class(snap.get("kind"), SnapshotError).restore(snap)
