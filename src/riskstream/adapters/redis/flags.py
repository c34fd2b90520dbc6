"""The Redis :class:`~riskstream.ports.FlagStore` and :class:`~riskstream.ports.ApprovalStore`.

One namespace (a deployment) owns these keys (``rs:{flags|<ns>}:flags``, ``applied``,
``audit``, ``head``, ``outbox``, ``outbox_events``, ``pending`` and the ``changed``
channel), drawn with what each holds in :mod:`riskstream.adapters.redis.keys`.  They
share one hash tag, so Redis Cluster puts them in one slot and one script may touch
them all.  The router clients read
this layout directly; it is a contract, not an implementation detail, and the store
and the router take it from the same module, so they always agree on the keys.
Audit seqs start at 1, so stream ids run
``1-0``, ``2-0``...: ``XRANGE`` by seq is direct, and ``XADD`` itself refuses a seq
that is not past the stream's last id.

How an apply stays atomic and fair between writers, and why, is in
``docs/design/flag-store.md``.  After :attr:`RedisFlagStore.max_apply_attempts`
contended attempts an apply fails with :class:`~riskstream.errors.StateStoreError`,
having written nothing.  Applies of one process to one namespace take turns on a
``threading.Lock``: do not ``fork`` while another thread is applying.

Failure semantics a caller must know:

- ``duplicate``, ``conflict``, ``ContainmentError``: nothing was written.
- :class:`~riskstream.errors.StateStoreError` after the script was sent
  (connection dropped, timeout): the outcome is *unknown* but atomic.  Apply the
  same change again: it comes back ``applied`` or ``duplicate``.  redis-py's
  default client re-sends on connection errors by itself, so ``duplicate`` can
  mean "applied by this very call, whose first reply was lost".
- No write can fail after the script's first write (Redis would keep the part
  done): every read that proves a key's type, and the ACL check of every write,
  come first, and the first write is the ``XADD`` that refuses a stale seq.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, cast

import orjson
import redis

from riskstream.adapters.redis.client import RedisClient, client_from_url, translate_errors, where
from riskstream.adapters.redis.keys import FLAGS_ACL as REQUIRED_ACL
from riskstream.adapters.redis.keys import FlagKeys, flag_keys
from riskstream.core import flag_checks as checks
from riskstream.core.approvals import STATUSES, ActionSummary, Member, PendingAction
from riskstream.core.audit import (
    GENESIS,
    entry_from_data,
    entry_to_data,
    next_entry,
    verify_with_head,
)
from riskstream.core.outbox import MAX_OUTBOX, OutboxEvent
from riskstream.core.routing import FlagChange, RoutingFlag
from riskstream.errors import ConfigError, StateStoreError
from riskstream.ports import (
    ApplyResult,
    ApprovalStore,
    AuditEntry,
    AuditReport,
    FlagStore,
    Outbox,
)

__all__ = [
    "REQUIRED_ACL",
    "FlagKeys",
    "RedisApprovalStore",
    "RedisFlagStore",
    "RedisNamespaceStore",
    "flag_keys",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_PAGE: Final = 1000  # stream entries per XRANGE while reading the whole trail
# Bad records a store remembers having logged.  Each is logged once while the process
# runs (lists read it at every request); past this many the oldest is forgotten (and
# logged again if read again), so a namespace full of them cannot grow the memory.
_LOGGED_BAD: Final = 1024

# KEYS: flags, applied, audit, head, outbox, outbox_events
# ARGV: 1 change_id, 2 model_id, 3 expected revision, 4 seq, 5 prev_hash, 6 hash,
#       7 the flag JSON the entry's `before` was made from ('' for none), 8 new flag JSON,
#       9 entry JSON, 10 channel, 11 message, 12 genesis hash, 13 the outbox's limit,
#       then an event id and its JSON for each event of the change
_APPLY_LUA: Final = """
local current = redis.call('HGET', KEYS[1], ARGV[2])
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {'duplicate', current}
end
local events = #ARGV > 13
if events then  -- proves both keys' types before the first write
  redis.call('ZCARD', KEYS[5])
  redis.call('HLEN', KEYS[6])
end
local revision = 0
if current then
  revision = tonumber(cjson.decode(current)['revision'])
end
if revision ~= tonumber(ARGV[3]) then
  return {'conflict', current}
end
local head = redis.call('HMGET', KEYS[4], 'seq', 'hash')
local head_seq = head[1] or '0'
local head_hash = head[2] or ARGV[12]
if head_hash ~= ARGV[5] or tonumber(head_seq) + 1 ~= tonumber(ARGV[4])
    or (current or '') ~= ARGV[7] then
  return {'retry', head_seq, head_hash, current}
