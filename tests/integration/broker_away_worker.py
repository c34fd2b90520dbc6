"""The containment worker (faust, as ``riskstream run containment`` builds it) whose
*publishes* go to a broker that is not there (127.0.0.1:1) while the file given as
its last argument exists; its consumer reads the real broker all along.

Run as a child process by test_broker_outage.py:
``python broker_away_worker.py CONFIG BOOTSTRAP REDIS_URL NAMESPACE APP_ID DOWN_FILE``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from riskstream.adapters.faust_app import build_app
from riskstream.adapters.kafka.bus import KafkaBus, KafkaProducer, KafkaSettings
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.config import load_config
from riskstream.metrics import ContainmentMetrics
from riskstream.services.containment import ContainmentService


class SwitchedProducer:
    """Publishes to ``up``, or to ``down`` (whose flush raises) while ``down_file`` exists."""

    def __init__(self, up: KafkaProducer, down: KafkaProducer, down_file: Path) -> None:
        self._up, self._down, self._down_file = up, down, down_file
        self._queued_down = False

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = ()
    ) -> None:
        if self._down_file.exists():
            self._down.produce(topic, value, key, headers)
            self._queued_down = True
        else:
            self._up.produce(topic, value, key, headers)

    def flush(self, timeout: float | None = None) -> None:
        if self._queued_down:
            self._queued_down = False
            self._down.flush()  # raises: nobody answers there
        self._up.flush(timeout)


def main(config_path: str, bootstrap: str, url: str, namespace: str, app_id: str,
         down_file: str) -> None:  # fmt: skip
    logging.basicConfig(level=logging.INFO)
    config = load_config(Path(config_path))
    producer = SwitchedProducer(
        KafkaBus(KafkaSettings.from_env(bootstrap)).producer(),
        KafkaBus(KafkaSettings.from_env("127.0.0.1:1")).producer(flush_timeout=1.0),
        Path(down_file),
    )
    service = ContainmentService(
        config.containment, RedisFlagStore.from_url(url, namespace=namespace),
        RedisApprovalStore.from_url(url, namespace=namespace), producer,  # type: ignore[arg-type]
        ContainmentMetrics(CollectorRegistry()),
        incidents=RedisIncidentStore.from_url(url, namespace=namespace),
    )  # fmt: skip
    app = build_app(config, bootstrap, service, app_id=app_id)
    from faust.worker import Worker

    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(*sys.argv[1:])
