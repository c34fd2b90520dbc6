"""Prometheus metrics of each process, on an injected registry.

The registry is a parameter, never a module global, so tests (and two processors
in one test process) each get their own.  Hot-path counts are added once per
batch, not per event: a labelled ``inc()`` costs about a microsecond.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

__all__ = [
    "ApiMetrics",
    "ContainmentMetrics",
    "Health",
    "NotifierMetrics",
    "ProcessorMetrics",
    "StoreHealth",
    "TicketerMetrics",
    "either",
    "serve_metrics",
]


class ProcessorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.consumed = Counter(
            "riskstream_events_consumed_total",
            "Input records consumed.",
            ["topic"],
            registry=registry,
        )
        self.applied = Counter(
            "riskstream_events_applied_total",
            "Input events applied to detector state.",
            ["topic"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "riskstream_events_dead_lettered_total",
            "Input records sent to the dead-letter topic, by reason: not_json, not_object, "
            "schema, nan_or_infinity, oversize, null_value, null_key, key_mismatch (keyed "
            "otherwise than by the event's subject), unknown_subject, time_out_of_range, "
            "time_ahead, label_model_mismatch, apply_error.",
            ["topic", "reason"],
            registry=registry,
        )
        self.alarms = Counter(
            "riskstream_alarms_total",
            "Detector alarms raised (incidents emitted), by monitor.",
            ["monitor"],
            registry=registry,
        )
        self.checkpoint_seconds = Histogram(
            "riskstream_checkpoint_seconds",
            "Time the loop stopped for a checkpoint: flush the outputs, then fork a "
            "writer (see processor.checkpoint_writer) or encode and save itself.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.checkpoint_landed_seconds = Histogram(
            "riskstream_checkpoint_landed_seconds",
            "Time from the start of a checkpoint until its state and offsets were saved "
            "(the forked writer's run; for an inline checkpoint, the stop itself).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.writer_seconds = Counter(
            "riskstream_checkpoint_writer_seconds",
            "Wall time forked checkpoint writers spent encoding state and saving it.",
            ["phase"],
            registry=registry,
        )
        self.last_checkpoint = Gauge(
            "riskstream_last_checkpoint_timestamp_seconds",
            "Wall time of the last successful checkpoint.",
            registry=registry,
        )
        self.fenced = Counter(
            "riskstream_checkpoints_fenced_total",
            "Checkpoints refused because another owner claimed the partition.",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "riskstream_batch_seconds",
            "Time to process one consumed batch.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=registry,
        )
        self.phase_seconds = Counter(
            "riskstream_processor_phase_seconds",
            "Wall time the processor loop spent in each phase: poll (waiting for and "
            "fetching a batch), flush (outputs made durable before a checkpoint), fork "
            "(starting a checkpoint writer and taking in its report), encode (changed "
            "state to snapshots, inline), save (state and offsets to the store, inline).",
            ["phase"],
            registry=registry,
        )
        self.lag = Gauge(
            "riskstream_consumer_lag",
            "Records behind the partition's end, per partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.streams = Gauge(
            "riskstream_streams",
            "Stream keys with detector state on this process.",
            registry=registry,
        )
        self.state_bytes = Gauge(
            "riskstream_state_bytes",
            "Encoded size of the detector state last checkpointed.",
            registry=registry,
        )
        self.partitions = Gauge(
            "riskstream_partitions_owned",
            "Input partitions this process owns.",
            registry=registry,
        )
        self.labels = Counter(
            "riskstream_labels_total",
            "Label events by outcome: joined to their prediction, or unmatched.",
            ["outcome"],
            registry=registry,
        )
        self.store_up = Gauge(
            "riskstream_state_store_up",
            "1 while detector state can be saved; 0 while the state store (Redis) fails "
            "and the partitions are held, retried with backoff.",
            registry=registry,
        )
        self.store_failures = Counter(
            "riskstream_state_store_failures_total",
            "State store calls (claim, save, change log, predictions) that failed.",
            registry=registry,
        )
        self.held = Gauge(
            "riskstream_partitions_held",
            "Input partitions assigned but not processed: their state cannot be claimed yet.",
            registry=registry,
        )
        self.streams_dropped = Counter(
            "riskstream_stream_events_dropped_total",
            "Events of new stream keys not tracked because the monitor already has "
            "max_streams_per_monitor streams on the partition, by monitor.",
            ["monitor"],
            registry=registry,
        )
        self.streams_evicted = Counter(
            "riskstream_streams_evicted_total",
            "Streams forgotten after stream_idle_ttl_s of data time without a reading, by monitor.",
            ["monitor"],
            registry=registry,
        )
        self.duplicates = Counter(
            "riskstream_events_duplicate_total",
            "Input events dropped as redeliveries (an event_id seen within the window).",
            ["topic"],
            registry=registry,
        )
        self.stream_holds = Counter(
            "riskstream_stream_holds_total",
            "Streams quarantined: an event raised while they applied it, or their state "
            "would not have restored.",
            ["monitor"],
            registry=registry,
        )
        self.held_events = Counter(
            "riskstream_held_events_total",
            "Events not applied to a quarantined stream (the other streams applied them).",
            ["monitor"],
            registry=registry,
        )
        self.streams_held = Gauge(
            "riskstream_streams_held",
            "Quarantined streams on this process: `riskstream state reset` releases them.",
            registry=registry,
        )
        self.state_resets = Counter(
            "riskstream_state_resets_total",
            "Saved state dropped at assignment: scope=monitor when a monitor changed "
            "(its streams start afresh), scope=stream when one snapshot did not restore.",
            ["monitor", "scope"],
            registry=registry,
        )
        self.clamped = Counter(
            "riskstream_values_clamped_total",
            "Tracked values beyond +-1e100 clamped to it (they would overflow detectors).",
            ["monitor"],
            registry=registry,
        )
        self.groups_untracked = Counter(
            "riskstream_group_events_untracked_total",
            "Events of a group-gap monitor whose group was new after its stream already "
            "tracked 1,000 groups: counted in the rest, with no gap of their own.",
            ["monitor"],
            registry=registry,
        )
        self.label_latency = Histogram(
            "riskstream_label_latency_seconds",
            "From a prediction to its label (data time).",
            buckets=(60, 600, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400),
            registry=registry,
        )

    def watch_unreplicated(self, read: Callable[[], int]) -> None:
        """``riskstream_checkpoint_unreplicated_total``: checkpoints whose ``WAIT`` timed
        out short of ``processor.checkpoint_replicas`` (saved on the primary only, so a
        failover then could roll them back), as the state store counts them (``read``)."""
        self.registry.register(
            _ReadCounter(
                "riskstream_checkpoint_unreplicated",
                "Checkpoints whose WAIT timed out before processor.checkpoint_replicas "
                "replicas had them.",
                read,
            )
        )


class _ReadCounter(Collector):
    """A counter kept elsewhere (an adapter's own count), read when scraped."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name, self._doc, self._read = name, documentation, read

    def collect(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._doc, value=self._read())


Health = Callable[[], Mapping[str, object]]
"""A process's health: ``{"status": "ok" | "degraded", ...}`` (why, when degraded)."""


def serve_metrics(
    registry: CollectorRegistry, port: int, addr: str = "0.0.0.0", health: Health | None = None
) -> None:
    """Expose ``/metrics`` (and ``/health``, when given) over HTTP in a background
    thread (0 = don't).

    ``/health`` answers 200 with ``{"status": "ok"}``, or 503 with ``"degraded"`` and
    the reason, so an orchestrator's probe and a person see the same thing.
    """
    if not port:
        return
    if health is None:
        start_http_server(port, addr=addr, registry=registry)
        return
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health":
            return cast("Iterable[bytes]", metrics_app(environ, start_response))
        try:
            state = dict(health())
        except Exception as exc:  # a probe must answer, whatever broke
            state = {"status": "degraded", "reason": f"health check failed: {exc}"}
        status = "200 OK" if state.get("status") == "ok" else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(state).encode()]

    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="riskstream-metrics").start()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        pass


class ContainmentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.incidents = Counter(
            "riskstream_containment_incidents_total",
            "Incident events consumed, each once however often it is retried.",
            registry=registry,
        )
        self.rejected = Counter(
            "riskstream_containment_rejected_total",
            "Records the containment worker refused, by reason: unsigned, bad_signature "
            "(with RISKSTREAM_INCIDENT_KEY set), not_json, not_incident, "
            "unconfirmed_resolution, apply_error (dead-lettered) or change-event (skipped).",
            ["reason"],
            registry=registry,
        )
        self.actions = Counter(
            "riskstream_containment_actions_total",
            "Playbook actions by kind and outcome (applied, duplicate, pending, approved, "
            "rejected, expired, failed, notified, reverted), each outcome of a change once "
            "however often its incident is retried (duplicate: a redelivery, the change "
            "applied before).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.timer_errors = Counter(
            "riskstream_containment_timer_errors_total",
            "Timed tasks (expire approvals, lapse flags, progressive steps), or one flag or "
            "action of one, that raised something other than a Redis failure; the rest of "
            "the tick goes on.",
            ["task"],
            registry=registry,
        )
        self.pending = Gauge(
            "riskstream_containment_pending_actions",
            "Actions waiting for approval.",
            registry=registry,
        )
        self.oldest_pending = Gauge(
            "riskstream_containment_oldest_pending_timestamp_seconds",
            "Wall time the oldest action still waiting for approval was requested (0: none).",
            registry=registry,
        )
        self.next_deadline = Gauge(
            "riskstream_containment_pending_next_deadline_timestamp_seconds",
            "Earliest approval deadline among the waiting actions (0: none has one).",
            registry=registry,
        )
        self.time_to_flag = Histogram(
            "riskstream_containment_incident_to_flag_seconds",
            "From receiving an incident to its routing flags written.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.audit_length = Gauge(
            "riskstream_containment_audit_entries",
            "Entries in the routing audit trail.",
            registry=registry,
        )
        self.store = StoreHealth(
            Gauge(
                "riskstream_containment_store_up",
                "1 while the worker can read and write its Redis stores (flags, approvals, "
                "records); 0 while Redis fails and the work at hand is retried with "
                "backoff (the broker: riskstream_containment_bus_up).",
                registry=registry,
            ),
            Counter(
                "riskstream_containment_store_failures_total",
                "Reads or writes of the worker's Redis stores that failed (each is retried).",
                registry=registry,
            ),
        )
        self.bus = StoreHealth(
            Gauge(
                "riskstream_containment_bus_up",
                "1 while the broker takes what the worker publishes (routing changes, dead "
                "letters, incidents); 0 while it does not and the work at hand is retried "
                "with backoff, or routing changes wait in the outbox.",
                registry=registry,
            ),
            Counter(
                "riskstream_containment_bus_failures_total",
                "Publishes of the worker that the broker did not take (each is retried).",
                registry=registry,
            ),
            cause="the broker",
        )
        self.outbox = Gauge(
            "riskstream_containment_outbox_events",
            "Events (routing changes, a failed step's incident) written with their flag "
            "change and not yet published, as the worker last read its outbox: above 0 for "
            "more than a tick, the broker is not taking them.",
            registry=registry,
        )
        self.outbox_dropped = Counter(
            "riskstream_containment_outbox_dropped_total",
            "Events the full outbox (10,000) dropped, the oldest first, never to be "
            "published; their changes stay in the audit trail.",
            registry=registry,
        )
        self.flags_restored = Counter(
            "riskstream_containment_flags_restored_total",
            "Routing flags written back after Redis lost them (the flag epoch was gone).",
            registry=registry,
        )


