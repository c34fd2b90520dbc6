"""The one place that builds adapters from settings and hands them to services.

Services see ports; only this module knows that Kafka, Redis and the in-memory
stand-ins exist, and which one a command gets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.codec import EventDecoder
from riskstream.config import Config
from riskstream.config.environment import INCIDENT_KEY_ENV, KafkaSettings, redis_url
from riskstream.config.notifications import receiver_secrets
from riskstream.config.processor import KEYED_BY
from riskstream.core.approvals import PendingAction
from riskstream.core.incident_records import Correlation, IncidentRecord
from riskstream.core.notifications import NotificationSettings
from riskstream.core.routing import RoutingFlag
from riskstream.errors import BusError, ConfigError
from riskstream.metrics import (
    ContainmentMetrics,
    NotifierMetrics,
    ProcessorMetrics,
    TicketerMetrics,
)
from riskstream.ports import IncidentStore, Producer, StateStore, TicketSystem
from riskstream.services.backfill import SuspectBackfill, publisher
from riskstream.services.containment import ContainmentService
from riskstream.services.detection import Processor
from riskstream.services.flag_epoch import FlagGuard, RememberingFlagStore
from riskstream.services.notifier import Destination, Notifier
from riskstream.services.operations import PUBLISH_TIMEOUT_S, OperatorService
from riskstream.services.ticketer import Ticketer, TicketerSystem
from riskstream.signing import RecordSigner
from riskstream.validation import validator_for

__all__ = [
    "SUBJECT_FIELDS",
    "build_decoder",
    "change_retention_s",
    "correlation_of",
    "embedded_containment",
    "embedded_operations",
    "embedded_processor",
    "kafka_backfill",
    "kafka_containment",
    "kafka_notifier",
    "kafka_operations",
    "kafka_processor",
    "kafka_worker",
    "redis_operations",
    "redis_ticketer",
    "redis_url_from_env",
    "ticket_systems",
]

SUBJECT_FIELDS = KEYED_BY
"""The field naming an event's subject, per input kind (checked against known_subjects):
the field records are keyed by unless ``processor.keyed_by`` says otherwise."""

log = logging.getLogger(__name__)


def build_decoder(config: Config) -> EventDecoder:
    kinds, keyed = config.topics.input_kinds(), config.processor.keyed_by
    return EventDecoder(
        validators={topic: validator_for(f"{kind}-event") for topic, kind in kinds.items()},
        max_bytes=config.processor.max_event_bytes,
        key_fields={t: keyed[k] for t, k in kinds.items() if k in keyed},
        subject_fields={t: SUBJECT_FIELDS[k] for t, k in kinds.items() if k in SUBJECT_FIELDS},
        known_subjects=config.known_subjects,
    )


def embedded_processor(
    config: Config,
    bus: InMemoryBus,
    store: StateStore | None = None,
    registry: CollectorRegistry | None = None,
    on_incident: Callable[[dict[str, object]], None] | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> Processor:
    """A processor on the in-memory bus and store: the embedded default.

    ``wall_clock`` is what event times are judged against (a simulated story
    passes its own clock)."""
    from riskstream.adapters.memory.changes import InMemoryChangeLog
    from riskstream.adapters.memory.predictions import InMemoryPredictionStore

    return Processor(
        config,
        bus.consumer(config.processor.group_id),
        bus.producer(),
        store or InMemoryStateStore(),
        build_decoder(config),
        ProcessorMetrics(registry or CollectorRegistry()),
        InMemoryChangeLog(change_retention_s(config), wall_clock),
        on_incident=on_incident,
        predictions=InMemoryPredictionStore() if config.joins_labels else None,
        wall_clock=wall_clock,
    )


def kafka_processor(
    config: Config,
    bootstrap: str | None,
    redis_url: str | None,
    registry: CollectorRegistry,
    max_poll_interval_ms: int = 30_000,
) -> Processor:
    """A processor on Kafka and Redis, configured from arguments and the environment."""
    from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
    from riskstream.adapters.redis.changes import RedisChangeLog
    from riskstream.adapters.redis.predictions import RedisPredictionStore
    from riskstream.adapters.redis.state import RedisStateStore

    bus = KafkaBus(KafkaSettings.from_env(bootstrap), max_poll_interval_ms)
    url = redis_url or redis_url_from_env()
    settings = config.processor
    store = RedisStateStore.from_url(
        url,
        replicas=settings.checkpoint_replicas,
        replica_timeout_ms=settings.checkpoint_replica_timeout_ms,
    )
    predictions = None
    if config.joins_labels:
        predictions = RedisPredictionStore.from_url(url, namespace=config.processor.group_id)
        if problem := predictions.eviction_problem():
            log.warning("%s", problem)
    metrics = ProcessorMetrics(registry)
    metrics.watch_unreplicated(lambda: store.unreplicated)
    return Processor(
        config,
        bus.consumer(config.processor.group_id),
        bus.producer(),
        store,
        build_decoder(config),
        metrics,
        RedisChangeLog.from_url(url, config.processor.group_id, change_retention_s(config)),
        predictions=predictions,
    )


def change_retention_s(config: Config) -> float:
    """How long change events are kept: twice the look-back, for late incidents."""
    return 2 * config.enrichment.lookback_s


def correlation_of(config: Config) -> Correlation:
    """Which incidents the containment worker groups as one story."""
    return Correlation(config.enrichment.lineage, config.enrichment.correlation_window_s)


def redis_url_from_env() -> str:
    """``RISKSTREAM_REDIS_URL``, or an error saying how to give one."""
    return redis_url()


def embedded_containment(
    config: Config,
    bus: InMemoryBus,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] | None = None,
    incidents: IncidentStore | None = None,
) -> ContainmentService:
    """The containment service on in-memory stores and bus: the embedded default."""
    from riskstream.adapters.memory.flags import InMemoryApprovalStore, InMemoryFlagStore
    from riskstream.adapters.memory.incidents import InMemoryIncidentStore

    return ContainmentService(
        config.containment,
        InMemoryFlagStore(),
        InMemoryApprovalStore(),
        bus.producer(),
        ContainmentMetrics(registry or CollectorRegistry()),
        clock=clock or time.time,
        incidents=incidents or InMemoryIncidentStore(),
        correlation=correlation_of(config),
        time_limits=config.processor.time_limits(),
    )


def embedded_operations(
    config: Config,
    bus: InMemoryBus,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] | None = None,
) -> OperatorService:
    """What a person does about incidents, on in-memory stores (the demo, unit tests)."""
    from riskstream.adapters.memory.incidents import InMemoryIncidentStore

    incidents = InMemoryIncidentStore()
    containment = embedded_containment(config, bus, registry, clock, incidents)
    return OperatorService(
        containment, incidents, bus.producer(), config.topics.incidents, clock or time.time
    )


def kafka_containment(
    config: Config,
    bootstrap: str | None,
    redis_url: str | None,
    registry: CollectorRegistry,
    namespace: str = "default",
    producer: Producer | None = None,
    incidents: IncidentStore | None = None,
) -> ContainmentService:
    """The containment service on Redis flags and approvals, publishing to Kafka.

    ``producer`` and ``incidents``: ones the caller shares (else built here).
    """
    from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
    from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
    from riskstream.adapters.redis.incidents import RedisIncidentStore

    url = redis_url or redis_url_from_env()
    return ContainmentService(
        config.containment,
        RedisFlagStore.from_url(url, namespace=namespace),
        RedisApprovalStore.from_url(url, namespace=namespace),
        producer or KafkaBus(KafkaSettings.from_env(bootstrap)).producer(),
        ContainmentMetrics(registry),
        incidents=incidents or RedisIncidentStore.from_url(url, namespace=namespace),
        correlation=correlation_of(config),
        time_limits=config.processor.time_limits(),
    )


def kafka_worker(
    config: Config,
    bootstrap: str | None,
    redis_url: str | None,
    registry: CollectorRegistry,
    namespace: str = "default",
) -> tuple[ContainmentService, FlagGuard, ContainmentMetrics]:
    """The containment worker's service, with the guard that writes its flags back if
    Redis loses them (:mod:`riskstream.services.flag_epoch`), and its metrics."""
    from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
    from riskstream.adapters.redis.epoch import RedisFlagEpoch
    from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
    from riskstream.adapters.redis.incidents import RedisIncidentStore

    url = redis_url or redis_url_from_env()
    metrics = ContainmentMetrics(registry)
    guard = FlagGuard(RedisFlagEpoch.from_url(url, namespace=namespace), metrics.flags_restored)
    kafka = KafkaSettings.from_env(bootstrap)
    service = ContainmentService(
        config.containment,
        RememberingFlagStore(RedisFlagStore.from_url(url, namespace=namespace), guard),
        RedisApprovalStore.from_url(url, namespace=namespace),
        KafkaBus(kafka).producer(),
        metrics,
        incidents=RedisIncidentStore.from_url(url, namespace=namespace),
        correlation=correlation_of(config),
        time_limits=config.processor.time_limits(),
        signer=_incident_signer(kafka, "the containment worker acts on"),
    )
    return service, guard, metrics


def kafka_backfill(
    config: Config, bootstrap: str | None, redis_url: str | None, namespace: str = "default"
) -> SuspectBackfill:
    """The containment worker's backfill of late change events onto their incidents: the
    worker's incident records, the change log the processors share, the incidents topic."""
    from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
    from riskstream.adapters.redis.changes import RedisChangeLog
    from riskstream.adapters.redis.incidents import RedisIncidentStore

    url = redis_url or redis_url_from_env()
    producer = KafkaBus(KafkaSettings.from_env(bootstrap)).producer()
    return SuspectBackfill(
        config.enrichment,
        RedisChangeLog.from_url(url, config.processor.group_id, change_retention_s(config)),
        RedisIncidentStore.from_url(url, namespace=namespace),
        publisher(producer, config.topics.incidents),
    )


