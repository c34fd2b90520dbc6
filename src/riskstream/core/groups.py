"""Group rates and the gap between one group and everyone else (fairness monitors).

:class:`GroupRates` follows one model's stream of per-event indicators — was this
answer harmful (1) or not (0) — split by group (``segment.group``, or an
intersection such as ``female|65+``).  For each event of group ``g`` it can say
how ``g`` compares with the *rest*, the pooled events of every other group:

``rate``
    ``g``'s rate: the exponentially weighted mean of ``g``'s indicators, each of
    ``g``'s events halving the weight of the ones before it every ``half_life``
    events *of* ``g``.  So a small group's rate rests on as many recent events as
    a large group's, and reacts to a change after as many of its own events.
    In a steady state it averages over ``(1 + lam) / (1 - lam)`` effective events
    (``lam = 2 ** (-1 / half_life)``; about ``2.885 * half_life``).
``rest_rate``
    The rest's pooled rate: the same weighted mean over every *other* group's
    events, where weights halve every ``half_life`` events of the whole stream.
    It weighs the groups by their traffic, as the users met them.
``difference = rate - rest_rate`` (the risk difference) and
``ratio = rate / max(rest_rate, ratio_floor)`` (the relative risk; for a rate
of something good, such as approvals, this is the disparate-impact ratio whose
"four-fifths rule" asks for >= 0.8).
``excess = x - rest_rate``
    This event's indicator minus the rest's rate: an estimate of the gap from
    this one event.  Its mean over ``g``'s events *is* the gap, and successive
    values are nearly independent (``rest_rate`` moves slowly), which is what a
    change detector (Page-Hinkley, ADWIN) assumes of its input.

Feed a detector ``excess``, not ``difference``: why, with the measurements, is in
``docs/design/group-gaps.md``.  Nothing is reported (``observe`` returns ``None``)
until ``g`` and the rest have each seen ``min_samples`` events.  O(1) per event.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from riskstream.core.fields import field_getter, key_part
from riskstream.errors import ConfigError, SnapshotError

__all__ = ["MAX_GROUPS", "GapSample", "GroupRates", "group_getter"]

SNAPSHOT_VERSION = 1
# The rest's weight below which its rate is numerically meaningless: the stream's
# totals and a group's share of them are each exact to ~1e-16 of their size (a few
# thousand at most), so their difference is only trusted well above 1e-9.  A rest
# this light has been silent for some 20 half-lives.
_MIN_REST_WEIGHT = 1e-6


class GapSample(NamedTuple):
    """How group ``group`` compares with the pooled other groups, after one event.

    Rates are exponentially weighted (see the module's docstring); ``events`` /
    ``rest_events`` are raw event counts and ``positives`` / ``rest_positives`` the
    raw sums of the indicators, since the stream began.  (A named tuple, not a
    dataclass: one is built per event, and a frozen dataclass costs 1 us more.)
    """

    group: str
    rate: float
    rest_rate: float
    difference: float
    ratio: float
    excess: float
    events: int
    rest_events: int
    positives: float
    rest_positives: float


MAX_GROUPS = 1000
"""Groups one stream tracks at most.  Protected groups are few; a field with a new value
per event (an id by mistake, or a flood) would grow the stream's state, and each
checkpoint's write of it, without bound (100k values: a 4.8 MB snapshot per save).
Events of groups past it still count in every other group's rest."""


def _check_number(name: str, value: object, low: float, *, integer: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if not bad and integer and not isinstance(value, numbers.Integral):
        bad = True
    if bad or not (float(value) >= low):  # type: ignore[arg-type]
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"group rates: {name} must be {kind} >= {low:g}, got {value!r}")


class GroupRates:
    """Per-group rates of an indicator, with forgetting, and each group's gap.

    ``half_life`` is in events (``math.inf``: never forget, plain averages);
    ``min_samples`` is what ``g`` and the rest each need before a gap is reported;
    ``ratio_floor`` keeps ``ratio`` finite when the rest's rate is near zero.

    >>> import random
    >>> rng = random.Random(1)
    >>> rates = GroupRates(half_life=1000, min_samples=200)
    >>> for i in range(40_000):
    ...     group = rng.choice(["a", "b", "b", "c"])
    ...     harmful = 0.10 if group == "a" and i >= 20_000 else 0.02
    ...     gap = rates.observe(group, float(rng.random() < harmful))
    ...     if group == "a":
    ...         last_a = gap
    >>> round(last_a.rate, 2), round(last_a.rest_rate, 2), round(last_a.difference, 2)
    (0.1, 0.02, 0.08)
    >>> 3.5 < last_a.ratio < 6.5, last_a.events + last_a.rest_events
    (True, 40000)
    >>> print(GroupRates(half_life=100, min_samples=2).observe("a", 1.0))
    None
    """

    __slots__ = (
        "_groups", "_lam", "_min", "_n", "_pos", "_s", "_w", "floor", "half_life", "untracked"
    )  # fmt: skip

    def __init__(
        self, half_life: float = 2000.0, min_samples: int = 200, ratio_floor: float = 1e-3
    ) -> None:
        _check_number("half_life", half_life, 1.0)
        _check_number("min_samples", min_samples, 1, integer=True)
        _check_number("ratio_floor", ratio_floor, 0.0)
        if not ratio_floor > 0:
            raise ConfigError(f"group rates: ratio_floor must be > 0, got {ratio_floor!r}")
        self.half_life = float(half_life)
        self.floor = float(ratio_floor)
        self._min = int(min_samples)
        self._lam = 1.0 if math.isinf(self.half_life) else 0.5 ** (1.0 / self.half_life)
        self._n = 0  # events of the whole stream: its clock
        self._pos = 0.0  # the stream's raw sum of indicators
        self._w = 0.0  # the stream's weight and weighted sum, as of event _n
        self._s = 0.0
        # Per group: [count, positives, w, s (in the group's own events),
        #             gw, gs (in stream events, as of event gt), gt]
        self._groups: dict[str, list[Any]] = {}
        self.untracked = 0  # events of new groups past MAX_GROUPS (since this process began)

    def __len__(self) -> int:
        """How many groups have been seen."""
        return len(self._groups)

    def observe(self, group: str, x: float) -> GapSample | None:
        """Learn that ``group`` had indicator ``x`` (0.0 or 1.0; a probability also
        works); return its gap once it and the rest have ``min_samples`` events."""
        lam = self._lam
        n = self._n = self._n + 1
        total_pos = self._pos = self._pos + x
        w = self._w = lam * self._w + 1.0
        s = self._s = lam * self._s + x
        st = self._groups.get(group)
        if st is None:
            if len(self._groups) >= MAX_GROUPS:  # a flood of distinct values: in the rest only
                self.untracked += 1
                return None
            st = self._groups[group] = [0, 0.0, 0.0, 0.0, 0.0, 0.0, n]
        count = st[0] = st[0] + 1
        pos = st[1] = st[1] + x
        gw_own = st[2] = lam * st[2] + 1.0
        gs_own = st[3] = lam * st[3] + x
        age = n - st[6]
        if age == 1:
            decay = lam
        elif age:
            decay = lam**age
        else:
            decay = 1.0
        gw = st[4] = decay * st[4] + 1.0
        gs = st[5] = decay * st[5] + x
        st[6] = n
        rest_count = n - count
        if count < self._min or rest_count < self._min:
            return None
        rest_w = w - gw
        if rest_w < _MIN_REST_WEIGHT:
            return None
        rest_rate = (s - gs) / rest_w
        if rest_rate < 0.0:  # rounding, when the rest's indicators were all 0
            rest_rate = 0.0
        rate = gs_own / gw_own
        floor = self.floor
        return GapSample(
            group,
            rate,
            rest_rate,
            rate - rest_rate,
            rate / (rest_rate if rest_rate > floor else floor),
            x - rest_rate,
            count,
            rest_count,
            pos,
            total_pos - pos,
        )

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON-able); :meth:`restore` gives back an identical object.

        Floats are kept as they are: orjson writes each as the shortest text that
        reads back to the same float, so the round trip is bit-exact.
        """
        return {
            "v": SNAPSHOT_VERSION,
            "n": self._n,
            "pos": self._pos,
            "w": self._w,
            "s": self._s,
            "groups": {g: list(st) for g, st in self._groups.items()},
        }

    @classmethod
    def restore(
        cls,
        snap: Mapping[str, Any],
        half_life: float = 2000.0,
        min_samples: int = 200,
        ratio_floor: float = 1e-3,
    ) -> GroupRates:
        """From :meth:`snapshot`'s data, with the monitor's current settings.

        Settings are not in the snapshot: a changed ``half_life`` or ``min_samples``
        applies from the next event on, to rates that stay meaningful.
        """
        if snap.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"group rates snapshot version {snap.get('v')!r} is not {SNAPSHOT_VERSION}; "
                "it was written by another riskstream version — reset the state to continue"
            )
        rates = cls(half_life, min_samples, ratio_floor)
        rates._n = int(snap["n"])
        rates._pos = float(snap["pos"])
        rates._w = float(snap["w"])
        rates._s = float(snap["s"])
        groups = snap["groups"]
        try:
            rates._groups = {
                str(g): [int(c), float(p), float(w), float(s), float(gw), float(gs), int(gt)]
                for g, (c, p, w, s, gw, gs, gt) in groups.items()
            }
        except (TypeError, ValueError) as exc:
            raise SnapshotError(f"group rates snapshot is malformed: {exc}") from None
        return rates


def group_getter(paths: Sequence[str]) -> Callable[[Mapping[str, Any]], str | None]:
    """The group of an event: its ``paths``' values escaped and joined by ``|`` (as stream keys
    are), or ``None`` when any of them is missing — an event that does not say its
    group is not pooled into a group called ``None``.

    >>> of = group_getter(["segment.gender", "segment.age_band"])
    >>> of({"segment": {"gender": "female", "age_band": "65+"}})
    'female|65+'
    >>> print(of({"segment": {"gender": "female"}}))
    None
    """

    if not paths:
        raise ConfigError("group: name at least one field path, e.g. [segment.group]")
    getters = tuple(field_getter(p) for p in paths)
    if len(getters) == 1:
        (get,) = getters

        def one(e: Mapping[str, Any]) -> str | None:
            v = get(e)
            return None if v is None else key_part(v)

        return one

    def many(e: Mapping[str, Any]) -> str | None:
        parts = []
        for get in getters:
            v = get(e)
            if v is None:
                return None
            parts.append(key_part(v))
        return "|".join(parts)

    return many
