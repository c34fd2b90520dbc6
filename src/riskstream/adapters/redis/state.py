"""The Redis :class:`~riskstream.ports.StateStore`: fenced, atomic, cluster-ready keys.

Each input partition owns two keys sharing a hash tag, so Redis Cluster puts them
in one slot and one transaction or script may touch both::

    rs:{<scope>|<topic>|<partition>}:meta   hash: epoch, offset, c:<counter name>
    rs:{<scope>|<topic>|<partition>}:snap   hash: stream key -> snapshot bytes

``|``, ``{``, ``}`` and ``%`` in the scope or topic are percent-escaped, so two
different partitions can never share a key.

A claim reads what the previous owner last saved and bumps the epoch in one
``MULTI``; a save is one Lua script that checks the epoch and writes, sent as
``EVALSHA``.  Why these and not the alternatives is in ``docs/design/state-store.md``.

Failure semantics a caller must know:

- :class:`~riskstream.errors.FencedError`: nothing was written.
- :class:`~riskstream.errors.StateStoreError` from :meth:`RedisStateStore.save`
  after the request left this process (connection dropped, timeout): the outcome
  is *unknown* but atomic, the whole save or none of it.  Repeating the same
  save is safe (a save is idempotent), and so is claiming again to read back what
  is there.  The caller must not drop the failed save's ``changed``/``deleted``
  keys from its dirty set before a save succeeds.
- redis-py's default client retries commands on connection errors; that is safe
  here for the same reason (a retried claim just bumps the epoch once more).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import redis

from riskstream.adapters.memory.state import check_save_arguments, fenced_error
from riskstream.adapters.redis.client import client_from_url, translate_errors
from riskstream.adapters.redis.keys import STATE_ACL as REQUIRED_ACL
from riskstream.adapters.redis.keys import partition_keys, partition_of, partition_pattern
from riskstream.errors import ConfigError
from riskstream.ports import PartitionState, StateStore, TopicPartition

__all__ = ["REQUIRED_ACL", "RedisStateStore", "partition_keys"]

_COUNTER_PREFIX: Final = b"c:"
_FENCED: Final = b"FENCED"

# ARGV: epoch, offset, n_counters, n_changed, then n_counters (name, value) pairs,
# n_changed (key, snapshot) pairs, then the deleted keys.  Loops, not unpack():
# unpack() of a 20,000-element ARGV overflows Lua's C stack (about 8,000 slots).
#
# No command may fail after the first write, or Redis would keep the part already
# done (scripts are atomic, not transactional).  So everything that can refuse is
# asked before writing: the HGET proves KEYS[1] is a hash, acl_check_cmd (Redis 7+)
# that the ACL user may run every write, and the first write to KEYS[2] is the one
# that would fail if it is not a hash; Redis checks maxmemory only before a
# script's first write.
_SAVE_LUA: Final = """
local current = redis.call('HGET', KEYS[1], 'epoch')
if current ~= ARGV[1] then
  return {'FENCED', current or ''}
end
if redis.acl_check_cmd then
  local writes = {{'HSET', KEYS[2], 'k', 'v'}, {'HDEL', KEYS[2], 'k'},
                  {'HSET', KEYS[1], 'k', 'v'}, {'HDEL', KEYS[1], 'k'}}
  for _, command in ipairs(writes) do
    if not redis.acl_check_cmd(unpack(command)) then
      return redis.error_reply('NOPERM the ACL user may not run ' .. command[1] ..
        ' on ' .. command[2] .. ' (nothing was written)')
    end
  end
end
local old_fields = redis.call('HKEYS', KEYS[1])
local counters_at = 5
local changed_at = counters_at + 2 * tonumber(ARGV[3])
local deleted_at = changed_at + 2 * tonumber(ARGV[4])
for i = changed_at, deleted_at - 1, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
for i = deleted_at, #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
end
for _, name in ipairs(old_fields) do
  if string.sub(name, 1, 2) == 'c:' then
    redis.call('HDEL', KEYS[1], name)
  end
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2])
for i = counters_at, changed_at - 1, 2 do
  redis.call('HSET', KEYS[1], 'c:' .. ARGV[i], ARGV[i + 1])