class StoreHealth:
    """Whether a process can use its store (or its broker: ``cause``) now, for
    ``/health`` and a gauge."""

    def __init__(self, up: Gauge, failures: Counter, cause: str = "Redis") -> None:
        self._up = up
        self._failures = failures
        self._error: str | None = None
        self._cause = self._default_cause = cause
        self._since = 0.0
        up.set(1)

    @classmethod
    def unexported(cls) -> StoreHealth:
        """One on a registry of its own (nobody scrapes it): for callers without metrics."""
        registry = CollectorRegistry()
        return cls(
            Gauge("store_up", "", registry=registry),
            Counter("store_failures", "", registry=registry),
        )

    @property
    def failing(self) -> bool:
        return self._error is not None

    def ok(self) -> None:
        if self._error is not None:
            self._error = None
            self._up.set(1)

    def failed(self, error: str, cause: str | None = None) -> None:
        if self._error is None:
            self._since = time.time()
        self._error, self._cause = error, cause or self._default_cause
        self._up.set(0)
        self._failures.inc()

    def __call__(self) -> dict[str, object]:
        if self._error is None:
            return {"status": "ok"}
        return {
            "status": "degraded",
            "reason": f"{self._cause} fails; the work at hand is retried with backoff",
            "error": self._error,
            "failing_for_s": round(time.time() - self._since, 3),
        }


