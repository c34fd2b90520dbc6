"""The settings riskstream reads from the environment, all in this one module.

Each is read when a process starts (a CLI command, the bootstrap), never at import
time, so a test or an embedding program can set the environment first.  The
``--help`` of each option that one of these can set names the variable.

- ``RISKSTREAM_KAFKA_BOOTSTRAP`` and ``RISKSTREAM_KAFKA_*`` (TLS, SASL):
  :meth:`KafkaSettings.from_env`.
- ``RISKSTREAM_INCIDENT_KEY`` (and ``RISKSTREAM_INCIDENT_KEY_PREVIOUS`` while rotating):
  :meth:`KafkaSettings.from_env`, the key records are signed with (:mod:`riskstream.signing`).
- ``RISKSTREAM_REDIS_URL``: :func:`redis_url`.
- ``RISKSTREAM_API_TOKENS``: :func:`api_tokens_path`.
- ``RISKSTREAM_SCHEMA_DIR``: :func:`schema_dir`.
- Notification receivers' secrets: :func:`riskstream.config.notifications.receiver_secrets`
  reads the variables each receiver names (``url_env``, ``routing_key_env``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskstream.errors import ConfigError
from riskstream.signing import MIN_KEY_LENGTH, RecordSigner

__all__ = [
    "API_TOKENS_ENV",
    "INCIDENT_KEY_ENV",
    "KAFKA_BOOTSTRAP_ENV",
    "REDIS_URL_ENV",
    "KafkaSettings",
    "Secret",
    "api_tokens_path",
    "redis_url",
]

KAFKA_BOOTSTRAP_ENV = "RISKSTREAM_KAFKA_BOOTSTRAP"
REDIS_URL_ENV = "RISKSTREAM_REDIS_URL"
API_TOKENS_ENV = "RISKSTREAM_API_TOKENS"
SCHEMA_DIR_ENV = "RISKSTREAM_SCHEMA_DIR"
INCIDENT_KEY_ENV = "RISKSTREAM_INCIDENT_KEY"
INCIDENT_KEY_PREVIOUS_ENV = "RISKSTREAM_INCIDENT_KEY_PREVIOUS"


def redis_url(given: str | None = None) -> str:
    """``given``, else ``RISKSTREAM_REDIS_URL``, else an error saying how to give one."""
    url = given or os.environ.get(REDIS_URL_ENV)
    if not url:
        raise ConfigError(f"no Redis: pass --redis-url or set {REDIS_URL_ENV}")
    return url


def schema_dir(default: Path) -> Path:
    """``RISKSTREAM_SCHEMA_DIR`` (the event contracts somewhere else, e.g. in an image),
    else ``default``."""
    return Path(os.environ.get(SCHEMA_DIR_ENV) or default)


def api_tokens_path(given: str | None = None) -> str | None:
    """``given``, else ``RISKSTREAM_API_TOKENS``; None when neither is set."""
    return given or os.environ.get(API_TOKENS_ENV) or None


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Connection settings; TLS and SASL included.  ``extra`` passes librdkafka keys."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: Secret | None = None
    client_id: str = "riskstream"
    extra: Mapping[str, Any] = field(default_factory=dict)
    record_keys: tuple[Secret, ...] = ()  # signs with the first, accepts any

    def signer(self) -> RecordSigner | None:
        """What signs the records this process writes and checks the incidents it reads;
        None when no key is set (records unsigned, incidents believed as they come)."""
        if not self.record_keys:
            return None
        return RecordSigner([k.get().encode() for k in self.record_keys])

    @classmethod
    def from_env(cls, bootstrap: str | None = None) -> KafkaSettings:
        """Read ``RISKSTREAM_KAFKA_*`` variables (the bootstrap may be given instead)."""
        env = os.environ
        servers = bootstrap or env.get(KAFKA_BOOTSTRAP_ENV)
        if not servers:
            raise ConfigError(
                f"no Kafka bootstrap servers: pass --bootstrap or set {KAFKA_BOOTSTRAP_ENV}"
            )
        password = env.get("RISKSTREAM_KAFKA_SASL_PASSWORD")
        key_password = env.get("RISKSTREAM_KAFKA_SSL_KEY_PASSWORD")
        return cls(
            bootstrap=servers,
            security_protocol=env.get("RISKSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=env.get("RISKSTREAM_KAFKA_SASL_MECHANISM"),
            sasl_username=env.get("RISKSTREAM_KAFKA_SASL_USERNAME"),
            sasl_password=Secret(password) if password else None,
            ssl_ca_location=env.get("RISKSTREAM_KAFKA_SSL_CA_LOCATION"),
            ssl_certificate_location=env.get("RISKSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION"),
            ssl_key_location=env.get("RISKSTREAM_KAFKA_SSL_KEY_LOCATION"),
            ssl_key_password=Secret(key_password) if key_password else None,
            record_keys=_record_keys(env),
        )

    def librdkafka(self) -> dict[str, Any]:
        """The librdkafka config dict (contains secrets: never log it)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get() if self.ssl_key_password else None,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(self.extra)
        return conf


def _record_keys(env: Mapping[str, str]) -> tuple[Secret, ...]:
    keys = []
    for name in (INCIDENT_KEY_ENV, INCIDENT_KEY_PREVIOUS_ENV):
        key = env.get(name, "").strip()
        if not key:
            continue
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{name} is {len(key)} characters; use at least {MIN_KEY_LENGTH} random ones "
                """(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"""
            )
        keys.append(Secret(key))
    if keys and not env.get(INCIDENT_KEY_ENV, "").strip():
        raise ConfigError(
            f"{INCIDENT_KEY_PREVIOUS_ENV} is set but {INCIDENT_KEY_ENV} is not: the previous "
            "key only checks records; set the new key to sign with"
        )
    return tuple(keys)
