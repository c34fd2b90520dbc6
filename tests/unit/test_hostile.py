"""Hostile input against the pure parts and the embedded processor: what an attacker
(or a broken producer) can send must never crash, wedge, merge streams or wipe state.

Each attack is a row; the integration twin (real broker and Redis) is
tests/integration/test_hostile.py.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import embedded_operations, embedded_processor
from riskstream.config import Config, load_config
from riskstream.core.fields import key_getter, key_part, legacy_key, split_key
from riskstream.core.groups import group_getter
from riskstream.core.learned import LearnedStream, learned_params
from riskstream.core.monitors import PartitionDetectors, saved_as_data
from riskstream.core.state_check import encode_checked
from riskstream.core.state_keys import SPEC_MARK, STATE_KEY_SEPARATOR, StateKind
from riskstream.core.state_keys import parse as parse_state_key
from riskstream.core.targets import names_target
from riskstream.core.timeutil import format_time
from riskstream.services.operations import OperatorService

NOW = 1.8e9
CONFIG = load_config(None)
SCOPE = CONFIG.processor.group_id
T = CONFIG.topics


# -- A1: a near-zero learned spread, then a huge jump --------------------------------------


@pytest.mark.parametrize(
    ("kind", "jump"), [("shift", 1e5), ("noise", 1e5), ("outlier", 1e5), ("shift", 1e100),
                       ("shift", -1e100), ("noise", 1e100), ("outlier", 1e100)]
)  # fmt: skip
def test_a_huge_jump_after_a_near_zero_spread_saturates_instead_of_raising(
    kind: str, jump: float
) -> None:
    """0 and 1e-150 through half the warm-up, then a jump: ``(a - 2) ** 2`` raised
    OverflowError in the tail fit (the chaos test's poison pill until it was fixed),
    and shift's ``(d / spread) ** 2`` in learning the wander (1e100 is the clamp,
    specs.MAX_MAGNITUDE)."""
    stream = LearnedStream(kind, learned_params(kind, {}), 100)
    for i in range(60):
        stream.update(1e-150 * (i % 2), float(i))
    stream.update(jump, 60.0)
    for i in range(61, 400):
        stream.update(1e-150 * (i % 2), float(i))
    stream.update(jump, 400.0)  # and once more, fitted
    snap = stream.snapshot()
    _, bad = encode_checked(snap)
    assert bad is None  # saved and restored like any other stream
    assert all(math.isfinite(v) for v in snap["base"] if not isinstance(v, str))


# -- A2: stream keys are injective and hold no control character ----------------------------


def test_distinct_key_tuples_never_share_a_stream_key() -> None:
    of = key_getter(["model_id", "segment.group"])
    tuples = [("a|b", "c"), ("a", "b|c"), ("a\\", "|c"), ("a\\|", "c"), ("a", "\\|c"), ("", "|")]
    keys = [of({"model_id": m, "segment": {"group": g}}) for m, g in tuples]
    assert len(set(keys)) == len(tuples)
    assert [tuple(split_key(k)) for k in keys] == tuples
    groups = group_getter(["segment.a", "segment.b"])
    xy_z, x_yz = {"segment": {"a": "x|y", "b": "z"}}, {"segment": {"a": "x", "b": "y|z"}}
    assert groups(xy_z) != groups(x_yz)


def test_key_parts_round_trip_and_never_hold_a_control_character() -> None:
    rng = random.Random(7)
    alphabet = "ab|\\x0\x00\x17\x18\x1f\x7f\x85é\u202e "
    for _ in range(2000):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in "abc"]
        key = "|".join(key_part(p) for p in parts)
        assert split_key(key) == parts
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key)
    assert key_part("s-0001") == "s-0001"  # ordinary ids are their own keys


def test_a_target_is_found_in_an_escaped_key() -> None:
    incident = {"subject": "bot", "stream_key": key_part("bot") + "|" + key_part("v|1")}
    assert names_target(incident, "bot", "v|1") and not names_target(incident, "bot", "v")


SENSOR = (
    "version: 1\nmonitors:\n"
    "  - {name: drift, reads: sensor, key: sensor_id, value: value, detector: shift, warmup: 20}\n"
    "  - {name: pair, reads: sensor, key: [line_id, sensor_id], value: value,"
    " detector: shift, warmup: 20}\n"
)


def _sensor(i: int, sensor: str, line: str = "l1", value: float | None = None) -> dict[str, Any]:
    v = 20.0 + random.Random(i).gauss(0, 1) if value is None else value
    return {"event_id": f"{sensor}/{i}", "time": format_time(NOW - 5000 + i), "sensor_id": sensor,
            "line_id": line, "value": v}  # fmt: skip


def test_state_saved_with_unescaped_keys_is_rekeyed_and_an_ambiguous_key_dropped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(SENSOR)
    specs = load_config(path).monitors
    old = PartitionDetectors(specs, "sensor")
    for i in range(40):
        for line, sensor in (("l1", "a|b"), ("l1", "c\\d"), ("l|2", "e")):
            old.observe(_sensor(i, sensor, line))
    saved = old.take_changed()
    legacy: dict[str, bytes] = {}  # as the version before escaping wrote it
    for state_key, raw in saved.items():
        name, kind, key = parse_state_key(state_key)
        if kind is StateKind.SPEC:
            spec = next(s for s in specs if s.name == name)
            legacy[state_key] = orjson.dumps(spec.fingerprint(legacy=True))
        elif kind is StateKind.STREAM:
            legacy[name + STATE_KEY_SEPARATOR + "|".join(split_key(key))] = raw
        else:
            legacy[state_key] = raw
    new = PartitionDetectors(specs, "sensor")
    resets = new.load(legacy)
    # ("l1", "a|b") and ("l|2", "e") were saved as "l1|a|b" and "l|2|e": which bar split?
    assert sorted((r.monitor, r.stream_key) for r in resets) == [
        ("pair", "l1|a|b"),
        ("pair", "l|2|e"),
    ]
    assert set(new._by_name["drift"].streams) == {r"a\|b", "c\\\\d", "e"}
    assert set(new._by_name["pair"].streams) == {"l1|c\\\\d"}
    assert new._by_name["drift"].streams[r"a\|b"].n == 40  # its state, not a fresh one
    written = new.take_changed()
    assert "drift\x1f" + r"a\|b" in written and "drift\x1fa|b" in new.take_deleted()
    assert (
        orjson.loads(written["drift" + STATE_KEY_SEPARATOR + SPEC_MARK])
        == next(s for s in specs if s.name == "drift").fingerprint()
    )
    assert legacy_key("x|y", 2) == "x|y" and legacy_key("x|y|z", 2) is None


# -- B: hostile events through the embedded processor ----------------------------------------


def _event(topic: str, i: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        T.sensor: {"sensor_id": "s1", "value": 20.0},
        T.inference: {
            "model_id": "m1",
            "prediction_id": f"p{i}",
            "prediction": {"score": 0.5},
            "segment": {"group": "a"},
            "safety": {"harmful": 0.1},
        },
        T.label: {"model_id": "m1", "prediction_id": f"p{i}", "label": 1},
        T.change: {"kind": "deploy", "subject": "m1", "version": "v2", "actor": "ci"},
    }[topic]
    event = {"event_id": f"{topic}/{i}", "time": format_time(NOW - 1000 + i), **base, **changes}
    return {k: v for k, v in event.items() if v is not ...}


def _raw(topic: str, **changes: Any) -> bytes:
    return orjson.dumps(_event(topic, 9999, **changes))


TIME = format_time(NOW - 10).encode()
# (name, topic, value bytes or None, key or None, the dead-letter reason or None: applied)
ATTACKS: list[tuple[str, str, bytes | None, bytes | None, str | None]] = [
    ("NaN", T.sensor, b'{"event_id":"x","time":"%s","sensor_id":"s1","value":NaN}' % TIME,
     b"s1", "nan_or_infinity"),
    ("Infinity", T.sensor, b'{"event_id":"x","time":"%s","sensor_id":"s1","value":-Infinity}'
     % TIME, b"s1", "nan_or_infinity"),
    ("1e400", T.sensor, b'{"event_id":"x","time":"%s","sensor_id":"s1","value":1e400}' % TIME,
     b"s1", "not_json"),
    ("5000-digit int", T.sensor, b'{"event_id":"x","time":"%s","sensor_id":"s1","value":%s}'
     % (TIME, b"9" * 5000), b"s1", "not_json"),
    ("1e308", T.sensor, _raw(T.sensor, value=1e308), b"s1", None),
    ("-0.0", T.sensor, _raw(T.sensor, value=-0.0), b"s1", None),
    ("10**30", T.sensor, b'{"event_id":"x","time":"%s","sensor_id":"s1","value":%d}'
     % (TIME, 10**30), b"s1", None),
    ("bool as number", T.sensor, _raw(T.sensor, value=True), b"s1", "schema"),
    ("string as number", T.sensor, _raw(T.sensor, value="20.5"), b"s1", "schema"),
    ("missing field", T.sensor, _raw(T.sensor, value=...), b"s1", "schema"),
    ("extra fields", T.sensor, _raw(T.sensor, extra={"a": [1, {"b": None}]}), b"s1", None),
    ("not UTF-8", T.sensor, b'{"event_id":"\xff\xfe"}', b"s1", "not_json"),
    ("lone surrogate", T.sensor, b'{"event_id":"\\ud800"}', b"s1", "not_json"),
    ("cut short", T.sensor, b'{"event_id":', b"s1", "not_json"),
    ("empty", T.sensor, b"", b"s1", "not_json"),
    ("a list", T.sensor, b"[1, 2]", b"s1", "not_object"),
    ("null", T.sensor, b"null", b"s1", "not_object"),
    ("5 MB", T.sensor, b'{"a":"' + b"x" * 5_000_000 + b'"}', b"s1", "oversize"),
    ("nested 5000 deep", T.sensor, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"s1", "not_json"),
    ("no key", T.sensor, _raw(T.sensor), None, "null_key"),
    ("keyed by another sensor", T.sensor, _raw(T.sensor), b"s2", "key_mismatch"),
    ("key not UTF-8", T.sensor, _raw(T.sensor), b"\xff", "key_mismatch"),
    ("keyed by another model", T.inference, _raw(T.inference), b"m2", "key_mismatch"),
    ("label keyed by another model", T.label, _raw(T.label), b"m2", "key_mismatch"),
    ("change keyed by no subject", T.change, _raw(T.change), b"ci", None),
    ("tombstone", T.sensor, None, b"s1", "null_value"),
    ("257-char id", T.sensor, _raw(T.sensor, sensor_id="x" * 257), b"s1", "schema"),
    ("256-char id", T.sensor, _raw(T.sensor, sensor_id="x" * 256), b"x" * 256, None),
    ("RTL override id", T.sensor, _raw(T.sensor, sensor_id="\u202eevil"), "\u202eevil".encode(),
     None),
    ("control-char id", T.sensor, _raw(T.sensor, sensor_id="\x18"), b"\x18", None),
    ("NUL id", T.sensor, _raw(T.sensor, sensor_id="a\x00b"), b"a\x00b", None),
    ("time not a time", T.sensor, _raw(T.sensor, time="yesterday"), b"s1", "schema"),
    ("time a number", T.sensor, _raw(T.sensor, time=12345), b"s1", "schema"),
    ("time 30 Feb", T.sensor, _raw(T.sensor, time="2026-02-30T00:00:00Z"), b"s1", "schema"),
    ("time year 2999", T.sensor, _raw(T.sensor, time="2999-01-01T00:00:00Z"), b"s1", "time_ahead"),
    ("time 1970", T.sensor, _raw(T.sensor, time="1970-01-01T00:00:00Z"), b"s1",
     "time_out_of_range"),
    ("time year 0", T.sensor, _raw(T.sensor, time="0000-01-01T00:00:00Z"), b"s1",
     "time_out_of_range"),
    ("score a bool", T.inference, _raw(T.inference, prediction={"score": True}), b"m1", "schema"),
    ("safety a string", T.inference, _raw(T.inference, safety={"harmful": "0.9"}), b"m1",
     "schema"),
    ("segment an int", T.inference, _raw(T.inference, segment={"group": 3}), b"m1", "schema"),
    ("model id with /", T.inference, _raw(T.inference, model_id="team/bot"), b"team/bot", None),
    ("group with |", T.inference, _raw(T.inference, segment={"group": "a|b"}), b"m1", None),
    ("label an object", T.label, _raw(T.label, label={"x": 1}), b"m1", "schema"),
    ("label of no prediction", T.label, _raw(T.label, prediction_id="nope"), b"m1", None),
    ("change of unknown kind", T.change, _raw(T.change, kind="evil"), b"m1", "schema"),
    ("change with NUL", T.change, _raw(T.change, version="v\x00"), b"m1", None),
]  # fmt: skip


def _run(bus: InMemoryBus, store: InMemoryStateStore, registry: CollectorRegistry) -> None:
    processor = embedded_processor(CONFIG, bus, store, registry=registry, wall_clock=lambda: NOW)
    processor.start()
    while processor.step(0):
        pass
    processor.checkpoint()
    processor.close()


@pytest.mark.parametrize(
    ("topic", "value", "key", "reason"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_a_hostile_event_is_dead_lettered_or_applied_and_the_partition_flows(
    topic: str, value: bytes | None, key: bytes | None, reason: str | None
) -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    producer = bus.producer()
    for i in range(200):
        producer.produce(T.sensor, orjson.dumps(_sensor(i, "s1")), b"s1")
    producer.produce(topic, value, key)
    for i in range(200, 210):
        producer.produce(T.sensor, orjson.dumps(_sensor(i, "s1")), b"s1")
    for _ in range(2):  # a restart restores whatever was saved, and resets nothing
        registry = CollectorRegistry()
        _run(bus, store, registry)
        assert registry.get_sample_value("riskstream_state_resets_total", {}) is None
    reasons = [dict(r.headers)["riskstream_reason"].decode() for r in bus.records(T.dead_letter)]
    assert reasons == ([] if reason is None else [reason])
    totals: dict[str, int] = {}
    for tp in {(T.sensor, 0), (topic, 0)}:
        for name, n in store.peek(SCOPE, tp).counters.items():
            totals[name] = totals.get(name, 0) + n
    assert totals == {"applied": 211 - len(reasons), "dead_lettered": len(reasons)}
    streams = store.peek(SCOPE, (T.sensor, 0)).snapshots
    on_s1 = reason is None and value is not None and b'"sensor_id":"s1"' in value
    assert saved_as_data(streams)["sensor-value-drift\x1fs1"]["n"] == 210 + on_s1


def test_ids_named_like_state_marks_are_streams_of_their_own() -> None:
    """A sensor called "\\x18" overwrote every monitor's fingerprint, and one called
    "\\x1e" or "\\x1c" read as partition state: at the next start every stream of the
    partition started afresh.  Now its key is escaped: nothing else is touched."""
    bus, store = InMemoryBus(), InMemoryStateStore()
    producer = bus.producer()
    odd = ["\x17", "\x18", "\x19", "\x1a", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x00"]
    for i in range(300):
        for sensor in ["s1", *odd]:
            producer.produce(T.sensor, orjson.dumps(_sensor(i, sensor)), sensor.encode())
    for _ in range(2):
        registry = CollectorRegistry()
        _run(bus, store, registry)
        assert registry.get_sample_value("riskstream_state_resets_total", {}) is None
        for i in range(300, 310):
            producer.produce(T.sensor, orjson.dumps(_sensor(i, "s1")), b"s1")
    snapshots = store.peek(SCOPE, (T.sensor, 0)).snapshots
    assert saved_as_data(snapshots)["sensor-value-drift\x1fs1"]["n"] == 310
    streams = {parse_state_key(k).key for k in snapshots if k.startswith("sensor-value-drift\x1f")}
    assert {key_part(s) for s in odd} <= streams


# -- B: malformed and forged records on the incidents and change topics --------------------

PLAYBOOK = """\
version: 1
playbooks:
  - name: any
    actions:
      - {kind: fallback, revert_on_resolve: true}