def kafka_operations(
    config: Config,
    bootstrap: str | None,
    redis_url: str | None,
    registry: CollectorRegistry,
    namespace: str = "default",
) -> OperatorService:
    """What a person does about incidents, on the Redis stores the worker writes."""
    from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
    from riskstream.adapters.redis.incidents import RedisIncidentStore

    url = redis_url or redis_url_from_env()
    # A person waits for the answer (and the API's other writes for its lock): fail fast.
    producer = KafkaBus(KafkaSettings.from_env(bootstrap)).producer(PUBLISH_TIMEOUT_S)
    incidents = RedisIncidentStore.from_url(url, namespace=namespace)
    containment = kafka_containment(
        config, bootstrap, url, registry, namespace, producer=producer, incidents=incidents
    )
    return OperatorService(containment, incidents, producer, config.topics.incidents)


def notifier_poll_interval_ms(settings: NotificationSettings) -> int:
    """A ``max.poll.interval.ms`` long enough for one batch's worst case.

    The notifier polls again only once a batch is settled; if that took longer
    than the interval, the group would give its partitions away mid-batch and
    the batch would be sent twice.  Worst case per receiver: one retry budget,
    then one timed-out try per notification; receivers take turns in one thread.
    """
    if not settings.receivers:
        return 30_000
    timeout = max(r.timeout_s for r in settings.receivers)
    per_receiver = settings.retry.max_elapsed_s + timeout * (settings.batch_size + 1)
    return int(1000 * per_receiver * len(settings.receivers)) + 30_000


