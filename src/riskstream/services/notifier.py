"""The notifier: incidents in, webhooks out, a dead letter for what cannot be sent.

It sees ports and the core only.  What "nothing lost" means here: a batch of
incident events is consumed, every (incident, matching receiver) notification
of it is either delivered or produced to the dead-letter topic, the dead
letters are flushed, and only then are the batch's offsets committed.  A crash
at any point therefore resends (at least once, never zero times); receivers
de-duplicate by the incident id (PagerDuty's dedup key, Alertmanager's
fingerprint).  On a stop mid-batch, only the records whose notifications are
all settled are committed.  A record that is not an incident (the containment
worker's check, :mod:`riskstream.services.incident_intake`) is skipped, counted and
logged, not dead-lettered: the containment worker dead-letters it, once.

Each receiver gets its notifications in incident order, one at a time, so a
"resolved" never overtakes its "firing".  Receivers are posted to side by side (a
thread each), so one that hangs until its timeout holds no other; a failing
receiver waits with backoff while the others carry on.  Once one notification has
used up the retry policy, the receiver counts as down for the rest of the batch: each
remaining notification gets one try, and is dead-lettered at once if that fails — so a
long outage costs one retry budget per batch, not one per incident.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import orjson

from riskstream.core.delivery import AttemptResult
from riskstream.core.notifications import (
    Event,
    NotificationSettings,
    Receiver,
    build_payload,
    event_of,
)
from riskstream.dead_letters import fitted
from riskstream.errors import StateStoreError
from riskstream.metrics import NotifierMetrics
from riskstream.ports import Consumer, IncidentStore, Producer, Record, TopicPartition, Webhook
from riskstream.services.incident_intake import incident_rejection, unconfirmed_resolution
from riskstream.signing import RecordSigner

__all__ = ["Destination", "Notifier"]

log = logging.getLogger(__name__)

MAX_SLEEP_S = 0.5  # the longest nap between checks of should_stop


@dataclass(frozen=True, slots=True)
class Destination:
    """A receiver with its secrets resolved (kept out of ``repr``, so out of logs)."""

    receiver: Receiver
    url: str = field(repr=False)
    routing_key: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class _Pending:
    """One notification of one batch, and how its delivery is going."""

    index: int  # the record's position in the batch
    record: Record
    to: Destination
    incident_id: str
    event: Event
    payload: dict[str, Any]
    attempts: int = 0
    first_at: float = 0.0


@dataclass(slots=True)
class _Lane:
    """One receiver's queue within a batch."""

    order: int  # the receiver's place in the config: lanes settle in it
    queue: deque[_Pending] = field(default_factory=deque)
    ready_at: float = 0.0
    down: bool = False
    posting: bool = False  # its head's try is in flight


