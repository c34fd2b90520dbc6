"""The audit trail of flag changes as a hash chain: tamper-evident, checkable offline.

Each :class:`~riskstream.ports.AuditEntry` carries the hash of the one before it
(``prev_hash``; the first carries :data:`GENESIS`) and its own ``hash``::

    hash = sha256_hex(prev_hash + canonical_json(body))

where ``body`` is the entry's fields but ``hash`` (:data:`BODY_FIELDS`) and
``canonical_json`` is orjson with sorted keys and no whitespace.  Editing an entry
breaks its own hash; re-hashing it breaks the next entry's ``prev_hash``; deleting
or moving one breaks the ``seq`` run (1, 2, 3...).  :func:`verify_chain` finds the
first such break and names it.

A chain proves the entries were not changed *relative to each other*: someone
who can rewrite the whole trail from the edit on can forge a consistent one.
Anchor the head hash somewhere else (a ticket, a log shipped off the host) to
also prove nothing was rewritten since.

Pure: no I/O.  (It uses orjson, not :mod:`json`, because the canonical form is
part of the hash: the two write some floats differently, e.g. ``1e-07``.)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the append-only, hash-chained audit trail of flag changes."""

    seq: int
    change_id: str
    model_id: str
    actor: str
    at: float
    before: dict[str, object] | None
    after: dict[str, object]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    ok: bool
    length: int
    problem: str = ""  # which entry broke the chain, and how


__all__ = [
    "BODY_FIELDS",
    "GENESIS",
    "AuditEntry",
    "AuditReport",
    "canonical_json",
    "entry_body",
    "entry_from_data",
    "entry_hash",
    "entry_to_data",
    "next_entry",
    "verify_chain",
    "verify_with_head",
]

GENESIS: Final = "0" * 64
"""The ``prev_hash`` of the first entry (and the head hash of an empty trail)."""

BODY_FIELDS: Final = (
    "seq",
    "change_id",
    "model_id",
    "actor",
    "at",
    "before",
    "after",
    "prev_hash",
)
"""The fields an entry's hash covers: all of them but ``hash`` itself."""

_ENTRY_FIELDS: Final = frozenset((*BODY_FIELDS, "hash"))


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """Sorted keys at every level, no whitespace, UTF-8: one byte string per value.

    >>> canonical_json({"b": 1, "a": {"y": 0.5, "x": None}})
    b'{"a":{"x":null,"y":0.5},"b":1}'
    """
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def entry_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    """sha256 hex of ``prev_hash`` + the canonical JSON of the body fields of ``body``.

    ``body`` may hold more keys (a whole entry as data, ``hash`` included); only
    :data:`BODY_FIELDS` are hashed, and each must be there.
    """
    picked = {name: body[name] for name in BODY_FIELDS}
    return hashlib.sha256(prev_hash.encode() + canonical_json(picked)).hexdigest()


def entry_body(entry: AuditEntry) -> dict[str, Any]:
    """The hashed fields of ``entry`` as plain data."""
    return {name: getattr(entry, name) for name in BODY_FIELDS}


def entry_to_data(entry: AuditEntry) -> dict[str, Any]:
    """Every field, ``hash`` included: what a store writes (as JSON)."""
    return entry_body(entry) | {"hash": entry.hash}


def entry_from_data(data: Mapping[str, Any]) -> AuditEntry:
    """The entry :func:`entry_to_data` wrote; ValueError if fields are missing or extra."""
    if set(data) != _ENTRY_FIELDS:
        missing = sorted(_ENTRY_FIELDS - set(data))
        extra = sorted(set(data) - _ENTRY_FIELDS)
        wrong = [f"missing fields {missing}"] if missing else []
        wrong += [f"unknown fields {extra}"] if extra else []
        raise ValueError(f"not an audit entry: {'; '.join(wrong)}")
    for name, kinds, what in _ENTRY_TYPES:
        value = data[name]
        if value is None and name == "before":
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(
                f"not an audit entry: field {name!r} must be {what}, got {value!r:.80}"
            )
    if not math.isfinite(data["at"]):
        raise ValueError(f"not an audit entry: field 'at' must be finite, got {data['at']!r}")
    return AuditEntry(**data)


_ENTRY_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("seq", int, "a whole number"), ("change_id", str, "a string"),
    ("model_id", str, "a string"), ("actor", str, "a string"),
    ("at", (int, float), "epoch seconds (a number)"), ("before", dict, "an object or null"),
    ("after", dict, "an object"), ("prev_hash", str, "a string"), ("hash", str, "a string"),
)  # fmt: skip


