"""Target checks and progressive shifts on in-memory stores, with a settable clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.flags import InMemoryFlagStore
from riskstream.bootstrap import embedded_containment
from riskstream.config import load_config
from riskstream.core.incident_records import resolve
from riskstream.core.playbooks import Action
from riskstream.core.routing import RoutingFlag, bucket, change_id
from riskstream.core.targets import Evidence, OpenIncident, Served, choose, judge
from riskstream.core.timeutil import format_time
from riskstream.errors import BusError, ConfigError
from riskstream.router import FlagCache
from riskstream.services.containment import STEP_MONITOR, ContainmentService

T0 = 1_800_000_000.0

CONFIG = """\
version: 1
models:
  chatbot: {fallback_version: canned-v1}
playbooks:
  - name: rollback
    match: {type: safety, severity: critical}
    actions:
      - kind: route-to-version
        version: last-known-good
        targets: [fallback]
        steps: [10, 50, 100]
        dwell: 60
        require_evidence: REQUIRE
        revert_on_resolve: true
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _service(
    tmp_path: Path, require: bool = False
) -> tuple[ContainmentService, InMemoryBus, Clock]:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("REQUIRE", str(require).lower()))
    bus, clock = InMemoryBus(), Clock()
    service = embedded_containment(load_config(path), bus, clock=clock)
    for n, version in enumerate(("bot-1.4", "bot-1.5")):
        service.on_change_event(
            {"event_id": f"d{n}", "time": format_time(T0 - 3600 + n), "kind": "deploy",
             "subject": "chatbot", "version": version, "actor": "ci", "description": "release"}
        )  # fmt: skip
    return service, bus, clock


def _incident(incident_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": incident_id, "type": "safety", "severity": "critical",
        "status": "open", "subject": "chatbot", "monitor": "harm", "stream_key": "chatbot|g",
        "detected_at": format_time(T0), "onset_at": format_time(T0 - 60), "evidence": {},
        **extra,
    }  # fmt: skip


def _sick(incident_id: str, version: str) -> dict[str, Any]:
    return _incident(
        incident_id, type="refusal", severity="warning", stream_key=f"chatbot|{version}"
    )


def _flag(service: ContainmentService) -> RoutingFlag:
    flag = service.flags()["chatbot"]
    return flag


def _events(service: ContainmentService, name: str) -> list[dict[str, Any]]:
    return [e.after for e in service.audit() if e.after.get("event") == name]


# -- core ------------------------------------------------------------------------------


def test_rising_fractions_only_move_keys_one_way_and_each_key_stays_put() -> None:
    keys = [f"user-{n}" for n in range(5000)]
    flag = RoutingFlag("m", "new", traffic_fraction=0.1, previous_version="old")
    moved = {}
    for fraction in (0.1, 0.5, 1.0):
        at = flag.evolve(traffic_fraction=fraction)
        moved[fraction] = {k for k in keys if at.serves(k)[0] == "new"}
        assert moved[fraction] == {k for k in keys if at.serves(k)[0] == "new"}  # stable
    assert moved[0.1] < moved[0.5] < moved[1.0] == set(keys)
    assert 400 < len(moved[0.1]) < 600 and 2300 < len(moved[0.5]) < 2700
    assert bucket("m", "user-1") != bucket("other-model", "user-1")  # models bucket apart


def test_an_old_flag_record_without_a_fraction_reads_as_all_traffic() -> None:
    data = RoutingFlag("m", "v1", revision=3).to_data()
    del data["traffic_fraction"]
    assert RoutingFlag.from_data(data).traffic_fraction == 1.0
    assert "rollout" not in data and "previous_version" not in data  # written only when set


def test_the_router_cache_answers_per_key_during_a_shift() -> None:
    cache = FlagCache()
    cache.offer(RoutingFlag("m", "new", traffic_fraction=0.5, previous_version="old", revision=1))
    decisions = {cache.route("m", key=f"u{n}").version for n in range(50)}
    assert decisions == {"new", "old"}
    assert cache.route("m").version == "new"  # no key: the flag as it is, the caller samples
    assert cache.route("m", key="u7") == cache.route("m", key="u7")


