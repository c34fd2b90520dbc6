"""When to try a webhook again, and when to stop: pure rules, no I/O.

A receiver that is briefly down (a deploy, a 503, a rate limit) must not cost a
notification, and one that stays down must not stall the others for ever.  So
each answer is classified once, here, as delivered, worth retrying, or pointless
to retry; retries wait with exponential backoff and *full jitter* (a random wait
between zero and the exponential cap), which spreads a crowd of retrying senders
instead of having them hammer a recovering receiver in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from riskstream.errors import ConfigError

__all__ = ["RETRYABLE_STATUSES", "AttemptResult", "RetryPolicy", "classify_status"]

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "not now" rather than "never" (timeout, too early, rate limit)."""

BODY_EXCERPT = 500

Outcome = Literal["delivered", "retryable", "permanent"]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to.  ``detail`` is for the log and the dead letter."""

    outcome: Outcome
    detail: str
    status: int | None = None
    retry_after_s: float | None = None


def classify_status(
    status: int, body: bytes = b"", retry_after_s: float | None = None
) -> AttemptResult:
    """2xx delivered; 408/425/429/5xx retryable; any other answer permanent.

    A permanent answer (400, 401, 404…) will not change by asking again: the
    payload or the receiver's set-up is wrong, and a person must look.

    >>> classify_status(202).outcome, classify_status(503).outcome, classify_status(404).outcome
    ('delivered', 'retryable', 'permanent')
    """
    text = body[:BODY_EXCERPT].decode("utf-8", errors="replace").strip()
    detail = f"HTTP {status}" + (f": {text}" if text else "")
    if 200 <= status < 300:
        return AttemptResult("delivered", detail, status)
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        return AttemptResult("retryable", detail, status, retry_after_s)
    if 300 <= status < 400:
        detail += " (redirects are not followed: put the final URL in the config)"
    return AttemptResult("permanent", detail, status)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one notification before it goes to the dead-letter topic.

    ``max_attempts`` counts every POST, the first included; ``max_elapsed_s`` is
    measured from the first attempt, and a wait that would end past it is not
    started (the notification is dead-lettered at once instead).
    """

    max_attempts: int = 8
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_elapsed_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.initial_backoff_s <= 0 or self.max_elapsed_s <= 0:
            raise ConfigError("initial_backoff_s and max_elapsed_s must be above 0")
        if self.max_backoff_s < self.initial_backoff_s:
            raise ConfigError("max_backoff_s must be at least initial_backoff_s")

    def cap(self, attempts: int) -> float:
        """The longest wait after ``attempts`` failed attempts (before jitter).

        >>> [RetryPolicy(initial_backoff_s=1, max_backoff_s=5).cap(n) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 5.0]
        """
        return float(min(self.max_backoff_s, self.initial_backoff_s * 2 ** min(attempts - 1, 60)))

    def next_delay(
        self,
        attempts: int,
        elapsed_s: float,
        retry_after_s: float | None,
        random: Callable[[], float],
    ) -> float | None:
        """Seconds to wait before the next attempt, or None: give up now.

        ``random`` returns a float in [0, 1) (injected, so tests are exact).  A
        receiver's ``Retry-After`` is a floor on the wait, never shortened.
        """
        if attempts >= self.max_attempts:
            return None
        delay = random() * self.cap(attempts)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        if elapsed_s + delay > self.max_elapsed_s:
            return None
        return delay
