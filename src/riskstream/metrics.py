"""Prometheus metrics of each process, on an injected registry.

The registry is a parameter, never a module global, so tests (and two processors
in one test process) each get their own.  Hot-path counts are added once per
batch, not per event: a labelled ``inc()`` costs about a microsecond.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = [
    "ApiMetrics",
    "ContainmentMetrics",
    "NotifierMetrics",
    "ProcessorMetrics",
    "TicketerMetrics",
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
            "Input records sent to the dead-letter topic, by reason.",
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
            "Time to save state and offsets.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
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
            "fetching a batch), flush (outputs made durable before a checkpoint), encode "
            "(changed state to snapshots), save (state and offsets to the store).",
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
        self.label_latency = Histogram(
            "riskstream_label_latency_seconds",
            "From a prediction to its label (data time).",
            buckets=(60, 600, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400),
            registry=registry,
        )


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> None:
    """Expose ``/metrics`` over HTTP in a background thread (0 = don't)."""
    if port:
        start_http_server(port, addr=addr, registry=registry)


class ContainmentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.incidents = Counter(
            "riskstream_containment_incidents_total",
            "Incident events consumed.",
            registry=registry,
        )
        self.actions = Counter(
            "riskstream_containment_actions_total",
            "Playbook actions by kind and outcome (applied, duplicate, pending, approved, "
            "rejected, expired, failed, notified, reverted).",
            ["kind", "outcome"],
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
            "Incident events consumed, by event (opened, updated, resolved, unreadable).",
            ["event"],
            registry=registry,
        )


class TicketerMetrics:
    """The ticketer: requests that changed a ticket, failures, systems backing off."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.writes = Counter(
            "riskstream_ticket_writes_total",
            "Ticket changes by system and what (created, found, commented, closed).",
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
