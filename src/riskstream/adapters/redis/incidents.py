"""Incident records in Redis, beside the flags and approvals of the same namespace.

Records are JSON in one hash, their ids in a sorted set scored by detection
time (for "the latest 500"), and again per subject (to correlate a new incident
with its neighbours without reading the latest ones whole).
:meth:`RedisIncidentStore.update` is an optimistic transaction (WATCH the hash,
MULTI, EXEC, again on a conflict), so the worker recording an action and a person
acknowledging at once both land.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import Final, cast

import orjson
import redis

from riskstream.adapters.redis.client import RedisClient
from riskstream.adapters.redis.flags import RedisNamespaceStore
from riskstream.core.incident_records import IncidentRecord
from riskstream.errors import StateStoreError
from riskstream.ports import IncidentStore

__all__ = ["RedisIncidentStore"]

_ATTEMPTS: Final = 50

# The page after an incident, by its rank in one step, so an incident recorded between
# reading the rank and the page cannot shift it.  false: the cursor is not stored.
_PAGE_LUA = """
local start = 0
if ARGV[2] == '1' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[3])
  if not rank then return false end
  start = rank + 1
end
return redis.call('ZREVRANGE', KEYS[1], start, start + tonumber(ARGV[1]) - 1)
"""


class RedisIncidentStore(RedisNamespaceStore):
    """Incident records in the flag namespace's hash and sorted set; updates are
    optimistic transactions, retried on a conflict."""

    _noun = "Redis incident store"

    def __init__(
        self, client: RedisClient, namespace: str = "default", *, owns_client: bool = False
    ) -> None:
        super().__init__(client, namespace, owns_client=owns_client)
        self._page_script = client.register_script(_PAGE_LUA)

    def update(
        self, incident_id: str, change: Callable[[IncidentRecord | None], IncidentRecord | None]
    ) -> IncidentRecord | None:
        keys = self._keys
        with self._translate(f"update incident {incident_id}"):
            for _ in range(_ATTEMPTS):
                with self._client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(keys.incidents)
                        raw = cast(bytes | None, pipe.hget(keys.incidents, incident_id))
                        current = None if raw is None else self._record(raw, incident_id)
                        new = change(current)
                        if new is None or new == current:
                            return current
                        pipe.multi()
                        pipe.hset(keys.incidents, incident_id, orjson.dumps(new.to_data()))
                        pipe.zadd(keys.incidents_by_time, {incident_id: new.detected_at})
                        of_subject = f"{keys.incidents_of}:{new.subject}"
                        pipe.zadd(of_subject, {incident_id: new.detected_at})
                        pipe.execute()
                        return new
                    except redis.WatchError:
                        continue
        raise StateStoreError(
            f"{self._noun} at {self._where}: incident {incident_id} kept changing under "
            f"{_ATTEMPTS} attempts; nothing was written, try again"
        )

    def get(self, incident_id: str) -> IncidentRecord | None:
        with self._translate(f"read incident {incident_id}"):
            raw = self._client.hget(self._keys.incidents, incident_id)
        return None if raw is None else self._record(cast(bytes, raw), incident_id)

    def recent(self, limit: int = 500, after: str | None = None) -> builtins.list[IncidentRecord]:
        """The port's page; a record left out is read past (see ``_read_on``)."""

        def step(wanted: int | None, last: bytes | None) -> builtins.list[bytes]:
            assert wanted is not None  # a page of incidents always has a limit
            cursor = after if last is None else last.decode()
            with self._translate("list incidents"):
                found = self._page_script(
                    keys=[self._keys.incidents_by_time],
                    args=[wanted, "0" if cursor is None else "1", cursor or ""],
                )
            return cast(builtins.list[bytes], found or [])

        def read(ids: builtins.list[bytes]) -> builtins.list[IncidentRecord]:
            with self._translate("list incidents"):
                raws = cast(list[bytes | None], self._client.hmget(self._keys.incidents, ids))
            return self._readable(_named(ids, raws), self._record)

        return self._read_on(limit, step, read)

    def near(
        self, subjects: Iterable[str], since: float, until: float, limit: int | None = None
    ) -> builtins.list[IncidentRecord]:
        start, num = (None, None) if limit is None else (0, limit)
        with self._translate("list the incidents near one"):
            pipe = self._client.pipeline(transaction=False)
            for subject in subjects:
                key = f"{self._keys.incidents_of}:{subject}"
                pipe.zrangebyscore(key, since, until, start=start, num=num)
            ids = sorted({i for found in pipe.execute() for i in cast(list[bytes], found)})
            raws = (
                cast(list[bytes | None], self._client.hmget(self._keys.incidents, ids))
                if ids
                else []
            )
        return self._readable(_named(ids, raws), self._record)

    def _record(self, raw: bytes, incident_id: str) -> IncidentRecord:
        try:
            record = IncidentRecord.from_data(orjson.loads(raw))
            if record.incident_id != incident_id:
                raise ValueError(f"it holds the incident {record.incident_id!r}")
            return record
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            key, then = self._keys.incidents, " and publish the incident again"
            raise self._bad_field(key, incident_id, exc, then) from exc

    @staticmethod
    def _implements_port(store: RedisIncidentStore) -> IncidentStore:
        return store


def _named(
    ids: builtins.list[bytes], raws: builtins.list[bytes | None]
) -> Iterable[tuple[str, bytes | None]]:
    return ((incident_id.decode(), raw) for incident_id, raw in zip(ids, raws, strict=True))
