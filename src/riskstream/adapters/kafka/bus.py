"""The Kafka adapter: confluent-kafka behind the bus ports.

Every librdkafka setting riskstream relies on is set here, with why:

- consumer ``enable.auto.commit=false``: the state store, not Kafka, is where a
  restart resumes from; commits only feed lag dashboards.
- consumer ``partition.assignment.strategy=range`` (eager) and a rebalance
  callback that seeks each assigned partition to the offset saved with its state.
- consumer ``max.poll.interval.ms`` (default 30 s here): a member that stops
  polling that long loses its partitions; its state writes are then fenced.
- commits are asynchronous, except for consumers whose progress *is* the commit
  (the notifier: ``synchronous_commits=True``), so a rebalance or restart right
  after a batch does not resend it.
- producer ``enable.idempotence=true`` (implies ``acks=all``): no duplicates
  from retries; ``linger.ms=5`` batches incidents without adding visible delay.
- with ``RISKSTREAM_INCIDENT_KEY`` set, the producer signs every record it writes
  (:mod:`riskstream.signing`): readers of the incidents topic act only on signed ones.
- producer ``flush`` waits ``flush_timeout`` (30 s unless the caller says otherwise:
  the operator API and CLI wait 5 s, ``services.operations.PUBLISH_TIMEOUT_S``).  A
  message not delivered by then stays queued and librdkafka keeps retrying it until
  ``message.timeout.ms`` (5 minutes); its failure then was already reported by that
  flush, so it is logged, not raised again by a later flush of other messages.

librdkafka errors become :class:`riskstream.errors.BusError`, keeping the code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from riskstream.config.environment import KafkaSettings, Secret
from riskstream.errors import BusError
from riskstream.ports import AssignHandler, Record, RevokeHandler
from riskstream.ports import TopicPartition as TP
from riskstream.signing import SIGNATURE_HEADER

__all__ = ["KafkaBus", "KafkaSettings", "Secret"]

log = logging.getLogger(__name__)


class KafkaBus:
    """The message bus on Kafka: producers and consumer-group members with the settings above.

    ``max_poll_interval_ms`` bounds how long a member may go without polling before
    it loses its partitions; ``synchronous_commits`` is for consumers whose progress
    is the commit itself (the notifier).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        max_poll_interval_ms: int = 30_000,
        synchronous_commits: bool = False,
    ) -> None:
        self._settings = settings
        self._max_poll_interval_ms = max_poll_interval_ms
        self._synchronous_commits = synchronous_commits

    def producer(self, flush_timeout: float = 30.0) -> KafkaProducer:
        """A producer whose :meth:`~KafkaProducer.flush` waits ``flush_timeout`` seconds."""
        return KafkaProducer(self._settings, flush_timeout)

    def consumer(self, group: str) -> KafkaConsumer:
        return KafkaConsumer(
            self._settings, group, self._max_poll_interval_ms, self._synchronous_commits
        )


_CONFIG_ERRORS = frozenset(
    {
        KafkaError.INVALID_SESSION_TIMEOUT,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
    }
)
"""Errors that retrying cannot fix: stop and tell the operator instead of looping."""


def _bus_error(what: str, err: KafkaError) -> BusError:
    return BusError(f"{what}: {err.str()} (librdkafka code {err.name()})", code=err.name())


