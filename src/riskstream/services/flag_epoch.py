"""Containment that survives Redis forgetting it: the worker's side of the flag epoch.

Routing flags are the containment: a model blocked or rolled back is so because its
flag says so.  A Redis restart without persistence (or a failover to an empty
replica, or a ``FLUSHALL``) comes back with no flags, which a router would read as
"every model normal": containment silently lost.  So the worker keeps an epoch key
beside the flags and a copy of the flags it last saw under it:

- every :meth:`FlagGuard.check` (the worker calls it each second) reads the epoch
  and the flags together; while the epoch is the one it knows, the copy is renewed;
- when the epoch is gone, Redis lost the flags since the last check: the worker
  writes its copy back (keeping any flag written since, which is newer) and a new
  epoch, in one atomic step, and logs it, and counts it in
  ``riskstream_containment_flags_restored_total``;
- routers that knew the old epoch keep serving their last decisions, marked
  stale, from the moment they see it gone until they see the new one
  (:mod:`riskstream.router`).

The first worker to start writes the first epoch.  What this does not cover: a
worker that restarted while Redis was empty has no copy to write back, so it
starts a new epoch over what is there and says so in an error log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from prometheus_client import Counter

from riskstream.ports import FlagEpoch

__all__ = ["FlagGuard"]

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
