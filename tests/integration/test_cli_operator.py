"""The operator commands as a person runs them, against a real broker and a real Redis.

The containment worker records the incident in Redis; then every command runs as
its own ``python -m riskstream`` process, the way someone at a terminal would.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from support import (
    CONTAINMENT_YAML,
    ContainmentProcess,
    create_topics,
    incident,
    make_setup,
    produce,
    read_topic,
    wait_for,
)


def test_incidents_and_flags_from_the_command_line(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("cli"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    records = RedisIncidentStore.from_url(redis_url, namespace=namespace)

    def cli(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "riskstream", *args, "--redis-url", redis_url,
             "--namespace", namespace, "--config", str(setup.config_path),
             "--bootstrap", kafka_bootstrap],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "LOGNAME": "ops1"},  # the OS user recorded beside --by
        )  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout + done.stderr

    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w.log", namespace)
    try:
        med = incident("med-1", "diagnosis", type="error-rate", severity="critical")
        produce(kafka_bootstrap, setup.topics["incidents"], [(b"diagnosis", orjson.dumps(med))])
        wait_for(
            "the worker's record",
            lambda: (r := records.get("med-1")) is not None and len(r.timeline) >= 4,
        )
    finally:
        worker.stop()

    listed = cli("incidents", "list", "--status", "unresolved")
    header, row = listed.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "SEVERITY"]
    assert row.split()[:3] == ["med-1", "contained", "critical"]
    (line,) = cli("incidents", "list", "--json").splitlines()
    assert orjson.loads(line)["incident"]["subject"] == "diagnosis"
    assert cli("incidents", "list", "--status", "resolved") == "no incidents match these filters\n"

    shown = cli("incidents", "show", "med-1")
    assert shown.startswith("med-1  CONTAINED\ncritical error-rate on diagnosis|group-b")
    assert "human-review: applied" in shown and "route-to-version: pending" in shown
    assert "riskstream incidents list" in cli("incidents", "show", "nope", code=2)

    assert cli("incidents", "ack", "med-1", "--by", "ana", "--note", "on it") == (
        "med-1: acknowledged by ana (os user ops1)\n"
    )
    out = cli(
        "flags", "set", "diagnosis", "--by", "ana", "--reason", "ward asked for shadow",
        "--version", "dx-2.0", "--mode", "shadow", "--traffic", "0.5",
    )  # fmt: skip
    assert out.startswith("diagnosis: set to dx-2.0 mode=shadow traffic=50%")
    flag = RedisFlagStore.from_url(redis_url, namespace=namespace).get("diagnosis")
    assert (flag.mode, flag.actor, flag.reason) == (
        "shadow",
        "ana (os user ops1)",
        "manual: ward asked for shadow",
    )
    assert "shadow" in cli("flags", "get", "diagnosis")

    # lists follow the page's next: a last page exactly full says nothing more
    header, held = cli("actions", "list", "--limit", "1").splitlines()  # no "(more: ...)"
    assert held.split()[1:3] == ["pending", "route-to-version"]
    cli("flags", "set", "ranker", "--by", "ana", "--reason", "pinned", "--version", "r-1")
    more = shlex.join(
        ["riskstream", "flags", "get", "--limit", "1", "--config", str(setup.config_path),
         "--namespace", namespace, "--after", "diagnosis"]
    )  # fmt: skip
    listed = cli("flags", "get", "--limit", "1").splitlines()
    assert [line.split()[0] for line in listed[1:-1]] == ["diagnosis"]
    assert listed[-1] == f"(more: {more})"
    listed = cli(*shlex.split(more)[1:]).splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["ranker"]  # the last: no "(more: ...)"

    draft = cli("report", "med-1", "--kind", "art73")
    assert draft.startswith("# Serious incident report (EU AI Act, Article 73)\n")
    assert "| Acknowledged | by: ana (os user ops1); at: " in draft
    assert "dx-2.0, mode shadow, 50%" in draft
    skeleton = orjson.loads(cli("report", "med-1", "--kind", "postmortem", "--format", "json"))
    assert skeleton["timeline"][-1]["kind"] == "acknowledged"

    assert cli("incidents", "resolve", "med-1", "--by", "ana", "--note", "retrained") == (
        "med-1: resolved by ana (os user ops1)\n"
    )
    shown = orjson.loads(cli("incidents", "show", "med-1", "--json"))
    assert (shown["status"], shown["acknowledged_by"], shown["resolved_by"]) == (
        "resolved", "ana (os user ops1)", "ana (os user ops1)"
    )  # fmt: skip
    kinds = [e["kind"] for e in shown["timeline"]]
    # resolving expired the rollback still waiting for approval (issue 12, item 8)
    assert kinds[:2] == ["onset", "detected"]
    assert kinds[-3:] == ["acknowledged", "resolved", "expired"]
    published = [
        orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, setup.topics["incidents"])
    ]
    assert [p["status"] for p in published] == ["open", "resolved"]
    assert "audit trail intact" in cli("audit", "verify")
