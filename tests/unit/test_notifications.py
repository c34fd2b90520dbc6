"""Notification shapes, receiver filters, retry rules and the notifications config."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from riskstream.adapters.webhooks import parse_retry_after
from riskstream.cli import main
from riskstream.config import load_config
from riskstream.config.notifications import receiver_secrets
from riskstream.core.delivery import RetryPolicy, classify_status
from riskstream.core.notifications import (
    INCIDENT_OPENED,
    INCIDENT_UPDATED,
    Receiver,
    alertmanager_payload,
    build_payload,
    event_of,
    pagerduty_event,
    slack_message,
)
from riskstream.errors import ConfigError
from riskstream.services import detection
from riskstream.services.notifier import Destination

CONSOLE = "https://riskstream.example.com"


def incident(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "incident_id": "inc-42",
        "type": "safety",
        "severity": "critical",
        "status": "open",
        "subject": "chatbot",
        "monitor": "harmful-rate-by-group",
        "stream_key": "chatbot|group-b",
        "detected_at": "2026-11-26T11:00:00.000Z",
        "onset_at": "2026-11-26T10:50:00.000Z",
        "evidence": {
            "detector": "page-hinkley",
            "value": "safety.harmful",
            "before": {"count": 2000, "mean": 0.0123},
            "after": {"count": 191, "mean": 0.0812},
        },
    }
    return {**base, **extra}


RICH = incident(
    suspected_changes=[
        {"event_id": "d2", "kind": "deploy", "subject": "chatbot", "version": "bot-1.5",
         "actor": "ci-bot", "time": "2026-11-26T10:38:00Z", "lead_seconds": 720},
        {"event_id": "p1", "kind": "prompt", "subject": "chatbot", "time": "2026-11-26T09:00:00Z"},
    ],
    blast_radius={"affected_events": 191, "affected_users": 37, "downstream": ["ranker"],
                  "estimated_cost": {"amount": 48000, "currency": "EUR"}},
    regulatory={"framework": "EU AI Act", "article": "73", "potential_serious_incident": True,
                "report_deadline": "2026-12-11T11:00:00Z", "human_approval_required": True},
)  # fmt: skip


# -- which events notify ----------------------------------------------------------------


def test_event_types_match_what_the_processor_emits() -> None:
    assert (INCIDENT_OPENED, INCIDENT_UPDATED) == (
        detection.INCIDENT_OPENED, detection.INCIDENT_UPDATED
    )  # fmt: skip
    assert event_of(INCIDENT_OPENED, incident()) == "opened"
    assert event_of(INCIDENT_UPDATED, incident()) == "updated"
    assert event_of(INCIDENT_UPDATED, incident(status="resolved")) == "resolved"


def test_receiver_filters_severity_types_subjects_and_updates() -> None:
    r = Receiver("r", "slack", url="http://x", min_severity="warning")
    assert r.wants(incident(severity="warning"), "opened")
    assert not r.wants(incident(severity="info"), "opened")
    assert r.wants(incident(), "resolved")
    assert not r.wants(incident(), "updated")
    assert Receiver("u", "slack", url="http://x", updates=True).wants(incident(), "updated")
    typed = Receiver("t", "slack", url="http://x", types=frozenset({"fairness", "safety"}))
    assert typed.wants(incident(), "opened")
    assert not typed.wants(incident(type="sensor-drift"), "opened")
    subjects = Receiver("s", "slack", url="http://x", subjects=("chat*", "line-1/*"))
    assert subjects.wants(incident(subject="line-1/temp-03"), "opened")
    assert not subjects.wants(incident(subject="diagnosis"), "opened")


# -- the three shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"), [("critical", "critical"), ("warning", "warning"), ("info", "info")]
)
def test_pagerduty_trigger_maps_severity_and_dedups_on_the_incident_id(
    severity: str, expected: str
) -> None:
    event = pagerduty_event(incident(severity=severity), "opened", "KEY", CONSOLE)
    assert event["routing_key"] == "KEY"
    assert (event["event_action"], event["dedup_key"]) == ("trigger", "inc-42")
    p = event["payload"]
    assert p["severity"] == expected
    assert (p["source"], p["group"], p["class"]) == ("chatbot", "harmful-rate-by-group", "safety")
    assert p["component"] == "chatbot|group-b"
    assert p["timestamp"] == "2026-11-26T11:00:00.000Z"
    assert p["custom_details"]["stream_key"] == "chatbot|group-b"
    assert event["links"] == [
        {"href": f"{CONSOLE}/incidents/inc-42", "text": "The incident in the riskstream console"}
    ]


def test_pagerduty_resolve_and_a_summary_within_1024_characters() -> None:
    assert pagerduty_event(incident(status="resolved"), "resolved", "KEY") == {
        "routing_key": "KEY", "event_action": "resolve", "dedup_key": "inc-42"
    }  # fmt: skip
    long = pagerduty_event(incident(subject="m" * 2000), "opened", "KEY")
    assert len(long["payload"]["summary"]) == 1024
    assert "links" not in long  # no console configured, no dead link


def test_alertmanager_payload_is_version_4_with_a_stable_fingerprint() -> None:
    fired = alertmanager_payload(incident(), "opened", "am", "2026-11-26T11:00:00Z", CONSOLE)
    resolved = alertmanager_payload(
        incident(status="resolved"), "resolved", "am", "2026-11-26T13:00:00Z", CONSOLE
    )
    other = alertmanager_payload(incident(incident_id="inc-43"), "opened", "am", "t")
    for p in (fired, resolved):
        assert p["version"] == "4" and p["receiver"] == "am" and p["truncatedAlerts"] == 0
        assert set(p) >= {"groupKey", "groupLabels", "commonLabels", "commonAnnotations"}
        assert p["externalURL"] == CONSOLE
    (a,), (b,), (c,) = fired["alerts"], resolved["alerts"], other["alerts"]
    assert (fired["status"], a["status"], a["endsAt"]) == (
        "firing",
        "firing",
        "0001-01-01T00:00:00Z",
    )
    assert (resolved["status"], b["status"], b["endsAt"]) == (
        "resolved", "resolved", "2026-11-26T13:00:00Z"
    )  # fmt: skip
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]
    assert len(a["fingerprint"]) == 16
    assert a["labels"]["incident_id"] == "inc-42" and a["labels"]["severity"] == "critical"
    assert a["startsAt"] == "2026-11-26T11:00:00.000Z"
    assert a["generatorURL"] == f"{CONSOLE}/incidents/inc-42"
    assert a["annotations"]["summary"].startswith("[CRITICAL] safety on chatbot")


def test_slack_message_text_and_blocks_escape_and_stay_within_limits() -> None:
    msg = slack_message(incident(subject="<chat&bot>" + "x" * 200), "opened", CONSOLE)
    assert msg["text"].startswith(":rotating_light: [CRITICAL] safety on &lt;chat&amp;bot&gt;")
    header, section, context = msg["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert "&lt;chat&amp;bot&gt;" in section["text"]["text"]
    assert f"<{CONSOLE}/incidents/inc-42|open in the console>" in context["elements"][0]["text"]
    done = slack_message(incident(status="resolved"), "resolved")
    assert done["text"].startswith(":white_check_mark: RESOLVED [CRITICAL] safety on chatbot")


def test_the_text_tells_a_responder_what_when_why_who_and_the_deadline() -> None:
    text = slack_message(RICH, "opened")["text"]
    assert "safety.harmful 0.0123 → 0.0812" in text and "monitor harmful-rate-by-group" in text
    body = slack_message(RICH, "opened")["blocks"][1]["text"]["text"]
    assert "onset ~2026-11-26 10:50:00 UTC; detected 2026-11-26 11:00:00 UTC (10 min" in body
    assert "Suspected change: deploy bot-1.5 on chatbot by ci-bot" in body
    assert "12 min before onset (change d2); 1 more listed" in body
    assert "Blast radius: 37 users; 191 events since onset; downstream: ranker" in body
    assert "estimated cost 48,000 EUR" in body
    assert (
        "EU AI Act Art. 73 potential serious incident; report due 2026-12-11 11:00:00 UTC" in body
    )
    plain = slack_message(incident(evidence={}), "opened")["blocks"][1]["text"]["text"]
    assert "Suspected" not in plain and "Regulatory" not in plain and "Blast" not in plain


def test_build_payload_picks_the_shape_of_the_receiver_kind() -> None:
    args = (incident(), "opened", "t")
    assert build_payload(Receiver("a", "alertmanager"), *args)["version"] == "4"
    pd = build_payload(Receiver("p", "pagerduty"), *args, routing_key="K")
    assert pd["routing_key"] == "K"
    assert "blocks" in build_payload(Receiver("s", "slack"), *args)


# -- retry rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "delivered"), (202, "delivered"), (204, "delivered"), (408, "retryable"),
     (425, "retryable"), (429, "retryable"), (500, "retryable"), (503, "retryable"),
     (400, "permanent"), (401, "permanent"), (403, "permanent"), (404, "permanent"),
     (301, "permanent"), (410, "permanent")],
)  # fmt: skip
def test_answers_are_classified_delivered_retryable_or_permanent(status: int, outcome: str) -> None:
    assert classify_status(status).outcome == outcome


def test_a_permanent_answer_keeps_the_first_500_characters_of_the_body() -> None:
    result = classify_status(400, b"bad routing key " + b"x" * 1000, retry_after_s=5)
    assert result.detail.startswith("HTTP 400: bad routing key")
    assert len(result.detail) == len("HTTP 400: ") + 500
    assert classify_status(429, b"", 7.0).retry_after_s == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=0.5, max_backoff_s=4, max_elapsed_s=1e9)
    assert [policy.cap(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for n in range(1, 10):
        assert policy.next_delay(n, 0.0, None, lambda: 0.0) == 0.0
        top = policy.next_delay(n, 0.0, None, lambda: 0.999999)
        assert top is not None and policy.cap(n) * 0.99 < top <= policy.cap(n)
    assert policy.next_delay(10, 0.0, None, lambda: 0.5) is None  # max_attempts reached


def test_retry_after_is_a_floor_and_the_elapsed_budget_is_never_overrun() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=1, max_backoff_s=8, max_elapsed_s=30)
    assert policy.next_delay(1, 0.0, 12.0, lambda: 0.5) == 12.0
    assert policy.next_delay(1, 20.0, 12.0, lambda: 0.5) is None  # would end at 32 s
    assert policy.next_delay(3, 29.0, None, lambda: 0.5) is None  # 29 + 2 > 30
    assert policy.next_delay(3, 27.0, None, lambda: 0.5) == 2.0


# -- config ---------------------------------------------------------------------------------

GOOD = """\
version: 1
notifications:
  console_url: https://riskstream.example.com
  group_id: notify-test
  receivers:
    - name: oncall
      kind: pagerduty
      routing_key_env: TEST_PD_KEY
      min_severity: critical
    - name: tns
      kind: slack
      url_env: TEST_SLACK_URL
      types: [safety, fairness]
      subjects: "chat*"
    - {name: am, kind: alertmanager, url: "http://127.0.0.1:9/hook", updates: true, timeout_s: 2}
  retry: {max_attempts: 4, initial_backoff_s: 0.1, max_backoff_s: 1, max_elapsed_s: 5}
  dead_letter_topic: notify.dead
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    return path


