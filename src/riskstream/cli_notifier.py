"""``riskstream run notifier``: incidents to webhooks until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

__all__ = ["run_notifier"]

log = logging.getLogger("riskstream")


def run_notifier(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_notifier
    from riskstream.config import load_config
    from riskstream.metrics import serve_metrics

    config = load_config(args.config)
    settings = config.notifications
    if not settings.receivers:
        log.error(
            "notifier: nothing to do: %s has no notifications.receivers; add at least one "
            "(alertmanager, pagerduty or slack; see the README's Notifications section)",
            config.source,
        )
        return 2
    registry = CollectorRegistry()
    stopping = threading.Event()  # its wait() is the notifier's sleep: a stop cuts a backoff short
    notifier = kafka_notifier(
        config, args.bootstrap, registry, args.max_poll_interval_ms, sleep=stopping.wait
    )
    serve_metrics(registry, args.metrics_port)

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    notifier.start()
    log.info(
        "notifier running: receivers %s, dead letters to %s, metrics on :%s",
        ", ".join(f"{r.name} ({r.kind})" for r in settings.receivers),
        settings.dead_letter_topic, args.metrics_port,
    )  # fmt: skip
    notifier.run(stopping.is_set)
    log.info("notifier stopped; delivered notifications are committed")
    return 0
