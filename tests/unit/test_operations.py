"""What a person does about incidents, on in-memory stores: the path the API and CLI share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_operations
from riskstream.config import load_config
from riskstream.core.incident_records import IncidentFilter, headline
from riskstream.core.reports.settings import ReportSettings
from riskstream.errors import ContainmentError, InputError, NotFoundError
from riskstream.services.operations import OperatorService

CONFIG = """\
version: 1
models:
  diagnosis-v4: {known_good: dx-2.0}
playbooks:
  - name: clinical
    match: {subject: "diagnosis*"}
    actions:
      - {kind: human-review, fraction: 1.0, revert_on_resolve: true}
      - kind: route-to-version
        version: last-known-good
        approval: {required: true, timeout: 600}
"""


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _ops(tmp_path: Path) -> tuple[OperatorService, InMemoryBus]:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    bus = InMemoryBus()
    return embedded_operations(load_config(path), bus, clock=Clock()), bus


def _incident(incident_id: str = "inc-1", **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "type": "recall-drop",
        "severity": "critical",
        "status": "open",
        "subject": "diagnosis-v4",
        "monitor": "recall",
        "stream_key": "diagnosis-v4|subtype-c",
        "detected_at": "2026-12-06T07:36:00.000Z",
        "onset_at": "2026-12-03T07:00:00.000Z",
        "evidence": {"detector": "adwin", "value": "recall",
                     "before": {"mean": 0.88}, "after": {"mean": 0.3}},
        **extra,
    }  # fmt: skip


def _contained(tmp_path: Path) -> tuple[OperatorService, InMemoryBus]:
    ops, bus = _ops(tmp_path)
    ops._containment.on_incident(_incident())
    return ops, bus


def test_the_worker_records_the_incident_and_what_containment_did(tmp_path: Path) -> None:
    ops, _ = _contained(tmp_path)
    record = ops.incident("inc-1")
    kinds = [(e.kind, e.detail) for e in record.timeline]
    assert kinds[:2] == [("onset", "estimated onset"), ("detected", headline(_incident()))]
    assert kinds[2:] == [
        ("action", "human-review: applied"),
        ("action", "route-to-version: pending: approval required"),
    ]
    assert record.status == "contained"
    assert ops.flags()["diagnosis-v4"].mode == "human-review"


def test_approval_lands_on_the_timeline_and_in_the_audit_trail(tmp_path: Path) -> None:
    ops, _ = _contained(tmp_path)
    (pending,) = ops.actions("pending")
    with pytest.raises(ContainmentError, match="say who you are"):
        ops.decide(pending.action_id, True, " ")
    ops.decide(pending.action_id, True, "dr.okafor", "confirmed on the ward")
    record = ops.incident("inc-1")
    assert ("approved", "dr.okafor") in [(e.kind, e.actor) for e in record.timeline]
    assert ("action", "dr.okafor", "route-to-version: applied") in [
        (e.kind, e.actor, e.detail) for e in record.timeline
    ]
    assert ops.flags()["diagnosis-v4"].active_version == "dx-2.0"
    events = [e.after.get("event") for e in ops.audit()]
    assert "action.approved" in events
    assert ops.verify_audit().ok


def test_acknowledge_and_resolve_are_audited_and_resolve_reverts(tmp_path: Path) -> None:
    ops, bus = _contained(tmp_path)
    ops.acknowledge("inc-1", "ana", "looking")
    ops.acknowledge("inc-1", "ben", "me too")  # the first one stands
    record = ops.resolve("inc-1", "ana", "retrained")
    assert (record.acknowledged_by, record.resolved_by, record.status) == ("ana", "ana", "resolved")
    assert ops.flags()["diagnosis-v4"].mode == "normal"  # human-review reverted
    audit = [(e.actor, e.after.get("event")) for e in ops.audit()]
    assert ("ana", "incident.acknowledged") in audit and ("ana", "incident.resolved") in audit
    assert ("ben", "incident.acknowledged") not in audit
    published = [orjson.loads(r.value) for r in bus.records("incidents")]
    assert published[-1]["status"] == "resolved"
    assert ops.resolve("inc-1", "ben").resolved_by == "ana"  # resolving twice changes nothing


def test_a_resolve_that_crashed_before_publishing_is_completed_by_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record was written, then the process died before the publish: a retry
    answered "already resolved" and subscribers were never told."""
    ops, bus = _contained(tmp_path)
    produce = ops._producer.produce

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between the write and the publish")

    monkeypatch.setattr(ops._producer, "produce", crash)
    with pytest.raises(RuntimeError):
        ops.resolve("inc-1", "ana", "retrained")
    assert ops.incident("inc-1").status == "resolved" and ops.incident("inc-1").unpublished
    monkeypatch.setattr(ops._producer, "produce", produce)
    before = len(bus.records("incidents"))
    record = ops.resolve("inc-1", "ben", "retry")  # the retry completes it, as ana's
    assert (record.resolved_by, record.unpublished) == ("ana", False)
    published = [orjson.loads(r.value) for r in bus.records("incidents")[before:]]
    assert [(p["incident_id"], p["status"]) for p in published] == [("inc-1", "resolved")]
    assert ops.flags()["diagnosis-v4"].mode == "normal"  # the revert happened once
    resolved = [e for e in ops.audit() if e.after.get("event") == "incident.resolved"]
    assert [e.actor for e in resolved] == ["ana"]
    ops.resolve("inc-1", "ben")  # done: nothing more is published
    assert len(bus.records("incidents")) == before + 1