end
return 'OK'
"""


class RedisStateStore:
    """Partition state in Redis (standalone, or one primary with replicas).

    Give it a ``redis.Redis`` client built with ``decode_responses=False``
    (snapshots are raw bytes); the caller keeps owning that client.  Use
    :meth:`from_url` to have the store build, own and close its client.
    """

    def __init__(self, client: redis.Redis, *, owns_client: bool = False) -> None:
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ConfigError(
                "RedisStateStore needs a redis.Redis client with decode_responses=False: "
                "snapshots are binary and would fail to decode as text."
            )
        self._client = client
        self._owns_client = owns_client
        self._where = (
            f"unix:{kwargs['path']}"
            if kwargs.get("path")
            else f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        )
        self._save_script = client.register_script(_SAVE_LUA)

    @classmethod
    def from_url(cls, url: str, **client_options: Any) -> RedisStateStore:
        """A store with its own client; ``client_options`` (ACL credentials, TLS files,
        redis-py options) as :func:`~riskstream.adapters.redis.client.client_from_url`."""
        return cls(client_from_url(url, **client_options), owns_client=True)

    def __repr__(self) -> str:
        return f"RedisStateStore({self._where})"

    def claim(self, scope: str, partition: TopicPartition) -> PartitionState:
        return self._read(scope, partition, claim=True)

    def peek(self, scope: str, partition: TopicPartition) -> PartitionState:
        return self._read(scope, partition, claim=False)

    def _read(self, scope: str, partition: TopicPartition, *, claim: bool) -> PartitionState:
        meta_key, snap_key = partition_keys(scope, partition)
        with self._translate("claim" if claim else "read", scope, partition):
            pipe = self._client.pipeline(transaction=True)
            if claim:
                pipe.hincrby(meta_key, "epoch", 1)
            pipe.hgetall(meta_key)
            pipe.hgetall(snap_key)
            *_, meta, snapshots = pipe.execute()
        offset = meta.get(b"offset")
        return PartitionState(
            epoch=int(meta.get(b"epoch", 0)),
            offset=None if offset is None else int(offset),
            counters={
                name[len(_COUNTER_PREFIX) :].decode(): int(value)
                for name, value in meta.items()
                if name.startswith(_COUNTER_PREFIX)
            },
            snapshots={key.decode(): value for key, value in snapshots.items()},
        )

    def save(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        counters: Mapping[str, int],
        changed: Mapping[str, bytes],
        deleted: Iterable[str] = (),
    ) -> None:
        deleted = check_save_arguments(offset, changed, deleted)
        args: list[bytes | str | int] = [int(epoch), int(offset), len(counters), len(changed)]
        for name, value in counters.items():
            args += (name, int(value))
        for key, snapshot in changed.items():
            args += (key, snapshot)
        args += deleted
        with self._translate("save", scope, partition):
            reply = self._save_script(keys=partition_keys(scope, partition), args=args)
        if isinstance(reply, list) and reply[0] == _FENCED:
            current = int(reply[1]) if reply[1] else None
            raise fenced_error(scope, partition, epoch, current)

    def partitions(self, scope: str) -> list[TopicPartition]:
        """The partitions of ``scope`` with a meta key, found by ``SCAN`` (never ``KEYS``)."""
        found: list[TopicPartition] = []
        with self._translate("list partitions of", scope, ("*", 0)):
            for key in self._client.scan_iter(match=partition_pattern(scope), count=1000):
                tp = partition_of(scope, key.decode() if isinstance(key, bytes) else key)
                if tp is not None:
                    found.append(tp)
        return sorted(set(found))

    def state_bytes(self, scope: str, partition: TopicPartition) -> int:
        """Redis's estimate of the memory the partition's keys use (0 if none).

        ``MEMORY USAGE ... SAMPLES 100``: about 10 us on the server at any size (an
        exact count scans every entry, about 1 ms per 10,000), and within a few
        percent, where the default 5 samples were off by 30%.  It includes Redis's
        own overhead, so it exceeds the payload by some 15%.
        """
        with self._translate("measure", scope, partition):
            pipe = self._client.pipeline(transaction=False)
            for key in partition_keys(scope, partition):
                pipe.memory_usage(key, samples=100)
            sizes: list[int | None] = pipe.execute()
        return sum(size or 0 for size in sizes)

    def close(self) -> None:
        """Close the client if :meth:`from_url` built it; a passed-in client stays open."""
        if self._owns_client:
            self._client.close()

    def _translate(
        self, action: str, scope: str, partition: TopicPartition
    ) -> contextlib.AbstractContextManager[None]:
        """Re-raise redis-py errors as StateStoreError, saying what to check."""
        topic, number = partition
        unknown = (
            "The save may or may not have been applied (it is atomic either way): "
            "repeat it, or claim the partition again to read what is stored."
            if action == "save"
            else ""
        )
        return translate_errors(
            f"Redis state store at {self._where}",
            f"{action} scope {scope!r}, partition {topic}[{number}]",
            self._where,
            REQUIRED_ACL,
            unknown=unknown,
            hint=_hint,
        )


def _hint(exc: redis.RedisError) -> str | None:
    if isinstance(exc, redis.exceptions.DataError):
        return "A value of an unsupported type was passed: snapshots must be bytes."
    if str(exc).startswith("WRONGTYPE"):
        return "Another program wrote these keys with other types; check the scope."
    return None


if TYPE_CHECKING:  # mypy proves the class implements the port

    def _implements_port(store: RedisStateStore) -> StateStore:
        return store
