"""Every Redis key riskstream writes, the rules that keep namespaces apart, and the
ACL each process needs.

The layout is a contract (router clients in serving processes read the flags
directly, operators grant ACLs by prefix), so it lives in this one module and the
adapters build their key names only from here::

    rs:{<scope>|<topic>|<partition>}:meta   hash     detector state: epoch, offset, counters
    rs:{<scope>|<topic>|<partition>}:snap   hash     stream key -> detector snapshot bytes
    rs:{<scope>|<topic>|<partition>}:stage  hash     a large save's snapshots, written in
                                                     chunks before its offset commits
    rs:{flags|<ns>}:epoch                   string   the containment worker's generation:
                                                     gone means Redis lost the flags
    rs:{flags|<ns>}:health                  string   a health probe's write, with a PX expiry
    rs:{flags|<ns>}:flags                   hash     model_id -> routing flag JSON
    rs:{flags|<ns>}:applied                 set      ids of the changes applied
    rs:{flags|<ns>}:audit                   stream   the hash-chained audit trail, one entry
                                                     per change, id "<seq>-0", field "entry"
    rs:{flags|<ns>}:head                    hash     seq, hash of the last audit entry
    rs:{flags|<ns>}:outbox                  zset     ids of the events waiting to be published,
                                                     scored by the audit seq of their change
    rs:{flags|<ns>}:outbox_events           hash     event id -> the event (topic, key, value,
                                                     headers) as its change wrote it
    rs:{flags|<ns>}:pending                 hash     action_id -> pending action JSON
    rs:{flags|<ns>}:changed                 channel  {"model_id", "revision"} per change
    rs:{flags|<ns>}:incidents               hash     incident_id -> incident record JSON
    rs:{flags|<ns>}:incidents_by_time       zset     incident ids by detection time
    rs:{flags|<ns>}:incidents_of:<subject>  zset     one subject's incident ids, by detection time
    rs:{flags|<ns>}:actions:<status>        zset     action ids of one status (or "all"), all
                                                     scored 0, members "<requested_at>|<id>"
                                                     (requested_at zero-padded: lex = time order)
    rs:{flags|<ns>}:deadlines               zset     pending action ids by expiry time
    rs:{flags|<ns>}:action_incidents        hash     incident_id -> JSON list of its action ids
    rs:{flags|<ns>}:members:<action_id>     hash     a grouped action's incidents: incident_id
                                                     -> member JSON (see core.approvals)
    rs:pred|<ns>:<prediction_id>            string   a parked prediction, with a PX expiry
    rs:pred|<ns>:{<bucket>}<prediction_id>  string   the same on a Redis Cluster (64 buckets)
    rs:changes|<ns>                         zset     change events by data time

Hash tags (the part in braces) decide the Redis Cluster slot: a partition's keys
share one (its checkpoint, offset and fence are saved by one script), and so do all
keys of one flag namespace (a flag, its audit entry and its outbox events are one
script; an incident update is one ``WATCH``/``MULTI``), so every script and
transaction touches one slot and runs unchanged on a cluster client.  Each partition
has a tag of its own, so partitions spread over the shards; a namespace lives on one
shard.  Predictions carry
no hash tag on purpose: they are the largest and hottest data and should spread over
the shards; on a cluster they carry one of :data:`PREDICTION_BUCKETS` tags (by the
id's CRC-32), so that a put can still write a bucket's keys with one script, one
script per bucket pipelined per shard (a SET per key cost 3x the client CPU).  The change log
is one key.  This layout predates cluster support, so a single-node deployment's
keys need no renaming to move to a cluster.  So that two namespaces can never
share a key or change a hash tag, a flag namespace may not contain ``{``, ``}``,
``|`` or ``%``, a prediction namespace no ``:``, ``{`` or ``}``; a scope or topic
name is percent-escaped instead, because it comes from Kafka, not from an operator.

The ``*_ACL`` constants are the least an ACL user needs
(``ACL SETUSER <name> on >password <ACL>``); :data:`PROCESS_ACLS` combines them
per long-lived process.
"""

from __future__ import annotations

import zlib
from typing import Final, NamedTuple

from riskstream.errors import ConfigError
from riskstream.ports import TopicPartition

