"""The operator API as a child process, and a small HTTP client for the tests.

Imported as ``api_support`` (pytest's ``pythonpath`` setting in pyproject.toml puts this
folder on ``sys.path``).
``riskstream run api --port 0`` picks a free port and logs its URL; the tests
read it from the log, so no port is guessed.
"""

from __future__ import annotations

import functools
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.api import token_digest
from riskstream.core.incident_records import record_incident
from riskstream.core.timeutil import format_time
from riskstream.services.operations import SCANNED
from support import (
    CONTAINMENT_YAML,
    START,
    ContainmentProcess,
    RiskstreamProcess,
    Setup,
    create_topics,
    deploy,
    incident,
    make_setup,
    produce,
)

_LISTENING = re.compile(r"api listening on (http://\S+)/api/v1")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or None
    text: str
    headers: Mapping[str, str]


def write_tokens(path: Path, users: Mapping[str, tuple[str, str]]) -> Path:
    """A tokens file for ``{name: (role, token)}``: only the digests go in it."""
    lines = [
        f"  - {{name: {n}, role: {r}, sha256: {token_digest(t)}}}" for n, (r, t) in users.items()
    ]
    path.write_text("users:\n" + "\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, method: str = "GET", token: str | None = None, body: Any = None) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = orjson.dumps(body)
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw, got = exc.code, exc.read(), exc.headers
    text = raw.decode()
    is_json = got.get("Content-Type", "").startswith("application/json")
    return Answer(status, orjson.loads(raw) if is_json else None, text, dict(got))


class ApiProcess(RiskstreamProcess):
    """``riskstream run api`` on a free port, against the test's broker and Redis."""

    def __init__(
        self,
        setup: Setup,
        bootstrap: str,
        redis_url: str,
        tokens: Path,
        log_path: Path,
        namespace: str,
        metrics_port: int = 0,
    ) -> None:
        super().__init__(
            ["run", "api", "--config", str(setup.config_path), "--bootstrap", bootstrap,
             "--redis-url", redis_url, "--namespace", namespace, "--tokens", str(tokens),
             "--port", "0", "--metrics-port", str(metrics_port)],
            log_path,
        )  # fmt: skip
        self.url = self._wait_for_url()

    def _wait_for_url(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while not (found := _LISTENING.search(self.log())):
            if self.process.poll() is not None:
                raise AssertionError(f"riskstream run api exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"riskstream run api did not listen in time:\n{self.log()}")
            time.sleep(0.1)
        return found.group(1)

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Answer:
        return http(self.url + path, method, token, body)

    def log(self) -> str:
        """All of it: the tests that no secret is logged read every line."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def redis_acl_user(redis_url: str, user: str, password: str) -> Iterator[str]:
    """A Redis ACL user with a password, and the URL that carries its credentials.

    The API must never show that password: in answers, errors or its log.
    """
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.acl_setuser(
            user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
            categories=["+@all"],
        )  # fmt: skip
        yield redis_url.replace("redis://", f"redis://{user}:{password}@", 1)
    finally:
        admin.acl_deluser(user)
        admin.close()


@dataclass(frozen=True)
class Clinical:
    """The regulated situation, contained by the real worker, waiting for a person."""

    setup: Setup
    namespace: str
    incident_id: str
    action_id: str


def clinical_incident(incident_id: str) -> dict[str, Any]:
    """A recall drop with everything the console shows: evidence, suspects, reach, deadline."""
    return incident(
        incident_id, "diagnosis", type="error-rate", monitor="recall-by-subtype",
        stream_key="diagnosis|melanoma|age-70+",
        evidence={
            "detector": "adwin", "params": {"delta": 0.002}, "value": "missed",
            "before": {"count": 1800, "mean": 0.08, "std": 0.27},
            "after": {"count": 240, "mean": 0.31, "std": 0.46},
            "samples": 4040, "onset_sample": 3801, "delay_samples": 240,
        },
        suspected_changes=[{
            "event_id": "d2", "kind": "deploy", "subject": "diagnosis",
            "time": format_time(START + 60), "version": "dx-2.1", "actor": "ci-bot",
            "lead_seconds": 2940.0,
        }],
        blast_radius={"affected_events": 240, "affected_users": 212},
        regulatory={
            "framework": "EU AI Act", "article": "73", "potential_serious_incident": True,
            "report_deadline": format_time(START + 3600 + 15 * 86_400),
            "human_approval_required": True,
        },
    )  # fmt: skip


@contextmanager
def clinical_situation(
    tmp_path: Path, name: str, bootstrap: str, redis_url: str
) -> Iterator[Clinical]:
    """Deploys dx-2.0 then dx-2.1, an incident after them; human review applies at
    once and the rollback to dx-2.0 waits for approval.  The worker runs throughout."""
    setup = make_setup(tmp_path, name, extra_yaml=CONTAINMENT_YAML)
    create_topics(bootstrap, setup.topics.values(), partitions=1)
    namespace = f"{name}-ns"
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    worker = ContainmentProcess(setup, bootstrap, redis_url, tmp_path / "worker.log", namespace)
    try:
        deploys = [deploy("d1", "diagnosis", "dx-2.0", START),
                   deploy("d2", "diagnosis", "dx-2.1", START + 60)]  # fmt: skip
        _send(bootstrap, setup.topics["change"], *deploys)
        wait_for("the deploys", lambda: (f := flags.get("diagnosis")) and f.revision == 2)
        incident_id = f"{name}-inc"
        _send(bootstrap, setup.topics["incidents"], clinical_incident(incident_id))
        wait_for("human review", lambda: (f := flags.get("diagnosis")) and f.mode == "human-review")
        (pending,) = wait_for("the held rollback", lambda: approvals.list("pending"))
        yield Clinical(setup, namespace, incident_id, pending.action_id)
    finally:
        worker.stop()
        flags.close()
        approvals.close()


def matches_past_a_window(redis_url: str, namespace: str) -> tuple[list[str], list[str]]:
    """Three incidents of ``ward-7``, the oldest, under SCANNED + 100 newer ones of
    ``ranker``, one a second, in Redis under ``namespace``: a list filtered to ward-7
    finds none in its first window and has to look on.  Their ids: (older, newer)."""
    store = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    older = [f"old-{n}" for n in range(3)]
    newer = [f"new-{n:04d}" for n in range(SCANNED + 100)]
    try:
        for n, incident_id in enumerate([*older, *newer]):  # oldest first
            event = incident(
                incident_id, "ward-7" if incident_id in older else "ranker",
                detected_at=format_time(START + n),
            )  # fmt: skip
            store.update(incident_id, lambda r, e=event: record_incident(r, e, START))
    finally:
        store.close()
    return older, newer


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def _send(bootstrap: str, topic: str, *events: dict[str, Any]) -> None:
    produce(bootstrap, topic, [(str(e["subject"]).encode(), orjson.dumps(e)) for e in events])


# -- the OpenAPI document as a test oracle ------------------------------------------


def spec_document() -> dict[str, Any]:
    from riskstream.api.spec import load_spec

    document: dict[str, Any] = orjson.loads(load_spec())
    return document


def spec_template(spec: Mapping[str, Any], path: str) -> str | None:
    """The spec's path template that ``path`` (no query) falls under, if any."""
    for template in spec["paths"]:
        pattern = "^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return str(template)
    return None


def spec_validator(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> Any:
    """A validator of ``schema`` (which may refer to the document's components) that
    reads each ``pattern`` as ECMA-262 does, as JSON Schema means it."""
    from openapi_schema_validator import OAS31Validator

    return _ecma_validator()(
        {"components": spec["components"], **schema}, format_checker=OAS31Validator.FORMAT_CHECKER
    )


@functools.cache
def _ecma_validator() -> Any:
    """OAS31Validator with ``pattern`` read as ECMA-262 does.  Its own Python
    ``re.search`` lets ``$`` match before a last newline, so it took "v1\\n" for a
    version that the document's pattern and the API both refuse."""
    from jsonschema import ValidationError
    from jsonschema.validators import extend
    from openapi_schema_validator import OAS31Validator

    from riskstream.validation import _regex  # the event schemas' reading: `$` is the end

    def pattern(validator: Any, wanted: str, instance: Any, _schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not _regex(wanted, "pattern").search(instance):
            yield ValidationError(f"{instance!r} does not match {wanted!r}")

    return extend(OAS31Validator, {"pattern": pattern})


def check_answer(spec: Mapping[str, Any], method: str, path: str, status: int, body: Any) -> None:
    """The answer is documented for that route and status, and matches its schema."""
    template = spec_template(spec, path.split("?")[0])
    if template is None or status in (405, 500):  # no such route; undocumented failures
        return
    responses = spec["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} answered {status}, undocumented"
    response = responses[str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    validator = spec_validator(spec, schema)
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not problems, f"{method} {path} {status} does not match the spec: {problems}"
