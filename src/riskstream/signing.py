"""Records riskstream writes to Kafka carry a signature; readers of the incidents topic
check it before they act.

Whoever can write to the ``incidents`` topic can otherwise open an incident and have the
containment worker roll a model back, route it to a fallback or fence it off. Kafka
ACLs are the first defence (docs/architecture.md); this one holds where ACLs are not
in place, or a writer is compromised. Every process that publishes incidents (the
processor, the containment worker, the operator API and CLI, backfill) and every one
that acts on them (the containment worker, the notifier) is given the same secret in
``RISKSTREAM_INCIDENT_KEY``.

The signature is an HMAC-SHA256 over the topic, the value and the CloudEvents headers
(``ce_*``, sorted, duplicates included). The topic is in it so that a signed record of
another topic (a dead letter holds a producer's bytes) cannot be copied onto
``incidents``; the ``ce_*`` headers so that an opened incident cannot be relabelled
resolved. Other headers (a tracing proxy's) are left out. A signed record copied
onto the topic again is the same incident, which containment handles once.

Rotation: set the new key in ``RISKSTREAM_INCIDENT_KEY`` and the old one in
``RISKSTREAM_INCIDENT_KEY_PREVIOUS`` on every process, then drop the old one once the
records it signed are consumed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["MIN_KEY_LENGTH", "SIGNATURE_HEADER", "RecordSigner"]

SIGNATURE_HEADER = "riskstream_signature"
MIN_KEY_LENGTH = 32  # characters: a guessable key would make the signature decoration
_VERSION = b"v1="

Headers = Sequence[tuple[str, bytes | str | None]]


class RecordSigner:
    """Signs with the first key; accepts a signature by any of them."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a RecordSigner needs at least one key")
        self._keys = tuple(keys)

    def sign(self, topic: str, value: bytes, headers: Headers) -> tuple[str, bytes]:
        """The header to add to a record of ``topic`` with this value and headers."""
        return SIGNATURE_HEADER, _VERSION + _mac(self._keys[0], topic, value, headers)

    def problem(self, topic: str, value: bytes, headers: Headers) -> tuple[str, str] | None:
        """Why the record is not to be believed, as (reason code, message): ``unsigned``,
        or ``bad_signature`` (changed, moved, or signed by no key of ours); else ``None``."""
        given = [v for k, v in headers if k == SIGNATURE_HEADER]
        if not given:
            return "unsigned", (
                f"the record has no {SIGNATURE_HEADER} header: it was not written by a "
                "riskstream process holding RISKSTREAM_INCIDENT_KEY"
            )
        if len(given) > 1:
            return "bad_signature", f"the record has {len(given)} {SIGNATURE_HEADER} headers"
        signature = _bytes(given[0])
        if signature.startswith(_VERSION):
            mine = [_mac(key, topic, value, headers) for key in self._keys]
            if any(hmac.compare_digest(signature[len(_VERSION) :], mac) for mac in mine):
                return None
        return "bad_signature", (
            f"{SIGNATURE_HEADER} does not match: the record was changed, moved from another "
            "topic, or signed with a key this process does not hold (RISKSTREAM_INCIDENT_KEY, "
            "RISKSTREAM_INCIDENT_KEY_PREVIOUS)"
        )


def _mac(key: bytes, topic: str, value: bytes, headers: Headers) -> bytes:
    mac = hmac.new(key, b"riskstream-record-v1\0", hashlib.sha256)
    mac.update(topic.encode() + b"\0")
    mac.update(len(value).to_bytes(8, "big"))
    mac.update(value)
    for name, header in sorted((k, _bytes(v)) for k, v in headers if k.startswith("ce_")):
        mac.update(b"\0" + name.encode() + b"=" + len(header).to_bytes(8, "big") + header)
    return mac.hexdigest().encode()


def _bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value
