"""Kafka connection settings: TLS and SASL reach librdkafka; secrets never show."""

from __future__ import annotations

import pytest

from riskstream.adapters.kafka.bus import KafkaSettings
from riskstream.errors import ConfigError


def test_sasl_and_tls_settings_from_the_environment_and_no_secret_in_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "RISKSTREAM_KAFKA_BOOTSTRAP": "broker:9093",
        "RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RISKSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RISKSTREAM_KAFKA_SASL_USERNAME": "riskstream",
        "RISKSTREAM_KAFKA_SASL_PASSWORD": "hunter2-very-secret",
        "RISKSTREAM_KAFKA_SSL_CA_LOCATION": "/etc/ssl/kafka-ca.pem",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = KafkaSettings.from_env()
    conf = settings.librdkafka()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.password"] == "hunter2-very-secret"
    assert conf["ssl.ca.location"] == "/etc/ssl/kafka-ca.pem"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def test_no_bootstrap_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKSTREAM_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(ConfigError, match="RISKSTREAM_KAFKA_BOOTSTRAP"):
        KafkaSettings.from_env()


def test_a_message_a_timed_out_flush_reported_is_not_raised_again_by_a_later_flush() -> None:
    """A flush that timed out said so; the message's delivery failing later (its
    message.timeout.ms) was raised by the next flush, of other messages that were
    delivered: the API then answered a later write with an earlier write's failure."""
    import socket
    import time

    from riskstream.adapters.kafka.bus import KafkaProducer
    from riskstream.errors import BusError

    with socket.socket() as s:  # a port nothing listens on: refused at once, no network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = KafkaSettings(f"127.0.0.1:{port}", extra={"message.timeout.ms": 500})
    producer = KafkaProducer(settings)
    producer.produce("t", b"an earlier write's event")
    with pytest.raises(BusError, match=r"1 messages still undelivered after 0\.2 s"):
        producer.flush(0.2)
    time.sleep(1.0)  # its delivery times out meanwhile
    producer.flush(1.0)  # nothing of this flush failed