__all__ = [
    "CHANGES_ACL",
    "CLUSTER_ACL",
    "FLAGS_ACL",
    "KEY_PREFIX",
    "PREDICTIONS_ACL",
    "PREDICTION_BUCKETS",
    "PROCESS_ACLS",
    "ROUTER_ACL",
    "STATE_ACL",
    "FlagKeys",
    "change_log_key",
    "flag_keys",
    "partition_keys",
    "partition_of",
    "partition_pattern",
    "partition_stage_key",
    "prediction_bucket_tag",
    "prediction_key_prefix",
]

#: What every riskstream key starts with.
KEY_PREFIX: Final = "rs"
_CHANGES: Final = f"{KEY_PREFIX}:changes"
_PREDICTIONS: Final = f"{KEY_PREFIX}:pred"

#: The detector state store (the processor, and `riskstream state held|reset`, which SCAN
#: for the partitions saved).
STATE_ACL: Final = (
    f"~{KEY_PREFIX}:* +multi +exec +hincrby +hgetall +evalsha +script|load "
    "+hget +hmget +hset +hdel +hkeys +hlen +hscan +unlink +type +memory|usage +wait +scan"
)
#: The flag and approval stores, and the incident store that shares their namespace.
#: ``&`` grants the ``changed`` channel (Redis 7 denies channels by default).
FLAGS_ACL: Final = (
    f"~{KEY_PREFIX}:{{flags|* &{KEY_PREFIX}:{{flags|* +multi +exec +evalsha +script|load "
    "+hget +hmget +hgetall +hsetnx +hset +hdel +sismember +sadd "
    "+xadd +xrange +xrevrange +publish +watch +unwatch +zadd +zrevrange +zrevrank "
    "+zrem +zcard +zrange +zrangebylex +zrangebyscore +hlen +hvals +exists +get +set"
)
#: A router client, which only reads flags.  ``+info`` is optional: without it a
#: Redis restart or failover is not noticed and revisions that went backwards with
#: it are ignored until the process restarts.
ROUTER_ACL: Final = (
    f"~{KEY_PREFIX}:{{flags|* &{KEY_PREFIX}:{{flags|* "
    "+hgetall +hmget +get +subscribe +ping +client|setname +info"
)
#: The parked-prediction store (the processor, to join labels).
PREDICTIONS_ACL: Final = f"~{_PREDICTIONS}|* +set +get +mget +evalsha +script|load"
#: The change log the processors share (and the containment worker, for backfills).
CHANGES_ACL: Final = (
    f"~{_CHANGES}|* +zadd +zrangebyscore +zremrangebyscore +zremrangebyrank +zrevrange +multi +exec"
)

#: What a cluster client needs besides: the slot map, and the command table it reads
#: keys from (redis-py's ``RedisCluster``).  Add it to each process's rules on a cluster.
CLUSTER_ACL: Final = "+cluster|slots +command"

#: What each long-lived process touches in Redis, as one ACL rule list per process.
PROCESS_ACLS: Final = {
    "processor": f"{STATE_ACL} {PREDICTIONS_ACL} {CHANGES_ACL}",
    "containment": f"{FLAGS_ACL} {CHANGES_ACL}",  # + the change log, for backfills
    "api": FLAGS_ACL,
    "router": ROUTER_ACL,
}

_FORBIDDEN_IN_FLAG_NAMESPACE: Final = frozenset("{}|%")
_FORBIDDEN_IN_PREDICTION_NAMESPACE: Final = frozenset(":{}")


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("|", "%7C").replace("{", "%7B").replace("}", "%7D")


def partition_keys(scope: str, partition: TopicPartition) -> tuple[str, str]:
    """The ``(meta, snap)`` key names of one partition, for operators and tests.

    >>> partition_keys("detectors", ("sensor-events", 3))
    ('rs:{detectors|sensor-events|3}:meta', 'rs:{detectors|sensor-events|3}:snap')
    """
    topic, number = partition
    tag = f"{KEY_PREFIX}:{{{_escape(scope)}|{_escape(topic)}|{int(number)}}}"
    return f"{tag}:meta", f"{tag}:snap"


