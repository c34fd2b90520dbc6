"""A grouped story told from its root: the change that began first and explains the rest.

Correlated incidents (:func:`riskstream.core.incident_records.correlate`) are one
story, keyed by the incident detected first.  But what was *detected* first is
often an effect: a model that goes flat is noticed within minutes, the slow drift
of the sensor feeding it only later, although the sensor changed first and is the
cause.  So a story is ordered by what explains what, then by when each change is
estimated to have begun:

1. **Lineage.**  An incident explains another when the other is its child (the
   cascade an incident opens on the models downstream of it), or when the other's
   subject is fed, directly or not, by its subject (the config's ``lineage``).
   Upstream comes first, whatever the onset estimates say: they carry an interval.
2. **Onset.**  Between incidents no lineage links, the earlier estimated onset.
3. **Detection**, then the incident id: only to break ties.

The root is the first of that order; every other member is an effect, and says
which member explains it.  All of it is worded here, so the record, the reports,
the console and the demo say the same thing.  Pure: incidents and lineage in,
plain data out.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from riskstream.core.enrichment import downstream_of
from riskstream.core.timeutil import format_time as _format_time
from riskstream.core.timeutil import parse_time as _parse_time

__all__ = ["MAX_MEMBERS", "Member", "explains", "join_story", "order", "tell"]

MAX_MEMBERS = 200
"""Members a story lists; beyond that, later effects are counted, not listed (the root
is still chosen among every incident that joins)."""

Lineage = Mapping[str, Sequence[str]]

# A story is retold whole at every join, from its members' stored times: in a flood on
# one subject, 200 members' times were parsed and formatted again for each new one,
# a third of the join's cost. The same few hundred times recur; both are pure.
parse_time = functools.lru_cache(maxsize=4096)(_parse_time)
format_time = functools.lru_cache(maxsize=4096)(_format_time)


@dataclass(frozen=True, slots=True)
class Member:
    """What ordering needs of one incident of a story."""

    incident_id: str
    subject: str
    type: str
    onset: float
    detected: float
    parent_id: str | None = None
    onset_from: float | None = None  # the onset's interval, when the detector gave one
    onset_to: float | None = None

    @classmethod
    def of(cls, incident: Mapping[str, Any]) -> Member:
        """From an incident's data (schemas/incident.schema.json) or :meth:`to_data`."""
        detected_at, onset_at = incident.get("detected_at"), incident.get("onset_at")
        onset_t = parse_time(str(onset_at)) if onset_at else None
        detected = parse_time(str(detected_at)) if detected_at else onset_t or 0.0
        onset = onset_t if onset_t is not None else detected
        interval = (incident.get("evidence") or {}).get("onset_interval") or {}
        low, high = interval.get("from"), interval.get("to")
        if "onset_from" in incident:
            low, high = incident.get("onset_from"), incident.get("onset_to")
        return cls(
            str(incident["incident_id"]),
            str(incident.get("subject", "")),
            str(incident.get("type", "incident")),
            onset,
            detected,
            str(incident["parent_id"]) if incident.get("parent_id") else None,
            parse_time(str(low)) if low else None,
            parse_time(str(high)) if high else None,
        )

    @property
    def key(self) -> tuple[float, float, str]:
        """Onset, then detection, then id: the order where lineage says nothing."""
        return (self.onset, self.detected, self.incident_id)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "incident_id": self.incident_id,
            "subject": self.subject,
            "type": self.type,
            "onset_at": format_time(self.onset),
            "detected_at": format_time(self.detected),
        }
        if self.parent_id:
            data["parent_id"] = self.parent_id
        if self.onset_from is not None and self.onset_to is not None:
            data["onset_from"] = format_time(self.onset_from)
            data["onset_to"] = format_time(self.onset_to)
        return data


Below = Mapping[str, Mapping[str, int]]


def _below(members: Iterable[Member], lineage: Lineage) -> dict[str, dict[str, int]]:
    """Each member's subject -> everything it feeds, with its rank (nearest first):
    computed once per story, not per pair."""
    return {
        s: {d: n for n, d in enumerate(downstream_of(s, lineage))}
        for s in {m.subject for m in members}
    }


def _feeds(up: str, down: str, lineage: Lineage, below: Below | None = None) -> bool:
    """``up`` feeds ``down`` (directly or not), and not the other way round (a cycle)."""
    if below is not None and up in below and down in below:
        return down in below[up] and up not in below[down]
    return down in downstream_of(up, lineage) and up not in downstream_of(down, lineage)


