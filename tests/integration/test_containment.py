"""The containment worker (faust) on a real broker and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis

from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.core.enrichment import suspected_changes
from riskstream.router import Router
from support import (
    CONTAINMENT_YAML,
    START,
    ContainmentProcess,
    Setup,
    create_topics,
    deploy,
    incident,
    make_setup,
    read_topic,
    send_by_subject,
    wait_for,
)


def _setup(tmp_path: Path, name: str, bootstrap: str) -> Setup:
    setup = make_setup(tmp_path, name, extra_yaml=CONTAINMENT_YAML)
    create_topics(bootstrap, setup.topics.values(), partitions=1)
    return setup


def _cli(redis_url: str, namespace: str, setup: Setup, bootstrap: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "riskstream", *args, "--redis-url", redis_url,
         "--namespace", namespace, "--config", str(setup.config_path),
         *(["--bootstrap", bootstrap] if args[0] == "actions" and args[1] != "list" else [])],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "LOGNAME": "dr.okafor"},  # the OS user recorded beside --by
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.stdout + done.stderr


def test_an_incident_flips_the_flag_the_router_sees_it_and_a_redelivery_changes_nothing(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = _setup(tmp_path, unique("contain"), kafka_bootstrap)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    router = Router(redis_url, namespace=namespace)
    worker = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "worker.log", namespace
    )
    try:
        deploys = [
            deploy("d1", "chatbot", "bot-1.4", START),
            deploy("d2", "chatbot", "bot-1.5", START + 60),
        ]
        send_by_subject(kafka_bootstrap, setup.topics["change"], *deploys)
        wait_for("the deploys", lambda: (f := flags.get("chatbot")) and f.revision == 2)
        # listing the deploys as a processor that read them does (else the worker lists
        # them itself, by an update: one more routing-change message below)
        listed = suspected_changes(deploys, ["chatbot"], START + 3000, START + 3600, 6 * 3600)
        inc = incident("inc-1", "chatbot", suspected_changes=listed)
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], inc)
        decision = router.wait_for("chatbot", 3, timeout=60)
        assert (decision.version, decision.mode, decision.incident_id) == (
            "bot-1.4", "normal", "inc-1"
        )  # fmt: skip
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], inc)
        wait_for("the redelivery", lambda: "incident inc-1: ['duplicate']" in worker.log())
        assert flags.get("chatbot").revision == 3
        assert [e.change_id for e in flags.audit()].count(flags.audit()[-1].change_id) == 1
        assert len(flags.audit()) == 3 and flags.verify_audit().ok
    finally:
        router.close()
        worker.stop()
    changes = read_topic(kafka_bootstrap, setup.topics["routing_changes"])
    ids = [dict(m.headers())["ce_id"] for m in changes]
    # the redelivery changed nothing, and its change, published, is not published again
    assert len(ids) == 3 and len(set(ids)) == 3
    assert flags.outbox().size == 0


def test_killed_between_the_flag_write_and_the_offset_commit_it_still_flips_once(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = _setup(tmp_path, unique("crashc"), kafka_bootstrap)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    no_commit = ("--commit-every", "100000", "--commit-interval", "600")
    worker = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "w1.log", namespace, *no_commit
    )
    try:
        send_by_subject(
            kafka_bootstrap, setup.topics["change"],
            deploy("d1", "chatbot", "a", START), deploy("d2", "chatbot", "b", START + 1),
        )  # fmt: skip
        wait_for("the deploys", lambda: (f := flags.get("chatbot")) and f.revision == 2)
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], incident("inc-k", "chatbot"))
        wait_for("the flip", lambda: (f := flags.get("chatbot")) and f.incident_id == "inc-k")
    finally:
        worker.kill()  # the flag is written; the offset was never committed
    restarted = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "w2.log", namespace
    )
    try:
        wait_for("the redelivery", lambda: "incident inc-k: ['duplicate']" in restarted.log())
    finally:
        restarted.stop()
    flag = flags.get("chatbot")
    assert (flag.active_version, flag.revision) == ("a", 3)
    assert len(flags.audit()) == 3 and flags.verify_audit().ok
    # each change on the topic, as written, whenever the first worker was killed: before
    # its publish (the second publishes it from the outbox) or after (not again)
    changes = read_topic(kafka_bootstrap, setup.topics["routing_changes"], idle=1)
    written = {e.change_id: e.after for e in flags.audit()}
    assert {dict(m.headers())["ce_id"].decode() for m in changes} == set(written)
    assert all(orjson.loads(m.value()) == written[dict(m.headers())["ce_id"].decode()]
               for m in changes)  # fmt: skip
    assert flags.outbox().size == 0


def test_clinical_rollback_waits_for_a_named_approver_and_tampering_is_detected(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = _setup(tmp_path, unique("approve"), kafka_bootstrap)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w.log", namespace)
    try:
        send_by_subject(
            kafka_bootstrap, setup.topics["incidents"],
            incident("med-1", "diagnosis", type="error-rate", severity="critical"),
        )  # fmt: skip
        wait_for("human review", lambda: (f := flags.get("diagnosis")) and f.mode == "human-review")
        (pending,) = wait_for("the pending rollback", lambda: approvals.list("pending"))  # type: ignore[misc]
        listed = _cli(redis_url, namespace, setup, kafka_bootstrap, "actions", "list")
        assert pending.action_id in listed and "route-to-version" in listed
    finally:
        worker.stop()
    approve = ("actions", "approve", pending.action_id, "--by", "dr.okafor", "--note", "seen")
    out = _cli(redis_url, namespace, setup, kafka_bootstrap, *approve)
    okafor = "dr.okafor (os user dr.okafor)"
    assert f"{pending.action_id}: approved by {okafor}" in out
    flag = flags.get("diagnosis")
    assert (flag.active_version, flag.mode, flag.actor) == ("dx-2.0", "normal", okafor)
    decided = approvals.get(pending.action_id)
    assert (decided.status, decided.decided_by) == ("applied", okafor)

    # human-review applied, the approval (an audit event), the rollback by the approver
    assert "intact: 3 entries" in _cli(
        redis_url, namespace, setup, kafka_bootstrap, "audit", "verify"
    )
    client = redis.Redis.from_url(redis_url)
    key = f"rs:{{flags|{namespace}}}:audit"
    entries = client.xrange(key)
    forged = orjson.loads(entries[0][1][b"entry"])
    forged["actor"] = "someone-else"  # rewrite history: the first entry, same id
    client.delete(key)
    for n, (entry_id, fields) in enumerate(entries):
        client.xadd(key, {b"entry": orjson.dumps(forged)} if n == 0 else fields, id=entry_id)
    out = _cli(redis_url, namespace, setup, kafka_bootstrap, "audit", "verify")
    assert "TAMPERED" in out and "seq 1" in out


def test_rejection_expiry_and_resolution_on_real_redis_and_kafka(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The service on the real stores: what the worker runs, driven step by step."""
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_containment

    namespace = unique("ns")
    extra = CONTAINMENT_YAML + (
        "  - name: ranker\n    match: {subject: ranker}\n    actions:\n"
        "      - {kind: block, approval: {required: true, timeout: 1, on_timeout: apply}}\n"
    )
    setup = make_setup(tmp_path, unique("life"), extra_yaml=extra)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    service = kafka_containment(
        setup.config, kafka_bootstrap, redis_url, CollectorRegistry(), namespace
    )
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)

    # Rejected: the clinical rollback never happens; the review stays.
    service.on_incident(incident("med-r", "diagnosis", type="error-rate"))
    (clinical,) = approvals.list("pending")
    service.decide(clinical.action_id, "rejected", "dr.lee", "false alarm")
    assert flags.get("diagnosis").mode == "human-review"
    assert approvals.get(clinical.action_id).status == "rejected"

    # Expired: this playbook applies on timeout.
    service.on_incident(incident("rank-1", "ranker", type="drift"))
    assert flags.get("ranker") is None
    time.sleep(1.2)
    (expired,) = service.expire_due()
    assert expired.status == "expired"
    assert flags.get("ranker").mode == "blocked"

    # Resolved: the rollback marked revert_on_resolve is undone.
    for event in (deploy("e1", "chatbot", "v1", START), deploy("e2", "chatbot", "v2", START + 1)):
        service.on_change_event(event)
    service.on_incident(incident("bot-9", "chatbot"))
    assert flags.get("chatbot").active_version == "v1"
    assert service.on_incident(incident("bot-9", "chatbot", status="resolved")) == [
        "reverted: applied"
    ]
    assert flags.get("chatbot").active_version == "v2"
    assert flags.verify_audit().ok


