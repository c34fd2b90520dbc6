"""The detection processor: consume, decode, dispatch to monitors, emit, checkpoint.

It sees only ports and the core, so the embedded demo, the replay command and the
Kafka processor run this same code.

What "nothing lost" means here: each partition's detector state, its counters and
the next offset to read are saved together in one atomic, fenced write.  Before
that write, every incident and dead letter produced from those events is flushed
to the bus.  A crash between two checkpoints therefore replays the events after
the last one onto exactly the state that preceded them: state is applied once,
and the re-emitted incidents carry the same deterministic ids.  A large checkpoint is
written by a forked child (:mod:`riskstream.services.forked_save`) while the loop reads
on; the offsets are committed once its write has landed, so the same holds.

When the state store fails (Redis down, at maxmemory, a failover), the processor
does not exit: it drops what it has not saved, *holds* its partitions (stays in
the consumer group, fetches nothing) and claims them again with backoff; once a
claim succeeds it restarts each partition at its saved offset, exactly as a
restart would, so nothing is lost or applied twice.  Meanwhile :meth:`health`
says degraded and ``riskstream_state_store_up`` reads 0.

What no single event can do: stop the partition.  Each event is admitted first — its
time within the wall clock's limits (:mod:`riskstream.core.admission`), its id not
seen lately (:mod:`riskstream.core.dedup`) — or dead-lettered (or counted as a
redelivery).  An exception while applying it dead-letters it as ``apply_error``; the
stream that raised is held by :class:`PartitionDetectors` and everything else carries
on.  Failures of the bus (BusError) and the stores are not about one event: the
former stops the loop, the latter holds the partitions as above.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from riskstream.codec import EventDecoder, Rejection, encode_cloudevent
from riskstream.config import Config
from riskstream.core.admission import Refused, event_time
from riskstream.core.dedup import RecentIds
from riskstream.core.enrichment import enrich, upstream_of
from riskstream.core.groups import MAX_GROUPS
from riskstream.core.incidents import INCIDENT_OPENED, INCIDENT_UPDATED, incident_from_finding
from riskstream.core.labels import PredictionStore, join, kept_segment, prediction_record
from riskstream.core.monitors import ApplyFailure, Finding, PartitionDetectors
from riskstream.core.parked_labels import PARKED_KEY, ParkedLabels
from riskstream.core.timeutil import parse_time
from riskstream.dead_letters import fitted
from riskstream.errors import BusError, FencedError, SnapshotError, StateStoreError
from riskstream.metrics import ProcessorMetrics
from riskstream.ports import ChangeLog, Consumer, Producer, Record, StateStore, TopicPartition
from riskstream.services.forked_save import ForkedSave

__all__ = ["INCIDENT_OPENED", "Processor"]

log = logging.getLogger(__name__)


MAX_CHECKPOINT_GAP_S = 60.0
WRITER_DEADLINE_S = 60.0  # a forked checkpoint writer still running then is killed
FORK_AT_ENTRIES = 8000  # processor.checkpoint_writer auto: see Processor._forks
RETRY_FIRST_S = 0.1  # the first retry after the state store failed...
RETRY_MAX_S = 10.0  # ...doubling up to this (with jitter, so processors do not stampede)
# Parked labels look up every prediction they wait for at most this often; in between,
# only those of the predictions this processor stored (see Processor._join_parked).
PARKED_SWEEP_S = 5.0


@dataclass(slots=True)
class _Written:
    """What a forked writer did with one partition (``offset`` None: it was fenced)."""

    epoch: int
    offset: int | None
    fenced: str = ""
    sizes: dict[str, int] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    colds: list[tuple[str, str, int, Any]] = field(default_factory=list)  # cold_tags()
    failures: list[tuple[str, str | None, str]] = field(default_factory=list)
    unreplicated: bool = False
    encode_s: float = 0.0
    save_s: float = 0.0


@dataclass(slots=True)
class _Owned:
    """One assigned input partition: its fencing epoch, detectors and progress."""

    epoch: int
    detectors: PartitionDetectors
    next_offset: int | None
    counters: dict[str, int]
    saved_offset: int | None
    parked: ParkedLabels
    recent: RecentIds | None  # event ids seen lately (None: de-duplication is off)
    sizes: dict[str, int] = field(default_factory=dict)
    skip_below: int = 0  # records before this offset were applied already (after a seek)


class Processor:
    """Runs monitors over the input topics; one instance per consumer-group member."""

    def __init__(
        self,
        config: Config,
        consumer: Consumer,
        producer: Producer,
        store: StateStore,
        decoder: EventDecoder,
        metrics: ProcessorMetrics,
        changes: ChangeLog,
        clock: Callable[[], float] = time.monotonic,
        on_incident: Callable[[dict[str, object]], None] | None = None,
        predictions: PredictionStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        # Event times are judged against the wall clock (see core.admission).
        self._wall_clock = wall_clock
        self._time_limits = config.processor.time_limits()
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._decoder = decoder
        self._metrics = metrics
        self._phase = {
            phase: metrics.phase_seconds.labels(phase=phase)
            for phase in ("poll", "flush", "fork", "encode", "save")
        }
        # Checkpoints written by a forked child (see riskstream.services.forked_save),
        # when the store is a server it can reach (see _forks); the one in flight.
        self._writer_mode = config.processor.checkpoint_writer if store.forkable else "inline"
        self._writer: ForkedSave | None = None
        self._entries = 0  # snapshots and deletions the last checkpoint saved
        self._forking = False
        self._clock = clock
        self._on_incident = on_incident
        # Delayed labels: predictions are kept until their label comes, then joined.
        self._predictions = predictions if config.joins_labels else None
        self._kept_segment = kept_segment(  # what label monitors read of a segment
            path for m in config.monitors if m.reads == "label" for path in m.paths()
        )
        self._unsaved: list[tuple[str, dict[str, Any]]] = []
        self._untracked_told: set[str] = set()  # monitors whose group cap was logged
        self._stored_since_join = False
        self._stored_ids: set[str] = set()  # predictions stored since the last join
        # This batch's labels' predictions, read with one call (see _prefetch_predictions).
        self._prefetched: dict[str, dict[str, Any]] = {}
        self._prefetch_asked: frozenset[str] = frozenset()
        self._swept_at = -math.inf  # the last look-up of every parked label's prediction
        self._scope = config.processor.group_id
        self._kinds = config.topics.input_kinds()
        # Topics whose events go straight to the monitors (see _apply for the others).
        self._plain_topics = frozenset(
            topic
            for topic, kind in self._kinds.items()
            if kind != "change"
            and (self._predictions is None or kind not in ("inference", "label"))
        )
        self._owned: dict[TopicPartition, _Owned] = {}
        # Recent change events, for the suspects an incident lists: shared (Redis) when
        # several processors each read only some of the change topic's partitions.
        self._changes = changes
        self._since_checkpoint = 0
        self._last_checkpoint = clock()
        self._checkpoint_gap_s = 0.0  # the least time until the next one (see _checkpoint)
        self._closed = False
        # Partitions assigned to us but not claimed: the state store failed (see _held_back).
        self._held: dict[TopicPartition, None] = {}
        self._retry_at = 0.0
        self._retry_s = RETRY_FIRST_S
        self._store_error: str | None = None
        self._failed_since: float | None = None
        metrics.store_up.set(1)

    # -- assignment ---------------------------------------------------------------

    def start(self, topics: Sequence[str] | None = None) -> None:
        """Subscribe to the input topics (all four by default)."""
        self._consumer.subscribe(list(topics or self._kinds), self._on_assign, self._on_revoke)

    def _on_assign(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        starts: dict[TopicPartition, int | None] = {}
        for i, tp in enumerate(partitions):
            try:
                starts[tp] = self._claim(tp)
            except SnapshotError:
                raise  # the config, not the store: refused with what to do
            except StateStoreError as exc:
                self._store_failed(exc, f"claim {tp[0]}[{tp[1]}]")
                for held in partitions[i:]:
                    self._held[held] = None
                    starts[held] = None  # fetched records are skipped until claimed
                break
        self._metrics.partitions.set(len(self._owned))
        self._metrics.held.set(len(self._held))
        return starts

    def _claim(self, tp: TopicPartition) -> int | None:
        """Read the partition's saved state and take it over; the offset to start at."""
        saved = self._store.claim(self._scope, tp)
        detectors = PartitionDetectors(
            self._config.monitors, self._kinds.get(tp[0], ""), self._config.processor.stream_limits
        )
        resets = detectors.load(saved.snapshots, self._config.processor.on_monitor_change)
        for reset in resets:
            scope = "monitor" if reset.stream_key is None else "stream"
            self._metrics.state_resets.labels(reset.monitor, scope).inc()
            log.warning(
                "%s[%d]: %s: %s starts afresh",
                tp[0], tp[1], reset.reason,
                "the monitor" if reset.stream_key is None else "that stream",
            )  # fmt: skip
        parked = ParkedLabels(self._config.labels.ttl_s)
        if PARKED_KEY in saved.snapshots:
            parked.load(saved.snapshots[PARKED_KEY])
        window = self._config.processor.dedup_window
        recent = RecentIds(window) if window else None
        if recent is not None:
            recent.load(saved.snapshots)
        self._owned[tp] = _Owned(
            epoch=saved.epoch,
            detectors=detectors,
            next_offset=saved.offset,
            counters={"applied": 0, "dead_lettered": 0, **saved.counters},
            saved_offset=saved.offset,
            parked=parked,
            recent=recent,
            sizes={k: len(v) for k, v in saved.snapshots.items()},
        )
        log.info(
            "assigned %s[%d]: epoch %d, resuming at offset %s with %d streams",
            tp[0],
            tp[1],
            saved.epoch,
            saved.offset,
            len(saved.snapshots),
        )
        return saved.offset

    def _on_revoke(self, partitions: list[TopicPartition], lost: bool) -> None:
        owned = [tp for tp in partitions if tp in self._owned]
        if not lost:
            try:
                self._checkpoint(owned)
            except StateStoreError as exc:  # the next owner replays from the last checkpoint
                log.warning("could not save before releasing %d partitions: %s", len(owned), exc)
        for tp in partitions:  # (a failed save may have held them: they are not ours now)
            self._held.pop(tp, None)
            if self._owned.pop(tp, None) is not None:
                self._forget_lag(tp)
        self._metrics.held.set(len(self._held))
        log.info("%s %d partitions", "lost" if lost else "released", len(owned))
        self._update_gauges()

    # -- the loop -----------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], poll_timeout: float = 0.05) -> None:
        while not should_stop():
            self.step(poll_timeout)
        self.close()

    def step(self, poll_timeout: float = 0.05) -> int:
        """Consume and process one batch; checkpoint when due.  Returns the batch size.

        A state store failure never escapes: the partitions are held and claimed
        again later (see the module docstring).

        A checkpoint is due every ``checkpoint_interval_ms``, or once
        ``checkpoint_events`` records were read since the last one, whichever comes
        first; but no sooner than the budget allows (:meth:`_paced`), and not while a
        forked writer is saving.  So a crash replays at most the records read since
        the last checkpoint that landed: one interval's worth or ``checkpoint_events``,
        whichever is fewer, plus one batch; where slow saves stretch the gap, the
        records of the gap (at most MAX_CHECKPOINT_GAP_S); plus, with a forked writer,
        those read while it saves.

        The count is a cap for long intervals, not a second cadence.  At 50,000 (its
        old default) it started a checkpoint before each 1 s interval was up once
        input passed 50k events/s: every 0.67 s at 75k/s, ~3% of a fast machine's CPU,
        to keep at most 25k events (0.3-0.6 s of work) out of a crash's replay, while
        recovering from one first waits out the group's session timeout (30 s with
        the Kafka adapter's settings) and the claim of the state.  The interval already
        bounds how long a replay takes: a processor that keeps up reads no faster than
        it processes, so one interval's records take at most about one interval to
        replay.  Hence the default (500,000) lies above one interval of what one
        processor reads (~90-100k events/s on one core).  The count does not override
        the budget either: at sparse keys the stretched gap is what keeps checkpoints
        affordable (docs/capacity.md, sections 2-3), and a bound that overrode it would
        keep a forked writer saving all the time.
        """
        settings = self._config.processor
        if self._held and self._clock() >= self._retry_at:
            self._claim_held()
        polled = self._clock()
        batch = self._consumer.poll_batch(settings.batch_size, poll_timeout)
        self._phase["poll"].inc(self._clock() - polled)
        if batch:
            started = self._clock()
            try:
                self._process(batch)
            except StateStoreError as exc:
                self._store_failed(exc, "process a batch")
                return len(batch)
            self._metrics.batch_seconds.observe(self._clock() - started)
            self._since_checkpoint += len(batch)
        self._land(wait=False)
        since = self._clock() - self._last_checkpoint
        if (
            self._writer is None  # (a writer in flight: the next one starts when it lands)
            and since >= self._checkpoint_gap_s
            and (
                self._since_checkpoint >= settings.checkpoint_events
                or since * 1000 >= settings.checkpoint_interval_ms
            )
        ):
            try:
                self._checkpoint(list(self._owned), forked=True)
            except StateStoreError as exc:
                self._store_failed(exc, "checkpoint")
        return len(batch)

    # -- when the state store fails ---------------------------------------------

    def health(self) -> dict[str, object]:
        """``{"status": "ok"}``, or ``"degraded"`` with why, while state cannot be saved."""
        if self._store_error is None:
            return {"status": "ok", "partitions": len(self._owned)}
        since = self._failed_since or self._clock()
        return {
            "status": "degraded",
            "reason": "the state store fails; partitions are held and retried",
            "error": self._store_error,
            "held_partitions": len(self._held),
            "failing_for_s": round(self._clock() - since, 3),
        }

    def _store_failed(self, exc: StateStoreError, action: str) -> None:
        """Drop unsaved progress and hold every partition until it can be claimed again.

        Whatever was applied since the last checkpoint is thrown away and read
        again: its outputs were (or will be) re-emitted with the same ids.
        """
        first = self._store_error is None
        self._store_error = str(exc)
        self._metrics.store_up.set(0)
        self._metrics.store_failures.inc()
        if first:
            self._failed_since = self._clock()
            log.error(
                "state store failed (%s): %s; holding %d partitions and retrying with "
                "backoff (up to %gs); nothing unsaved is lost, it is read again",
                action, exc, len(self._owned) + len(self._held), RETRY_MAX_S,
            )  # fmt: skip
        else:
            log.warning("state store still failing (%s): %s", action, exc)
        for tp in list(self._owned):
            del self._owned[tp]
            self._held[tp] = None
        for tp in self._held:
            self._consumer.hold(tp, None)
        self._unsaved = []
        self._stored_since_join = False
        self._stored_ids = set()
        self._retry_at = self._clock() + self._retry_s * random.uniform(0.5, 1.0)
        self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)
        self._metrics.partitions.set(len(self._owned))
        self._metrics.held.set(len(self._held))

    def _claim_held(self) -> None:
        """Claim the held partitions again; each restarts at its saved offset."""
        for tp in list(self._held):
            try:
                offset = self._claim(tp)
                self._consumer.release(tp, offset)
            except SnapshotError:
                raise
            except StateStoreError as exc:
                self._owned.pop(tp, None)
                self._store_failed(exc, f"claim {tp[0]}[{tp[1]}] again")
                return
            del self._held[tp]
            self._owned[tp].skip_below = offset or 0
        if self._store_error is not None:
            log.info(
                "state store answers again after %.1fs; every partition resumed at its "
                "saved offset",
                self._clock() - (self._failed_since or self._clock()),
            )
        self._store_error = None
        self._failed_since = None
        self._retry_s = RETRY_FIRST_S
        self._metrics.store_up.set(1)
        self._metrics.partitions.set(len(self._owned))
        self._metrics.held.set(0)

    def _process(self, batch: list[Record]) -> None:
        change_topic = self._config.topics.change
        decode = self._decoder.decode
        owned_map = self._owned
        kinds = self._kinds
        now, limits = self._wall_clock(), self._time_limits
        earliest, latest = now - limits.max_age_s, now + limits.max_ahead_s  # as event_time
        plain_topics = self._plain_topics
        applied: dict[str, int] = {}
        rejected: dict[tuple[str, str], int] = {}
        duplicates: dict[str, int] = {}
        if any(r.topic == change_topic for r in batch):
            # Change events first, stored with one call before any event is applied: an
            # incident raised by this batch should list the deploy that came with it
            # (partitions have no order between them anyway).  See _process_changes.
            changes = [r for r in batch if r.topic == change_topic]
            batch = [r for r in batch if r.topic != change_topic]
            self._process_changes(changes, now, applied, rejected, duplicates)
        if self._predictions is not None:
            self._prefetch_predictions(batch)
        # Applied events are counted per run of records of one partition, not one by one;
        # `finally` adds the last run's count even when a store or bus error ends the batch.
        run: _Owned | None = None
        run_topic, run_applied = "", 0
        try:
            for record in batch:
                owned = owned_map.get((record.topic, record.partition))
                if owned is None:  # a record from a partition we just gave up, or hold
                    continue
                if owned is not run:
                    if run is not None and run_applied:
                        run.counters["applied"] += run_applied
                        applied[run_topic] = applied.get(run_topic, 0) + run_applied
                    run, run_topic, run_applied = owned, record.topic, 0
                if record.offset < owned.skip_below:  # fetched before the seek that restarted it
                    continue
                result = decode(record)
                if not isinstance(result, Rejection):
                    try:  # event_time's checks, without the call for the usual good time
                        t = parse_time(result.get("time"))  # type: ignore[arg-type]
                    except (ValueError, OverflowError, TypeError):
                        t = math.nan
                    if not earliest <= t <= latest:  # event_time refuses it, and says why
                        try:
                            t = event_time(result.get("time"), now, limits)  # type: ignore[arg-type]
                        except Refused as refused:
                            result = Rejection(refused.reason, str(refused))
                if isinstance(result, Rejection):
                    self._dead_letter(record, result)
                    owned.counters["dead_lettered"] += 1
                    key = (record.topic, result.reason)
                    rejected[key] = rejected.get(key, 0) + 1
                    owned.next_offset = record.offset + 1
                    continue
                recent = owned.recent
                if (
                    recent is not None
                    and (eid := result.get("event_id")) is not None
                    and recent.seen(eid if type(eid) is str else str(eid))
                ):
                    counters = owned.counters  # "duplicates" appears with the first one
                    counters["duplicates"] = counters.get("duplicates", 0) + 1
                    duplicates[record.topic] = duplicates.get(record.topic, 0) + 1
                    owned.next_offset = record.offset + 1
                    continue
                try:
                    if record.topic in plain_topics:  # _apply, less what such events skip
                        detectors = owned.detectors
                        for finding in detectors.observe(result, t):
                            self._emit(finding)
                        failed = None
                        if detectors.failures:
                            failed = self._failed(
                                detectors,
                                f"{record.topic}[{record.partition}]@{record.offset}",
                                f"the event goes to {self._config.topics.dead_letter}",
                            )
                    else:
                        failed = self._apply(owned, record, result, kinds.get(record.topic), t)
                except (StateStoreError, BusError):
                    raise  # the stores or the bus, not this event: the caller retries or stops
                except Exception as exc:  # a poison pill: this event only, never the partition
                    failed = self._poison_pill(record, exc, "applying the event")
                if failed is None:
                    run_applied += 1
                elif failed:
                    self._dead_letter(record, Rejection("apply_error", _failure_text(failed)))
                    owned.counters["dead_lettered"] += 1
                    key = (record.topic, "apply_error")
                    rejected[key] = rejected.get(key, 0) + 1
                else:  # a label that cannot be joined: dead-lettered by _apply
                    owned.counters["dead_lettered"] += 1
                    key = (record.topic, "label_model_mismatch")
                    rejected[key] = rejected.get(key, 0) + 1
                # Only now: a store or bus error above leaves the offset before this event.
                owned.next_offset = record.offset + 1
        finally:
            if run is not None and run_applied:
                run.counters["applied"] += run_applied
                applied[run_topic] = applied.get(run_topic, 0) + run_applied
            self._prefetched, self._prefetch_asked = {}, frozenset()
        self._save_predictions()
        if self._stored_since_join:
            self._join_parked()
            self._stored_since_join = False
        m = self._metrics
        for topic, n in applied.items():
            m.applied.labels(topic).inc(n)
            m.consumed.labels(topic).inc(n)
        for (topic, reason), n in rejected.items():
            m.dead_lettered.labels(topic, reason).inc(n)
            m.consumed.labels(topic).inc(n)
        for topic, n in duplicates.items():
            m.duplicates.labels(topic).inc(n)
            m.consumed.labels(topic).inc(n)
        self._count_holds()

    def _process_changes(
        self,
        batch: list[Record],
        now: float,
        applied: dict[str, int],
        rejected: dict[tuple[str, str], int],
        duplicates: dict[str, int],
    ) -> None:
        """The batch's change events, as _process's loop would, but stored in the change
        log with one call (two Redis round trips, not two or three each: a flood of
        them held up every topic of the processor at ~1.3-2k events/s).

        First each is admitted or refused (decode, time, redelivery) with no effect;
        then those admitted are stored, all before any is observed, as each was before
        it was observed one by one; then each is handled in order, its offset passed
        only once it is.  So a store error leaves every offset before the changes (the
        caller holds the partitions and they are read again), and a bus error leaves
        none past a change not handled.  A change the log cannot take (an error other
        than the store's or the bus's) is dead-lettered alone, as it was.
        """
        limits = self._time_limits
        earliest, latest = now - limits.max_age_s, now + limits.max_ahead_s  # as event_time
        # (partition, record, its event, or why it is refused, or None: a redelivery, time)
        entries: list[tuple[_Owned, Record, dict[str, Any] | Rejection | None, float]] = []
        admitted: list[tuple[Record, dict[str, Any]]] = []
        fresh: dict[int, set[str]] = {}  # ids admitted in this batch, per partition
        for record in batch:  # admission as in _process's loop
            owned = self._owned.get((record.topic, record.partition))
            if owned is None or record.offset < owned.skip_below:
                continue
            result: dict[str, Any] | Rejection | None = self._decoder.decode(record)
            t = math.nan
            if isinstance(result, dict):
                try:
                    t = parse_time(result.get("time"))  # type: ignore[arg-type]
                except (ValueError, OverflowError, TypeError):
                    t = math.nan
                if not earliest <= t <= latest:
                    try:
                        t = event_time(result.get("time"), now, limits)  # type: ignore[arg-type]
                    except Refused as refused:
                        result = Rejection(refused.reason, str(refused))
            recent = owned.recent
            if (
                isinstance(result, dict)
                and recent is not None
                and (eid := result.get("event_id")) is not None
            ):
                eid = eid if type(eid) is str else str(eid)
                ids = fresh.setdefault(id(owned), set())
                if eid in recent or eid in ids:
                    result = None
                else:
                    ids.add(eid)
            if isinstance(result, dict):
                admitted.append((record, result))
            entries.append((owned, record, result, t))
        unstored = self._store_changes(admitted)
        n = -1  # the index in `admitted`
        for owned, record, result, t in entries:
            if result is None:
                owned.counters["duplicates"] = owned.counters.get("duplicates", 0) + 1
                duplicates[record.topic] = duplicates.get(record.topic, 0) + 1
                owned.next_offset = record.offset + 1
                continue
            if isinstance(result, Rejection):
                self._reject(owned, record, result, rejected)
                continue
            n += 1
            recent = owned.recent
            if recent is not None and (eid := result.get("event_id")) is not None:
                recent.seen(eid if type(eid) is str else str(eid))
            failed = unstored.get(n)
            if failed is None:
                try:
                    failed = self._apply(owned, record, result, None, t)
                except (StateStoreError, BusError):
                    raise
                except Exception as exc:  # a poison pill: this event only
                    failed = self._poison_pill(record, exc, "applying the event")
            if failed is None:
                owned.counters["applied"] += 1
                applied[record.topic] = applied.get(record.topic, 0) + 1
                owned.next_offset = record.offset + 1
            else:
                self._reject(
                    owned, record, Rejection("apply_error", _failure_text(failed)), rejected
                )

    def _store_changes(
        self, admitted: list[tuple[Record, dict[str, Any]]]
    ) -> dict[int, list[ApplyFailure]]:
        """Store the admitted change events with one call; the failures of those the log
        would not take (by index in ``admitted``), found by adding one by one when the
        call fails otherwise than the store."""
        if not admitted:
            return {}
        try:
            self._changes.add_many([event for _, event in admitted])
            return {}
        except (StateStoreError, BusError):
            raise
        except Exception:  # one of them, surely: find which, one by one
            log.warning("storing %d change events failed; storing each alone", len(admitted))
        unstored: dict[int, list[ApplyFailure]] = {}
        for i, (record, event) in enumerate(admitted):
            try:
                self._changes.add(event)
            except (StateStoreError, BusError):
                raise
            except Exception as exc:
                unstored[i] = self._poison_pill(record, exc, "storing the change event")
        return unstored

    def _poison_pill(self, record: Record, exc: Exception, doing: str) -> list[ApplyFailure]:
        """Log what ``doing`` ``record`` raised (with its traceback); the failure to
        dead-letter the record with.  An error of this one event, never the partition's."""
        log.exception(
            "%s[%d]@%d: %s failed; it goes to %s",
            record.topic, record.partition, record.offset, doing,
            self._config.topics.dead_letter,
        )  # fmt: skip
        return [ApplyFailure("", None, exc, f"{type(exc).__name__}: {exc}")]

    def _reject(
        self,
        owned: _Owned,
        record: Record,
        rejection: Rejection,
        rejected: dict[tuple[str, str], int],
    ) -> None:
        """Dead-letter ``record`` (not one of the hot path's: it counts as _process does)."""
        self._dead_letter(record, rejection)
        owned.counters["dead_lettered"] += 1
        key = (record.topic, rejection.reason)
        rejected[key] = rejected.get(key, 0) + 1
        owned.next_offset = record.offset + 1

    def _apply(
        self,
        owned: _Owned,
        record: Record,
        event: dict[str, Any],
        kind: str | None,
        t: float | None,
    ) -> list[ApplyFailure] | None:
        """Apply one event: None when applied, else the failures to dead-letter it with
        (an empty list when it was dead-lettered here).  A change event comes with
        ``kind`` None: _process_changes stored it, with its batch's."""
        if self._predictions is not None:
            if kind == "inference":
                kept = prediction_record(event, self._kept_segment)
                self._unsaved.append((str(event["prediction_id"]), kept))
            elif kind == "label":
                joined = self._join(event)
                if isinstance(joined, Rejection):
                    self._dead_letter(record, joined)
                    return []
                if joined is None:  # its prediction is not here (yet): wait for it
                    self._park(owned, event)
                    return None
                event, t = joined, None  # the joined event has its own time
        detectors = owned.detectors
        for finding in detectors.observe(event, t):
            self._emit(finding)
        if detectors.failures:
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            return self._failed(
                detectors, where, f"the event goes to {self._config.topics.dead_letter}"
            )
        return None

    def _failed(self, detectors: PartitionDetectors, where: str, then: str) -> list[ApplyFailure]:
        """Log and count the failures ``detectors`` reported; return them (cleared there)."""
        failed, detectors.failures = detectors.failures, []
        for failure in failed:
            log.error("%s: %s; %s", where, failure.message, then, exc_info=failure.error)
            if failure.stream_key is not None:
                self._metrics.stream_holds.labels(failure.monitor).inc()
        return failed

    def _count_holds(self) -> None:
        """Metrics of quarantined streams: new holds, the events they skipped."""
        m = self._metrics
        for owned in self._owned.values():
            detectors = owned.detectors
            if detectors.skipped:
                for monitor, n in detectors.skipped.items():
                    m.held_events.labels(monitor).inc(n)
                detectors.skipped.clear()
            for monitor, n in detectors.take_clamped().items():
                m.clamped.labels(monitor).inc(n)
            for monitor, n in detectors.take_untracked().items():
                if monitor not in self._untracked_told:
                    self._untracked_told.add(monitor)
                    log.warning(
                        "%s: a stream has seen %d groups; events of further new groups count "
                        "in the rest only, with no gap of their own (a group field with too "
                        "many values? riskstream_group_events_untracked_total counts them)",
                        monitor, MAX_GROUPS,
                    )  # fmt: skip
                m.groups_untracked.labels(monitor).inc(n)

    def _save_predictions(self) -> None:
        if not self._unsaved or self._predictions is None:
            return
        self._predictions.put_many(self._unsaved, self._config.labels.ttl_s)
        self._stored_ids.update(pid for pid, _ in self._unsaved)
        self._unsaved = []
        self._stored_since_join = True  # parked labels may find their predictions now

    def _prefetch_predictions(self, batch: list[Record]) -> None:
        """Read the predictions this batch's labels name with one call, not one each.

        A label's join read its prediction with a GET of its own: a flood of labels (a
        reviewing team's backlog, a feedback export) went through at ~4-5k labels/s,
        holding up every topic of the processor.  The labels are decoded here once more
        (~1 µs each, against a round trip); what cannot be decoded is left to the loop,
        which dead-letters it.  Predictions stored after this read (an inference event
        later in the batch) are still found: see :meth:`_join`.
        """
        assert self._predictions is not None
        topic = self._config.topics.label
        ids: list[str] = []
        for record in batch:
            if record.topic != topic or record.value is None:
                continue
            try:
                event = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue
            if type(event) is dict and (pid := event.get("prediction_id")) is not None:
                ids.append(str(pid))
        if len(ids) < 2:  # one look-up saves nothing
            return
        self._save_predictions()  # the batch's own earlier predictions are in the read
        self._prefetched = self._predictions.get_many(ids)
        self._prefetch_asked = frozenset(ids)

    def _park(self, owned: _Owned, label: dict[str, Any]) -> None:
        self._metrics.labels.labels("parked").inc()
        given_up = owned.parked.park(label)
        if given_up:
            self._metrics.labels.labels("unmatched").inc(len(given_up))

    def _join_parked(self) -> None:
        """Join the parked labels whose predictions have been stored since they came.

        Each batch looks up the parked labels' predictions that this processor just
        stored; every one they wait for (stored by another processor, which reads the
        inference partition) at most every PARKED_SWEEP_S.  Looking up every one at
        each batch that stored a prediction made the labels of predictions that never
        come (up to 100,000 a partition) an MGET of 100,000 keys per batch: inference
        events went through 6x slower for as long as they waited.
        """
        assert self._predictions is not None
        now = self._clock()
        sweep = now - self._swept_at >= PARKED_SWEEP_S
        if sweep:
            self._swept_at = now
        stored, self._stored_ids = self._stored_ids, set()
        for owned in self._owned.values():
            if not len(owned.parked):
                continue
            ids = owned.parked.ids() if sweep else owned.parked.waiting_for(stored)
            if not ids:
                continue
            found = self._predictions.get_many(ids)
            for label in owned.parked.take(found):
                joined = self._join(label, found[str(label["prediction_id"])])
                if isinstance(joined, Rejection):
                    log.warning("parked label %s: %s", label.get("event_id"), joined.message)
                    continue
                for finding in owned.detectors.observe(joined) if joined else ():
                    self._emit(finding)
                if owned.detectors.failures:
                    self._failed(
                        owned.detectors, f"parked label {label.get('event_id')}", "skipped"
                    )

    def _join(
        self, label: dict[str, Any], stored: dict[str, Any] | None = None
    ) -> dict[str, Any] | Rejection | None:
        """The label scored against its stored prediction, as an event for the monitors.

        None when the prediction is not stored (not yet, expired, or never seen): the
        caller parks the label until it comes.
        """
        assert self._predictions is not None
        if stored is None:
            pid = str(label["prediction_id"])
            stored = self._prefetched.get(pid)
            if stored is None:
                self._save_predictions()  # a label may follow its prediction in the batch
                if pid not in self._prefetch_asked or pid in self._stored_ids:
                    stored = self._predictions.get(pid)  # not read yet, or stored since
        if stored is None:
            return None
        try:
            outcome = join(stored, label, self._config.labels.positive)
        except ValueError as exc:
            return Rejection("label_model_mismatch", str(exc))
        self._metrics.labels.labels("joined").inc()
        self._metrics.label_latency.observe(outcome.latency_s)
        return outcome.as_event()

    def _emit(self, finding: Finding) -> None:
        data = incident_from_finding(finding)
        enrichment = self._config.enrichment
        subjects = [finding.subject, *upstream_of(finding.subject, enrichment.lineage)]
        onset, detected = finding.alarm.onset_at, finding.alarm.detected_at
        nearby = self._changes.between(subjects, onset - enrichment.lookback_s, detected)
        children = enrich(data, enrichment, nearby)
        self._metrics.alarms.labels(finding.monitor.name).inc()
        ce_type = INCIDENT_UPDATED if finding.update else INCIDENT_OPENED
        for incident in (data, *children):
            headers, value = encode_cloudevent(
                ce_type,
                str(incident["incident_id"]),
                str(incident["detected_at"]),
                str(incident["subject"]),
                incident,
            )
            self._producer.produce(
                self._config.topics.incidents, value, str(incident["subject"]).encode(), headers
            )
            if self._on_incident is not None:
                self._on_incident(incident)

    def _dead_letter(self, record: Record, rejection: Rejection) -> None:
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        headers = [
            ("riskstream_reason", rejection.reason.encode()),
            ("riskstream_error", rejection.message.encode()[:1024]),
            ("riskstream_source", orjson.dumps(source)),
        ]
        value, key, cut = fitted(record.value, record.key)  # a huge record stopped the loop
        self._producer.produce(self._config.topics.dead_letter, value, key, headers + cut)

    # -- checkpoints --------------------------------------------------------------

    def checkpoint(self) -> None:
        """Save every owned partition's progress now (and wait until it landed)."""
        self._checkpoint(list(self._owned))

    def _checkpoint(self, partitions: Iterable[TopicPartition], forked: bool = False) -> None:
        """Save the partitions that moved: inline, or (``forked``, when the store allows
        it) by a forked writer whose report :meth:`_land` takes in later.  Either way a
        save in flight lands first: never two at a time, and a revoke or a close waits."""
        started = self._clock()
        self._land(wait=True)
        self._producer.flush()  # outputs of the saved events are durable before the offsets move
        self._phase["flush"].inc(self._clock() - started)
        due = [
            (tp, owned)
            for tp in partitions
            if (owned := self._owned.get(tp)) is not None
            and owned.next_offset is not None
            and owned.next_offset != owned.saved_offset
        ]
        if forked and due and self._forks():
            try:
                self._fork(due, started)
                return
            except OSError as exc:  # no memory or processes left to fork: this one inline
                log.warning("cannot fork a checkpoint writer (%s); saving in the loop", exc)
        saved: dict[TopicPartition, int] = {}
        entries = 0
        for tp, owned in due:
            encoding = self._clock()
            changed, deleted = self._encode(owned)
            if owned.detectors.failures:  # snapshots that would not restore: held, not saved
                self._failed(
                    owned.detectors, f"{tp[0]}[{tp[1]}]", "its last good state stays saved"
                )
            saving = self._clock()
            self._phase["encode"].inc(saving - encoding)
            offset = owned.next_offset
            assert offset is not None
            try:
                self._store.save(
                    self._scope, tp, owned.epoch, offset, owned.counters, changed, deleted
                )
                self._phase["save"].inc(self._clock() - saving)
                entries += len(changed) + len(deleted)
            except FencedError as exc:
                self._fenced(tp, str(exc))
                continue
            except StateStoreError:
                # Outcome unknown but atomic: keep the changes dirty so a retry saves them.
                owned.detectors.mark_dirty(changed)
                owned.detectors.mark_deleted(deleted)
                if owned.recent is not None:
                    owned.recent.unsave(changed)
                owned.parked.dirty = owned.parked.dirty or PARKED_KEY in changed
                raise
            owned.saved_offset = offset
            owned.sizes.update((k, len(v)) for k, v in changed.items())
            for key in deleted:
                owned.sizes.pop(key, None)
            saved[tp] = offset
        self._since_checkpoint = 0
        self._last_checkpoint = self._clock()
        self._paced(self._last_checkpoint - started)
        if due:
            self._entries = entries
        if saved:
            self._consumer.commit(saved)
            took = self._last_checkpoint - started
            self._metrics.checkpoint_seconds.observe(took)
            self._metrics.checkpoint_landed_seconds.observe(took)
            self._metrics.last_checkpoint.set_to_current_time()
        self._update_gauges()

    @staticmethod
    def _encode(owned: _Owned) -> tuple[dict[str, bytes], list[str]]:
        """A partition's changes since its last save: snapshots by state key, deletions."""
        detectors = owned.detectors
        changed = detectors.take_changed()
        deleted = detectors.take_deleted()
        if owned.recent is not None:
            ids, gone = owned.recent.take_changed()
            changed.update(ids)
            deleted += gone
        if owned.parked.dirty:
            changed[PARKED_KEY] = owned.parked.snapshot()
            owned.parked.dirty = False
        return changed, deleted

    def _forks(self) -> bool:
        """Whether this checkpoint goes to a forked writer.  ``auto`` forks once the last
        checkpoint saved FORK_AT_ENTRIES snapshots (and goes back inline below half of
        that).  Inline, one costs ~12 µs (encode, then save: 244 ms per 20k streams in
        bench/results/end_to_end-forked.txt), so that is a stop of ~0.1 s; a fork stops
        the loop ~15 ms plus ~30 ms to take in its report, but costs some 0.2 s of CPU
        per checkpoint in copied pages (copy-on-write), which only a long stop is worth
        (forking every checkpoint of 2,000 streams cost 18.1 -> 22.5 CPU µs/event).
        Counted in snapshots, not seconds: a writer's own times run ~2x an inline save's
        (the same copied pages) and would keep it forking."""
        if self._writer_mode != "auto":
            return self._writer_mode == "fork"
        at = FORK_AT_ENTRIES // 2 if self._forking else FORK_AT_ENTRIES
        forking = self._entries >= at
        if forking != self._forking:
            log.info(
                "the last checkpoint saved %d snapshots: %s",
                self._entries,
                "a forked writer saves the next ones" if forking else "saving inline again",
            )
        self._forking = forking
        return forking

    def _paced(self, took: float) -> None:
        """Checkpoints may take at most `checkpoint_budget` of the time: with many
        streams a full save takes long, and saving it every second would starve the
        loop (or, forked, the other core).  Only the replay after a crash grows (it is
        deterministic either way)."""
        budget = self._config.processor.checkpoint_budget
        self._checkpoint_gap_s = min(MAX_CHECKPOINT_GAP_S, took * (1.0 - budget) / budget)

    def _fenced(self, tp: TopicPartition, why: str) -> None:
        log.warning("dropping %s[%d]: %s", tp[0], tp[1], why)
        self._metrics.fenced.inc()
        del self._owned[tp]
        self._forget_lag(tp)

    def _fork(self, due: list[tuple[TopicPartition, _Owned]], started: float) -> None:
        """Start a forked writer for ``due`` and forget their changes here (see
        :mod:`riskstream.services.forked_save`): the child saves them as they stand now."""
        store, scope = self._store, self._scope

        def write() -> dict[TopicPartition, _Written]:  # runs in the forked child
            report = {}
            for tp, owned in due:
                encoding = time.monotonic()
                changed, deleted = self._encode(owned)
                failures = [(f.monitor, f.stream_key, f.message) for f in owned.detectors.failures]
                saving = time.monotonic()
                unreplicated = getattr(store, "unreplicated", 0)
                offset = owned.next_offset
                assert offset is not None
                try:
                    store.save(scope, tp, owned.epoch, offset, owned.counters, changed, deleted)
                except FencedError as exc:
                    report[tp] = _Written(owned.epoch, None, fenced=str(exc))
                    continue
                report[tp] = _Written(
                    owned.epoch, offset,
                    sizes={k: len(v) for k, v in changed.items()},
                    deleted=deleted,
                    colds=owned.detectors.cold_tags(changed),
                    failures=failures,
                    unreplicated=getattr(store, "unreplicated", 0) > unreplicated,
                    encode_s=saving - encoding,
                    save_s=time.monotonic() - saving,
                )  # fmt: skip
            return report

        self._writer = ForkedSave(write, WRITER_DEADLINE_S)
        for _, owned in due:  # the child has them; a failed save claims everything again
            owned.detectors.forget_changes()
            if owned.recent is not None:
                owned.recent.take_changed()
            owned.parked.dirty = False
        self._since_checkpoint = 0
        self._last_checkpoint = self._clock()
        took = self._last_checkpoint - started
        self._phase["fork"].inc(took)
        self._metrics.checkpoint_seconds.observe(took)
        self._paced(took)

    def _land(self, wait: bool) -> None:
        """Take in the forked writer's report (``wait``: waiting for it): commit the offsets
        it saved, or, when it failed, claim every partition again (their changes since the
        last save that landed were handed to it and are gone from here)."""
        writer = self._writer
        if writer is None or not (wait or writer.done()):
            return
        self._writer = None
        landing = self._clock()
        # The report is tens of thousands of objects, freed by reference counting: a
        # collection while taking it in would walk the whole heap for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._take_report(writer)
        finally:
            if collecting:
                gc.enable()
        self._phase["fork"].inc(self._clock() - landing)

    def _take_report(self, writer: ForkedSave) -> None:
        try:
            report = writer.wait()
        except StateStoreError as exc:
            self._store_failed(exc, "checkpoint (forked writer)")
            return
        saved: dict[TopicPartition, int] = {}
        self._entries = sum(len(w.sizes) + len(w.deleted) for w in report.values())
        for tp, written in report.items():
            owned = self._owned.get(tp)
            if owned is None or owned.epoch != written.epoch:
                continue  # given up, or claimed again, since
            if written.offset is None:
                self._fenced(tp, written.fenced)
                continue
            owned.saved_offset = written.offset
            owned.sizes.update(written.sizes)
            for key in written.deleted:
                owned.sizes.pop(key, None)
            owned.detectors.cold_saved(written.colds)
            for monitor, key, message in written.failures:
                log.error("%s[%d]: %s; its last good state stays saved", tp[0], tp[1], message)
                if key is not None:
                    owned.detectors.hold(monitor, key, message)
                    self._metrics.stream_holds.labels(monitor).inc()
            self._store.saved_elsewhere(
                self._scope, tp, written.epoch, written.offset, written.unreplicated
            )
            self._metrics.writer_seconds.labels("encode").inc(written.encode_s)
            self._metrics.writer_seconds.labels("save").inc(written.save_s)
            saved[tp] = written.offset
        if saved:
            self._consumer.commit(saved)
            assert writer.finished is not None
            self._metrics.checkpoint_landed_seconds.observe(writer.finished - writer.started)
            self._metrics.last_checkpoint.set_to_current_time()
        self._paced(max(0.0, (writer.finished or time.monotonic()) - writer.started))
        self._update_gauges()

    def _update_gauges(self) -> None:
        m = self._metrics
        m.partitions.set(len(self._owned))
        m.streams.set(sum(o.detectors.stream_count for o in self._owned.values()))
        for owned in self._owned.values():
            for monitor, (dropped, evicted) in owned.detectors.take_limit_counts().items():
                if dropped:
                    m.streams_dropped.labels(monitor).inc(dropped)
                if evicted:
                    m.streams_evicted.labels(monitor).inc(evicted)
        m.streams_held.set(sum(o.detectors.held_count for o in self._owned.values()))
        m.state_bytes.set(sum(sum(o.sizes.values()) for o in self._owned.values()))
        for tp, owned in self._owned.items():
            high = self._consumer.high_watermark(tp)
            if high is not None and owned.next_offset is not None:
                m.lag.labels(tp[0], str(tp[1])).set(max(high - owned.next_offset, 0))

    def _forget_lag(self, tp: TopicPartition) -> None:
        """Stop exporting the lag of a partition given up: its new owner reports it now."""
        with contextlib.suppress(KeyError):  # never set: older prometheus_client raises
            self._metrics.lag.remove(tp[0], str(tp[1]))

    # -- inspection and shutdown --------------------------------------------------------

    def counters(self) -> dict[TopicPartition, Mapping[str, int]]:
        return {tp: dict(o.counters) for tp, o in self._owned.items()}

    def state(self) -> dict[TopicPartition, dict[str, object]]:
        """Every owned stream's snapshot, as plain data (for tests and comparisons)."""
        return {tp: o.detectors.snapshot_all() for tp, o in self._owned.items()}

    def close(self) -> None:
        """Checkpoint, release the partitions and close the consumer; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._checkpoint(list(self._owned))
        except StateStoreError as exc:
            log.warning(
                "could not save at shutdown; the next start replays from the last checkpoint: %s",
                exc,
            )
        self._consumer.close()  # revokes: the revoke handler checkpoints
        self._producer.flush()


def _failure_text(failed: list[ApplyFailure]) -> str:
    """The dead letter's error header: what failed, and the exception (type and message)."""
    return "; ".join(f.message for f in failed)[:1000]