end
if redis.acl_check_cmd then
  local writes = {{'XADD', KEYS[3], '1-0', 'entry', 'x'}, {'HSET', KEYS[1], 'k', 'v'},
                  {'SADD', KEYS[2], 'm'}, {'HSET', KEYS[4], 'k', 'v'},
                  {'PUBLISH', ARGV[10], 'm'}}
  if events then
    table.insert(writes, {'ZADD', KEYS[5], '0', 'm'})
    table.insert(writes, {'HSET', KEYS[6], 'k', 'v'})
    table.insert(writes, {'ZREM', KEYS[5], 'm'})
    table.insert(writes, {'HDEL', KEYS[6], 'k'})
  end
  for _, command in ipairs(writes) do
    if not redis.acl_check_cmd(unpack(command)) then
      return redis.error_reply('NOPERM the ACL user may not run ' .. command[1] ..
        ' on ' .. command[2] .. ' (nothing was written)')
    end
  end
end
redis.call('XADD', KEYS[3], ARGV[4] .. '-0', 'entry', ARGV[9])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[8])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], 'seq', ARGV[4], 'hash', ARGV[6])
redis.call('PUBLISH', ARGV[10], ARGV[11])
local dropped = {}
if events then
  for i = 14, #ARGV, 2 do  -- in the change's order: score seq * 16 + its place
    redis.call('ZADD', KEYS[5], tonumber(ARGV[4]) * 16 + (i - 14) / 2, ARGV[i])
    redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
  end
  local over = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[13])
  if over > 0 then
    dropped = redis.call('ZRANGE', KEYS[5], 0, over - 1)
    for _, id in ipairs(dropped) do
      redis.call('ZREM', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
    end
  end
end
return {'applied', dropped}
"""

# KEYS: outbox, outbox_events.  ARGV: how many.  {how many wait, the first ids (in
# score order), their JSON}
_OUTBOX_LUA: Final = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local size = redis.call('ZCARD', KEYS[1])
if #ids == 0 then return {size, ids, {}} end
return {size, ids, redis.call('HMGET', KEYS[2], unpack(ids))}
"""

# KEYS: pending.  ARGV: action_id, the JSON read, the JSON to write.  1 if swapped.
# KEYS: applied, audit, head
# ARGV: 1 change_id, 2 seq, 3 prev_hash, 4 hash, 5 entry JSON, 6 genesis hash
_RECORD_LUA: Final = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return {'duplicate'}
end
local head = redis.call('HMGET', KEYS[3], 'seq', 'hash')
local head_seq = head[1] or '0'
local head_hash = head[2] or ARGV[6]
if head_hash ~= ARGV[3] or tonumber(head_seq) + 1 ~= tonumber(ARGV[2]) then
  return {'retry', head_seq, head_hash}
end
if redis.acl_check_cmd then
  local writes = {{'XADD', KEYS[2], '1-0', 'entry', 'x'}, {'SADD', KEYS[1], 'm'},
                  {'HSET', KEYS[3], 'k', 'v'}}
  for _, command in ipairs(writes) do
    if not redis.acl_check_cmd(unpack(command)) then
      return redis.error_reply('NOPERM the ACL user may not run ' .. command[1] ..
        ' on ' .. command[2] .. ' (nothing was written)')
    end
  end
end
redis.call('XADD', KEYS[2], ARGV[2] .. '-0', 'entry', ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'seq', ARGV[2], 'hash', ARGV[4])
return {'recorded'}
"""

# KEYS: pending, the old status's index, the new one's, deadlines.
# ARGV: action_id, the JSON read, the JSON to write, its index member, '1' to drop the
# deadline (it left pending).  1 if swapped.
_SWAP_LUA: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if KEYS[2] ~= KEYS[3] then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZADD', KEYS[3], 0, ARGV[4])
end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
"""

# KEYS: pending, the "all" index, the "pending" index, deadlines, action_incidents.
# ARGV: action_id, JSON, index member, deadline ('' for none), incident_id.
_ADD_LUA: Final = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
end
local ids = redis.call('HGET', KEYS[5], ARGV[5])
local list = {}
if ids then list = cjson.decode(ids) end
table.insert(list, ARGV[1])
redis.call('HSET', KEYS[5], ARGV[5], cjson.encode(list))
return 1
"""

# KEYS: pending, the group's members, action_incidents.  ARGV: action_id, incident_id,
# member JSON.  1 joined, 0 in already, -1 no such (grouped, pending) action.
_JOIN_LUA: Final = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return -1 end
local action = cjson.decode(raw)
if action['status'] ~= 'pending' or action['group'] == nil or action['group'] == cjson.null then
  return -1
end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then
  return 0
end
local ids = redis.call('HGET', KEYS[3], ARGV[2])
local list = {}
if ids then list = cjson.decode(ids) end
table.insert(list, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(list))
return 1
"""

# Index a namespace written before the indexes existed, once.
# KEYS: pending, deadlines, action_incidents, the marker, the "all" index, then one index
# per status in STATUSES order.  ARGV: the number of statuses.
_INDEX_LUA: Final = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local statuses = {}
for i = 1, tonumber(ARGV[1]) do statuses[i] = KEYS[5 + i] end
local names = {'pending', 'approved', 'rejected', 'expired', 'applied'}
local index_of = {}
for i, name in ipairs(names) do index_of[name] = statuses[i] end
local stored = redis.call('HGETALL', KEYS[1])
local by_incident = {}
for i = 1, #stored, 2 do
  local id, action = stored[i], cjson.decode(stored[i + 1])
  local at = tonumber(action['requested_at']) or 0
  if at < 0 then at = 0 end
  local member = string.format('%021.6f|%s', at, id)
  redis.call('ZADD', KEYS[5], 0, member)
  if index_of[action['status']] then
    redis.call('ZADD', index_of[action['status']], 0, member)
  end
  local expires = action['expires_at']
  if action['status'] == 'pending' and type(expires) == 'number' then
    redis.call('ZADD', KEYS[2], expires, id)
  end
  local incident = action['incident_id']
  by_incident[incident] = by_incident[incident] or {}
  table.insert(by_incident[incident], id)
end
for incident, ids in pairs(by_incident) do
  redis.call('HSET', KEYS[3], incident, cjson.encode(ids))
end
redis.call('SET', KEYS[4], '1')
return 1
"""


_apply_locks: dict[tuple[str, int, str], threading.Lock] = {}
_apply_locks_guard = threading.Lock()


def _apply_lock(where: str, db: int, namespace: str) -> threading.Lock:
    """The one lock of this process for applies to one namespace of one database."""
    with _apply_locks_guard:
        return _apply_locks.setdefault((where, db, namespace), threading.Lock())


class _BadStreamEntry(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


class RedisNamespaceStore:
    """What the stores of a namespace share: the client, from_url and error wording."""

    _noun: str = "Redis store"

    def __init__(
        self, client: RedisClient, namespace: str = "default", *, owns_client: bool = False
    ) -> None:
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ConfigError(
                f"{type(self).__name__} needs a redis.Redis client with "
                "decode_responses=False (the one RedisStateStore takes, so one client "
                "can serve all stores)."
            )
        self._client = client
        self._owns_client = owns_client
        self._namespace = namespace
        self._keys = flag_keys(namespace)
        self._where = where(client)
        self._logged_bad: dict[tuple[str, int], None] = {}  # (id, hash of the bytes)
        self._logged_lock = threading.Lock()  # the API reads on several threads

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "default", **client_options: Any) -> Self:
        """A store with its own client; ``client_options`` (ACL credentials, TLS files,
        redis-py options) as :func:`~riskstream.adapters.redis.client.client_from_url`."""
        return cls(client_from_url(url, **client_options), namespace, owns_client=True)

    @property
    def keys(self) -> FlagKeys:
        """The namespace's key names and channel."""
        return self._keys

    @property
    def namespace(self) -> str:
        return self._namespace

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where}, namespace={self._namespace!r})"

    def close(self) -> None:
        """Close the client if :meth:`from_url` built it; a passed-in client stays open."""
        if self._owns_client:
            self._client.close()

    def _translate(self, action: str, unknown: str = "") -> contextlib.AbstractContextManager[None]:
        """Re-raise redis-py errors as StateStoreError, saying what to check.

        ``unknown`` is what to tell the caller when a write may have happened.
        """
        return translate_errors(
            f"{self._noun} at {self._where} (namespace {self._namespace!r})",
            action,
            self._where,
            REQUIRED_ACL,
            unknown=unknown,
            hint=self._hint,
        )

    def _hint(self, exc: redis.RedisError) -> str | None:
        text = str(exc)
        if "WRONGTYPE" in text:
            return (
                f"Another program wrote keys under {self._keys.flags.rsplit(':', 1)[0]} with "
                "other types; nothing was written."
            )
        if "equal or smaller than the target stream top item" in text:
            return (
                f"The audit stream {self._keys.audit} holds entries past the head "
                f"{self._keys.head}: something else wrote to it (run verify_audit); "
                "nothing was written."
            )
        return None

    def _corrupt(self, key: str, field: str, exc: Exception) -> StateStoreError:
        return StateStoreError(
            f"{self._noun} at {self._where}: {key} field {field!r} is not what riskstream "
            f"writes ({type(exc).__name__}: {exc}); something else wrote to it."
        )

    def _bad_field(self, key: str, field: str, exc: Exception, then: str = "") -> StateStoreError:
        """A hash field riskstream cannot read, and what to do about it (``then``: what
        to do after deleting it)."""
        return StateStoreError(
            f"{self._corrupt(key, field, exc)} Repair it, or delete it "
            f"(redis-cli HDEL {key!r} {field!r}){then}."
        )

    def _readable(
        self,
        found: Iterable[tuple[str, bytes | None]],
        read: Callable[[bytes, str], T],
        where: str = "",
    ) -> builtins.list[T]:
        """What can be read of ``found`` (id, stored bytes; None: gone): one that cannot
        is left out, so a single bad record does not take every list (and the containment
        worker's correlation) down, with a warning the first time this store reads it
        (again if its bytes change).  ``where``: the key holding them, where ids are
        unique only within it (a grouped action's members)."""
        readable = []
        for name, raw in found:
            if raw is None:
                continue
            try:
                readable.append(read(raw, name))
            except StateStoreError as exc:
                self._warn_once((f"{where} {name}" if where else name, hash(raw)), exc)
        return readable

    def _read_on(
        self,
        limit: int | None,
        step: Callable[[int | None, bytes | None], builtins.list[bytes]],
        read: Callable[[builtins.list[bytes]], builtins.list[T]],
    ) -> builtins.list[T]:
        """A page of up to ``limit`` (None: all) records, what ``read`` makes of the
        index entries ``step`` finds (up to so many, None: all, after an entry, None:
        after the page's cursor).  A record ``read`` leaves out (one that cannot be read,
        see ``_readable``, or is gone) is read past, in as many more steps as that takes,
        so a page comes short only where the index ends, as the in-memory stores' do: a
        short page is how a list knows it has ended."""
        records: builtins.list[T] = []
        last: bytes | None = None
        while limit is None or len(records) < limit:
            wanted = None if limit is None else limit - len(records)
            found = step(wanted, last)
            if not found:
                break
            records += read(found)
            if wanted is None or len(found) < wanted:
                break
            last = found[-1]
        return records

    def _warn_once(self, key: tuple[str, int], exc: StateStoreError) -> None:
        with self._logged_lock:
            if key in self._logged_bad:
                return
            if len(self._logged_bad) >= _LOGGED_BAD:
                del self._logged_bad[next(iter(self._logged_bad))]
            self._logged_bad[key] = None
        log.warning("left out of lists (said once while this process runs): %s", exc)


