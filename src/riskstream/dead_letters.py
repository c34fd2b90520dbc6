"""A refused record as it goes to a dead-letter topic: whole, or cut to a size any
broker takes.

A dead letter carries the refused record's value and key, with the reason in its
headers.  The record may be far larger than a producer may send: librdkafka refuses a
message over ``message.max.bytes`` (1,000,000 bytes by default) in ``produce()`` itself,
while a producer that compresses (or a broker with a higher limit) gets a 5 MB value or
a 1 MB key onto an input topic.  Copying such a record raised MSG_SIZE_TOO_LARGE, which
stopped the processor; restarted, it read the same record again and stopped again, so
one record blocked its partition for good.  Now a value longer than ``VALUE_KEPT`` and a
key longer than ``KEY_KEPT`` are cut to that many bytes, and the ``riskstream_truncated``
header gives their full lengths; ``riskstream_source`` still says where the whole record
is.
"""

from __future__ import annotations

import orjson

__all__ = ["KEY_KEPT", "TRUNCATED_HEADER", "VALUE_KEPT", "fitted"]

VALUE_KEPT = 256 * 1024  # over the processor's max_event_bytes (64 KiB) by default
KEY_KEPT = 1024  # an id is at most 256 characters: a longer key is no id anyway
TRUNCATED_HEADER = "riskstream_truncated"


def fitted(
    value: bytes | None, key: bytes | None
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """``value`` (b"" for none), ``key`` and the headers to add, cut to fit.

    >>> fitted(b"x" * 300_000, b"k")[1:]
    (b'k', [('riskstream_truncated', b'{"value_bytes":300000}')])
    >>> fitted(b"{}", None)
    (b'{}', None, [])
    """
    value = value or b""
    cut: dict[str, int] = {}
    if len(value) > VALUE_KEPT:
        cut["value_bytes"] = len(value)
        value = value[:VALUE_KEPT]
    if key is not None and len(key) > KEY_KEPT:
        cut["key_bytes"] = len(key)
        key = key[:KEY_KEPT]
    return value, key, [(TRUNCATED_HEADER, orjson.dumps(cut))] if cut else []