def kafka_notifier(
    config: Config,
    bootstrap: str | None,
    registry: CollectorRegistry,
    max_poll_interval_ms: int = 30_000,
    sleep: Callable[[float], object] | None = None,
    redis_url: str | None = None,
    namespace: str = "default",
) -> Notifier:
    """The notifier on Kafka, posting over HTTP; secrets read from the environment now.
    With ``redis_url``, resolutions are sent only when the incident records confirm them."""
    from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
    from riskstream.adapters.redis.incidents import RedisIncidentStore
    from riskstream.adapters.webhooks import HttpWebhook

    settings = config.notifications
    if not settings.receivers:
        raise ConfigError(
            f"{config.source}: no notification receivers: the notifier has nothing to do; "
            "add notifications.receivers to the config (see the README)"
        )
    destinations = [Destination(r, *receiver_secrets(r)) for r in settings.receivers]
    poll_ms = max(max_poll_interval_ms, notifier_poll_interval_ms(settings))
    kafka = KafkaSettings.from_env(bootstrap)
    bus = KafkaBus(kafka, poll_ms, synchronous_commits=True)
    return Notifier(
        settings,
        destinations,
        config.topics.incidents,
        bus.consumer(settings.group_id),
        bus.producer(),
        HttpWebhook(),
        NotifierMetrics(registry),
        sleep=sleep or time.sleep,
        records=RedisIncidentStore.from_url(redis_url, namespace=namespace) if redis_url else None,
        signer=_incident_signer(kafka, "the notifier sends"),
    )