def test_filters_and_unknown_ids(tmp_path: Path) -> None:
    ops, _ = _contained(tmp_path)
    ops._containment.on_incident(_incident("inc-2", severity="warning", subject="other"))

    def ids(where: IncidentFilter) -> list[str]:
        return [r.incident_id for r in ops.incident_page(where).items]

    assert ids(IncidentFilter(min_severity="critical")) == ["inc-1"]
    assert ids(IncidentFilter(status="open")) == ["inc-2"]
    with pytest.raises(NotFoundError, match="riskstream incidents list"):
        ops.incident("nope")
    with pytest.raises(InputError, match="use one of"):
        IncidentFilter(status="closed")


def test_a_manual_flag_change_needs_a_reason_and_is_audited(tmp_path: Path) -> None:
    ops, _ = _contained(tmp_path)
    with pytest.raises(ContainmentError, match="needs a reason"):
        ops.set_flag("diagnosis-v4", "ana", "", mode="normal")
    flag = ops.set_flag("diagnosis-v4", "ana", "ward confirmed safe", mode="normal")
    assert (flag.mode, flag.actor, flag.reason) == ("normal", "ana", "manual: ward confirmed safe")
    with pytest.raises(ContainmentError, match="give a version"):
        ops.set_flag("new-model", "ana", "first", mode="fallback")


def test_related_incidents_form_one_group_led_by_the_first(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG + "lineage:\n  sensor-7: [diagnosis-v4]\ncorrelation_window: 3600\n")
    ops = embedded_operations(load_config(path), InMemoryBus(), clock=Clock())
    worker = ops._containment
    worker.on_incident(_incident("first"))
    worker.on_incident(
        _incident("same-model", type="drift", detected_at="2026-12-06T07:50:00.000Z")
    )
    worker.on_incident(
        _incident("upstream", subject="sensor-7", detected_at="2026-12-06T08:00:00.000Z")
    )
    worker.on_incident(_incident("later", detected_at="2026-12-06T09:40:00.000Z"))
    worker.on_incident(_incident("elsewhere", subject="other-model"))
    groups = {r.incident_id: r.group for r in ops.incident_page().items}
    assert groups == {
        "first": "first", "same-model": "first", "upstream": "first",
        "later": "later", "elsewhere": "elsewhere",
    }  # fmt: skip
    related = [e.detail for e in ops.incident("first").timeline if e.kind == "correlated"]
    assert len(related) == 2 and "related incident upstream" in related[1]
    ops.resolve("first", "ana")
    worker.on_incident(_incident("after-resolve", detected_at="2026-12-06T08:10:00.000Z"))
    assert ops.incident("after-resolve").group == "first"  # the story keeps its name


def test_a_manual_override_refuses_values_the_serving_layer_cannot_act_on(tmp_path: Path) -> None:
    ops, _ = _contained(tmp_path)
    for kwargs, message in (
        ({}, "say what to change"),
        ({"mode": "banana"}, "use one of normal, fallback"),
        ({"traffic_fraction": 1.5}, "from 0 to 1"),
        ({"version": " "}, "must not be empty"),
    ):
        with pytest.raises(InputError, match=message):
            ops.set_flag("diagnosis-v4", "ana", "why", **kwargs)
    assert ops.flag("diagnosis-v4").mode == "human-review"  # nothing changed
    with pytest.raises(NotFoundError, match="no routing flag for 'nope'"):
        ops.flag("nope")