def partition_stage_key(scope: str, partition: TopicPartition) -> str:
    """Where a large save stages its snapshots (see ``riskstream.adapters.redis.state``).

    >>> partition_stage_key("detectors", ("sensor-events", 3))
    'rs:{detectors|sensor-events|3}:stage'
    """
    return partition_keys(scope, partition)[0].removesuffix(":meta") + ":stage"


def partition_pattern(scope: str) -> str:
    """A ``SCAN MATCH`` pattern for the meta keys of every partition of ``scope``."""
    glob = "".join(f"\\{c}" if c in "*?[]\\" else c for c in _escape(scope))
    return f"{KEY_PREFIX}:{{{glob}|*}}:meta"


def partition_of(scope: str, meta_key: str) -> TopicPartition | None:
    """The partition a meta key of ``scope`` names (None: not one of its meta keys).

    >>> partition_of("detectors", partition_keys("detectors", ("a|b", 3))[0])
    ('a|b', 3)
    """
    head, tail = f"{KEY_PREFIX}:{{{_escape(scope)}|", "}:meta"
    if not (meta_key.startswith(head) and meta_key.endswith(tail)):
        return None
    topic, _, number = meta_key[len(head) : -len(tail)].rpartition("|")
    if not number.isdigit():
        return None
    plain = topic.replace("%7C", "|").replace("%7B", "{").replace("%7D", "}")
    return plain.replace("%25", "%"), int(number)


class FlagKeys(NamedTuple):
    """The key names (and the channel) of one flag namespace."""

    flags: str
    applied: str
    audit: str
    head: str
    pending: str
    changed: str
    incidents: str  # incident records by id (riskstream.adapters.redis.incidents)
    incidents_by_time: str  # their ids scored by detection time
    actions: str  # + ":<status>" or ":all": the action indexes (riskstream.adapters.redis.flags)
    deadlines: str  # pending action ids by expiry
    action_incidents: str  # incident id -> its action ids
    members: str  # + ":<action_id>": a grouped action's member incidents
    incidents_of: str  # + ":<subject>": one subject's incident ids by detection time
    epoch: str  # the worker's generation (riskstream.services.flag_epoch)
    health: str  # a health probe's write (expires)
    outbox: str  # ids of the events waiting to be published, by audit seq
    outbox_events: str  # event id -> the event as its change wrote it


def flag_keys(namespace: str = "default") -> FlagKeys:
    """The keys of ``namespace``, for the stores, router clients, operators and tests.

    >>> flag_keys("prod").audit
    'rs:{flags|prod}:audit'
    """
    if not namespace or _FORBIDDEN_IN_FLAG_NAMESPACE.intersection(namespace):
        raise ConfigError(
            f"Flag store namespace {namespace!r} must be non-empty and contain none of "
            "'{', '}', '|', '%' (they would change the Redis key's hash tag)."
        )
    tag = f"{KEY_PREFIX}:{{flags|{namespace}}}"
    return FlagKeys(*(f"{tag}:{name}" for name in FlagKeys._fields))


#: Hash-tag buckets of the predictions on a Redis Cluster: enough to spread them over the
#: shards, few enough that a put of 2,000 writes some 30 keys per script.
PREDICTION_BUCKETS: Final = 64


def prediction_bucket_tag(prediction_id: str) -> str:
    """The hash tag of a prediction's key on a Redis Cluster (its id follows it).

    >>> prediction_bucket_tag("p-1")
    '{23}'
    """
    return f"{{{zlib.crc32(prediction_id.encode()) % PREDICTION_BUCKETS}}}"


def prediction_key_prefix(namespace: str = "default") -> str:
    """What every prediction key of ``namespace`` starts with (the prediction id follows).

    >>> prediction_key_prefix("prod")
    'rs:pred|prod:'
    """
    if not namespace or _FORBIDDEN_IN_PREDICTION_NAMESPACE.intersection(namespace):
        raise ConfigError(
            f"Prediction store namespace {namespace!r} must be non-empty and contain none "
            "of ':', '{', '}' (a ':' would let two namespaces share keys, braces would "
            "pin every prediction to one Redis Cluster slot)."
        )
    return f"{_PREDICTIONS}|{namespace}:"


def change_log_key(namespace: str) -> str:
    """The sorted set of ``namespace``'s change events.

    >>> change_log_key("riskstream")
    'rs:changes|riskstream'
    """
    return f"{_CHANGES}|{namespace}"