class KafkaProducer:
    """Idempotent producer; :meth:`flush` raises if any delivery failed."""

    def __init__(self, settings: KafkaSettings, flush_timeout: float = 30.0) -> None:
        conf = settings.librdkafka()
        conf.update({"enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4"})
        self._producer = Producer(conf)
        self._flush_timeout = flush_timeout
        self._failed: list[BusError] = []
        self._signer = settings.signer()
        # Messages produced since the last flush that returned are of this generation; a
        # flush that times out starts a new one, having reported the old one's failure.
        self._generation = 0

    def _delivered(self, err: KafkaError | None, msg: Message, generation: int) -> None:
        if err is None:
            return
        failure = _bus_error(f"delivery to {msg.topic()} failed", err)
        if generation == self._generation:
            self._failed.append(failure)
        else:  # its flush timed out and said so: not this flush's failure
            log.warning("a message an earlier flush reported undelivered: %s", failure)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        sent: list[tuple[str, str | bytes | None]] = list(headers)
        if self._signer is not None:
            sent = [h for h in sent if h[0] != SIGNATURE_HEADER]
            sent.append(self._signer.sign(topic, value, sent))
        generation = self._generation

        def delivered(err: KafkaError | None, msg: Message) -> None:
            self._delivered(err, msg, generation)

        while True:
            try:
                self._producer.produce(topic, value, key, headers=sent, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise _bus_error(f"cannot produce to {topic}", exc.args[0]) from exc
        self._producer.poll(0)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message produced is delivered (``timeout``: the producer's
        ``flush_timeout``); raise :class:`BusError` if one failed or is still queued."""
        timeout = self._flush_timeout if timeout is None else timeout
        remaining = self._producer.flush(timeout)
        if remaining:
            self._generation += 1
            self._failed = []
            raise BusError(
                f"{remaining} messages still undelivered after {timeout:g} s; is the broker up?"
            )
        if self._failed:
            first, self._failed = self._failed[0], []
            raise first


class KafkaConsumer:
    """A group member; assignment seeks to the offsets the state store returns."""

    def __init__(
        self,
        settings: KafkaSettings,
        group: str,
        max_poll_interval_ms: int,
        synchronous_commits: bool = False,
    ) -> None:
        self._synchronous_commits = synchronous_commits
        conf = settings.librdkafka()
        conf.update(
            {
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "max.poll.interval.ms": max_poll_interval_ms,
                # Brokers refuse sessions under group.min.session.timeout.ms (6 s default).
                "session.timeout.ms": max(6_000, min(max_poll_interval_ms, 45_000)),
                "heartbeat.interval.ms": min(max_poll_interval_ms // 10, 3000),
                # An input topic created after the consumer started (the first producer
                # auto-creates it) is noticed within 10 s, not librdkafka's 5 minutes.
                "topic.metadata.refresh.interval.ms": 10_000,
            }
        )
        self._consumer = Consumer(conf)
        self._on_assign: AssignHandler | None = None
        self._on_revoke: RevokeHandler | None = None
        self._callback_error: BaseException | None = None

    def subscribe(
        self, topics: Sequence[str], on_assign: AssignHandler, on_revoke: RevokeHandler
    ) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self._consumer.subscribe(
            list(topics), on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._on_assign is not None
        try:
            starts = self._on_assign([(p.topic, p.partition) for p in partitions])
        except BaseException as exc:
            # An exception escaping a librdkafka callback surfaces as "SystemError:
            # _PyErr_SetObject ...", its cause lost; keep it and raise it from poll.
            self._callback_error = exc
            return
        for p in partitions:
            start = starts.get((p.topic, p.partition))
            p.offset = OFFSET_BEGINNING if start is None else start
        consumer.assign(partitions)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            if self._on_revoke is not None:
                self._on_revoke([(p.topic, p.partition) for p in partitions], False)
        except BaseException as exc:
            self._callback_error = exc
        consumer.unassign()

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._on_revoke is not None:
            self._on_revoke([(p.topic, p.partition) for p in partitions], True)
        consumer.unassign()

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            exc, self._callback_error = self._callback_error, None
            raise exc

    def poll_batch(self, max_records: int, timeout: float) -> list[Record]:
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout)
        except SystemError:
            self._raise_callback_error()
            raise
        self._raise_callback_error()
        # The hot path's first step: one Record per message, built at C speed (no
        # typing.cast calls, no Python-level __new__), ~1 µs per message less.
        new, record = tuple.__new__, Record
        out: list[Record] = []
        append = out.append
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._message_error(err)
                continue
            given = msg.headers()
            headers = tuple(given) if given else ()
            append(
                new(
                    record,
                    (msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), headers),
                )
            )
        return out

    def _message_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() in _CONFIG_ERRORS:
            raise _bus_error("consumer failed", err)
        log.warning("consumer: %s (%s)", err.str(), err.name())

    def commit(self, offsets: Mapping[TP, int]) -> None:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            if not self._synchronous_commits:
                self._consumer.commit(offsets=tps, asynchronous=True)
                return
            done = self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:  # async: lag dashboards lag; sync: records come again
            log.warning("offset commit failed: %s", exc)
            return
        failed = [tp for tp in done if tp.error]
        for tp in failed:  # at least once: these records will be consumed again
            log.warning("offset commit of %s[%d] failed: %s", tp.topic, tp.partition, tp.error)

    def high_watermark(self, partition: TP) -> int | None:
        try:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(*partition), cached=True
            )
        except KafkaException:
            return None
        return int(high) if high >= 0 else None

    def committed(self, partitions: Sequence[TP], timeout: float = 10.0) -> dict[TP, int | None]:
        try:
            found = self._consumer.committed([TopicPartition(*tp) for tp in partitions], timeout)
        except KafkaException as exc:
            raise _bus_error("cannot read committed offsets", exc.args[0]) from exc
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in found}

    def hold(self, partition: TP, offset: int | None) -> None:
        """Pause fetching; records already fetched are dropped by the seek on release."""
        try:
            self._consumer.pause([TopicPartition(*partition)])
        except KafkaException as exc:  # not assigned (any more): nothing to hold
            log.debug("pause %s[%d]: %s", partition[0], partition[1], exc)

    def release(self, partition: TP, offset: int | None) -> None:
        """Seek (which purges what was fetched past it) and resume fetching."""
        tp = TopicPartition(
            partition[0], partition[1], OFFSET_BEGINNING if offset is None else offset
        )
        try:
            self._consumer.seek(tp)
            self._consumer.resume([tp])
        except KafkaException as exc:
            raise _bus_error(f"cannot restart {partition[0]}[{partition[1]}]", exc.args[0]) from exc

    def close(self) -> None:
        self._consumer.close()
