"""Reading events: dotted field paths, and the stream key made of several of them.

A stream key is its fields' values joined by ``|``, each value escaped first
(:func:`key_part`): ``\\`` and ``|`` get a backslash, control characters become
``\\xNN``.  So the key is injective — ``("a|b", "c")`` and ``("a", "b|c")`` are two
streams, not one — and never holds a control character, which the state keys keep
for their own marks (:mod:`riskstream.core.state_keys`).  Text without those
characters (nearly every id) is its own key, as before the escaping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "KEY_ENCODING",
    "Event",
    "Getter",
    "field_getter",
    "key_getter",
    "key_part",
    "legacy_key",
    "split_key",
]

KEY_ENCODING = 2
"""1: values joined by ``|`` as they were (ambiguous); 2: each value escaped first."""

Event = Mapping[str, Any]
Getter = Callable[[Event], Any]


def field_getter(path: str) -> Getter:
    """A fast accessor for a dotted field path; missing parts give ``None``.

    >>> field_getter("safety.toxicity")({"safety": {"toxicity": 0.2}})
    0.2
    >>> field_getter("segment.group")({"segment": None}) is None
    True
    """
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (only,) = parts
        return lambda e: e.get(only)
    if len(parts) == 2:
        first, second = parts

        def get2(e: Event) -> Any:
            inner = e.get(first)
            return inner.get(second) if isinstance(inner, dict) else None

        return get2

    def get(e: Event) -> Any:
        cur: Any = e
        for p in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    return get


def _escape(ch: str) -> str:
    return "\\" + ch if ch in "\\|" else f"\\x{ord(ch):02x}"


_HEX2 = re.compile("[0-9a-f]{2}")
_SPECIAL = re.compile("[\\\\|\x00-\x1f\x7f-\x9f]")


def key_part(value: object) -> str:
    r"""One field's value as part of a stream key: its text, with ``\``, ``|`` and
    control characters escaped.

    >>> key_part("s-01"), key_part(3), key_part("a|b"), key_part("\x18x"), key_part("c:\\t")
    ('s-01', '3', 'a\\|b', '\\x18x', 'c:\\\\t')
    """
    text = value if type(value) is str else str(value)
    if text.isprintable() and "|" not in text and "\\" not in text:
        return text  # the common case, three scans in C
    return _SPECIAL.sub(lambda m: _escape(m.group()), text)


def split_key(key: str) -> list[str]:
    r"""The values a stream key was made of (the inverse of joining :func:`key_part`\ s);
    any text splits (a forged key's stray backslash stays as it is).

    >>> split_key("a\\|b|c"), split_key("a|b\\|c"), split_key("\\x18x")
    (['a|b', 'c'], ['a', 'b|c'], ['\x18x'])
    >>> split_key("\\xZZ|\\")
    ['xZZ', '']
    """
    parts: list[str] = []
    cur: list[str] = []
    i, n = 0, len(key)
    while i < n:
        ch = key[i]
        if ch == "|":
            parts.append("".join(cur))
            cur = []
        elif ch == "\\" and key[i + 1 : i + 2] == "x" and _HEX2.fullmatch(key[i + 2 : i + 4]):
            cur.append(chr(int(key[i + 2 : i + 4], 16)))
            i += 3
        elif ch == "\\":
            cur.append(key[i + 1 : i + 2])
            i += 1
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def legacy_key(key: str, parts: int) -> str | None:
    r"""A stream key saved under KEY_ENCODING 1 (values joined as they were), in this
    encoding; ``None`` where that is ambiguous (a value held ``|``).  ``parts``: how
    many values the key joins; a one-value key is always exact.

    >>> legacy_key("a|b", 2), legacy_key("a|b", 1), legacy_key("a|b|c", 2)
    ('a|b', 'a\\|b', None)
    """
    if parts == 1:
        return key_part(key)
    values = key.split("|")
    if len(values) != parts:
        return None
    return "|".join(key_part(v) for v in values)


def key_getter(paths: Sequence[str]) -> Callable[[Event], str]:
    r"""The stream key of an event: its key fields' values, escaped, joined by ``|``.

    >>> key_getter(["model_id", "segment.group"])({"model_id": "a", "segment": {"group": "b|c"}})
    'a|b\\|c'
    """
    getters = tuple(field_getter(p) for p in paths)
    if len(paths) == 1 and "." not in paths[0]:  # the usual key: one top-level field
        field = paths[0]

        def top(e: Event) -> str:  # `one` with the field read inlined: a call less per event
            v = e.get(field)
            if type(v) is str and v.isprintable() and "|" not in v and "\\" not in v:
                return v
            return key_part(v)

        return top
    if len(getters) == 1:
        (get,) = getters

        def one(e: Event) -> str:
            v = get(e)
            if type(v) is str and v.isprintable() and "|" not in v and "\\" not in v:
                return v
            return key_part(v)

        return one
    bars = len(getters) - 1

    def many(e: Event) -> str:
        key = "|".join([v if type(v := get(e)) is str else str(v) for get in getters])
        if key.isprintable() and "\\" not in key and key.count("|") == bars:
            return key  # no value needed escaping: one pass over the joined key
        return "|".join([key_part(get(e)) for get in getters])

    return many