class RedisFlagStore(RedisNamespaceStore):
    """Routing flags, their hash-chained audit trail and change notifications in Redis.

    Give it a ``redis.Redis`` client built with ``decode_responses=False``; the
    caller keeps owning that client.  Use :meth:`from_url` to have the store build,
    own and close its client.  Safe to share between threads.
    """

    _noun = "Redis flag store"

    #: Script runs per apply before giving up when other processes keep winning.
    #: Eight processes saturating one namespace on two cores needed up to 144
    #: (about 0.2 s); two to four processes, up to 11.
    max_apply_attempts: int = 200
    #: Events the outbox keeps at most; past it the oldest are dropped (and named).
    outbox_limit: int = MAX_OUTBOX

    def __init__(
        self, client: RedisClient, namespace: str = "default", *, owns_client: bool = False
    ) -> None:
        super().__init__(client, namespace, owns_client=owns_client)
        self._apply_script = client.register_script(_APPLY_LUA)
        self._record_script = client.register_script(_RECORD_LUA)
        self._outbox_script = client.register_script(_OUTBOX_LUA)
        db = int(client.get_connection_kwargs().get("db", 0))
        self._apply_lock = _apply_lock(self._where, db, namespace)
        self._retries = 0

    @property
    def retries(self) -> int:
        """Script runs repeated because another writer appended first, since construction."""
        return self._retries

    def get(self, model_id: str) -> RoutingFlag | None:
        with self._translate(f"read the flag of model {model_id!r}"):
            raw = cast(bytes | None, self._client.hget(self._keys.flags, model_id))
        return None if raw is None else self._flag(raw, model_id)

    def all(self) -> dict[str, RoutingFlag]:
        """Every flag that can be read.  One that cannot (written by something else) is
        left out with a warning, as lists leave out unreadable records: the containment
        worker's timer reads all flags every second, and one bad record raising here
        held back every other model's ttl lapse and progressive step.  Reading that
        model's flag (:meth:`get`, or applying a change to it) still says what is
        wrong with it and how to repair it."""
        with self._translate("read the flags"):
            stored = cast(dict[bytes, bytes], self._client.hgetall(self._keys.flags))
        found = ((model_id.decode(), raw) for model_id, raw in stored.items())
        return dict(self._readable(found, lambda raw, name: (name, self._flag(raw, name))))

    def count(self) -> int:
        with self._translate("count the flags"):
            return int(self._client.hlen(self._keys.flags))

    def apply(self, change: FlagChange, at: float) -> ApplyResult:
        checks.check_change(change)
        model_id = change.flag.model_id
        after = change.flag.to_data()
        flag_json = orjson.dumps(after)
        message = orjson.dumps({"model_id": model_id, "revision": change.flag.revision})
        action = f"apply change {change.change_id} to model {model_id!r}"
        unknown = (
            "The change may or may not have been applied (atomically either way): apply "
            "the same change again, it comes back 'duplicate' if it was."
        )
        events: list[bytes | str] = []
        for event in change.events:
            events += [event.event_id, event.to_json()]
        keys = [*self._keys[:4], self._keys.outbox, self._keys.outbox_events]
        with self._apply_lock, self._translate(action, unknown):
            pipe = self._client.pipeline(transaction=True)
            pipe.hmget(self._keys.head, ["seq", "hash"])
            pipe.hget(self._keys.flags, model_id)
            (seq, prev_hash), current = pipe.execute()
            for _ in range(self.max_apply_attempts):
                entry = next_entry(
                    seq=int(seq or 0) + 1,
                    prev_hash=GENESIS if prev_hash is None else prev_hash.decode(),
                    change_id=change.change_id,
                    model_id=model_id,
                    actor=change.flag.actor,
                    at=at,
                    before=None if current is None else self._flag_data(current, model_id),
                    after=after,
                )
                reply = self._apply_script(
                    keys=keys,
                    args=[
                        change.change_id,
                        model_id,
                        change.expected_revision,
                        entry.seq,
                        entry.prev_hash,
                        entry.hash,
                        current or b"",
                        flag_json,
                        orjson.dumps(entry_to_data(entry)),
                        self._keys.changed,
                        message,
                        GENESIS,
                        max(self.outbox_limit, 0),
                        *events,
                    ],
                )
                outcome = reply[0].decode()
                if outcome == "applied":
                    dropped = tuple(i.decode() for i in reply[1])
                    return ApplyResult("applied", RoutingFlag.from_data(after), dropped)
                if outcome in ("duplicate", "conflict"):
                    now = None if reply[1] is None else self._flag(reply[1], model_id)
                    return ApplyResult(outcome, now)
                _, seq, prev_hash, current = reply
                self._retries += 1  # under the apply lock: one writer at a time
        raise StateStoreError(
            f"{self._noun} at {self._where} (namespace {self._namespace!r}) could not "
            f"{action}: other writers appended to the audit trail before each of "
            f"{self.max_apply_attempts} attempts; nothing was written. Fewer processes "
            "applying to one namespace at once (or a higher max_apply_attempts) will do."
        )

    def outbox(self, limit: int = 100) -> Outbox:
        """The oldest events waiting, one round trip.  One that cannot be read (written
        by something else) is left out, with a warning once saying how to delete it; it
        still counts in the size."""
        keys = [self._keys.outbox, self._keys.outbox_events]
        with self._translate("read the outbox"):
            size, ids, raws = self._outbox_script(keys=keys, args=[max(limit, 0)])
        found = [(i.decode(), raw) for i, raw in zip(ids, raws, strict=True)]
        return Outbox(self._readable(found, self._outbox_event), int(size))

    def delivered(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with self._translate("remove published events from the outbox"):
            pipe = self._client.pipeline(transaction=True)
            pipe.zrem(self._keys.outbox, *event_ids)
            pipe.hdel(self._keys.outbox_events, *event_ids)
            pipe.execute()

    def _outbox_event(self, raw: bytes, event_id: str) -> OutboxEvent:
        try:
            event = OutboxEvent.from_json(raw)
            if event.event_id != event_id:
                raise ValueError(f"it holds the event {event.event_id!r}")
            return event
        except (ValueError, KeyError, TypeError) as exc:
            then = (
                f" and redis-cli ZREM {self._keys.outbox!r} {event_id!r}; the change it "
                "announces stays in the audit trail"
            )
            raise self._bad_field(self._keys.outbox_events, event_id, exc, then) from exc

    def record_event(
        self, change_id: str, model_id: str, actor: str, at: float, event: dict[str, object]
    ) -> bool:
        checks.check_event(event)
        action = f"record {event['event']} ({change_id}) in the audit trail"
        unknown = "It may or may not have been recorded: record it again (it is kept once)."
        keys = (self._keys.applied, self._keys.audit, self._keys.head)
        with self._apply_lock, self._translate(action, unknown):
            head = self._client.hmget(self._keys.head, ["seq", "hash"])
            seq, prev_hash = cast(list[bytes | None], head)
            for _ in range(self.max_apply_attempts):
                entry = next_entry(
                    seq=int(seq or 0) + 1,
                    prev_hash=GENESIS if prev_hash is None else prev_hash.decode(),
                    change_id=change_id, model_id=model_id, actor=actor, at=at,
                    before=None, after=dict(event),
                )  # fmt: skip
                args: list[Any] = [change_id, entry.seq, entry.prev_hash, entry.hash]
                data = orjson.dumps(entry_to_data(entry))
                reply = self._record_script(keys=keys, args=[*args, data, GENESIS])
                if reply[0] != b"retry":
                    return bool(reply[0] == b"recorded")
                _, seq, prev_hash = reply
                self._retries += 1
        raise StateStoreError(
            f"{self._noun} at {self._where} could not {action}: other writers appended "
            f"to the audit trail before each of {self.max_apply_attempts} attempts"
        )

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        checks.check_audit_range(start, count)
        entries: list[AuditEntry] = []
        with self._translate("read the audit trail"):
            for stream_id, fields in self._stream(f"{start + 1}-0", "+", count):
                try:
                    entries.append(self._entry(fields))
                except ValueError as exc:
                    raise self._corrupt(self._keys.audit, stream_id.decode(), exc) from exc
        return entries

    def verify_audit(self) -> AuditReport:
        """Check the whole chain, and that it ends at the head, as of one instant.

        The head and the stream's last id are read in one ``MULTI``; entries
        appended after it are left for the next check.  Also reports a stream entry
        whose id is not ``<its seq>-0`` or that cannot be read as an entry; then
        ``length`` counts the entries before it only.
        """
        with self._translate("verify the audit trail"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hmget(self._keys.head, ["seq", "hash"])
            pipe.xrevrange(self._keys.audit, "+", "-", count=1)
            (seq, head_hash), last = pipe.execute()
            head_seq = int(seq or 0)
            head = GENESIS if head_hash is None else head_hash.decode()
            if not last:
                return verify_with_head([], head_seq, head)
            try:
                return verify_with_head(self._checked_entries(last[0][0]), head_seq, head)
            except _BadStreamEntry as exc:
                return AuditReport(ok=False, length=exc.position, problem=str(exc))

    def _checked_entries(self, last_id: bytes) -> Iterator[AuditEntry]:
        for position, (stream_id, fields) in enumerate(self._stream("-", last_id, None)):
            try:
                entry = self._entry(fields)
            except ValueError as exc:
                raise _BadStreamEntry(
                    f"audit stream entry {stream_id.decode()} cannot be read ({exc}): "
                    "something else wrote it",
                    position,
                ) from exc
            if stream_id != f"{entry.seq}-0".encode():
                raise _BadStreamEntry(
                    f"audit stream entry {stream_id.decode()} holds audit seq {entry.seq}: "
                    "entries were re-added under other ids",
                    position,
                )
            yield entry

    def _stream(
        self, first: str | bytes, last: str | bytes, count: int | None
    ) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        """``XRANGE first last`` in pages, up to ``count`` entries (None: all)."""
        left = count
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            batch = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                self._client.xrange(self._keys.audit, first, last, count=page),
            )
            yield from batch
            if len(batch) < page:
                return
            if left is not None:
                left -= len(batch)
            first = b"(" + batch[-1][0]

    @staticmethod
    def _entry(fields: dict[bytes, bytes]) -> AuditEntry:
        raw = fields.get(b"entry")
        if raw is None:
            raise ValueError("no 'entry' field")
        data = orjson.loads(raw)  # orjson.JSONDecodeError is a ValueError
        if not isinstance(data, dict):
            raise ValueError("the entry is not a JSON object")
        try:
            return entry_from_data(data)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def _flag(self, raw: bytes, model_id: str) -> RoutingFlag:
        try:
            return RoutingFlag.from_data(self._flag_data(raw, model_id))
        except (ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(self._keys.flags, model_id, exc) from exc

    def _flag_data(self, raw: bytes, model_id: str) -> dict[str, Any]:
        try:
            data = orjson.loads(raw)
        except ValueError as exc:
            raise self._corrupt(self._keys.flags, model_id, exc) from exc
        if not isinstance(data, dict):
            raise self._corrupt(self._keys.flags, model_id, TypeError("not a JSON object"))
        return data


class RedisApprovalStore(RedisNamespaceStore):
    """Pending actions in the namespace's ``pending`` hash; decisions by compare-and-swap.

    A decision reads the action, applies
    :func:`~riskstream.core.approvals.check_decision` here, and swaps the JSON in
    only if it is still the JSON read (one small script).  A racing decision makes
    the swap fail; the re-read then sees the action decided and refuses.

    Every read and write costs the same however many actions are stored: each
    status has its own index (a sorted set in request-time order), deadlines have
    one, each incident's actions are listed under it, and a grouped action's
    members sit in their own hash.  The scripts that add and swap keep them in step
    with the ``pending`` hash, atomically.  A namespace written before the indexes
    existed is indexed once, by one script, the first time a store touches it.
    """

    _noun = "Redis approval store"
    #: Swaps tried per decision; more than two only if something rewrites actions.
    max_swap_attempts: int = 10

    def __init__(
        self, client: RedisClient, namespace: str = "default", *, owns_client: bool = False
    ) -> None:
        super().__init__(client, namespace, owns_client=owns_client)
        self._swap_script = client.register_script(_SWAP_LUA)
        self._add_script = client.register_script(_ADD_LUA)
        self._join_script = client.register_script(_JOIN_LUA)
        self._index_script = client.register_script(_INDEX_LUA)
        self._indexed = False

    def _index(self, status: str | None) -> str:
        return f"{self._keys.actions}:{status or 'all'}"

    def _ensure_indexed(self) -> None:
        if self._indexed:
            return
        keys = [self._keys.pending, self._keys.deadlines, self._keys.action_incidents,
                f"{self._keys.actions}:indexed", self._index(None),
                *(self._index(s) for s in STATUSES)]  # fmt: skip
        with self._translate("index the stored actions"):
            self._index_script(keys=keys, args=[len(STATUSES)])
        self._indexed = True

    def add(self, pending: PendingAction) -> bool:
        checks.check_new_pending(pending)
        data = checks.pending_to_json(pending)
        self._ensure_indexed()
        keys = [self._keys.pending, self._index(None), self._index("pending"),
                self._keys.deadlines, self._keys.action_incidents]  # fmt: skip
        expires = "" if pending.expires_at is None else repr(float(pending.expires_at))
        args: list[bytes | str] = [
            pending.action_id, data, checks.index_member(pending), expires, pending.incident_id,
        ]  # fmt: skip
        with self._translate(f"add action {pending.action_id}"):
            return bool(self._add_script(keys=keys, args=args))

    def get(self, action_id: str) -> PendingAction | None:
        with self._translate(f"read action {action_id}"):
            raw = cast(bytes | None, self._client.hget(self._keys.pending, action_id))
        return None if raw is None else self._action(raw, action_id)

    def list(
        self,
        status: str | None = None,
        *,
        incident_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[PendingAction]:
        checks.check_list(status, limit)
        self._ensure_indexed()
        if incident_id is not None:
            with self._translate(f"list the actions of incident {incident_id}"):
                raw = self._client.hget(self._keys.action_incidents, incident_id)
            ids = [] if raw is None else self._action_ids(cast(bytes, raw), incident_id)
            found = [a for a in self._many(ids) if status is None or a.status == status]
            found.sort(key=lambda a: (a.requested_at, a.action_id))
            if after is not None:
                found = [a for a in found if (a.requested_at, a.action_id) > self._place(after)]
            return found if limit is None else found[:limit]
        first = b"-"
        if after is not None:
            first = b"(" + checks.index_member(self._cursor(after)).encode()

        def step(wanted: int | None, last: bytes | None) -> builtins.list[bytes]:
            start = first if last is None else b"(" + last
            with self._translate("list actions"):
                return cast(
                    builtins.list[bytes],
                    self._client.zrangebylex(
                        self._index(status), start, b"+",
                        *((0, wanted) if wanted is not None else ()),
                    ),
                )  # fmt: skip

        def read(members: builtins.list[bytes]) -> builtins.list[PendingAction]:
            return self._many([m.decode().rpartition("|")[2] for m in members])

        return self._read_on(limit, step, read)

    def summary(self) -> ActionSummary:
        self._ensure_indexed()
        with self._translate("count the pending actions"):
            pipe = self._client.pipeline(transaction=False)
            pipe.zcard(self._index("pending"))
            pipe.zrange(self._index("pending"), 0, 0)
            pipe.zrange(self._keys.deadlines, 0, 0, withscores=True)
            count, oldest, deadline = pipe.execute()
        first = float(oldest[0].decode().partition("|")[0]) if oldest else 0.0
        return ActionSummary(int(count), first, float(deadline[0][1]) if deadline else 0.0)

    def due(self, now: float) -> builtins.list[PendingAction]:
        self._ensure_indexed()
        with self._translate("list the actions past their deadline"):
            ids = cast(
                builtins.list[bytes],
                self._client.zrangebyscore(self._keys.deadlines, "-inf", repr(float(now))),
            )
        return [a for a in self._many([i.decode() for i in ids]) if a.status == "pending"]

    def join(self, action_id: str, member: Member) -> bool:
        self._ensure_indexed()
        keys = [self._keys.pending, f"{self._keys.members}:{action_id}",
                self._keys.action_incidents]  # fmt: skip
        args: list[bytes | str] = [action_id, member.incident_id, checks.member_to_json(member)]
        with self._translate(f"join incident {member.incident_id} to action {action_id}"):
            joined = int(self._join_script(keys=keys, args=args))
        if joined < 0:
            pending = self.get(action_id)
            if pending is None:
                raise checks.unknown_action(action_id, "join an incident to")
            checks.refuse_join(pending)
        return joined == 1

    def members(self, action_id: str, *, strict: bool = False) -> builtins.list[Member]:
        """The members that can be read (``strict``: all, or StateStoreError naming
        the first that cannot).  One that cannot is left out with a warning, as the
        lists of actions and flags leave theirs out: it failed the whole list, the
        API's and the CLI's, hiding every other member of the storm."""
        key = f"{self._keys.members}:{action_id}"
        with self._translate(f"read the members of action {action_id}"):
            raws = cast(dict[bytes, bytes], self._client.hgetall(key))
        found = [(field.decode(), raw) for field, raw in raws.items()]

        def read(raw: bytes, incident_id: str) -> Member:
            return self._member(raw, action_id, incident_id)

        members = (
            [read(raw, incident_id) for incident_id, raw in found]
            if strict
            else self._readable(found, read, key)
        )
        return sorted(members, key=lambda m: (m.at, m.incident_id))

    def decide(
        self, action_id: str, status: str, by: str, at: float, note: str = ""
    ) -> PendingAction:
        return self._swap(
            action_id, f"decide ({status})",
            lambda pending: checks.decided(pending, status, by, at, note),
        )  # fmt: skip

    def mark_applied(self, action_id: str) -> None:
        self._swap(action_id, "mark applied", checks.applied)

    def expire_approved(self, action_id: str, by: str, at: float, note: str = "") -> PendingAction:
        return self._swap(
            action_id, "expire", lambda pending: checks.expired_unapplied(pending, by, at, note)
        )

    def _many(self, ids: builtins.list[str]) -> builtins.list[PendingAction]:
        if not ids:
            return []
        with self._translate("read actions"):
            raws = cast(builtins.list[bytes | None], self._client.hmget(self._keys.pending, ids))
        return self._readable(zip(ids, raws, strict=True), self._action)

    def _cursor(self, after: str) -> PendingAction:
        found = self.get(after)
        if found is None:
            raise checks.unknown_cursor(after)
        return found

    def _place(self, after: str) -> tuple[float, str]:
        found = self._cursor(after)
        return (found.requested_at, found.action_id)

    def _swap(
        self, action_id: str, doing: str, change: Callable[[PendingAction], PendingAction]
    ) -> PendingAction:
        unknown = (
            "The change may or may not have been recorded: get() the action to see its status."
        )
        self._ensure_indexed()
        for _ in range(self.max_swap_attempts):
            with self._translate(f"read action {action_id}"):
                raw = cast(bytes | None, self._client.hget(self._keys.pending, action_id))
            if raw is None:
                raise checks.unknown_action(action_id, doing)
            old = self._action(raw, action_id)
            new = change(old)
            keys = [self._keys.pending, self._index(old.status), self._index(new.status),
                    self._keys.deadlines]  # fmt: skip
            args: list[bytes | str] = [
                action_id, raw, checks.pending_to_json(new), checks.index_member(new),
                "1" if new.status != "pending" else "",
            ]  # fmt: skip
            with self._translate(f"{doing} action {action_id}", unknown):
                swapped = self._swap_script(keys=keys, args=args)
            if swapped == 1:
                return new
        raise StateStoreError(
            f"{self._noun} at {self._where} (namespace {self._namespace!r}) could not "
            f"{doing} action {action_id}: it changed under each of {self.max_swap_attempts} "
            "attempts; something keeps rewriting it."
        )

    def _action(self, raw: bytes, action_id: str) -> PendingAction:
        try:
            pending = checks.pending_from_json(raw)
            if pending.action_id != action_id:
                raise ValueError(f"it holds the action {pending.action_id!r}")
            return pending
        except (ValueError, TypeError) as exc:
            raise self._bad_field(self._keys.pending, action_id, exc) from exc

    def _member(self, raw: bytes, action_id: str, incident_id: str) -> Member:
        try:
            member = checks.member_from_json(raw)
            if member.incident_id != incident_id:
                raise ValueError(f"it holds the incident {member.incident_id!r}")
            return member
        except (ValueError, TypeError) as exc:
            then = (
                f"; incident {incident_id} then leaves the group, and approving the action "
                "changes nothing for it"
            )
            key = f"{self._keys.members}:{action_id}"
            raise self._bad_field(key, incident_id, exc, then) from exc

    def _action_ids(self, raw: bytes, incident_id: str) -> builtins.list[str]:
        try:
            ids = orjson.loads(raw)
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError(f"expected a list of action ids, got {ids!r:.80}")
            return ids
        except ValueError as exc:
            raise self._bad_field(self._keys.action_incidents, incident_id, exc) from exc


if TYPE_CHECKING:  # mypy proves the classes implement the ports

    def _implements_flag_port(store: RedisFlagStore) -> FlagStore:
        return store

    def _implements_approval_port(store: RedisApprovalStore) -> ApprovalStore:
        return store