def explains(a: Member, b: Member, lineage: Lineage, below: Below | None = None) -> bool:
    """Whether ``a`` sits upstream of ``b``: ``b`` is ``a``'s child incident, or
    ``a``'s subject feeds ``b``'s by the declared lineage.

    >>> lin = {"sensor": ["anomaly"], "anomaly": ["maintenance"]}
    >>> s = Member("s", "sensor", "sensor-drift", 240.0, 1360.0)
    >>> m = Member("m", "maintenance", "wrong-recommendations", 3600.0, 4300.0)
    >>> explains(s, m, lin), explains(m, s, lin)
    (True, False)
    """
    if b.parent_id == a.incident_id:
        return True
    if a.parent_id == b.incident_id:
        return False
    return a.subject != b.subject and _feeds(a.subject, b.subject, lineage, below)


def order(members: Iterable[Member], lineage: Lineage, below: Below | None = None) -> list[Member]:
    """The story's order, root first: upstream before downstream, else earliest onset,
    then earliest detection, then id.

    A topological order of "explains", taking at each step the ready member with
    the earliest onset; a cycle (lineage declared both ways) is broken the same way.

    >>> lin = {"sensor": ["anomaly"]}
    >>> flat = Member("a", "anomaly", "model-output-flat", 480.0, 1035.0)
    >>> drift = Member("s", "sensor", "sensor-drift", 250.0, 1360.0)
    >>> other = Member("o", "elsewhere", "drift", 100.0, 2000.0)
    >>> [m.incident_id for m in order([flat, drift], lin)]
    ['s', 'a']
    >>> [m.incident_id for m in order([flat, drift, other], lin)]
    ['o', 's', 'a']
    """
    pool = {m.incident_id: m for m in members}
    below = below if below is not None else _below(pool.values(), lineage)
    return _order(pool, _explainers(pool, lineage, below))


def _explainers(pool: Mapping[str, Member], lineage: Lineage, below: Below) -> dict[str, set[str]]:
    """For each member, the members that explain it (:func:`explains`), found by subject:
    one lineage test per pair of subjects, not per pair of members, so a story of many
    incidents on a few subjects costs what its links cost."""
    ups: dict[str, set[str]] = {i: set() for i in pool}
    by_subject: dict[str, list[Member]] = {}
    for m in pool.values():
        by_subject.setdefault(m.subject, []).append(m)
    for up, uppers in by_subject.items():
        for down, lowers in by_subject.items():
            if up == down or not _feeds(up, down, lineage, below):
                continue
            for b in lowers:  # not one whose child b is (unless b is its child too: below)
                ups[b.incident_id].update(
                    a.incident_id for a in uppers if a.parent_id != b.incident_id
                )
    for b in pool.values():  # a child is explained by its parent, whatever the subjects
        parent = b.parent_id
        if parent is not None and parent in pool and parent != b.incident_id:
            ups[b.incident_id].add(parent)
    return ups


def _order(pool: Mapping[str, Member], explainers: Mapping[str, set[str]]) -> list[Member]:
    ups = {i: set(found) for i, found in explainers.items()}
    downs: dict[str, set[str]] = {i: set() for i in pool}
    for b, found in ups.items():
        for a in found:
            downs[a].add(b)
    ready = [(m.key, i) for i, m in pool.items() if not ups[i]]
    heapq.heapify(ready)
    done: list[Member] = []
    left = dict(pool)
    while left:
        if not ready:  # only a cycle is left: take its earliest as if nothing fed it
            first = min(left.values(), key=lambda m: m.key)
            ready.append((first.key, first.incident_id))
            ups[first.incident_id].clear()
        _, i = heapq.heappop(ready)
        if i not in left:
            continue
        done.append(left.pop(i))
        for j in downs[i]:
            ups[j].discard(i)
            if j in left and not ups[j]:
                heapq.heappush(ready, (pool[j].key, j))
    return done


def _clock(at: float) -> str:
    return format_time(at)[11:16]


def _overlap(a: Member, b: Member) -> bool:
    if None in (a.onset_from, a.onset_to, b.onset_from, b.onset_to):
        return False
    return a.onset_from <= b.onset_to and b.onset_from <= a.onset_to  # type: ignore[operator]


