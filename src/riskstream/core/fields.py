"""Reading events: dotted field paths, and the stream key made of several of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Event", "Getter", "field_getter", "key_getter"]

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


def key_getter(paths: Sequence[str]) -> Callable[[Event], str]:
    """The stream key of an event: its key fields' values joined by ``|``."""
    getters = tuple(field_getter(p) for p in paths)
    if len(paths) == 1 and "." not in paths[0]:  # the usual key: one top-level field
        field = paths[0]

        def top(e: Event) -> str:  # `one` with the field read inlined: a call less per event
            v = e.get(field)
            return v if type(v) is str else str(v)

        return top
    if len(getters) == 1:
        (get,) = getters

        def one(e: Event) -> str:
            v = get(e)
            return v if type(v) is str else str(v)

        return one
    return lambda e: "|".join([str(get(e)) for get in getters])
