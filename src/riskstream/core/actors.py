"""riskstream's own names in the audit trail, and the names that merely look like them.

Entries written by riskstream's processes carry ``riskstream`` or ``riskstream/...``
(``riskstream/containment``, ``riskstream/timeout``); no person may act under them, or
under a name a reader cannot tell from them: another case, spaces, fullwidth or
mathematical letters, Cyrillic or Greek look-alikes, combining marks, a slash that is
not ``/``.  Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

__all__ = ["RESERVED", "is_reserved"]

RESERVED = "riskstream"

# Letters of "riskstream" and slashes that NFKD and casefold leave as other letters
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "\u0430": "a", "\u0435": "e", "\u0456": "i", "\u0455": "s", "\u043a": "k",
        "\u0442": "t", "\u043c": "m", "\u0433": "r", "\u0491": "r",
        # Greek
        "\u03b1": "a", "\u03b5": "e", "\u03b9": "i", "\u03ba": "k", "\u03c4": "t",
        # Latin small capitals and dotless letters
        "\u0131": "i", "\u0269": "i", "\u026a": "i", "\u0280": "r", "\ua731": "s",
        "\u1d0b": "k", "\u1d1b": "t", "\u1d07": "e", "\u1d00": "a", "\u1d0d": "m",
        # slashes
        "\u2215": "/", "\u2044": "/", "\u29f8": "/", "\u2571": "/", "\u3033": "/",
        "\u0338": "/",
    }
)  # fmt: skip


def is_reserved(name: str) -> bool:
    """Whether ``name`` is, or reads as, ``riskstream`` or ``riskstream/...``.

    >>> [is_reserved(n) for n in ("riskstream/containment", " RiskStream ",
    ...     "\uff52iskstream/x", "r\u0456skstream/containment", "riskstream\u2215timeout",
    ...     "riskstream /containment", "riske\u0301stream")]
    [True, True, True, True, True, True, False]
    >>> [is_reserved(n) for n in ("dr.lee", "riskstreamer", "riskstream-ops", "ana/riskstream")]
    [False, False, False, False]
    """
    text = unicodedata.normalize("NFKD", name).casefold()
    text = "".join(
        c
        for c in text.translate(_LOOKALIKES)
        if not c.isspace() and unicodedata.category(c) not in ("Mn", "Me", "Cf", "Cc")
    )
    return text == RESERVED or text.startswith(RESERVED + "/")