def next_entry(
    *,
    seq: int,
    prev_hash: str,
    change_id: str,
    model_id: str,
    actor: str,
    at: float,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> AuditEntry:
    """The entry that follows the one whose ``seq - 1`` and hash are given, hashed.

    ``at`` becomes a float so that ``1000`` and ``1000.0`` cannot hash differently
    on two paths to the same store.
    """
    body: dict[str, Any] = {
        "seq": int(seq),
        "change_id": change_id,
        "model_id": model_id,
        "actor": actor,
        "at": float(at),
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    return AuditEntry(**body, hash=entry_hash(prev_hash, body))


def verify_chain(entries: Iterable[AuditEntry]) -> AuditReport:
    """Recompute the chain in order; report the first entry edited, removed or moved.

    ``length`` is the number of entries read (all of them, even after a break, so
    a gap can be told apart from a move).  Seqs run 1, 2, 3... from :data:`GENESIS`.

    >>> first = next_entry(seq=1, prev_hash=GENESIS, change_id="c1", model_id="m",
    ...                    actor="riskstream", at=10.0, before=None, after={"revision": 1})
    >>> second = next_entry(seq=2, prev_hash=first.hash, change_id="c2", model_id="m",
    ...                     actor="dr.lee", at=20.0, before=first.after, after={"revision": 2})
    >>> verify_chain([first, second])
    AuditReport(ok=True, length=2, problem='')
    >>> from dataclasses import replace
    >>> verify_chain([first, replace(second, actor="mallory")]).problem[:58]
    'audit entry seq 2 was edited: its fields no longer hash to'
    >>> verify_chain([second]).problem
    'audit entry seq 2 comes first: seq 1 is missing (deleted)'
    >>> verify_chain([second, first]).problem
    'audit entry seq 2 comes first: seq 1 is missing (it comes later: entries were reordered)'
    """
    expected = 1
    prev_hash = GENESIS
    length = 0
    problem = ""
    missing: range | None = None  # a gap found, to tell "deleted" from "moved" later
    moved = False
    for entry in entries:
        length += 1
        if problem:
            moved = moved or (missing is not None and entry.seq in missing)
            continue
        after_what = f"follows seq {expected - 1}" if expected > 1 else "comes first"
        if entry_hash(entry.prev_hash, entry_body(entry)) != entry.hash:
            problem = (
                f"audit entry seq {entry.seq} was edited: its fields no longer hash to its "
                f"stored hash {entry.hash[:16]}..."
            )
        elif entry.seq > expected:
            missing = range(expected, entry.seq)
            which = (
                f"seq {expected} is"
                if len(missing) == 1
                else f"seqs {expected}-{entry.seq - 1} are"
            )
            problem = f"audit entry seq {entry.seq} {after_what}: {which} missing"
        elif entry.seq < expected:
            problem = (
                f"audit entry seq {entry.seq} {after_what}: out of order or repeated "
                "(entries were moved or copied)"
            )
        elif entry.prev_hash != prev_hash and entry.seq == 1:
            problem = (
                f"audit entry seq 1 does not start from the genesis hash: its prev_hash is "
                f"{entry.prev_hash[:16]}... (earlier entries were removed and the rest "
                "renumbered, or it was forged)"
            )
        elif entry.prev_hash != prev_hash:
            problem = (
                f"audit entry seq {entry.seq} does not link to seq {entry.seq - 1}: its "
                f"prev_hash {entry.prev_hash[:16]}... is not that entry's hash "
                f"{prev_hash[:16]}..., so seq {entry.seq - 1} was replaced or re-hashed "
                "after this one was written"
            )
        prev_hash = entry.hash
        expected += 1
    if missing is not None:
        problem += " (it comes later: entries were reordered)" if moved else " (deleted)"
    return AuditReport(ok=not problem, length=length, problem=problem)


def verify_with_head(entries: Iterable[AuditEntry], head_seq: int, head_hash: str) -> AuditReport:
    """:func:`verify_chain`, and that the trail ends where the store's head says.

    The chain alone cannot see its newest entries deleted (the rest still links);
    the head, written with every entry, can.  Pass the entries up to ``head_seq``
    only: ones appended after the head was read are not this check's business.

    >>> only = next_entry(seq=1, prev_hash=GENESIS, change_id="c", model_id="m",
    ...                   actor="a", at=0.0, before=None, after={})
    >>> verify_with_head([only], 1, only.hash).ok
    True
    >>> verify_with_head([], 1, only.hash).problem
    'the head says the last audit entry is seq 1, but the trail ends at seq 0: the newest entries were deleted'
    """  # noqa: E501
    last: list[AuditEntry] = []

    def remember() -> Iterator[AuditEntry]:
        for entry in entries:
            last[:] = [entry]
            yield entry

    report = verify_chain(remember())
    if not report.ok:
        return report
    last_seq, last_hash = (last[0].seq, last[0].hash) if last else (0, GENESIS)
    if last_seq < head_seq:
        problem = (
            f"the head says the last audit entry is seq {head_seq}, but the trail ends at "
            f"seq {last_seq}: the newest entries were deleted"
        )
    elif last_seq > head_seq:
        problem = (
            f"the trail goes on to seq {last_seq}, past the head's seq {head_seq}: the head "
            "was rewound or entries were added without it"
        )
    elif last_hash != head_hash:
        problem = (
            f"audit entry seq {last_seq} is not the one the head recorded (hash "
            f"{last_hash[:16]}... vs {head_hash[:16]}...): it was replaced"
        )
    else:
        return report
    return AuditReport(ok=False, length=report.length, problem=problem)