def _why_root(root: Member, rest: Sequence[Member], explainers: Mapping[str, set[str]]) -> str:
    """Why ``root`` leads, in words."""
    if not rest:
        return f"{root.subject} is the only incident of the story"
    fed = [m for m in rest if root.incident_id in explainers[m.incident_id]]
    unexplained = [m for m in rest if m not in fed]
    parts = []
    if fed:
        subjects = list(dict.fromkeys(m.subject for m in fed if m.subject != root.subject))
        # Child incidents carry their parent's onset: compare with those that have their own.
        earliest = min([m for m in fed if m.parent_id is None] or fed, key=lambda m: m.key)
        words = f"{root.subject} is upstream of the others"
        if subjects:
            words = f"{root.subject} feeds {', '.join(subjects)} (declared lineage)"
        if root.onset < earliest.onset:
            words += (
                f", and its change began first: estimated onset ~{_clock(root.onset)}, "
                f"before {earliest.subject}'s ~{_clock(earliest.onset)}"
            )
        elif root.onset == earliest.onset:
            words += f", and its change began no later (estimated onset ~{_clock(root.onset)})"
        else:
            words += (
                f"; its estimated onset ~{_clock(root.onset)} is later than "
                f"{earliest.subject}'s ~{_clock(earliest.onset)}, but lineage decides: "
                "onset estimates carry an interval"
            )
        parts.append(words)
    if unexplained:
        nxt = min(unexplained, key=lambda m: m.key)
        if root.onset < nxt.onset:
            words = (
                f"no lineage links it to {nxt.subject}, and its change began first "
                f"(estimated onset ~{_clock(root.onset)}, before ~{_clock(nxt.onset)})"
            )
            if _overlap(root, nxt):
                words += "; their onset intervals overlap, so that order is uncertain"
        elif root.detected < nxt.detected:
            words = (
                f"it and {nxt.subject} began at the same estimated time "
                f"(~{_clock(root.onset)}) and no lineage links them: it was detected first"
            )
        else:
            words = (
                f"it and {nxt.subject} began and were detected at the same time and no "
                "lineage links them: the lower incident id breaks the tie"
            )
        parts.append(words)
    return "; ".join(parts)


def _because(
    effect: Member,
    places: Mapping[str, int],
    ordered: Sequence[Member],
    explainers: Mapping[str, set[str]],
    below: Below,
) -> tuple[str, Member | None]:
    """Why ``effect`` is an effect, and the member before it that explains it: its
    parent, else the nearest upstream (one with evidence of its own before a child).
    ``places``: each member's place in ``ordered``, the story's order."""
    root, place = ordered[0], places[effect.incident_id]
    explaining = [
        ordered[at]
        for at in sorted(places[i] for i in explainers[effect.incident_id])
        if at < place
    ]
    if explaining:
        parent = next((m for m in explaining if m.incident_id == effect.parent_id), None)
        if parent is not None:
            return f"opened by {parent.subject}'s incident: {effect.subject} is fed by it", parent

        def distance(m: Member) -> int:
            fed = below.get(m.subject, {})
            return fed.get(effect.subject, len(fed))

        nearest = min(explaining, key=lambda m: (distance(m), m.parent_id is not None, m.key))
        return f"{effect.subject} is fed by {nearest.subject} (declared lineage)", nearest
    if effect.onset > root.onset:
        words = (
            f"no lineage links it to {root.subject}; its change began later "
            f"(estimated onset ~{_clock(effect.onset)})"
        )
    else:
        words = f"no lineage links it to {root.subject}; it began at the same time, seen later"
    return words, None


def tell(members: Iterable[Member], lineage: Lineage, more: int = 0) -> dict[str, Any]:
    """The story as plain data: ``root`` (its id), ``why`` (in words) and ``members``
    in order, root first, each with its ``role`` and ``because`` (and ``explained_by``,
    the id of the member upstream of it, where lineage links them).

    ``more``: members joined but not listed (beyond :data:`MAX_MEMBERS`).
    """
    pool = {m.incident_id: m for m in members}
    below = _below(pool.values(), lineage)
    explainers = _explainers(pool, lineage, below)
    ordered = _order(pool, explainers)
    if not ordered:
        raise ValueError("a story needs at least one incident")
    root, rest = ordered[0], ordered[1:]
    places = {m.incident_id: at for at, m in enumerate(ordered)}
    listed = [{**root.to_data(), "role": "root"}]
    for effect in rest[: MAX_MEMBERS - 1]:
        because, by = _because(effect, places, ordered, explainers, below)
        member = {**effect.to_data(), "role": "effect", "because": because}
        if by is not None:
            member["explained_by"] = by.incident_id
        listed.append(member)
    return {
        "root": root.incident_id,
        "root_subject": root.subject,
        "why": _why_root(root, rest, explainers),
        "members": listed,
        "more": more + max(len(rest) - (MAX_MEMBERS - 1), 0),
    }


def join_story(
    story: Mapping[str, Any] | None,
    lead: Mapping[str, Any],
    incident: Mapping[str, Any],
    lineage: Lineage,
) -> dict[str, Any]:
    """The story of ``lead``'s group once ``incident`` joins it (idempotent).

    ``story``: the group's story so far (None: only the lead so far).  Only what
    ordering needs of each member is kept, so joining costs no read of the others.
    """
    known = [Member.of(m) for m in (story or {}).get("members") or ()] or [Member.of(lead)]
    new = Member.of(incident)
    if any(m.incident_id == new.incident_id for m in known):
        return dict(story) if story else tell(known, lineage)
    return tell([*known, new], lineage, int((story or {}).get("more") or 0))
