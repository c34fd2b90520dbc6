"""The Redis :class:`~riskstream.ports.StateStore`: fenced, atomic, cluster-ready keys.

Each input partition owns two keys sharing a hash tag, so Redis Cluster puts them
in one slot and one transaction or script may touch both::

    rs:{<scope>|<topic>|<partition>}:meta   hash: epoch, offset, c:<counter name>
    rs:{<scope>|<topic>|<partition>}:snap   hash: stream key -> snapshot bytes

``|``, ``{``, ``}`` and ``%`` in the scope or topic are percent-escaped, so two
different partitions can never share a key.

A claim bumps the epoch and reads the meta hash in one ``MULTI``, then reads the
snapshots with ``HSCAN`` (so no single call returns the whole partition); a save
is one Lua script that checks the epoch and writes, sent as ``EVALSHA``.  Why these
and not the alternatives is in ``docs/design/state-store.md``.

**Large saves are chunked**, because Redis runs one command at a time and a script
writing 800,000 snapshots blocked every client for 2 s.  A save of more than
:data:`SCRIPT_ENTRIES` entries or :data:`SCRIPT_BYTES` bytes stages its snapshots in
``...:stage`` (same hash tag) a chunk (:data:`CHUNK_ENTRIES`) per script, then *commits*
with a small script that writes the offset and counters and marks the stage committed,
then moves the stage into ``...:snap`` a chunk per script.  Every script checks the epoch, so
fencing holds chunk by chunk.  The commit is the one atomic point: a crash before
it leaves an uncommitted stage that is discarded (``UNLINK``, freed in the
background); a crash after it leaves a committed stage that a claim reads over the
snapshots (a deletion is staged as an empty value) and the next save finishes
moving.  So a restart still resumes exactly where the saved state ends.

**A failover may lose the last writes** (Redis replicates asynchronously): the
promoted replica can hold an older checkpoint, or miss the claim that bumped the
epoch.  A save applies its snapshots as a delta over the stored ones, so a save on
top of a rolled-back checkpoint would mix two of them.  So the store remembers the
epoch and offset it claimed or last saved per partition, and the save (or, for a
chunked one, the commit) refuses, writing nothing, unless Redis still holds that
offset and epoch: it raises :class:`~riskstream.errors.StateStoreError` saying
writes were lost, and the processor claims its partitions again and resumes from
what Redis holds — state and offset roll back together, and the events replayed
give the same incident ids.  ``replicas`` (``processor.checkpoint_replicas``) makes
each save (each commit) wait with ``WAIT`` until that many replicas have it, up to
``replica_timeout_ms``, so a failover rarely loses one; a save that times out is
kept (the primary has it) and logged.

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
import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import redis

from riskstream.adapters.memory.state import check_save_arguments, fenced_error
from riskstream.adapters.redis.client import (
    RedisClient,
    client_from_url,
    node_client,
    translate_errors,
    where,
)
from riskstream.adapters.redis.keys import STATE_ACL as REQUIRED_ACL
from riskstream.adapters.redis.keys import (
    partition_keys,
    partition_of,
    partition_pattern,
    partition_stage_key,
)
from riskstream.errors import ConfigError, StateStoreError
from riskstream.ports import PartitionState, StateStore, TopicPartition

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ENTRIES",
    "REQUIRED_ACL",
    "SCRIPT_BYTES",
    "SCRIPT_ENTRIES",
    "RedisStateStore",
    "partition_keys",
]

log = logging.getLogger(__name__)

_COUNTER_PREFIX: Final = b"c:"
_FENCED: Final = b"FENCED"
_LOST: Final = b"LOST"
_NO_CHECK: Final = ""  # the expected offset when this store did not claim the partition
_NO_OFFSET: Final = "-"  # the expected offset of a partition never saved
_STAGED: Final = b"staged"  # meta field: a committed stage is still being moved
_TOMBSTONE: Final = b""  # a staged deletion (a snapshot is never empty)

#: A save larger than this (entries, or bytes of snapshots) is written in chunks; one
#: script of it runs in about 10 ms (8,000 snapshots of 300 bytes: Redis HSETs them in
#: batches, about 1 us each), well under the ~50 ms budget.
SCRIPT_ENTRIES: Final = 8000
SCRIPT_BYTES: Final = 4 << 20
#: The chunks of a chunked save: a few milliseconds of Redis time each.
CHUNK_ENTRIES: Final = 1000
CHUNK_BYTES: Final = 1 << 20
_SCAN_COUNT: Final = 1000  # HSCAN page when reading a partition back

_FENCE_LUA: Final = """
local current = redis.call('HGET', KEYS[1], 'epoch')
if current ~= ARGV[1] then
  return {'FENCED', current or ''}