def test_a_good_notifications_section_loads(tmp_path: Path) -> None:
    n = load_config(_write(tmp_path, GOOD)).notifications
    oncall, tns, am = n.receivers
    assert (oncall.kind, oncall.url, oncall.routing_key_env) == (
        "pagerduty", "https://events.pagerduty.com/v2/enqueue", "TEST_PD_KEY"
    )  # fmt: skip
    assert (tns.types, tns.subjects, tns.url_env) == (
        frozenset({"safety", "fairness"}), ("chat*",), "TEST_SLACK_URL"
    )  # fmt: skip
    assert (am.updates, am.timeout_s, am.min_severity) == (True, 2.0, "info")
    assert (n.retry.max_attempts, n.retry.max_elapsed_s, n.dead_letter_topic) == (
        4,
        5.0,
        "notify.dead",
    )
    assert (n.group_id, n.console_url) == ("notify-test", "https://riskstream.example.com")
    assert load_config(None).notifications.receivers == ()  # the default: none


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("kind: slack", "kind: teams", 11, "kind must be one of alertmanager, pagerduty, slack"),
        ("      routing_key_env: TEST_PD_KEY\n", "", 6, "needs 'routing_key_env'"),
        ("      url_env: TEST_SLACK_URL\n", "", 10, "a slack receiver needs a 'url'"),
        ("min_severity: critical", "min_severity: urgent", 9, "min_severity must be one of"),
        ('url: "http://127.0.0.1:9/hook"', "url: ftp://x", 15, "http:// or https://"),
        ("timeout_s: 2", "timeout_s: 0", 15, "timeout_s must be above 0"),
        ("max_backoff_s: 1,", "max_backoff_s: 0.01,", 16, "max_backoff_s must be at least"),
        ("max_attempts: 4", "max_attempts: 0", 16, "must be >= 1"),
        ("name: tns", "name: oncall", 10, "receiver name 'oncall' is used twice"),
        ("  dead_letter_topic", "  dead_leter_topic", 17, "unknown key 'dead_leter_topic'"),
        ("      types:", "      typez:", 13, "unknown key 'typez'"),
        ("updates: true", "updates: yes please", 15, "true or false"),
    ],
)
def test_a_bad_notifications_section_names_the_line_and_the_problem(
    tmp_path: Path, old: str, new: str, line: int, words: str
) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert words in str(err.value)


