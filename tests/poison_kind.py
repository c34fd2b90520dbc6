"""A detector kind that raises, registered only in tests: a deterministic poison pill.

The product has no event that crashes its detectors on purpose (each one found was a
bug, and was fixed), yet the crash path — dead-letter the event, hold the stream,
carry on — must stay tested.  :func:`registered` adds the kind ``poison-pill`` to
:data:`riskstream.core.detectors.DETECTOR_KINDS` in *this* process for a ``with``
block (left registered, it would join every test that walks the registry); run as a
script it is the ``riskstream`` command with that kind known, so a child processor
(and the CLI that resets its state) can read a config that uses it::

    python tests/poison_kind.py run processor --config ...

``poison-pill`` is a ``threshold`` whose excursion above ``upper`` raises
:class:`PoisonPill` instead of alarming.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from riskstream.core.detectors import DETECTOR_KINDS, Alarm, Threshold

SCRIPT = str(Path(__file__).resolve())


class PoisonPill(RuntimeError):
    """What the ``poison-pill`` detector raises."""


class PoisonPillDetector(Threshold):
    kind: ClassVar[str] = "poison-pill"

    __slots__ = ()

    def update(self, x: float) -> Alarm | None:
        if self.upper is not None and x > self.upper:
            raise PoisonPill(f"poison pill: {x!r} > {self.upper!r} (a test-only detector)")
        return super().update(x)


@contextmanager
def registered() -> Iterator[None]:
    """The ``poison-pill`` kind known in this process while the block runs."""
    DETECTOR_KINDS[PoisonPillDetector.kind] = PoisonPillDetector
    try:
        yield
    finally:
        del DETECTOR_KINDS[PoisonPillDetector.kind]


if __name__ == "__main__":
    from riskstream.cli import main

    DETECTOR_KINDS[PoisonPillDetector.kind] = PoisonPillDetector

    sys.exit(main())
