"""Change events in Redis, so every processor correlates with the changes all of them read.

Each processor consumes only its share of the change topic's partitions; an
incident on one processor may be caused by a deploy another one read.  So each
writes the change events it reads here and asks here when it enriches an
incident.  One sorted set per namespace, scored by the change's data time; the
member is the event's JSON (the same event written twice is one member).  Kept
for ``retention_s`` of data time behind the newest change, or behind the wall clock
when the newest is dated later (one change dated 2099 must not clear the log).  Change events are
few (deploys, prompt and pipeline changes), so one set scanned by time is enough.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, cast

import orjson

from riskstream.adapters.redis.client import RedisClient, client_from_url, translate_errors, where
from riskstream.adapters.redis.keys import CHANGES_ACL as REQUIRED_ACL
from riskstream.adapters.redis.keys import change_log_key
from riskstream.core.enrichment import kept_of_change
from riskstream.core.timeutil import parse_time
from riskstream.ports import MAX_CHANGES, ChangeLog

__all__ = ["REQUIRED_ACL", "RedisChangeLog"]


class RedisChangeLog:
    """The change log in one Redis sorted set per namespace, shared by every processor
    (the module docstring says why and how)."""

    def __init__(
        self,
        client: RedisClient,
        namespace: str,
        retention_s: float = 12 * 3600.0,
        clock: Callable[[], float] = time.time,
        max_changes: int = MAX_CHANGES,
    ) -> None:
        self._client = client
        self._max = max_changes
        self._clock = clock
        self._key = change_log_key(namespace)
        self._retention_s = retention_s
        self._where = where(client)

    @classmethod
    def from_url(cls, url: str, namespace: str, retention_s: float = 12 * 3600.0) -> Self:
        return cls(client_from_url(url), namespace, retention_s)

    def add(self, change: Mapping[str, Any]) -> None:
        self.add_many([change])

    def add_many(self, changes: Sequence[Mapping[str, Any]]) -> None:
        """Two round trips however many: add each, cap, trim once.  The same as adding
        them one by one: the newest is never trimmed, so the horizon only moves on;
        and ranks are a total order (score, then member), so a member among the newest
        ``max_changes`` at the end was among the newest at every step before, and one
        a step trimmed is not among them at the end."""
        # Every member is made before any is sent: one that cannot be keeps none.
        members: dict[bytes, float] = {}
        for change in changes:
            at = parse_time(str(change["time"]))
            members[orjson.dumps(kept_of_change(change), option=orjson.OPT_SORT_KEYS)] = at
        if not members:
            return
        action = (
            "record a change event" if len(members) == 1 else f"record {len(members)} change events"
        )
        with self._translate(action):
            pipe = self._client.pipeline(transaction=True)
            pipe.zadd(self._key, members)
            pipe.zremrangebyrank(self._key, 0, -self._max - 1)  # a flood: keep the newest
            pipe.zrevrange(self._key, 0, 0, withscores=True)
            _, _, newest = pipe.execute()
            if newest:
                horizon = min(newest[0][1], self._clock()) - self._retention_s
                self._client.zremrangebyscore(self._key, "-inf", f"({horizon}")

    def between(self, subjects: Sequence[str], start: float, end: float) -> list[dict[str, Any]]:
        wanted = set(subjects)
        with self._translate("read change events"):
            raw = cast(list[bytes], self._client.zrangebyscore(self._key, start, end))
        changes = [orjson.loads(r) for r in raw]
        return [c for c in changes if c.get("subject") in wanted]

    def close(self) -> None:
        self._client.close()

    def _translate(self, action: str) -> contextlib.AbstractContextManager[None]:
        return translate_errors(
            f"Redis change log at {self._where} ({self._key})", action, self._where, REQUIRED_ACL
        )

    @staticmethod
    def _implements_port(log: RedisChangeLog) -> ChangeLog:
        return log