def test_secrets_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    oncall, tns, _ = load_config(_write(tmp_path, GOOD)).notifications.receivers
    env = {"TEST_PD_KEY": "R0UTINGKEY", "TEST_SLACK_URL": "https://hooks.slack.com/T/B/s3kr1t"}
    assert receiver_secrets(oncall, env) == (
        "https://events.pagerduty.com/v2/enqueue",
        "R0UTINGKEY",
    )
    url, key = receiver_secrets(tns, env)
    assert (url, key) == ("https://hooks.slack.com/T/B/s3kr1t", None)
    shown = repr(Destination(Receiver("s", "slack", url=url), url, "R0UTINGKEY"))
    assert "s3kr1t" not in shown and "R0UTINGKEY" not in shown
    with pytest.raises(ConfigError) as err:
        receiver_secrets(oncall, {})
    assert "notify.yaml:6:" in str(err.value) and "TEST_PD_KEY" in str(err.value)
    assert "is not set" in str(err.value)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """main() points the root logger at this test's captured stderr; put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_run_notifier_refuses_to_start_without_receivers_or_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\nnotifications: {receivers: []}\n")
    assert main(["run", "notifier", "--config", str(empty), "--bootstrap", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err  # main() logs to stderr
    assert "nothing to do" in err and "notifications.receivers" in err
    monkeypatch.delenv("TEST_PD_KEY", raising=False)
    monkeypatch.setenv("TEST_SLACK_URL", "https://hooks.slack.com/T/B/s3kr1t")
    path = _write(tmp_path, GOOD)
    assert main(["run", "notifier", "--config", str(path), "--bootstrap", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "TEST_PD_KEY" in err and "routing_key_env" in err and "s3kr1t" not in err


def test_the_commented_example_in_the_shipped_default_is_a_valid_section(tmp_path: Path) -> None:
    from importlib import resources

    text = resources.files("riskstream").joinpath("default-config.yaml").read_text()
    block = text.split("# notifications:\n")[1].split("\n\n")[0]
    lines = [line.removeprefix("# ") for line in block.splitlines()]
    path = _write(tmp_path, "version: 1\nnotifications:\n" + "\n".join(lines) + "\n")
    names = [r.name for r in load_config(path).notifications.receivers]
    assert names == ["on-call", "trust-and-safety", "oncall-bridge"]


def test_the_poll_interval_covers_a_batch_of_a_receiver_that_stays_down() -> None:
    from riskstream.bootstrap import notifier_poll_interval_ms
    from riskstream.core.notifications import NotificationSettings

    receivers = (Receiver("a", "slack", timeout_s=5), Receiver("b", "slack", timeout_s=2))
    settings = NotificationSettings(receivers, RetryPolicy(max_elapsed_s=60), batch_size=10)
    assert notifier_poll_interval_ms(settings) >= 2 * (60 + 5 * 11) * 1000