def test_a_storm_is_one_decision_and_resolved_incidents_are_not_contained_later(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Issue 12 (items 8, 9, 12) through the faust worker on a real broker and Redis."""
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_operations
    from riskstream.errors import ContainmentError, NotPermittedError

    namespace = unique("ns")
    extra = CONTAINMENT_YAML + (
        "  - name: drift\n    match: {type: drift}\n    actions:\n"
        "      - {kind: human-review}\n"
        "limits: {max_models: 100, storm_incidents: 5, storm_window: 600}\n"
    )
    setup = make_setup(tmp_path, unique("storm"), extra_yaml=extra)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w.log", namespace)
    drifts = [
        incident(f"drift-{i:02d}", f"m-{i:02d}", type="drift", monitor="feature-drift")
        for i in range(25)
    ]
    clinical = incident("med-1", "diagnosis", type="error-rate", monitor="missed")
    try:
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], clinical, *drifts)

        def storm_group() -> object:
            for action in approvals.list("pending"):
                if action.group and len(approvals.members(action.action_id)) == 20:
                    return action
            return None

        group = wait_for("the storm's grouped action with 20 members", storm_group)
        assert group.group == "feature-drift" and group.model_id == "*"  # type: ignore[attr-defined]
        reviewed = {m for m, f in flags.all().items() if f.mode == "human-review"}
        assert reviewed == {"diagnosis"} | {f"m-{i:02d}" for i in range(5)}
        (rollback,) = approvals.list("pending", incident_id="med-1")
        assert len(approvals.list("pending")) == 2  # 21 incidents held: two decisions

        ops = kafka_operations(
            setup.config, kafka_bootstrap, redis_url, CollectorRegistry(), namespace
        )
        # Item 8: resolving expires the incident's pending action; approving it fails.
        ops.resolve("med-1", "ana", "false alarm")
        assert approvals.get(rollback.action_id).status == "expired"  # type: ignore[union-attr]
        with pytest.raises(ContainmentError, match="resolved"):
            ops.decide(rollback.action_id, True, "dr.okafor")
        assert flags.get("diagnosis").mode == "human-review"  # type: ignore[union-attr]

        # Item 12: one approval contains every member still open.
        ops.resolve("drift-07", "ana", "a sensor glitch")
        ops.decide(group.action_id, True, "dr.lee", "one cause: the feature pipeline")  # type: ignore[attr-defined]
        reviewed = {m for m, f in flags.all().items() if f.mode == "human-review"}
        assert reviewed == {"diagnosis"} | {f"m-{i:02d}" for i in range(25)} - {"m-07"}
        assert flags.get("m-12").actor == "dr.lee"  # type: ignore[union-attr]
        member = ops.incident("drift-12")
        assert any(e.actor == "dr.lee" and e.kind == "action" for e in member.timeline)

        # Item 9: an operator cannot undo what an approver approved; an approver can.
        with pytest.raises(NotPermittedError, match=r"approval of dr\.lee"):
            ops.set_flag("m-12", "ana", "looks fine", mode="normal")
        assert ops.set_flag("m-12", "dr.okafor", "ok", mode="normal", approver=True).mode == (
            "normal"
        )
        assert flags.verify_audit().ok
    finally:
        worker.stop()