def _incident_signer(kafka: KafkaSettings, who: str) -> RecordSigner | None:
    """The signer that checks incidents; without a key, a warning at start that says
    what that means (anyone who can write to the topic can trigger containment)."""
    signer = kafka.signer()
    if signer is not None:
        log.info(
            "%s only incidents signed with %s: every process that publishes incidents "
            "(processor, containment worker, API, CLI) needs the same key, or what it "
            "publishes is dead-lettered as unsigned", who, INCIDENT_KEY_ENV,
        )  # fmt: skip
    else:
        log.warning(
            "%s every incident on the topic, signed or not: %s is not set, so anyone who "
            "can write to the incidents topic can open an incident. Set the same key on "
            "every riskstream process (see riskstream.signing), or restrict writes with "
            "Kafka ACLs", who, INCIDENT_KEY_ENV,
        )  # fmt: skip
    return signer


def ticket_systems(config: Config) -> list[TicketerSystem]:
    """The config's ticket systems over HTTP; credentials read from the environment now."""
    from riskstream.adapters.tickets import GitHubTickets, JiraTickets, ServiceNowTickets
    from riskstream.config.tickets import ticket_secrets

    built: list[TicketerSystem] = []
    for spec in config.tickets.systems:
        user, token = ticket_secrets(spec)
        system: TicketSystem
        if spec.kind == "jira":
            system = JiraTickets(
                spec.name, spec.url, str(spec.project), user, token, spec.issue_type,
                spec.done_status, spec.timeout_s,
            )  # fmt: skip
        elif spec.kind == "github":
            system = GitHubTickets(spec.name, spec.url, str(spec.repo), token, spec.timeout_s)
        else:
            system = ServiceNowTickets(
                spec.name, spec.url, user, token, spec.close_code, spec.timeout_s
            )
        built.append(TicketerSystem(system, spec.labels))
    return built


def redis_ticketer(
    config: Config,
    redis_url: str | None,
    registry: CollectorRegistry,
    namespace: str = "default",
    sleep: Callable[[float], object] | None = None,
    bootstrap: str | None = None,
) -> Ticketer:
    """The ticketer over the containment worker's incident records in Redis.

    With ``tickets.resolve_on_close`` it also resolves, through the operator service
    (:func:`kafka_operations`, so Kafka is needed then), groups whose ticket a person
    closed.
    """
    from riskstream.adapters.redis.incidents import RedisIncidentStore

    if not config.tickets.systems:
        raise ConfigError(
            f"{config.source}: no ticket systems: the ticketer has nothing to do; "
            "add tickets.systems to the config (see the README's Tickets section)"
        )
    systems = ticket_systems(config)
    incidents = RedisIncidentStore.from_url(redis_url or redis_url_from_env(), namespace=namespace)
    resolve = None
    if config.tickets.resolve_on_close:
        resolve = kafka_operations(config, bootstrap, redis_url, registry, namespace).resolve
    return Ticketer(
        config.tickets, systems, incidents, TicketerMetrics(registry),
        sleep=sleep or time.sleep, resolve=resolve,
    )  # fmt: skip


def redis_operations(
    config: Config, redis_url: str | None, namespace: str = "default"
) -> OperatorService:
    """What a person reads and acknowledges, on Redis alone: no broker needed at 3 a.m.

    Acts that publish (resolve, approvals, flag changes) need :func:`kafka_operations`;
    here they are refused before anything is written, never half done.
    """
    from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
    from riskstream.adapters.redis.incidents import RedisIncidentStore

    url = redis_url or redis_url_from_env()
    incidents = RedisIncidentStore.from_url(url, namespace=namespace)
    containment = ContainmentService(
        config.containment,
        RedisFlagStore.from_url(url, namespace=namespace),
        RedisApprovalStore.from_url(url, namespace=namespace),
        _NoProducer(),
        ContainmentMetrics(CollectorRegistry()),
        incidents=incidents,
    )
    return _RedisOnlyOperations(containment, incidents, _NoProducer(), config.topics.incidents)


_NEEDS_KAFKA = "this publishes to Kafka: pass --bootstrap or set RISKSTREAM_KAFKA_BOOTSTRAP"


class _RedisOnlyOperations(OperatorService):
    def resolve(self, incident_id: str, by: str, note: str = "") -> IncidentRecord:
        raise BusError(_NEEDS_KAFKA)

    def decide(self, action_id: str, approve: bool, by: str, note: str = "") -> PendingAction:
        raise BusError(_NEEDS_KAFKA)

    def set_flag(self, model_id: str, by: str, reason: str, **changes: Any) -> RoutingFlag:
        raise BusError(_NEEDS_KAFKA)


class _NoProducer:
    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        raise BusError(_NEEDS_KAFKA)

    def flush(self, timeout: float = 10.0) -> None:
        pass
