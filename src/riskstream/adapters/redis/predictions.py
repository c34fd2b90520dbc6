"""The Redis :class:`~riskstream.core.labels.PredictionStore`: one string key per prediction.

Layout (one namespace per deployment)::

    rs:pred|<ns>:<prediction_id>   string   the record as orjson bytes, with a PX expiry

No hash tag on one server.  On a Redis Cluster a script may not touch keys of two
slots, so there each key carries one of 64 bucket tags
(``rs:pred|<ns>:{<bucket>}<prediction_id>``, see
:func:`~riskstream.adapters.redis.keys.prediction_bucket_tag`): the predictions
spread over the shards, and :meth:`~RedisPredictionStore.put_many`
still writes with the script, one per bucket, pipelined per shard;
:meth:`~RedisPredictionStore.get_many` reads with ``mget_nonatomic`` (an ``MGET`` per
slot, pipelined per shard).  Client CPU per record, 20,000 records on a loopback
cluster of 3 shards: put 11.7 us, get 5.9 us (one server: 5.5 and 2.7); a ``SET`` per
key and untagged ``MGET`` took 32 and 22 us.  So a namespace's predictions are not found across a
move from one server to a cluster: they wait for their labels until their TTL, as
predictions never stored would.

Writes are ``SET key value PX ttl`` (PX rather than EX: a TTL to the
millisecond).  :meth:`~RedisPredictionStore.put_many` sends them as one small
Lua script per :data:`PUT_CHUNK` records, keys in ``KEYS``: measured with
hiredis, 1,000 records cost the client 1 ms of CPU that way, against 9.5 ms as
a pipeline of ``pipe.set(...)`` calls (5.4 ms with bare ``execute_command``),
because redis-py builds each pipelined command in Python.  The server's work is
the same either way (2.6 us per SET), but a script holds the server for its
whole chunk: 500 keys, about 1.3 ms.  Reads are ``GET`` and ``MGET``.

Failure semantics a caller must know:

- :class:`~riskstream.errors.StateStoreError` from :meth:`RedisPredictionStore.put_many`
  after the request left this process: some, all or none of the batch may be
  stored.  Putting the same batch again is safe (a put replaces).
- Reads never change anything and may be repeated freely.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
import redis

from riskstream.adapters.memory.predictions import check_ttl, decode_record, encode_record
from riskstream.adapters.redis.client import (
    RedisClient,
    client_from_url,
    is_cluster,
    translate_errors,
    where,
)
from riskstream.adapters.redis.keys import PREDICTIONS_ACL as REQUIRED_ACL
from riskstream.adapters.redis.keys import prediction_bucket_tag, prediction_key_prefix
from riskstream.core.labels import PredictionStore
from riskstream.errors import ConfigError, StateStoreError

__all__ = [
    "GET_CHUNK",
    "PUT_CHUNK",
    "REQUIRED_ACL",
    "RedisPredictionStore",
    "prediction_key_prefix",
]

#: Records per put script: big enough that the round trip is noise, small enough
#: that the server is not held for much more than a millisecond.
PUT_CHUNK: Final = 500
#: Records per pipeline of bucket scripts on a cluster: some 30 keys per script.
CLUSTER_PUT_CHUNK: Final = 2000
#: Keys per MGET (about 0.3 us each on the server).
GET_CHUNK: Final = 2000

# KEYS: the prediction keys.  ARGV: 1 the TTL in ms, then one record per key.
_PUT_LUA: Final = """
local px = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', px)
end
return #KEYS
"""


class RedisPredictionStore:
    """Prediction records in Redis, each with its own expiry.

    Give it a ``redis.Redis`` client built with ``decode_responses=False`` (the
    one the other stores take, so one client can serve them all); the caller
    keeps owning that client.  Use :meth:`from_url` to have the store build, own
    and close its client.  Safe to share between threads.
    """

    def __init__(
        self, client: RedisClient, namespace: str = "default", *, owns_client: bool = False
    ) -> None:
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ConfigError(
                "RedisPredictionStore needs a redis.Redis client with decode_responses=False "
                "(the one RedisStateStore takes, so one client can serve all stores)."
            )
        self._prefix = prediction_key_prefix(namespace)
        self._client = client
        self._owns_client = owns_client
        self._namespace = namespace
        self._where = where(client)
        self._put_script = client.register_script(_PUT_LUA)
        self._cluster = is_cluster(client)

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str = "default", **client_options: Any
    ) -> RedisPredictionStore:
        """A store with its own client; ``client_options`` (ACL credentials, TLS files,
        redis-py options) as :func:`~riskstream.adapters.redis.client.client_from_url`."""
        return cls(client_from_url(url, **client_options), namespace, owns_client=True)

    @property
    def namespace(self) -> str:
        return self._namespace

    def key(self, prediction_id: str) -> str:
        """The Redis key of one prediction, for operators and tests."""
        if self._cluster:
            return self._prefix + prediction_bucket_tag(prediction_id) + prediction_id
        return self._prefix + prediction_id

    def __repr__(self) -> str:
        return f"RedisPredictionStore({self._where}, namespace={self._namespace!r})"

    def eviction_problem(self) -> str | None:
        """What is wrong with the server's ``maxmemory-policy`` for a prediction store,
        or None (also when the server will not say: CONFIG is often not granted).

        Predictions are the only riskstream keys with a TTL and most of a label-joining
        deployment's Redis: under ``noeviction`` (Redis's default) a full store refuses
        every write, the processor's checkpoints included, and detection stops for
        every stream; an ``allkeys-*`` policy evicts detector state and flags."""
        try:
            reply: Mapping[Any, Any] = self._client.config_get("maxmemory-policy")
        except redis.RedisError:
            return None
        policy = reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if not isinstance(policy, str) or policy.startswith("volatile-"):
            return None
        if policy.startswith("allkeys-"):
            then = "evicts detector state, offsets and flags when Redis is full"
        else:
            then = (
                "refuses every write when predictions fill Redis, checkpoints included: "
                "detection stops for every stream"
            )
        return (
            f"Redis at {self._where} has maxmemory-policy {policy}, which {then}; set "
            "maxmemory and maxmemory-policy volatile-ttl (README, 'Redis memory')"
        )

    def put(self, prediction_id: str, record: Mapping[str, Any], ttl_s: float) -> None:
        ttl_ms = check_ttl(ttl_s)
        raw = encode_record(prediction_id, record)
        with self._translate(f"store prediction {prediction_id!r}", partial=False):
            self._client.set(self.key(prediction_id), raw, px=ttl_ms)

    def put_many(self, records: Iterable[tuple[str, Mapping[str, Any]]], ttl_s: float) -> None:
        ttl_ms = check_ttl(ttl_s)
        # Encode everything first: a bad record must not leave half a batch written.
        encoded = [(self.key(pid), encode_record(pid, record)) for pid, record in records]
        with self._translate(f"store {len(encoded)} predictions", partial=True):
            if self._cluster:
                self._put_buckets(encoded, ttl_ms)
                return
            for start in range(0, len(encoded), PUT_CHUNK):
                chunk = encoded[start : start + PUT_CHUNK]
                self._put_script(
                    keys=[key for key, _ in chunk], args=[ttl_ms, *(raw for _, raw in chunk)]
                )

    def _put_buckets(self, encoded: list[tuple[str, bytes]], ttl_ms: int) -> None:
        """The put script once per bucket, pipelined per shard, CLUSTER_PUT_CHUNK at a time."""
        for start in range(0, len(encoded), CLUSTER_PUT_CHUNK):
            buckets: dict[str, list[tuple[str, bytes]]] = {}
            for key, raw in encoded[start : start + CLUSTER_PUT_CHUNK]:
                buckets.setdefault(key[len(self._prefix) : key.index("}") + 1], []).append(
                    (key, raw)
                )
            pipe = self._client.pipeline(transaction=False)
            for entries in buckets.values():
                keys = [key for key, _ in entries]
                # EVAL, not EVALSHA (which redis-py refuses in a cluster pipeline): the
                # script is small, and no shard can lack it after a failover.
                pipe.execute_command(
                    "EVAL", _PUT_LUA, len(keys), *keys, ttl_ms, *(raw for _, raw in entries)
                )
            pipe.execute()

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        key = self.key(prediction_id)
        with self._translate(f"read prediction {prediction_id!r}"):
            raw = cast(bytes | None, self._client.get(key))
        return None if raw is None else self._decode(key, raw)

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(prediction_ids))
        key = self.key
        found: dict[str, dict[str, Any]] = {}
        with self._translate(f"read {len(ids)} predictions"):
            for start in range(0, len(ids), GET_CHUNK):
                chunk = ids[start : start + GET_CHUNK]
                keys = [key(pid) for pid in chunk]
                values = cast(
                    list[bytes | None],
                    self._client.mget_nonatomic(keys)  # type: ignore[union-attr]
                    if self._cluster
                    else self._client.mget(keys),
                )
                for pid, k, raw in zip(chunk, keys, values, strict=True):
                    if raw is not None:
                        found[pid] = self._decode(k, raw)
        return found

    def close(self) -> None:
        """Close the client if :meth:`from_url` built it; a passed-in client stays open."""
        if self._owns_client:
            self._client.close()

    def _decode(self, key: str, raw: bytes) -> dict[str, Any]:
        try:
            return decode_record(raw)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise StateStoreError(
                f"Redis prediction store at {self._where}: {key} is not what riskstream "
                f"writes ({exc}); something else wrote to it."
            ) from None

    def _translate(
        self, action: str, *, partial: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Re-raise redis-py errors as StateStoreError, saying what to check."""
        unknown = (
            "Some, all or none of the predictions may be stored: put them again "
            "(a put replaces, so repeating is safe)."
            if partial
            else ""
        )
        return translate_errors(
            f"Redis prediction store at {self._where} (namespace {self._namespace!r})",
            action,
            self._where,
            REQUIRED_ACL,
            unknown=unknown,
            hint=_hint,
        )


def _hint(exc: redis.RedisError) -> str | None:
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return (
            "Redis is at maxmemory: set maxmemory-policy volatile-ttl (the oldest "
            "predictions then make room; README, 'Redis memory'), raise maxmemory, or "
            "shorten the predictions' TTL (labels.ttl_days)."
        )
    text = str(exc)
    if "CROSSSLOT" in text or "MOVED" in text:
        return (
            "This is a Redis Cluster: give a redis+cluster://host:port,... URL so that "
            "riskstream uses a cluster client."
        )
    return None


if TYPE_CHECKING:  # mypy proves the class implements the port

    def _implements_port(store: RedisPredictionStore) -> PredictionStore:
        return store
