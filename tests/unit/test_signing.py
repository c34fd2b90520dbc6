"""Signed records (riskstream.signing): what a forger cannot do without the key, and the
settings that give the key."""

from __future__ import annotations

import pytest

from riskstream.config.environment import KafkaSettings
from riskstream.errors import ConfigError
from riskstream.signing import SIGNATURE_HEADER, RecordSigner

KEY, OLD = b"k" * 32, b"o" * 32
VALUE = b'{"incident_id": "inc-1", "status": "open"}'
HEADERS = [("ce_id", b"inc-1"), ("ce_type", b"io.riskstream.incident.opened")]


def signed(
    signer: RecordSigner, topic: str = "incidents", value: bytes = VALUE
) -> list[tuple[str, bytes | str | None]]:
    return [*HEADERS, signer.sign(topic, value, HEADERS)]


def reason(signer: RecordSigner, topic: str, value: bytes, headers: list) -> str | None:  # type: ignore[type-arg]
    problem = signer.problem(topic, value, headers)
    return None if problem is None else problem[0]


def test_a_signed_record_passes_and_every_forgery_is_told_apart() -> None:
    signer = RecordSigner([KEY])
    headers = signed(signer)
    assert signer.problem("incidents", VALUE, headers) is None
    assert reason(signer, "incidents", VALUE, HEADERS) == "unsigned"
    changed = VALUE.replace(b"open", b"resolved")
    assert reason(signer, "incidents", changed, headers) == "bad_signature"
    moved = signed(signer, topic="dead-letter")  # a dead letter holds a producer's bytes
    assert reason(signer, "incidents", VALUE, moved) == "bad_signature"
    relabelled = [("ce_type", b"io.riskstream.incident.updated"), *headers[:1], headers[2]]
    assert reason(signer, "incidents", VALUE, relabelled) == "bad_signature"
    doubled_type = [*headers, ("ce_type", b"io.riskstream.incident.updated")]
    assert reason(signer, "incidents", VALUE, doubled_type) == "bad_signature"
    assert reason(signer, "incidents", VALUE, [*headers, headers[2]]) == "bad_signature"
    other = RecordSigner([b"x" * 32])
    assert reason(other, "incidents", VALUE, headers) == "bad_signature"
    garbage = [*HEADERS, (SIGNATURE_HEADER, b"v2=zz")]
    assert reason(signer, "incidents", VALUE, garbage) == "bad_signature"


def test_headers_other_than_cloudevents_ones_may_be_added_and_reordered() -> None:
    signer = RecordSigner([KEY])
    headers = signed(signer)
    traced = [("traceparent", b"00-abc-def-01"), *reversed(headers)]
    assert signer.problem("incidents", VALUE, traced) is None


def test_while_rotating_the_previous_key_still_checks_but_the_new_one_signs() -> None:
    rotating = RecordSigner([KEY, OLD])
    assert rotating.problem("incidents", VALUE, signed(RecordSigner([OLD]))) is None
    assert RecordSigner([KEY]).problem("incidents", VALUE, signed(rotating)) is None
    assert reason(RecordSigner([OLD]), "incidents", VALUE, signed(rotating)) == "bad_signature"


def test_the_key_comes_from_the_environment_and_a_weak_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RISKSTREAM_INCIDENT_KEY", raising=False)
    monkeypatch.delenv("RISKSTREAM_INCIDENT_KEY_PREVIOUS", raising=False)
    assert KafkaSettings.from_env("b:9092").signer() is None
    monkeypatch.setenv("RISKSTREAM_INCIDENT_KEY", KEY.decode())
    monkeypatch.setenv("RISKSTREAM_INCIDENT_KEY_PREVIOUS", OLD.decode())
    settings = KafkaSettings.from_env("b:9092")
    assert KEY.decode() not in repr(settings)
    signer = settings.signer()
    assert signer is not None
    assert signer.problem("incidents", VALUE, signed(RecordSigner([OLD]))) is None
    monkeypatch.setenv("RISKSTREAM_INCIDENT_KEY", "short")
    with pytest.raises(ConfigError, match="RISKSTREAM_INCIDENT_KEY is 5 characters; use at least"):
        KafkaSettings.from_env("b:9092")
    monkeypatch.delenv("RISKSTREAM_INCIDENT_KEY")
    with pytest.raises(ConfigError, match="PREVIOUS is set but RISKSTREAM_INCIDENT_KEY is not"):
        KafkaSettings.from_env("b:9092")


def test_the_worker_and_the_notifier_say_at_start_whether_they_check_signatures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from riskstream.bootstrap import _incident_signer
    from riskstream.config.environment import Secret

    with caplog.at_level("INFO", logger="riskstream.bootstrap"):
        assert _incident_signer(KafkaSettings("b:9092"), "the notifier sends") is None
        keyed = KafkaSettings("b:9092", record_keys=(Secret(KEY.decode()),))
        assert _incident_signer(keyed, "the notifier sends") is not None
    unsigned, signed_only = caplog.records
    assert unsigned.levelname == "WARNING"
    assert "the notifier sends every incident on the topic, signed or not" in unsigned.message
    assert "RISKSTREAM_INCIDENT_KEY is not set" in unsigned.message
    assert signed_only.levelname == "INFO"
    assert "the notifier sends only incidents signed with RISKSTREAM_INCIDENT_KEY" in (
        signed_only.message
    )
    assert KEY.decode() not in caplog.text