class Notifier:
    """Consumes the incidents topic in its own consumer group and notifies receivers."""

    def __init__(
        self,
        settings: NotificationSettings,
        destinations: Sequence[Destination],
        incidents_topic: str,
        consumer: Consumer,
        producer: Producer,
        webhook: Webhook,
        metrics: NotifierMetrics,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        jitter: Callable[[], float] = random.random,
        records: IncidentStore | None = None,
        signer: RecordSigner | None = None,
    ) -> None:
        self._settings = settings
        self._signer = signer  # with a key, only signed incidents are sent (riskstream.signing)
        # With the incident records, a "resolved" is sent only when its record says so
        # (see incident_intake.unconfirmed_resolution); without them, as the topic says.
        self._records = records
        self._destinations = tuple(destinations)
        self._topic = incidents_topic
        self._consumer = consumer
        self._producer = producer
        self._webhook = webhook
        self._metrics = metrics
        self._clock, self._sleep, self._jitter = clock, sleep, jitter
        self._should_stop: Callable[[], bool] = lambda: False
        self._closed = False

    # -- the loop -----------------------------------------------------------------

    def start(self) -> None:
        self._consumer.subscribe([self._topic], self._on_assign, self._on_revoke)

    def _on_assign(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int | None]:
        starts = self._consumer.committed(partitions)
        for (topic, partition), offset in sorted(starts.items()):
            where = "the beginning" if offset is None else f"offset {offset}"
            log.info("assigned %s[%d]: resuming at %s", topic, partition, where)
        return starts

    def _on_revoke(self, partitions: list[TopicPartition], lost: bool) -> None:
        # Between batches everything polled is settled and committed: nothing to save.
        log.info("%s %d partitions", "lost" if lost else "released", len(partitions))

    def run(self, should_stop: Callable[[], bool], poll_timeout: float = 0.5) -> None:
        self._should_stop = should_stop
        while not should_stop():
            self.step(poll_timeout)
        self.close()

    def step(self, poll_timeout: float = 0.5) -> int:
        """Consume one batch, settle its notifications, commit.  Returns the batch size."""
        batch = self._consumer.poll_batch(self._settings.batch_size, poll_timeout)
        if not batch:
            return 0
        remaining = [0] * len(batch)
        lanes = {d.receiver.name: _Lane(n) for n, d in enumerate(self._destinations)}
        for index, record in enumerate(batch):
            for pending in self._plan(index, record):
                lanes[pending.to.receiver.name].queue.append(pending)
                remaining[index] += 1
        self._deliver(lanes, remaining)
        self._producer.flush()  # dead letters are durable before the offsets move
        self._commit(batch, remaining)
        return len(batch)

    def _plan(self, index: int, record: Record) -> list[_Pending]:
        if self._signer is not None:
            forged = self._signer.problem(record.topic, record.value or b"", record.headers)
            if forged is not None:  # the containment worker dead-letters it, as below
                self._metrics.incidents.labels(forged[0]).inc()
                log.error(
                    "%s[%d]@%d: %s, not sent: %s", record.topic, record.partition,
                    record.offset, forged[0], forged[1],
                )  # fmt: skip
                return []
        headers = dict(record.headers)
        try:
            incident = orjson.loads(record.value or b"")
            problem = incident_rejection(incident)
        except orjson.JSONDecodeError as exc:
            problem = f"not JSON: {exc}"
        if problem is not None:
            # The containment worker dead-letters the same record with this reason:
            # dead-lettering it here too put it on the dead-letter topic twice.
            self._metrics.incidents.labels("unreadable").inc()
            log.error(
                "%s[%d]@%d is not an incident, skipped: %s (the containment worker "
                "dead-letters it; fix the producer that wrote it)",
                record.topic, record.partition, record.offset, problem,
            )  # fmt: skip
            return []
        if self._records is not None:
            try:
                doubt = unconfirmed_resolution(incident, self._records)
            except StateStoreError as exc:  # closing a page unconfirmed is what a forger wants
                doubt = f"its record cannot be read to confirm it ({exc})"
            if doubt is not None:
                self._metrics.incidents.labels("unconfirmed_resolution").inc()
                log.warning(
                    "%s[%d]@%d: a resolution not sent (its pages stay open): %s",
                    record.topic, record.partition, record.offset, doubt,
                )  # fmt: skip
                return []
        ce_type = headers.get("ce_type")
        event = event_of(ce_type.decode(errors="replace") if ce_type else None, incident)
        self._metrics.incidents.labels(event).inc()
        ce_time = headers.get("ce_time")
        at = ce_time.decode(errors="replace") if ce_time else str(incident.get("detected_at"))
        incident_id = str(incident["incident_id"])
        try:
            return [
                _Pending(index, record, d, incident_id, event, build_payload(
                    d.receiver, incident, event, at, self._settings.console_url,
                    d.routing_key or "",
                ))
                for d in self._destinations
                if d.receiver.wants(incident, event)
            ]  # fmt: skip
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # A field of an unexpected type: one bad record must not stop every other.
            # An incident containment accepts (so did not dead-letter) that the notifier
            # cannot word: the notification is what is lost, so it is this one's letter.
            log.exception("incident %s cannot be put into words; dead-lettered", incident_id)
            self._dead_letter_record(record, "unreadable_incident", f"{type(exc).__name__}: {exc}")
            return []

    def _deliver(self, lanes: dict[str, _Lane], remaining: list[int]) -> None:
        """Settle every lane's queue; each lane's head is posted in a thread of its own,
        so a receiver that takes its whole timeout to fail holds only its own lane (one
        post at a time held every receiver: a hung one let the others have one
        notification per ``timeout_s``)."""
        inflight: dict[Future[AttemptResult], _Lane] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, len(lanes)), thread_name_prefix="notify")
        try:
            while any(lane.queue for lane in lanes.values()):
                if self._should_stop():
                    unsettled = sum(len(lane.queue) for lane in lanes.values())
                    log.warning(
                        "stopping with %d notifications unsettled: sent on restart", unsettled
                    )
                    break
                now = self._clock()
                for lane in lanes.values():
                    if lane.queue and not lane.posting and lane.ready_at <= now:
                        inflight[self._post(pool, lane)] = lane
                if not inflight:
                    wake = min(lane.ready_at for lane in lanes.values() if lane.queue)
                    self._sleep(min(wake - now, MAX_SLEEP_S))
                    continue
                done, _ = wait(inflight, timeout=MAX_SLEEP_S, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: inflight[f].order):
                    lane = inflight.pop(future)
                    lane.posting = False
                    if self._settle(lane, future.result()):
                        remaining[lane.queue.popleft().index] -= 1
                self._metrics.retrying.set(
                    sum(1 for lane in lanes.values() if lane.queue and lane.queue[0].attempts)
                )
        finally:
            # A post still running is bounded by its receiver's timeout; its outcome is
            # not counted, so that notification stays unsettled and is sent on restart.
            pool.shutdown(wait=True)
        self._metrics.retrying.set(0)

    def _post(self, pool: ThreadPoolExecutor, lane: _Lane) -> Future[AttemptResult]:
        """Start one try of the lane's head."""
        p = lane.queue[0]
        if not p.attempts:
            p.first_at = self._clock()
        p.attempts += 1
        lane.posting = True
        return pool.submit(
            self._webhook.post, p.to.url, orjson.dumps(p.payload), p.to.receiver.timeout_s
        )

    def _settle(self, lane: _Lane, result: AttemptResult) -> bool:
        """What the lane's head's try came to; True when it is settled (delivered or
        dead-lettered)."""
        p = lane.queue[0]
        receiver = p.to.receiver
        self._metrics.attempts.labels(receiver.name, result.outcome).inc()
        elapsed = self._clock() - p.first_at
        if result.outcome == "delivered":
            self._metrics.notifications.labels(receiver.name, "delivered").inc()
            self._metrics.delivery_seconds.labels(receiver.name).observe(elapsed)
            if p.attempts > 1 or lane.down:
                log.info(
                    "receiver %s is answering again: incident %s delivered after %d attempts",
                    receiver.name, p.incident_id, p.attempts,
                )  # fmt: skip
            lane.down = False
            return True
        if result.outcome == "permanent":
            self._give_up(p, "rejected", result)
            return True
        delay = None
        if not lane.down:
            delay = self._settings.retry.next_delay(
                p.attempts, elapsed, result.retry_after_s, self._jitter
            )
        if delay is None:
            self._give_up(p, "receiver_down" if lane.down else "retries_exhausted", result)
            lane.down = True
            return True
        lane.ready_at = self._clock() + delay
        log.warning(
            "receiver %s (%s), incident %s: attempt %d failed: %s; next try in %.1f s",
            receiver.name, receiver.kind, p.incident_id, p.attempts, result.detail, delay,
        )  # fmt: skip
        return False

    # -- dead letters and commits -------------------------------------------------------

    def _give_up(self, p: _Pending, reason: str, result: AttemptResult) -> None:
        receiver = p.to.receiver
        self._metrics.notifications.labels(receiver.name, "dead_lettered").inc()
        advice = {
            "rejected": "the receiver refuses it: check its url, key and what it expects",
            "retries_exhausted": "the receiver stayed down through every retry: check it",
            "receiver_down": "the receiver was already down in this batch: check it",
        }[reason]
        log.error(
            "receiver %s (%s): incident %s (%s) NOT delivered (attempts: %d): %s — %s; "
            "the payload is kept on topic %s, the reason in its headers",
            receiver.name, receiver.kind, p.incident_id, p.event, p.attempts, result.detail,
            advice, self._settings.dead_letter_topic,
        )  # fmt: skip
        payload = p.payload
        if p.to.routing_key is not None:  # never put the secret on a topic
            payload = {**payload, "routing_key": f"${{{receiver.routing_key_env}}}"}
        self._producer.produce(
            self._settings.dead_letter_topic,
            orjson.dumps(payload),
            p.incident_id.encode(),
            [
                *_dead_headers(p.record, reason, result.detail),
                ("content-type", b"application/json"),
                ("riskstream_receiver", receiver.name.encode()),
                ("riskstream_receiver_kind", receiver.kind.encode()),
                ("riskstream_incident_id", p.incident_id.encode()),
                ("riskstream_event", p.event.encode()),
                ("riskstream_attempts", str(p.attempts).encode()),
            ],
        )

    def _dead_letter_record(
        self,
        record: Record,
        reason: str,
        error: str = "the message is not an incident riskstream can read",
    ) -> None:
        value, key, cut = fitted(record.value, record.key)
        self._producer.produce(
            self._settings.dead_letter_topic, value, key, _dead_headers(record, reason, error) + cut
        )

    def _commit(self, batch: list[Record], remaining: list[int]) -> None:
        """Commit, per partition, past the records whose notifications are all settled."""
        offsets: dict[TopicPartition, int] = {}
        blocked: set[TopicPartition] = set()
        for record, left in zip(batch, remaining, strict=True):
            tp = (record.topic, record.partition)
            if left or tp in blocked:
                blocked.add(tp)
            else:
                offsets[tp] = record.offset + 1
        if offsets:
            self._consumer.commit(offsets)

    def close(self) -> None:
        """Close the consumer (leaving the group) and flush; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._consumer.close()
        self._producer.flush()


def _dead_headers(record: Record, reason: str, error: str) -> list[tuple[str, bytes]]:
    source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    return [
        ("riskstream_reason", reason.encode()),
        ("riskstream_error", error.encode()[:1024]),
        ("riskstream_source", orjson.dumps(source)),
    ]
