"""Containment that survives Redis forgetting it: the worker's side of the flag epoch.

Routing flags are the containment: a model blocked or rolled back is so because its
flag says so.  A Redis restart without persistence (or a failover to an empty
replica, or a ``FLUSHALL``) comes back with no flags, which a router would read as
"every model normal": containment silently lost.  So the worker keeps an epoch key
beside the flags and a copy of the flags it last saw under it:

- every :meth:`FlagGuard.check` (the worker calls it each second) reads the epoch
  and the flags together; while the epoch is the one it knows, the copy is renewed;
  and every flag the worker itself writes goes into the copy as it is applied
  (:class:`RememberingFlagStore`), so a decision made just before a loss is kept;
- when the epoch is gone, Redis lost the flags since the last check: the worker
  writes its copy back (keeping any flag written since, which is newer) and a new
  epoch, in one atomic step, and logs it, and counts it in
  ``riskstream_containment_flags_restored_total``;
- routers that knew the old epoch keep serving their last decisions, marked
  stale, from the moment they see it gone until they see the new one
  (:mod:`riskstream.router`).

The first worker to start writes the first epoch.  What this does not cover: a
worker that restarted while Redis was empty has no copy to write back, so it
starts a new epoch over what is there; a flag another process (the API) changed
less than a check before the loss is written back as it was before that change;
and the at-most-once record and the audit trail that Redis lost are not rebuilt.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import orjson
from prometheus_client import Counter

from riskstream.core.routing import FlagChange, RoutingFlag
from riskstream.ports import ApplyResult, AuditEntry, AuditReport, FlagEpoch, FlagStore, Outbox

__all__ = ["FlagGuard", "RememberingFlagStore"]

log = logging.getLogger(__name__)


class FlagGuard:
    """Notices lost flags and writes them back (see the module docstring)."""

    def __init__(
        self,
        store: FlagEpoch,
        restored: Counter,
        new_epoch: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._restored = restored
        self._new_epoch = new_epoch
        self._epoch: str | None = None
        self._copy: dict[str, bytes] = {}

    @property
    def epoch(self) -> str | None:
        return self._epoch

    def remember(self, flag: RoutingFlag) -> None:
        """A flag this worker just wrote: part of what it would write back."""
        self._copy[flag.model_id] = orjson.dumps(flag.to_data())

    def check(self) -> str:
        """Compare the stored epoch with the known one; what was done:
        ``"ok"``, ``"started"`` (a first epoch), ``"adopted"`` (another worker's),
        or ``"restored"`` (the epoch was gone: the flags written back).

        Raises StateStoreError when the store does not answer: call again later.
        """
        epoch, flags = self._store.read()
        if epoch is not None:
            outcome = "ok" if epoch == self._epoch or self._epoch is None else "adopted"
            if outcome == "adopted":
                log.warning("flag epoch changed to %s (another worker restored the flags)", epoch)
            self._epoch, self._copy = epoch, flags
            return outcome
        new = self._new_epoch()
        copy, knew = self._copy, self._epoch is not None
        written = self._store.restore(new, copy)
        if written is None:  # another worker restored first: adopt its epoch
            self._epoch = None
            return self.check()
        self._epoch, self._copy = new, {**copy, **flags}
        if knew:
            self._restored.inc(written)
            log.error(
                "Redis lost the routing flags (the flag epoch was gone): wrote back %d of "
                "the %d flags this worker last saw, under a new epoch %s; routers serve "
                "their last decisions as stale until they read it. Check Redis persistence "
                "(appendonly) and why it restarted.",
                written, len(copy), new,
            )  # fmt: skip
            return "restored"
        log.info("flag epoch %s started over %d stored flags", new, len(flags))
        return "started"


class RememberingFlagStore:
    """A flag store that tells the guard of every flag it applies (see the module
    docstring); everything else goes straight through."""

    def __init__(self, store: FlagStore, guard: FlagGuard) -> None:
        self._store = store
        self._guard = guard

    def apply(self, change: FlagChange, at: float) -> ApplyResult:
        result = self._store.apply(change, at)
        if result.outcome == "applied" and result.current is not None:
            self._guard.remember(result.current)
        return result

    def get(self, model_id: str) -> RoutingFlag | None:
        return self._store.get(model_id)

    def all(self) -> dict[str, RoutingFlag]:
        return self._store.all()

    def count(self) -> int:
        return self._store.count()

    def outbox(self, limit: int = 100) -> Outbox:
        return self._store.outbox(limit)

    def delivered(self, event_ids: Sequence[str]) -> None:
        self._store.delivered(event_ids)

    def record_event(
        self, change_id: str, model_id: str, actor: str, at: float, event: dict[str, object]
    ) -> bool:
        return self._store.record_event(change_id, model_id, actor, at, event)

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        return self._store.audit(start, count)

    def verify_audit(self) -> AuditReport:
        return self._store.verify_audit()

    def close(self) -> None:
        self._store.close()


if TYPE_CHECKING:  # mypy proves the wrapper implements the port

    def _implements_port(store: RememberingFlagStore) -> FlagStore:
        return store