def test_actions_by_incident_and_unknown_or_forbidden_decisions(tmp_path: Path) -> None:
    from riskstream.core.approvals import PendingAction
    from riskstream.errors import NotPermittedError

    ops, _ = _contained(tmp_path)
    (pending,) = ops.actions("pending", incident_id="inc-1")
    assert ops.actions("pending", incident_id="inc-2") == []
    assert ops.action(pending.action_id) == pending
    with pytest.raises(InputError, match="use one of pending"):
        ops.actions("waiting")
    with pytest.raises(NotFoundError, match="no action 'nope'"):
        ops.decide("nope", True, "dr.okafor")
    asked = PendingAction("own", "inc-1", "diagnosis-v4", {"kind": "block"}, "dr.lee", 0.0, None)
    ops._containment._approvals.add(asked)
    with pytest.raises(NotPermittedError, match="may not approve it too"):
        ops.decide("own", True, "dr.lee")
    ops.decide(pending.action_id, False, "dr.okafor", "not needed")
    with pytest.raises(ContainmentError, match="already rejected"):
        ops.decide(pending.action_id, True, "dr.okafor")
    ops.ping()  # the in-memory store always answers


def test_every_list_says_its_next_page_and_an_exactly_full_last_page_has_none(
    tmp_path: Path,
) -> None:
    """The API computed ``next`` in its routes and the CLI guessed it from the page's
    length; the service's pages carry it now, for both."""
    ops, _ = _contained(tmp_path)
    ops._containment.on_incident(_incident("inc-2"))
    for model in ("m-a", "m-b"):
        ops.set_flag(model, "ana", "hand-set", version="v1")
    actions = [a.action_id for a in ops.actions()]
    flags = sorted(ops.flags())
    assert (len(actions), len(flags)) == (2, 3)
    first = ops.action_page(limit=1)
    assert ([a.action_id for a in first.items], first.next) == (actions[:1], actions[0])
    last = ops.action_page(limit=1, after=first.next)
    assert ([a.action_id for a in last.items], last.next) == (actions[1:], None)
    assert ops.action_page(limit=2).next is None  # exactly full, and all of them
    page = ops.flag_page(limit=2)
    assert ([f.model_id for f in page.items], page.next) == (flags[:2], flags[1])
    assert ops.flag_page(limit=1, after=page.next).next is None
    assert ops.flag_page(limit=3).next is None
    for limit in (0, -1):
        with pytest.raises(InputError, match="a page size of at least 1"):
            ops.action_page(limit=limit)
        with pytest.raises(InputError, match="a page size of at least 1"):
            ops.flag_page(limit=limit)
        with pytest.raises(InputError, match="a page size of at least 1"):
            ops.incident_page(limit=limit)


@pytest.mark.parametrize("blank", [" ", "  \n\t ", "\u00a0", "\u3000\n"])
def test_a_note_made_only_of_spaces_is_refused_before_anything_is_written(
    tmp_path: Path, blank: str
) -> None:
    """It was taken and stored: the timeline and the audit trail held a note that says
    nothing.  The CLI's --note and the API's note both come here."""
    ops, _ = _contained(tmp_path)
    (pending,) = ops.actions("pending")
    said = f"note {blank!r} is only spaces and says nothing: write it out, or leave the note out"
    for write in (
        lambda: ops.acknowledge("inc-1", "ana", blank),
        lambda: ops.resolve("inc-1", "ana", blank),
        lambda: ops.decide(pending.action_id, True, "dr.okafor", blank),
        lambda: ops.decide(pending.action_id, False, "dr.okafor", blank),
    ):
        with pytest.raises(InputError) as refused:
            write()
        assert str(refused.value).startswith(said)
    record = ops.incident("inc-1")
    assert (record.status, record.acknowledged_by, ops.action(pending.action_id).status) == (
        "contained", None, "pending"
    )  # fmt: skip
    assert ops.acknowledge("inc-1", "ana", "").acknowledged_by == "ana"  # no note: fine
    assert ops.resolve("inc-1", "ana", " retrained\n").status == "resolved"


def test_one_flag_is_read_alone_not_with_every_model_s(tmp_path: Path) -> None:
    """Reading, overriding or reporting on one model read every model's flag (the whole
    hash): with 10,000 models, each API call decoded 10,000 flags."""
    ops, _ = _contained(tmp_path)
    store = ops._containment._flags
    whole = []
    real_all = store.all
    store.all = lambda: whole.append(1) or real_all()  # type: ignore[method-assign]
    assert ops.flag("diagnosis-v4").mode == "human-review"
    ops.set_flag("diagnosis-v4", "alice", "checking", mode="fallback", approver=True)
    assert "diagnosis-v4" in ops.report("inc-1", "art73", "md", ReportSettings())
    with pytest.raises(NotFoundError):
        ops.flag("other-model")
    assert whole == []