models:
  bot: {fallback_version: canned-v1}
"""


def _incident(incident_id: str = "inc-1", **changes: Any) -> dict[str, Any]:
    incident = {
        "incident_id": incident_id, "type": "safety", "severity": "critical", "status": "open",
        "subject": "bot", "monitor": "harmful-rate-by-group", "stream_key": "bot|b",
        "detected_at": format_time(NOW), "onset_at": format_time(NOW - 60), "evidence": {},
    }  # fmt: skip
    return {k: v for k, v in {**incident, **changes}.items() if v is not ...}


BAD_INCIDENTS: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{incident", "not_json"),
    ("not UTF-8", b'{"incident_id": "\xff"}', "not_json"),
    ("a list", b"[1, 2]", "not_incident"),
    ("no id", orjson.dumps(_incident(incident_id=...)), "not_incident"),
    ("id a number", orjson.dumps(_incident(incident_id=5)), "not_incident"),
    ("id with NUL", orjson.dumps(_incident(incident_id="a\x00b")), "not_incident"),
    ("id 100k long", orjson.dumps(_incident(incident_id="x" * 100_000)), "not_incident"),
    ("subject a list", orjson.dumps(_incident(subject=["bot"])), "not_incident"),
    ("subject with ESC", orjson.dumps(_incident(subject="bot\x1b[2J")), "not_incident"),
    # ESC and BEL reached the worker's log lines and the pages as they were
    ("type with ESC", orjson.dumps(_incident(type="\x1b[2Jsafety")), "not_incident"),
    ("monitor with BEL", orjson.dumps(_incident(monitor="m\x07")), "not_incident"),
    ("stream_key with NUL", orjson.dumps(_incident(stream_key="bot|\x00")), "not_incident"),
    ("parent_id with CR", orjson.dumps(_incident(parent_id="p\r\nforged")), "not_incident"),
    ("status 7", orjson.dumps(_incident(status=7)), "not_incident"),
    ("detected_at not a time", orjson.dumps(_incident(detected_at="yesterday")), "not_incident"),
    ("detected_at a number", orjson.dumps(_incident(detected_at=1e308)), "not_incident"),
    ("evidence a list", orjson.dumps(_incident(evidence=[1])), "not_incident"),
    ("suspects a string", orjson.dumps(_incident(suspected_changes="x")), "not_incident"),
    ("suspects of ints", orjson.dumps(_incident(suspected_changes=[1, None])), "not_incident"),
    ("children an int", orjson.dumps(_incident(children=5)), "not_incident"),
    # the schema: these broke the reports (HTTP 500) once stored
    ("before a string", orjson.dumps(_incident(evidence={"before": "x"})), "not_incident"),
    ("a suspect with no kind", orjson.dumps(_incident(suspected_changes=[{"event_id": "d"}])),
     "not_incident"),
    ("type 10k long", orjson.dumps(_incident(type="x" * 10_000)), "not_incident"),
    ("regulatory.framework 5", orjson.dumps(_incident(regulatory={"framework": 5})),
     "not_incident"),
]  # fmt: skip


def _embedded(tmp_path: Path) -> tuple[Config, InMemoryBus, CollectorRegistry, OperatorService]:
    """The config with PLAYBOOK, its bus and registry, and the embedded operations on them."""
    config_path = tmp_path / "c.yaml"
    config_path.write_text(PLAYBOOK)
    config = load_config(config_path)
    bus, registry = InMemoryBus(), CollectorRegistry()
    return config, bus, registry, embedded_operations(config, bus, registry, clock=lambda: NOW)


def test_what_is_no_incident_is_dead_lettered_before_any_flag_moves(tmp_path: Path) -> None:
    """Each of these raised in the containment worker's agent (TypeError, KeyError,
    ValueError, AttributeError), some after a flag had moved; the agent stopped."""
    path_config, bus, registry, ops = _embedded(tmp_path)
    service = ops._containment
    for _, raw, _ in BAD_INCIDENTS:
        assert service.receive_incident(raw) == (None, [])
    assert service.flags() == {}
    letters = bus.records(path_config.topics.dead_letter)
    assert [dict(r.headers)["riskstream_reason"].decode() for r in letters] == [
        reason for _, _, reason in BAD_INCIDENTS
    ]
    assert all(r.value == raw for r, (_, raw, _) in zip(letters, BAD_INCIDENTS, strict=True))
    not_incident = {"reason": "not_incident"}
    rejected = registry.get_sample_value("riskstream_containment_rejected_total", not_incident)
    assert rejected == sum(reason == "not_incident" for _, _, reason in BAD_INCIDENTS)
    # a real one still acts, and a forged "resolved" for an unknown id moves nothing
    incident, outcomes = service.receive_incident(orjson.dumps(_incident()))
    assert incident is not None and outcomes == ["applied"]
    assert service.flags()["bot"].active_version == "canned-v1"
    forged, _ = service.receive_incident(orjson.dumps(_incident("nope", status="resolved")))
    assert forged is not None and service.flags()["bot"].active_version == "canned-v1"
    # a "resolved" for an open incident no person resolved would revert its containment
    forged, _ = service.receive_incident(orjson.dumps(_incident(status="resolved")))
    assert forged is None and service.flags()["bot"].active_version == "canned-v1"
    last = bus.records(path_config.topics.dead_letter)[-1]
    assert dict(last.headers)["riskstream_reason"] == b"unconfirmed_resolution"
    ops.resolve("inc-1", "ana", "fixed")  # a person's resolve: recorded, then published
    published = bus.records(path_config.topics.incidents)[-1].value
    confirmed, _ = service.receive_incident(published)
    assert confirmed is not None and confirmed["status"] == "resolved"
    # change events are checked against their schema; a bad one is skipped and counted
    for raw in (b"[1]", b"{", orjson.dumps({"kind": "deploy", "subject": "bot", "version": 5})):
        assert service.receive_change(raw) == (None, None)
    rejected = {"reason": "change-event"}
    assert registry.get_sample_value("riskstream_containment_rejected_total", rejected) == 3
    assert service.flags()["bot"].active_version == "canned-v1"


def test_with_a_key_only_signed_incidents_are_acted_on(tmp_path: Path) -> None:
    """Whoever could write to the incidents topic could have the worker fence off a
    model. With RISKSTREAM_INCIDENT_KEY set, an unsigned or re-signed record is
    dead-lettered before anything moves; a signed one acts."""
    from riskstream.services.containment import ContainmentService
    from riskstream.signing import RecordSigner

    config, bus, _, ops = _embedded(tmp_path)
    plain = ops._containment
    signer = RecordSigner([b"s" * 32])
    service = ContainmentService(
        config.containment, plain._flags, plain._approvals, bus.producer(), plain._metrics,
        clock=lambda: NOW, incidents=plain._incidents, signer=signer,
    )  # fmt: skip
    raw = orjson.dumps(_incident())
    headers = [("ce_id", b"inc-1")]
    forged = [*headers, RecordSigner([b"f" * 32]).sign(T.incidents, raw, headers)]
    assert service.receive_incident(raw) == (None, [])
    assert service.receive_incident(raw, forged) == (None, [])
    assert service.flags() == {}
    letters = bus.records(config.topics.dead_letter)
    assert [dict(r.headers)["riskstream_reason"] for r in letters] == [
        b"unsigned",
        b"bad_signature",
    ]
    assert [r.value for r in letters] == [raw, raw]
    good = [*headers, signer.sign(T.incidents, raw, headers)]
    incident, outcomes = service.receive_incident(raw, good)
    assert incident is not None and outcomes == ["applied"]
    assert service.flags()["bot"].mode == "fallback"


# -- B: the command line, with bad arguments and no servers ---------------------------------

CLI_ATTACKS: list[tuple[list[str], str]] = [
    (["run", "processor", "--metrics-port", "99999"], "is not a port (0-65535)"),
    (["run", "api", "--port", "-1", "--tokens", "t.yaml"], "is not a port (0-65535)"),
    (["incidents", "show", "x", "--redis-url", "redis://u:pw@bad:::url"], "Port could not be"),
    (["incidents", "list", "--redis-url", "redis://127.0.0.1:1"], "Is Redis up"),
    (["incidents", "list", "--redis-url", "notaurl"], "must start with redis://"),
    (["flags", "set", "m", "--by", "x", "--reason", "y", "--traffic", "nan"], "between 0 and 1"),
    (["replay", "--input", "/nonexistent/records.jsonl"], "No such file"),
    (["replay", "--input", "/dev/null", "--now", "garbage"], "not an RFC 3339 time"),
    (["config", "check", "/nonexistent.yaml"], "cannot read the config file"),
    (["state", "reset", "--monitor", "nope", "--redis-url", "redis://127.0.0.1:1"], "no monitor"),
]


@pytest.mark.parametrize(
    ("args", "says"), CLI_ATTACKS, ids=[" ".join(a[:2]) for a, _ in CLI_ATTACKS]
)
def test_a_bad_command_line_is_an_error_message_not_a_traceback(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from riskstream.cli import main

    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusal
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err, err
    assert "pw" not in err  # a password in a URL is never shown


def test_a_flood_of_group_values_is_bounded_and_counted_in_the_rest() -> None:
    """A new group value per event grew one stream's group rates, and every checkpoint's
    write of them, without bound (100k values: a 4.8 MB snapshot per save)."""
    from riskstream.core.groups import MAX_GROUPS, GroupRates

    rates = GroupRates(half_life=1000, min_samples=10)
    for _ in range(200):
        rates.observe("a", 1.0)
    for i in range(3 * MAX_GROUPS):
        rates.observe(f"flood-{i}", 0.0)
    assert len(rates) == MAX_GROUPS and rates.untracked == 2 * MAX_GROUPS + 1
    gap = rates.observe("a", 1.0)
    assert gap is not None and gap.rest_events == 3 * MAX_GROUPS  # the flood is the rest
    assert len(orjson.dumps(rates.snapshot())) < 100 * MAX_GROUPS