def test_a_target_with_an_open_incident_is_passed_over_for_the_next() -> None:
    sick = Evidence("bot", "bot-1.4", "last-known-good", (OpenIncident("i1", "refusals up"),))
    spare = Evidence("bot", "canned", "fallback")
    pick, verdicts = choose([sick, spare], require_evidence=False)
    assert pick == 1 and [v.ok for v in verdicts] == [False, True]
    assert choose([sick, spare], require_evidence=True)[0] is None  # canned: no evidence
    left = Evidence("bot", "bot-1.3", "bot-1.3", served=(Served("incident x", "x"),))
    assert "only until containment left it for incident x" in judge(left, True).why


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("steps: [50, 10]", "steps must rise strictly"),
        ("steps: [10, 50]\n        dwell: 5\n        fraction: 1.0", r"the last step \(50%\)"),
        ("steps: [10, 100]", "steps need a dwell"),
        ("dwell: 5", "a dwell needs steps"),
    ],
)
def test_bad_steps_are_refused_with_the_line(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\nplaybooks:\n  - name: p\n    actions:\n      - kind: fallback\n"
        f"        {extra}\n"
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_an_action_stored_before_steps_reads_as_all_at_once() -> None:
    old = {"kind": "fallback", "version": None, "fraction": 1.0, "revert_on_resolve": False,
           "ttl_s": None, "channel": None}  # fmt: skip
    action = Action.from_data(old)
    assert (action.steps, action.targets, action.first_fraction) == ((), (), 1.0)


# -- the service -----------------------------------------------------------------------


def test_steps_advance_after_each_dwell_and_the_rest_stays_put(tmp_path: Path) -> None:
    service, _, clock = _service(tmp_path)
    assert service.on_incident(_incident("inc-1"))[0] == "applied"
    flag = _flag(service)
    assert (flag.active_version, flag.traffic_fraction, flag.previous_version) == (
        "bot-1.4", 0.1, "bot-1.5"
    )  # fmt: skip
    assert "target checked: bot-1.4 (last-known-good): no open incident names it" in flag.reason
    assert service.advance_steps() == []  # the dwell is not over
    clock.now += 61
    assert service.advance_steps()[0].startswith("applied: step 2/3 (50%)")
    clock.now += 61
    service.advance_steps()
    flag = _flag(service)
    assert (flag.traffic_fraction, flag.previous_version, flag.rollout) == (1.0, None, None)
    fractions = [e.after["traffic_fraction"] for e in service.audit() if e.after.get("incident_id")]
    assert fractions == [0.1, 0.5, 1.0]  # every step an audited flag change


def test_a_new_incident_on_the_target_rolls_the_step_back_at_once(tmp_path: Path) -> None:
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    clock.now += 10
    service.on_incident(_sick("inc-sick", "bot-1.4"))
    flag = _flag(service)
    assert (flag.active_version, flag.traffic_fraction, flag.rollout) == ("bot-1.5", 1.0, None)
    assert "new incident inc-sick" in flag.reason and flag.reason.startswith("rolled back")
    own = [orjson.loads(r.value) for r in bus.records("incidents")]
    assert [i["monitor"] for i in own] == [STEP_MONITOR]
    assert own[0]["stream_key"] == "chatbot|bot-1.4"
    clock.now += 120
    assert service.advance_steps() == []  # nothing left in flight


def test_an_incident_found_at_the_end_of_the_dwell_fails_the_step(tmp_path: Path) -> None:
    service, _, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    # An incident on bot-1.4 recorded without passing through on_incident's abort (as
    # a restarted worker finds one in the store): judged when the dwell ends.
    assert service._incidents is not None
    service._record_new("inc-late", _sick("inc-late", "bot-1.4"), clock.now)
    clock.now += 61
    (outcome,) = service.advance_steps()
    assert outcome.startswith("rolled back: new incident inc-late")
    assert _flag(service).active_version == "bot-1.5"


def test_a_shift_whose_step_cannot_be_judged_does_not_hold_back_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One shift whose step raises when judged (here: its rollback goes to a stored
    flag RoutingFlag.from_data refuses) stopped every shift after it in that tick, and
    in every tick after.  Now it is logged, naming the model, and counted, and the next
    shift steps on in the same tick."""
    service, _, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))  # chatbot: 10% on bot-1.4, its flag read first
    store = service._flags
    assert isinstance(store, InMemoryFlagStore)
    # What the shift's first step replaced, spoiled before the worker reads it.
    store._entries = [
        replace(e, before={**(e.before or {}), "updated_at": "not a time"})
        if e.change_id == change_id("inc-1", 0) else e
        for e in store._entries
    ]  # fmt: skip
    for n, version in enumerate(("rank-1", "rank-2")):
        service.on_change_event(
            {"event_id": f"r{n}", "time": format_time(T0 - 3600 + n), "kind": "deploy",
             "subject": "ranker", "version": version, "actor": "ci", "description": "release"}
        )  # fmt: skip
    service.on_incident(_incident("inc-2", subject="ranker", stream_key="ranker|g"))
    service._record_new("inc-late", _sick("inc-late", "bot-1.4"), clock.now)  # fails chatbot's
    clock.now += 61
    (said,) = service.run_due()
    assert said.startswith("progressive shift: applied: step 2/3 (50%) of the shift of ranker")
    assert service.flags()["ranker"].traffic_fraction == 0.5
    chatbot = _flag(service)
    assert (chatbot.active_version, chatbot.traffic_fraction) == ("bot-1.4", 0.1)  # as it was
    errors = service._metrics.timer_errors.labels("progressive steps")._value.get()
    assert errors == 1
    assert "timer: progressive steps: model chatbot, step 1/3" in caplog.text
    assert "not a time" in caplog.text  # the traceback


def test_a_rollback_that_keeps_raising_is_tried_again_at_each_tick_and_not_resumed(
    tmp_path: Path,
) -> None:
    """A step whose rollback raised was dropped from the worker's watch before the
    rollback was written, so the next tick took it for a step started before a restart:
    a ``step.resumed`` entry in the audit trail and on the incident's timeline, and a
    full dwell more before the rollback was tried again.  A rollback that kept raising
    left one such entry per dwell, on and on.  Now the step stays watched: the rollback
    is tried again at every tick, nothing is said to have resumed, and a worker that
    really restarts still says it once."""
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    store = service._flags
    assert isinstance(store, InMemoryFlagStore)
    # What the shift's first step replaced, spoiled: its rollback raises (as above).
    store._entries = [
        replace(e, before={**(e.before or {}), "updated_at": "not a time"})
        if e.change_id == change_id("inc-1", 0) else e
        for e in store._entries
    ]  # fmt: skip
    service._record_new("inc-late", _sick("inc-late", "bot-1.4"), clock.now)  # fails the step
    ticks = 0
    for _ in range(3):  # three dwells...
        clock.now += 61
        for _ in range(3):  # ...of three ticks each
            assert service.run_due() == []
            ticks += 1
            clock.now += 1
    assert _events(service, "step.resumed") == []
    errors = service._metrics.timer_errors.labels("progressive steps")._value.get()
    assert errors == ticks  # the rollback was tried at every tick, not once a dwell
    assert service._incidents is not None
    record = service._incidents.get("inc-1")
    assert record is not None
    assert not [e for e in record.timeline if "step resumed" in e.detail]
    flag = _flag(service)
    assert (flag.active_version, flag.traffic_fraction) == ("bot-1.4", 0.1)  # as it was
    # A worker that really restarts on these stores resumes the step, and says so once.
    again = ContainmentService(
        load_config(tmp_path / "c.yaml").containment, store, service._approvals,
        bus.producer(), service._metrics, clock=clock, incidents=service._incidents,
    )  # fmt: skip
    for _ in range(3):
        assert again.advance_steps() == []  # watched again for a full dwell from now
        clock.now += 1
    assert len(_events(again, "step.resumed")) == 1
    record = service._incidents.get("inc-1")
    assert record is not None
    assert len([e for e in record.timeline if "step resumed" in e.detail]) == 1


def test_a_step_whose_change_was_not_published_is_still_watched_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next step is written, then its publish fails: the step is in flight all the
    same.  It was watched only once published, so the next tick said it had been
    started before a restart and watched it for a dwell from then.  (The next tick
    publishes it from the outbox: see the tests of failed publishes below.)"""
    service, _, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    clock.now += 61

    def down(timeout: float = 10.0) -> None:
        raise BusError("the broker is down")

    monkeypatch.setattr(service._producer, "flush", down)
    (said,) = service.run_due()  # written; its publish raised: logged
    assert said.startswith("progressive shift: applied: step 2/3")
    monkeypatch.undo()
    assert _flag(service).traffic_fraction == 0.5  # written all the same
    clock.now += 1
    assert service.run_due() == []  # published now, not judged again
    assert _events(service, "step.resumed") == []
    clock.now += 60  # its dwell, from when it was written
    (said,) = service.run_due()
    assert said.startswith("progressive shift: applied: step 3/3")


def test_an_unhealthy_known_good_version_is_passed_over_for_the_fallback(tmp_path: Path) -> None:
    service, _, _ = _service(tmp_path)
    service.on_incident(_sick("inc-old", "bot-1.4"))  # no playbook acts on a warning
    assert service.on_incident(_incident("inc-1"))[0] == "applied"
    flag = _flag(service)
    assert (flag.active_version, flag.mode) == ("canned-v1", "fallback")
    assert "bot-1.4 (last-known-good) is not healthy: open incident inc-old" in flag.reason
    (check,) = _events(service, "target.checked")
    assert check["chosen"] == "canned-v1"


def test_no_healthy_target_leaves_the_decision_to_a_person(tmp_path: Path) -> None:
    service, _, _ = _service(tmp_path, require=True)
    service.on_incident(_sick("inc-old", "bot-1.4"))
    (outcome, *_) = service.on_incident(_incident("inc-1"))
    assert outcome.startswith("pending: no healthy target, so a person decides")
    assert "canned-v1 (fallback): no evidence it is healthy" in outcome
    assert _flag(service).active_version == "bot-1.5"  # nothing changed yet
    (pending,) = service.pending()
    assert "open incident inc-old" in pending.note
    service.decide(pending.action_id, "approved", "dr.okafor", "bot-1.4 will do for now")
    flag = _flag(service)
    assert flag.active_version == "bot-1.4"  # the person's decision stands over the check
    assert "applied on the approval of dr.okafor although no healthy target" in flag.reason


def test_an_open_incident_resolved_no_longer_refuses_its_target(tmp_path: Path) -> None:
    service, _, _ = _service(tmp_path)
    service.on_incident(_sick("inc-old", "bot-1.4"))
    assert service._incidents is not None
    service._incidents.update("inc-old", lambda r: r and resolve(r, "ops", T0, "fixed"))
    service.on_incident(_incident("inc-1"))
    assert _flag(service).active_version == "bot-1.4"


def test_a_restarted_worker_resumes_the_step_and_watches_it_again(tmp_path: Path) -> None:
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    store = service._flags
    assert isinstance(store, InMemoryFlagStore)
    # A new worker on the same stores: it knows the shift only from the flag.
    path = tmp_path / "c.yaml"
    again = ContainmentService(
        load_config(path).containment, store, service._approvals, bus.producer(),
        service._metrics, clock=clock, incidents=service._incidents,
    )  # fmt: skip
    clock.now += 61  # the step was due while it was down
    assert again.advance_steps() == []  # resumed: watched again for a full dwell
    assert _events(again, "step.resumed")
    assert _flag(again).traffic_fraction == 0.1
    clock.now += 61
    assert again.advance_steps()[0].startswith("applied: step 2/3")


def test_resolving_after_the_steps_reverts_the_whole_shift(tmp_path: Path) -> None:
    service, _, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    for _ in range(2):
        clock.now += 61
        service.advance_steps()
    assert _flag(service).traffic_fraction == 1.0
    (outcome,) = service.on_resolved(_incident("inc-1", status="resolved"))
    flag = _flag(service)
    assert outcome.startswith("reverted: applied")
    assert (flag.active_version, flag.traffic_fraction) == ("bot-1.5", 1.0)


def test_a_timeout_does_not_override_a_refused_target(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = CONFIG.replace("REQUIRE", "true").replace(
        "        revert_on_resolve: true\n",
        "        revert_on_resolve: true\n"
        "        approval: {required: true, timeout: 60, on_timeout: apply}\n",
    )
    path.write_text(text)
    bus, clock = InMemoryBus(), Clock()
    service = embedded_containment(load_config(path), bus, clock=clock)
    service.on_change_event(
        {"event_id": "d1", "time": format_time(T0 - 60), "kind": "deploy", "subject": "chatbot",
         "version": "bot-1.5", "actor": "ci", "description": "release"}
    )  # fmt: skip
    service.on_incident(_incident("inc-1"))
    (pending,) = service.pending()
    assert "no healthy target" in pending.note  # the approver would have read why
    clock.now += 61
    service.expire_due()
    assert _flag(service).active_version == "bot-1.5"  # nobody decided: nothing applied


# -- a publish that fails after its write --------------------------------------------


class _Flaky:
    """A producer whose publish to ``topic`` raises ``times`` times (the message is not
    taken), then goes through to the in-memory bus."""

    def __init__(self, inner: Any, topic: str, times: int = 1) -> None:
        self._inner, self._topic, self.left = inner, topic, times

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = ()
    ) -> None:
        if topic == self._topic and self.left > 0:
            self.left -= 1
            raise BusError("delivery to the broker failed (the broker is down)")
        self._inner.produce(topic, value, key, headers)

    def flush(self, timeout: float = 10.0) -> None:
        self._inner.flush(timeout)


def _flaky(service: ContainmentService, topic: str, times: int = 1) -> _Flaky:
    flaky = _Flaky(service._producer, topic, times)
    service._producer = service._announcer._producer = flaky
    return flaky


def _changes(bus: InMemoryBus, model_id: str = "chatbot") -> list[dict[str, Any]]:
    """The routing changes published for ``model_id``, in order (their data)."""
    return [
        orjson.loads(r.value) for r in bus.records("routing-changes") if r.key == model_id.encode()
    ]


def _timeline(service: ContainmentService, incident_id: str) -> list[str]:
    assert service._incidents is not None
    record = service._incidents.get(incident_id)
    return [] if record is None else [e.detail for e in record.timeline]


def test_a_rollback_whose_publish_failed_is_published_and_reported_at_the_next_tick(
    tmp_path: Path,
) -> None:
    """The rollback is written, then the broker does not take its routing change: the
    flag no longer carries the shift, so nothing tried again, the change never reached
    the topic and the failed step's incident was never opened.  Now both wait in the
    outbox, written with the rollback, and the next tick publishes them."""
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    service._record_new("inc-late", _sick("inc-late", "bot-1.4"), clock.now)  # fails the step
    clock.now += 61
    flaky = _flaky(service, "routing-changes")
    (said,) = service.run_due()  # written; the publish raised: logged
    assert said.startswith("progressive shift: rolled back: new incident inc-late")
    assert flaky.left == 0
    flag = _flag(service)
    assert (flag.active_version, flag.rollout) == ("bot-1.5", None)  # written all the same
    assert _changes(bus)[-1]["traffic_fraction"] == 0.1  # not published yet
    assert bus.records("incidents") == []
    assert [d for d in _timeline(service, "inc-1") if d.startswith("step rolled back")]
    clock.now += 1
    assert service.run_due() == []
    published = _changes(bus)[-1]
    assert (published["active_version"], published["revision"]) == ("bot-1.5", flag.revision)
    own = [orjson.loads(r.value) for r in bus.records("incidents")]
    assert [i["monitor"] for i in own] == [STEP_MONITOR]
    assert service._incidents is not None
    assert service._incidents.get(own[0]["incident_id"]) is not None
    clock.now += 1
    assert service.run_due() == []  # finished: not published or opened again
    assert len([i for i in bus.records("incidents")]) == 1
    assert _events(service, "step.resumed") == []


def test_a_rollback_whose_incident_was_not_published_opens_it_at_the_next_tick(
    tmp_path: Path,
) -> None:
    """The rollback is published, then the failed step's incident is not taken: the
    next tick publishes the incident, and the rollback not again."""
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    service._record_new("inc-late", _sick("inc-late", "bot-1.4"), clock.now)
    clock.now += 61
    _flaky(service, "incidents")
    (said,) = service.run_due()
    assert said.startswith("progressive shift: rolled back: new incident inc-late")
    assert bus.records("incidents") == []
    clock.now += 1
    assert service.run_due() == []
    own = [orjson.loads(r.value) for r in bus.records("incidents")]
    assert [i["monitor"] for i in own] == [STEP_MONITOR]
    # the rollback's change went at the first try, and was removed then: not again
    rollbacks = [r for r in bus.records("routing-changes") if dict(r.headers)["ce_id"] == (
        change_id(change_id("inc-1", 0), 0, "abort").encode())]  # fmt: skip
    assert len(rollbacks) == 1


def test_a_rollback_on_a_new_incident_whose_publish_failed_is_finished_by_the_timer(
    tmp_path: Path,
) -> None:
    """The same on the way in: an incident naming the target rolls the step back at
    once, and the broker does not take the rollback's change.  The incident is not
    dead-lettered: it waits for the broker (the worker retries it), its rollback
    written, and the next tick publishes the rollback and its incident."""
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    clock.now += 10
    _flaky(service, "routing-changes")
    with pytest.raises(BusError):  # the broker's: the worker retries the incident
        service.receive_incident(orjson.dumps(_sick("inc-sick", "bot-1.4")))
    assert bus.records("dead-letter") == []
    assert _flag(service).active_version == "bot-1.5"
    assert _changes(bus)[-1]["traffic_fraction"] == 0.1
    clock.now += 1
    assert service.run_due() == []
    assert _changes(bus)[-1]["active_version"] == "bot-1.5"
    own = [orjson.loads(r.value) for r in bus.records("incidents")]
    assert [i["monitor"] for i in own] == [STEP_MONITOR]
    incident, _ = service.receive_incident(orjson.dumps(_sick("inc-sick", "bot-1.4")))
    assert incident is not None  # the retry: handled, nothing published again
    assert len(bus.records("incidents")) == 1
    assert _changes(bus)[-1]["active_version"] == "bot-1.5"


@pytest.mark.parametrize("last", [False, True])
def test_a_next_step_whose_publish_failed_is_published_at_the_next_tick(
    tmp_path: Path, last: bool
) -> None:
    """The next step is written, then its publish fails: it is published at the next
    tick (the last step too, whose flag no longer carries the shift), and its move is
    on the incident's timeline."""
    service, bus, clock = _service(tmp_path)
    service.on_incident(_incident("inc-1"))
    if last:
        clock.now += 61
        service.run_due()  # step 2/3, published
    clock.now += 61
    _flaky(service, "routing-changes")
    (said,) = service.run_due()
    step = "step 3/3 (100%)" if last else "step 2/3 (50%)"
    assert said.startswith(f"progressive shift: applied: {step}")
    fraction = 1.0 if last else 0.5
    assert _flag(service).traffic_fraction == fraction  # written
    assert _changes(bus)[-1]["traffic_fraction"] != fraction  # not published
    clock.now += 1
    assert service.run_due() == []
    published = _changes(bus)[-1]
    assert (published["traffic_fraction"], published["revision"]) == (
        fraction, _flag(service).revision
    )  # fmt: skip
    assert f"{step}: applied" in _timeline(service, "inc-1")
    clock.now += 1
    assert service.run_due() == []  # finished
    assert _events(service, "step.resumed") == []


def test_a_lapse_whose_publish_failed_is_published_at_the_next_tick(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\nplaybooks:\n  - name: p\n    match: {type: safety}\n    actions:\n"
        "      - {kind: human-review, ttl: 60}\n"
    )
    bus, clock = InMemoryBus(), Clock()
    service = embedded_containment(load_config(path), bus, clock=clock)
    service.on_change_event(
        {"event_id": "d1", "time": format_time(T0 - 60), "kind": "deploy", "subject": "chatbot",
         "version": "bot-1.5", "actor": "ci", "description": "release"}
    )  # fmt: skip
    assert service.on_incident(_incident("inc-1")) == ["applied"]
    assert _flag(service).mode == "human-review"
    clock.now += 61
    _flaky(service, "routing-changes")
    assert service.run_due() == ["routing flag of chatbot lapsed after its ttl: restored"]
    assert (_flag(service).mode, _changes(bus)[-1]["mode"]) == ("normal", "human-review")
    clock.now += 1
    assert service.run_due() == []  # the publish raised; published now
    published = _changes(bus)[-1]
    assert (published["mode"], published["revision"]) == ("normal", _flag(service).revision)
    assert [d for d in _timeline(service, "inc-1") if d == "ttl lapsed: applied"]
    clock.now += 1
    assert service.run_due() == []