end
if redis.acl_check_cmd then
  for _, key in ipairs(KEYS) do
    for _, command in ipairs({{'HSET', key, 'k', 'v'}, {'HDEL', key, 'k'}, {'UNLINK', key}}) do
      if not redis.acl_check_cmd(unpack(command)) then
        return redis.error_reply('NOPERM the ACL user may not run ' .. command[1] ..
          ' on ' .. command[2] .. ' (nothing was written)')
      end
    end
  end
end
"""
# KEYS: meta, stage.  ARGV: epoch.  Discards an uncommitted stage.
_STAGE_BEGIN_LUA: Final = (
    _FENCE_LUA
    + """
redis.call('UNLINK', KEYS[2])
return 'OK'
"""
)
# Writes a run of ARGV in commands of at most _BATCH arguments: one HSET (or HDEL) of
# 500 fields costs Redis a fraction of 500 calls, and unpack() of a bounded slice stays
# far below Lua's C stack (unpack() of all of a 20,000-element ARGV overflows it).
_BATCH = 1000
_BATCH_LUA: Final = f"""
local function batched(command, key, first, last)
  for i = first, last, {_BATCH} do
    redis.call(command, key, unpack(ARGV, i, math.min(i + {_BATCH - 1}, last)))
  end
end
"""
# KEYS: meta, stage.  ARGV: epoch, then (field, value) pairs.
_STAGE_LUA: Final = (
    _BATCH_LUA
    + _FENCE_LUA
    + """
batched('HSET', KEYS[2], 2, #ARGV)
return 'OK'
"""
)
# Refuses (LOST, the offset stored) when Redis no longer holds the offset this store
# saved last (ARGV[n], '' for no check, '-' for none), unless it holds this very save's
# (ARGV[2], a repeat): a failover lost writes.
_LOST_LUA: Final = """
local expected = ARGV[%d]
if expected ~= '' then
  local stored = redis.call('HGET', KEYS[1], 'offset') or '-'
  if stored ~= expected and stored ~= ARGV[2] then
    return {'LOST', stored}
  end
end
"""
# KEYS: meta, snap.  ARGV: epoch, offset, expected offset, then (name, value) counter
# pairs.  Nothing may fail after its first write, so it proves first that the moves can
# run (snap is a hash).
_COMMIT_LUA: Final = (
    _FENCE_LUA
    + _LOST_LUA % 3
    + """
local snap_type = redis.call('TYPE', KEYS[2])['ok']
if snap_type ~= 'hash' and snap_type ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. snap_type ..
    ', not a hash (nothing was committed)')
end
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(name, 1, 2) == 'c:' then
    redis.call('HDEL', KEYS[1], name)
  end
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'staged', '1')
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'c:' .. ARGV[i], ARGV[i + 1])
end
return 'OK'
"""
)
# KEYS: meta, snap, stage.  ARGV: epoch, then staged field names.
_MOVE_LUA: Final = (
    _FENCE_LUA
    + f"""
