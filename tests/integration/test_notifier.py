"""The notifier on a real broker, posting to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
from riskstream.bootstrap import kafka_notifier
from riskstream.codec import encode_cloudevent
from riskstream.services.notifier import Notifier
from support import (
    CONTAINMENT_YAML,
    ContainmentProcess,
    Setup,
    create_topics,
    incident,
    make_setup,
    read_topic,
)

pytestmark = pytest.mark.integration

OPENED, UPDATED = "io.riskstream.incident.opened", "io.riskstream.incident.updated"
PD_KEY = "R0UTING-KEY-FOR-TESTS"

Answer = Callable[[], tuple[int, bytes, dict[str, str]]]


class Receivers:
    """A webhook server: per path, an answer; every request recorded with its status."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, int, dict[str, Any]]] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, text, headers = owner.answers.get(self.path, lambda: (200, b"ok", {}))()
                with owner.lock:
                    owner.requests.append((self.path, status, body))
                    owner.auth.append(self.headers.get("Authorization"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, status, body in self.requests if p == path and status < 300]

    def attempts(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _, _ in self.requests if p == path)


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _setup(tmp_path: Path, name: str, bootstrap: str, notifications: str) -> Setup:
    extra = f"notifications:\n  group_id: {name}-notifier\n  dead_letter_topic: {name}-dead\n"
    setup = make_setup(tmp_path, name, extra_yaml=extra + notifications)
    create_topics(bootstrap, [setup.topics["incidents"], f"{name}-dead"], partitions=2)
    return setup


def _send(bootstrap: str, topic: str, *events: tuple[str, dict[str, Any]]) -> None:
    producer = KafkaBus(KafkaSettings(bootstrap)).producer()
    for ce_type, data in events:
        headers, value = encode_cloudevent(
            ce_type, data["incident_id"], data["detected_at"], data["subject"], data
        )
        producer.produce(topic, value, data["subject"].encode(), headers)
    producer.flush()


class Running:
    """The notifier service in a thread, as the CLI runs it."""

    def __init__(
        self, setup: Setup, bootstrap: str, redis_url: str | None = None, namespace: str = ""
    ) -> None:
        self.registry = CollectorRegistry()
        self.stop = threading.Event()
        self.notifier: Notifier = kafka_notifier(
            setup.config, bootstrap, self.registry, sleep=self.stop.wait,
            redis_url=redis_url, namespace=namespace or "default",
        )  # fmt: skip
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        self.notifier.start()
        self.notifier.run(self.stop.is_set, poll_timeout=0.2)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def _wait(what: str, check: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = probe.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    finally:
        probe.close()
    return sum(max(tp.offset, 0) for tp in found)


RICH = incident(
    "inc-a", "chatbot",
    evidence={"detector": "page-hinkley", "value": "safety.harmful",
              "before": {"count": 2000, "mean": 0.012}, "after": {"count": 191, "mean": 0.081}},
    suspected_changes=[{"event_id": "d2", "kind": "deploy", "subject": "chatbot",
                        "version": "bot-1.5", "actor": "ci-bot", "time": "2026-11-26T10:38:00Z",
                        "lead_seconds": 720}],
    blast_radius={"affected_events": 191, "affected_users": 37},
    regulatory={"framework": "EU AI Act", "article": "73", "potential_serious_incident": True,
                "report_deadline": "2026-12-11T11:00:00Z"},
)  # fmt: skip


def test_each_receiver_gets_its_shape_and_only_what_it_asked_for(
    kafka_bootstrap: str, receivers: Receivers, tmp_path: Path, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_NOTIFIER_PD_KEY", PD_KEY)
    setup = _setup(tmp_path, unique("notify"), kafka_bootstrap, f"""\
  console_url: https://rs.example.com
  receivers:
    - {{name: am, kind: alertmanager, url: "{receivers.url}/am", updates: true}}
    - {{name: pd, kind: pagerduty, url: "{receivers.url}/pd",
        routing_key_env: TEST_NOTIFIER_PD_KEY, min_severity: warning}}
    - {{name: tns, kind: slack, url: "{receivers.url}/slack", types: [safety]}}
""")  # fmt: skip
    running = Running(setup, kafka_bootstrap)
    try:
        _send(
            kafka_bootstrap, setup.topics["incidents"],
            (OPENED, RICH),
            (OPENED, incident("inc-b", "line-1/temp-03", type="sensor-drift", severity="warning")),
            (UPDATED, {**RICH, "evidence": {**RICH["evidence"], "samples": 400}}),
            (UPDATED, {**RICH, "status": "resolved"}),
            (OPENED, incident("inc-c", "ranker", type="drift", severity="info")),
        )  # fmt: skip
        _wait("10 notifications", lambda: len(receivers.requests) >= 10)
        time.sleep(1.0)  # and no more than those
    finally:
        running.close()
    am, pd, slack = (receivers.delivered(p) for p in ("/am", "/pd", "/slack"))
    assert (len(am), len(pd), len(slack), len(receivers.requests)) == (5, 3, 2, 10)

    am_a = [b for b in am if b["groupLabels"]["incident_id"] == "inc-a"]
    assert [b["status"] for b in am_a] == ["firing", "firing", "resolved"]  # in order
    assert len({b["alerts"][0]["fingerprint"] for b in am_a}) == 1
    assert am_a[0]["version"] == "4" and am_a[0]["receiver"] == "am"
    assert am_a[0]["alerts"][0]["generatorURL"] == "https://rs.example.com/incidents/inc-a"
    assert "Suspected change: deploy bot-1.5" in am_a[0]["commonAnnotations"]["description"]

    by_key = {(b["dedup_key"], b["event_action"]): b for b in pd}
    assert set(by_key) == {("inc-a", "trigger"), ("inc-b", "trigger"), ("inc-a", "resolve")}
    assert all(b["routing_key"] == PD_KEY for b in pd)
    trigger = by_key[("inc-a", "trigger")]["payload"]
    assert (trigger["severity"], trigger["source"], trigger["class"]) == (
        "critical", "chatbot", "safety"
    )  # fmt: skip
    assert by_key[("inc-b", "trigger")]["payload"]["severity"] == "warning"

    opened, resolved = slack
    assert opened["text"].startswith(":rotating_light: [CRITICAL] safety on chatbot")
    details = opened["blocks"][1]["text"]["text"]
    assert "report due 2026-12-11 11:00:00 UTC" in details and "37 users" in details
    assert resolved["text"].startswith(":white_check_mark: RESOLVED")
    assert running.metric("riskstream_notifications_total", receiver="am", outcome="delivered") == 5


def test_an_outage_of_several_seconds_loses_nothing(
    kafka_bootstrap: str, receivers: Receivers, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    name = unique("outage")
    setup = _setup(tmp_path, name, kafka_bootstrap, f"""\
  receivers:
    - {{name: tns, kind: slack, url: "{receivers.url}/slack"}}
  retry: {{max_attempts: 50, initial_backoff_s: 0.2, max_backoff_s: 1, max_elapsed_s: 20}}
""")  # fmt: skip
    outage: list[float] = []  # down for 4 s from the first request on

    def answer() -> tuple[int, bytes, dict[str, str]]:
        outage.append(time.monotonic())
        if outage[-1] < outage[0] + 4.0:
            return 503, b"upstream maintenance", {"Retry-After": "1"}
        return 200, b"ok", {}

    receivers.answers["/slack"] = answer
    running = Running(setup, kafka_bootstrap)
    sent = [incident(f"out-{i}", f"model-{i % 5}") for i in range(20)]
    try:
        _send(kafka_bootstrap, setup.topics["incidents"], *((OPENED, e) for e in sent))
        _wait("every notification", lambda: len(receivers.delivered("/slack")) >= 20, 25)
        time.sleep(0.5)
        retried = running.metric(
            "riskstream_notification_attempts_total", receiver="tns", result="retryable"
        )
    finally:
        running.close()
    delivered = receivers.delivered("/slack")
    ids = sorted(b["text"].split(" on ")[1].split(" ")[0] for b in delivered)
    assert len(delivered) == 20 and ids == sorted(e["subject"] for e in sent)
    attempts = receivers.attempts("/slack")
    print(f"outage: sent 20, attempts {attempts}, delivered {len(delivered)}, dead-lettered 0")
    assert attempts >= 23 and retried == attempts - 20  # Retry-After 1 s through a 4 s outage
    assert (
        running.metric("riskstream_notifications_total", receiver="tns", outcome="delivered") == 20
    )
    assert read_topic(kafka_bootstrap, f"{name}-dead", idle=1) == []
    assert _committed(kafka_bootstrap, f"{name}-notifier", setup.topics["incidents"]) == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_receiver_that_stays_down_is_dead_lettered_and_a_restart_resends_nothing(
    kafka_bootstrap: str, receivers: Receivers, tmp_path: Path, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_NOTIFIER_PD_KEY", PD_KEY)
    name = unique("down")
    receivers.answers["/pd"] = lambda: (400, b'{"status":"invalid event","errors":["bad key"]}', {})
    setup = _setup(tmp_path, name, kafka_bootstrap, f"""\
  receivers:
    - {{name: gone, kind: alertmanager, url: "http://127.0.0.1:{_free_port()}/am", timeout_s: 1}}
    - {{name: pd, kind: pagerduty, url: "{receivers.url}/pd",
        routing_key_env: TEST_NOTIFIER_PD_KEY}}
    - {{name: ok, kind: slack, url: "{receivers.url}/slack"}}
  retry: {{max_attempts: 10, initial_backoff_s: 0.1, max_backoff_s: 0.5, max_elapsed_s: 1.5}}
""")  # fmt: skip
    dead_topic, group = f"{name}-dead", f"{name}-notifier"
    running = Running(setup, kafka_bootstrap)
    try:
        _send(kafka_bootstrap, setup.topics["incidents"],
              *((OPENED, incident(f"d-{i}", f"model-{i}")) for i in range(4)))  # fmt: skip
        _wait("4 deliveries", lambda: len(receivers.delivered("/slack")) == 4)
        _wait(
            "the commit", lambda: _committed(kafka_bootstrap, group, setup.topics["incidents"]) == 4
        )
    finally:
        running.close()
    dead = read_topic(kafka_bootstrap, dead_topic, idle=1)
    letters = [{k: v.decode() for k, v in m.headers()} | {"value": m.value()} for m in dead]
    assert len(letters) == 8
    gone = [d for d in letters if d["riskstream_receiver"] == "gone"]
    assert {d["riskstream_incident_id"] for d in gone} == {f"d-{i}" for i in range(4)}
    assert "retries_exhausted" in {d["riskstream_reason"] for d in gone}
    assert all("Connection refused" in d["riskstream_error"] for d in gone)
    first = next(d for d in gone if d["riskstream_reason"] == "retries_exhausted")
    assert int(first["riskstream_attempts"]) > 1
    assert json.loads(first["value"])["version"] == "4"
    assert json.loads(first["riskstream_source"])["topic"] == setup.topics["incidents"]
    rejected = [d for d in letters if d["riskstream_receiver"] == "pd"]
    assert {d["riskstream_reason"] for d in rejected} == {"rejected"}
    assert all(d["riskstream_attempts"] == "1" for d in rejected)
    assert all('HTTP 400: {"status":"invalid event"' in d["riskstream_error"] for d in rejected)
    assert all(PD_KEY.encode() not in d["value"] for d in rejected)
    assert (
        running.metric("riskstream_notifications_total", receiver="gone", outcome="dead_lettered")
        == 4
    )

    # Restarted as the CLI runs it: nothing settled is sent again; new incidents are.
    log_path = tmp_path / "notifier.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "riskstream", "run", "notifier", "--config",
             str(setup.config_path), "--bootstrap", kafka_bootstrap, "--metrics-port", "0"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
        try:
            _wait("the assignment", lambda: "resuming at offset" in log_path.read_text())
            _send(kafka_bootstrap, setup.topics["incidents"], (OPENED, incident("d-9", "model-9")))
            _wait("the new delivery", lambda: len(receivers.delivered("/slack")) == 5)
            _wait(
                "its commit",
                lambda: _committed(kafka_bootstrap, group, setup.topics["incidents"]) == 5,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            rc = process.wait(30)
    text = log_path.read_text()
    assert rc == 0 and "notifier stopped" in text, text[-3000:]
    assert [b["text"].split(" on ")[1].split(" ")[0] for b in receivers.delivered("/slack")][
        -1
    ] == "model-9"
    assert len(receivers.delivered("/slack")) == 5
    assert len(read_topic(kafka_bootstrap, dead_topic, idle=1)) == 10


def test_a_bad_incident_is_dead_lettered_once_by_the_containment_worker(
    kafka_bootstrap: str, redis_url: str, receivers: Receivers, tmp_path: Path,
    unique: Callable[[str], str],
) -> None:  # fmt: skip
    """Both read the incidents topic; each dead-lettered what it could not read, so a
    bad record landed twice (here, where both write to one topic).  The containment
    worker owns those dead letters; the notifier counts and logs what it skips, and
    skips what containment refuses (a time with no offset paged people before)."""
    name = unique("once")
    topics = {k: f"{name}-{k}" for k in ("incidents", "routing_changes", "dead_letter")}
    notifications = (
        f"notifications:\n  group_id: {name}-notifier\n"
        f"  dead_letter_topic: {topics['dead_letter']}\n"  # the one topic, shared
        f'  receivers:\n    - {{name: am, kind: alertmanager, url: "{receivers.url}/am"}}\n'
    )
    setup = make_setup(tmp_path, name, extra_yaml=CONTAINMENT_YAML + notifications)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    good = incident("inc-1", "chatbot")
    bad = [
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps({"type": "safety"}).encode(),
        json.dumps(incident("inc-x", "chatbot", detected_at="2026-11-26T10:00:00")).encode(),
        json.dumps(incident("inc-y", "chatbot", evidence=[1])).encode(),
    ]
    producer = KafkaBus(KafkaSettings(kafka_bootstrap)).producer()
    for value in [*bad, json.dumps(good).encode()]:
        producer.produce(setup.topics["incidents"], value, b"chatbot")
    producer.flush()
    namespace = unique("ns")
    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w.log", namespace)
    running = Running(setup, kafka_bootstrap)
    try:
        _wait("the good incident delivered", lambda: receivers.delivered("/am"), timeout=60)
        _wait(
            "every record read by the notifier",
            lambda: _committed(kafka_bootstrap, f"{name}-notifier", setup.topics["incidents"])
            == len(bad) + 1,
        )  # fmt: skip
        dead = setup.topics["dead_letter"]
        _wait(
            "the containment worker's dead letters",
            lambda: len(read_topic(kafka_bootstrap, dead, idle=0.5)) >= len(bad),
            timeout=60,
        )  # fmt: skip
        letters = read_topic(kafka_bootstrap, dead, idle=2)  # and no more than those
    finally:
        running.close()
        assert worker.stop() == 0, worker.log()
    assert [m.value() for m in letters] == bad  # each once, in order
    assert {dict(m.headers())["riskstream_reason"] for m in letters} == {
        b"not_json", b"not_incident"
    }  # fmt: skip
    assert [b["groupLabels"]["incident_id"] for b in receivers.delivered("/am")] == ["inc-1"]
    assert running.metric("riskstream_notifier_incidents_total", event="unreadable") == len(bad)


def test_with_the_incident_records_a_forged_resolved_closes_no_page(
    kafka_bootstrap: str, redis_url: str, receivers: Receivers, tmp_path: Path,
    unique: Callable[[str], str],
) -> None:  # fmt: skip
    """A "resolved" for an incident whose record in Redis is open was not made by a
    person (they resolve the record first): the notifier, given the containment
    worker's Redis, does not close that page; a person's resolution it sends."""
    from riskstream.adapters.redis.incidents import RedisIncidentStore
    from riskstream.core.incident_records import record_incident, resolve

    namespace = unique("ns")
    records = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    for n in ("inc-1", "inc-2"):
        records.update(n, lambda r, n=n: record_incident(r, incident(n, "chatbot"), 0.0))
    records.update("inc-2", lambda r: None if r is None else resolve(r, "dr.lee", 5.0, "ok"))
    setup = _setup(tmp_path, unique("forged"), kafka_bootstrap, f"""\
  receivers:
    - {{name: am, kind: alertmanager, url: "{receivers.url}/am", updates: true}}
""")  # fmt: skip
    running = Running(setup, kafka_bootstrap, redis_url, namespace)
    try:
        _send(
            kafka_bootstrap, setup.topics["incidents"],
            (OPENED, incident("inc-1", "chatbot")),
            (OPENED, incident("inc-2", "chatbot")),
            (UPDATED, incident("inc-1", "chatbot", status="resolved")),  # forged
            (UPDATED, incident("inc-2", "chatbot", status="resolved")),  # a person's
        )  # fmt: skip
        _wait("3 notifications", lambda: len(receivers.requests) >= 3)
        _wait(
            "the forged one counted",
            lambda: running.metric(
                "riskstream_notifier_incidents_total", event="unconfirmed_resolution"
            ),
        )  # fmt: skip
        time.sleep(1.0)  # and no more than those
    finally:
        running.close()
        records.close()
    sent = [(b["groupLabels"]["incident_id"], b["status"]) for b in receivers.delivered("/am")]
    assert sent == [("inc-1", "firing"), ("inc-2", "firing"), ("inc-2", "resolved")]


def test_the_http_adapter_classifies_real_answers(receivers: Receivers) -> None:
    from riskstream.adapters.webhooks import HttpWebhook

    receivers.answers["/moved"] = lambda: (302, b"", {"Location": "/elsewhere"})
    receivers.answers["/busy"] = lambda: (429, b"slow down", {"Retry-After": "3"})
    receivers.answers["/slow"] = lambda: (time.sleep(1.5), (200, b"late", {}))[1]
    hook = HttpWebhook()
    ok = hook.post(f"{receivers.url}/fine", b"{}", 2)
    assert (ok.outcome, ok.status) == ("delivered", 200)
    moved = hook.post(f"{receivers.url}/moved", b"{}", 2)
    assert (moved.outcome, moved.status) == ("permanent", 302)
    assert "redirects are not followed" in moved.detail
    assert receivers.attempts("/elsewhere") == 0
    busy = hook.post(f"{receivers.url}/busy", b"{}", 2)
    assert (busy.outcome, busy.retry_after_s, busy.detail) == (
        "retryable",
        3.0,
        "HTTP 429: slow down",
    )
    # A Retry-After of a Latin-1 digit ('²': str.isdigit says yes, float says no) was
    # classified permanent, "unusable URL", and the notification dead-lettered at once.
    receivers.answers["/odd"] = lambda: (503, b"down", {"Retry-After": "\xb2"})
    odd = hook.post(f"{receivers.url}/odd", b"{}", 2)
    assert (odd.outcome, odd.retry_after_s, odd.detail) == ("retryable", None, "HTTP 503: down")
    slow = hook.post(f"{receivers.url}/slow", b"{}", 0.3)
    assert slow.outcome == "retryable" and "within 0.3 s" in slow.detail
    refused = hook.post(f"http://user:pw@127.0.0.1:{_free_port()}/secret-path", b"{}", 1)
    assert refused.outcome == "retryable" and "Connection refused" in refused.detail
    assert "secret-path" not in refused.detail and "pw" not in refused.detail
    authed = hook.post(f"{receivers.url.replace('//', '//bot:p%40ss@')}/auth", b"{}", 2)
    assert authed.outcome == "delivered"
    assert receivers.auth[-1] == "Basic " + base64.b64encode(b"bot:p@ss").decode()


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_timeout() -> None:
    """``timeout_s`` bounds the whole POST: a receiver that sends its answer one byte at
    a time, each within the socket timeout, held the notifier (and every other receiver
    it serves) for as long as it kept trickling."""
    from riskstream.adapters.webhooks import HttpWebhook

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():  # a header that never ends, a byte every 0.1 s
                try:
                    conn.sendall(b"X")
                except OSError:
                    return
                stop.wait(0.1)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        result = HttpWebhook().post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", 0.5)
        took = time.monotonic() - start
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert took < 1.5, f"the POST took {took:.1f} s with a 0.5 s timeout"
    assert result.outcome == "retryable" and "within 0.5 s" in result.detail