def either(*parts: StoreHealth) -> Health:
    """One ``/health`` over several: degraded while any part fails (the first that
    does says why), ok otherwise."""

    def health() -> dict[str, object]:
        for part in parts:
            if part.failing:
                return part()
        return {"status": "ok"}

    return health


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.notifications = Counter(
            "riskstream_notifications_total",
            "Notifications by receiver and final outcome (delivered, dead_lettered).",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "riskstream_notification_attempts_total",
            "Webhook POSTs by receiver and result (delivered, retryable, permanent).",
            ["receiver", "result"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "riskstream_notification_delivery_seconds",
            "From the first attempt to delivery, retries included.",
            ["receiver"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.retrying = Gauge(
            "riskstream_notifier_retrying",
            "Notifications waiting for their next attempt (a receiver is failing).",
            registry=registry,
        )
        self.incidents = Counter(
            "riskstream_notifier_incidents_total",
            "Incident events consumed, by event (opened, updated, resolved, unreadable, "
            "unconfirmed_resolution: a resolved its incident's record does not confirm; "
            "unsigned, bad_signature: not signed by a riskstream process holding the key).",
            ["event"],
            registry=registry,
        )


class TicketerMetrics:
    """The ticketer: requests that changed a ticket, failures, systems backing off."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.writes = Counter(
            "riskstream_ticket_writes_total",
            "Ticket changes by system and what (created, found, commented, closed; "
            "resolved: an incident resolved because a person closed its ticket).",
            ["system", "what"],
            registry=registry,
        )
        self.failures = Counter(
            "riskstream_ticket_failures_total",
            "Failed ticket system requests by system and kind (retryable, permanent).",
            ["system", "kind"],
            registry=registry,
        )
        self.backing_off = Gauge(
            "riskstream_ticketer_backing_off",
            "1 while a ticket system is failing and the ticketer waits before trying it again.",
            ["system"],
            registry=registry,
        )


class ApiMetrics:
    """The operator API: requests by route template (not raw path, to bound the
    label values), method and status, and how long they took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "riskstream_api_requests_total",
            "API requests by route template, method and HTTP status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "riskstream_api_request_seconds",
            "Time to answer an API request, by route template and method.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        self.auth_failures = Counter(
            "riskstream_api_auth_failures_total",
            "Requests to a route that needs a token, sent without a valid one.",
            registry=registry,
        )
        self.auth_refused = Counter(
            "riskstream_api_auth_refused_total",
            "Requests refused unchecked (429) because their client sent too many bad tokens.",
            registry=registry,
        )