for first = 2, #ARGV, {_BATCH} do
  local last = math.min(first + {_BATCH - 1}, #ARGV)
  local values = redis.call('HMGET', KEYS[3], unpack(ARGV, first, last))
  local writes, deletes, moved = {{}}, {{}}, {{}}
  for i = first, last do
    local value = values[i - first + 1]
    if value then
      if value == '' then
        deletes[#deletes + 1] = ARGV[i]
      else
        writes[#writes + 1] = ARGV[i]
        writes[#writes + 1] = value
      end
      moved[#moved + 1] = ARGV[i]
    end
  end
  if #writes > 0 then redis.call('HSET', KEYS[2], unpack(writes)) end
  if #deletes > 0 then redis.call('HDEL', KEYS[2], unpack(deletes)) end
  if #moved > 0 then redis.call('HDEL', KEYS[3], unpack(moved)) end
end
if redis.call('HLEN', KEYS[3]) == 0 then
  redis.call('HDEL', KEYS[1], 'staged')
end
return 'OK'
"""
)

# ARGV: epoch, offset, n_counters, n_changed, expected offset (see _LOST_LUA), then
# n_counters (name, value) pairs,
# n_changed (key, snapshot) pairs, then the deleted keys, written in batches (_BATCH_LUA).
#
# No command may fail after the first write, or Redis would keep the part already
# done (scripts are atomic, not transactional).  So everything that can refuse is
# asked before writing: the HGET proves KEYS[1] is a hash, acl_check_cmd (Redis 7+)
# that the ACL user may run every write, and the first write to KEYS[2] is the one
# that would fail if it is not a hash; Redis checks maxmemory only before a
# script's first write.
_SAVE_LUA: Final = (
    _BATCH_LUA
    + """
local current = redis.call('HGET', KEYS[1], 'epoch')
if current ~= ARGV[1] then
  return {'FENCED', current or ''}
end
"""
    + _LOST_LUA % 5
    + """
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
local counters_at = 6
local changed_at = counters_at + 2 * tonumber(ARGV[3])
local deleted_at = changed_at + 2 * tonumber(ARGV[4])
batched('HSET', KEYS[2], changed_at, deleted_at - 1)
batched('HDEL', KEYS[2], deleted_at, #ARGV)
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
)


class RedisStateStore:
    """Partition state in Redis: standalone, a primary with replicas, or a Redis Cluster.

    Give it a ``redis.Redis`` client built with ``decode_responses=False``
    (snapshots are raw bytes); the caller keeps owning that client.  Use
    :meth:`from_url` to have the store build, own and close its client.
    """

    forkable = True  # redis-py's connection pools open new connections in a forked process

    def __init__(
        self,
        client: RedisClient,
        *,
        owns_client: bool = False,
        replicas: int = 0,
        replica_timeout_ms: int = 1000,
    ) -> None:
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ConfigError(
                "RedisStateStore needs a redis.Redis client with decode_responses=False: "
                "snapshots are binary and would fail to decode as text."
            )
        self._client = client
        self._owns_client = owns_client
        self._where = where(client)
        self._save_script = client.register_script(_SAVE_LUA)
        self._stage_begin = client.register_script(_STAGE_BEGIN_LUA)
        self._stage = client.register_script(_STAGE_LUA)
        self._commit = client.register_script(_COMMIT_LUA)
        self._move = client.register_script(_MOVE_LUA)
        # Partitions whose committed stage this process has still to move into snap.
        self._unmoved: set[tuple[str, TopicPartition]] = set()
        # (epoch, offset) this store claimed or last saved, per partition: see _LOST_LUA.
        self._held: dict[tuple[str, TopicPartition], tuple[int, int | None]] = {}
        if replicas < 0 or replica_timeout_ms <= 0:
            raise ConfigError(
                f"checkpoint replicas must be >= 0 and the replica timeout > 0 ms, not "
                f"{replicas} and {replica_timeout_ms}"
            )
        self._replicas = int(replicas)
        self._replica_timeout_ms = int(replica_timeout_ms)
        self.unreplicated = 0  # saves whose WAIT timed out short of `replicas`

    @classmethod
    def from_url(
        cls, url: str, *, replicas: int = 0, replica_timeout_ms: int = 1000, **client_options: Any
    ) -> RedisStateStore:
        """A store with its own client; ``client_options`` (ACL credentials, TLS files,
        redis-py options) as :func:`~riskstream.adapters.redis.client.client_from_url`.
        ``replicas``: see the module docstring."""
        return cls(
            client_from_url(url, **client_options),
            owns_client=True,
            replicas=replicas,
            replica_timeout_ms=replica_timeout_ms,
        )

    def __repr__(self) -> str:
        return f"RedisStateStore({self._where})"

    def claim(self, scope: str, partition: TopicPartition) -> PartitionState:
        return self._read(scope, partition, claim=True)

    def peek(self, scope: str, partition: TopicPartition) -> PartitionState:
        return self._read(scope, partition, claim=False)

    def _read(self, scope: str, partition: TopicPartition, *, claim: bool) -> PartitionState:
        meta_key, snap_key = partition_keys(scope, partition)
        with self._translate("claim" if claim else "read", scope, partition):
            if claim:  # the bump and the read in one MULTI
                pipe = self._client.pipeline(transaction=True)
                pipe.hincrby(meta_key, "epoch", 1)
                pipe.hgetall(meta_key)
                _, meta = pipe.execute()
            else:  # a plain read (Redis refuses MULTI at maxmemory, even to read)
                meta = self._client.hgetall(meta_key)
            # Page by page: after the epoch bump no earlier owner can write here.
            snapshots = dict(self._client.hscan_iter(snap_key, count=_SCAN_COUNT))
            if meta.get(_STAGED):  # committed, not yet moved: it is the newer state
                stage_key = partition_stage_key(scope, partition)
                for key, value in self._client.hscan_iter(stage_key, count=_SCAN_COUNT):
                    if value == _TOMBSTONE:
                        snapshots.pop(key, None)
                    else:
                        snapshots[key] = value
                if claim:
                    self._unmoved.add((scope, partition))
            elif claim:  # a stage never committed (a save cut short): free it
                self._client.unlink(partition_stage_key(scope, partition))
        offset = None if meta.get(b"offset") is None else int(meta[b"offset"])
        if claim:
            self._held[(scope, partition)] = (int(meta.get(b"epoch", 0)), offset)
        return PartitionState(
            epoch=int(meta.get(b"epoch", 0)),
            offset=offset,
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
        if (scope, partition) in self._unmoved:
            self._finish_move(scope, partition, epoch)
        size = sum(map(len, changed.values()))
        if len(changed) + len(deleted) > SCRIPT_ENTRIES or size > SCRIPT_BYTES:
            self._save_chunked(scope, partition, epoch, offset, counters, changed, deleted)
            return
        expected = self._expected(scope, partition, epoch)
        args: list[bytes | str | int] = [
            int(epoch), int(offset), len(counters), len(changed), expected,
        ]  # fmt: skip
        for name, value in counters.items():
            args += (name, int(value))
        args.extend(itertools.chain.from_iterable(changed.items()))
        args += deleted
        with self._translate("save", scope, partition):
            reply = self._acked(self._save_script, partition_keys(scope, partition), args)
        self._check(reply, scope, partition, epoch)
        self._held[(scope, partition)] = (int(epoch), int(offset))

    def saved_elsewhere(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        unreplicated: bool = False,
    ) -> None:
        self._held[(scope, partition)] = (int(epoch), int(offset))
        self.unreplicated += bool(unreplicated)

    def _save_chunked(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        counters: Mapping[str, int],
        changed: Mapping[str, bytes],
        deleted: tuple[str, ...],
    ) -> None:
        """Stage in chunks, commit, move in chunks (see the module docstring)."""
        meta_key, _ = partition_keys(scope, partition)
        stage_key = partition_stage_key(scope, partition)
        entries: list[tuple[str, bytes]] = [*changed.items(), *((k, _TOMBSTONE) for k in deleted)]
        chunks = list(_chunks(entries))
        with self._translate("save", scope, partition):
            self._check(
                self._stage_begin(keys=[meta_key, stage_key], args=[int(epoch)]),
                scope, partition, epoch,
            )  # fmt: skip
            for chunk in chunks:
                args: list[bytes | str | int] = [int(epoch)]
                for key, value in chunk:
                    args += (key, value)
                reply = self._stage(keys=[meta_key, stage_key], args=args)
                _check_fenced(reply, scope, partition, epoch)
            expected = self._expected(scope, partition, epoch)
            commit: list[bytes | str | int] = [int(epoch), int(offset), expected]
            for name, count in counters.items():
                commit += (name, int(count))
            reply = self._acked(self._commit, partition_keys(scope, partition), commit)
            self._check(reply, scope, partition, epoch)
            self._held[(scope, partition)] = (int(epoch), int(offset))
            self._unmoved.add((scope, partition))
            self._move_names(scope, partition, epoch, [[k for k, _ in c] for c in chunks])
        self._unmoved.discard((scope, partition))

    def _expected(self, scope: str, partition: TopicPartition, epoch: int) -> str:
        """The offset Redis must still hold for a save at ``epoch`` (see _LOST_LUA)."""
        held = self._held.get((scope, partition))
        if held is None or held[0] != int(epoch):
            return _NO_CHECK
        return _NO_OFFSET if held[1] is None else str(held[1])

    def _acked(self, script: Any, keys: Any, args: list[bytes | str | int]) -> Any:
        """Run a script that commits a checkpoint; with ``replicas``, ``WAIT`` for them on
        the same connection (``WAIT`` counts the replicas that have that connection's
        writes, so on a cluster both go to the primary of the partition's slot)."""
        if not self._replicas:
            return script(keys=keys, args=args)
        node = node_client(self._client, keys[0])
        for attempt in (1, 2):  # EVALSHA, and once more after loading the script
            pipe = node.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self._replicas, self._replica_timeout_ms)  # type: ignore[no-untyped-call]
            try:
                reply, acked = pipe.execute()
                break
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                node.script_load(script.script)
        if int(acked) < self._replicas:
            self.unreplicated += 1
            log.warning(
                "checkpoint %s reached %d of %d replicas within %d ms; it is saved on the "
                "primary, and a failover now could roll it back (then it is replayed)",
                keys[0], int(acked), self._replicas, self._replica_timeout_ms,
            )  # fmt: skip
        return reply

    def _check(self, reply: Any, scope: str, partition: TopicPartition, epoch: int) -> None:
        """Fenced, or (for a partition this store claimed) writes lost by a failover."""
        lost = isinstance(reply, list) and reply[0] == _LOST
        if isinstance(reply, list) and reply[0] == _FENCED:
            current = int(reply[1]) if reply[1] else None
            held = self._held.get((scope, partition))
            lost = held is not None and held[0] == epoch and (current or 0) < epoch
        if lost:
            self._held.pop((scope, partition), None)
            topic, number = partition
            stored = reply[1].decode() if isinstance(reply[1], bytes) else reply[1]
            raise StateStoreError(
                f"Redis state store at {self._where} no longer holds the last checkpoint "
                f"of scope {scope!r}, partition {topic}[{number}] (it holds "
                f"{'epoch' if reply[0] == _FENCED else 'offset'} {stored or 'none'}): a "
                "failover or restart lost the latest writes (asynchronous replication). "
                "Nothing was written; claim the partition again to resume from what "
                "Redis holds (the processor does this by itself)."
            )
        _check_fenced(reply, scope, partition, epoch)

    def _finish_move(self, scope: str, partition: TopicPartition, epoch: int) -> None:
        """Move a committed stage left by a save that stopped half-way (or a crash)."""
        stage_key = partition_stage_key(scope, partition)
        with self._translate("save", scope, partition):
            names = [k for k, _ in self._client.hscan_iter(stage_key, count=_SCAN_COUNT)]
            batches = [names[i : i + CHUNK_ENTRIES] for i in range(0, len(names), CHUNK_ENTRIES)]
            self._move_names(scope, partition, epoch, batches or [[]])
        self._unmoved.discard((scope, partition))

    def _move_names(
        self, scope: str, partition: TopicPartition, epoch: int, batches: list[list[Any]]
    ) -> None:
        meta_key, snap_key = partition_keys(scope, partition)
        stage_key = partition_stage_key(scope, partition)
        for names in batches:
            reply = self._move(keys=[meta_key, snap_key, stage_key], args=[int(epoch), *names])
            _check_fenced(reply, scope, partition, epoch)

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


def _chunks(entries: list[tuple[str, bytes]]) -> Iterable[list[tuple[str, bytes]]]:
    """Runs of at most CHUNK_ENTRIES entries and (but for one huge value) CHUNK_BYTES."""
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for entry in entries:
        if chunk and (len(chunk) >= CHUNK_ENTRIES or size + len(entry[1]) > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += len(entry[1])
    if chunk:
        yield chunk


def _check_fenced(reply: Any, scope: str, partition: TopicPartition, epoch: int) -> None:
    if isinstance(reply, list) and reply[0] == _FENCED:
        current = int(reply[1]) if reply[1] else None
        raise fenced_error(scope, partition, epoch, current)


def _hint(exc: redis.RedisError) -> str | None:
    if isinstance(exc, redis.exceptions.DataError):
        return "A value of an unsupported type was passed: snapshots must be bytes."
    if str(exc).startswith("WRONGTYPE"):
        return "Another program wrote these keys with other types; check the scope."
    return None


if TYPE_CHECKING:  # mypy proves the class implements the port

    def _implements_port(store: RedisStateStore) -> StateStore:
        return store
