"""The packed checkpoint of learned streams (shift, noise, outlier, frozen, rate): one
binary snapshot per stream, restored bit for bit, as the JSON snapshot restores; and
the JSON snapshots (learned/1, learned/2) that earlier versions saved still load."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from riskstream.core.learned import (
    LEARNED_KINDS,
    LEARNED_PACKED,
    LearnedStream,
    learned_params,
    unpacked_as_data,
)
from riskstream.core.monitors import MonitorSpec, PartitionDetectors, saved_as_data
from riskstream.core.specs import StreamSettings, ValueSpec
from riskstream.core.state_check import encode_checked
from riskstream.core.state_keys import STATE_KEY_SEPARATOR

T0 = 1.8e9
SENSORS = 5
KINDS = ("shift", "noise", "outlier", "frozen")
HEAD = bytes((LEARNED_PACKED,))


def _specs() -> list[MonitorSpec]:
    common: dict[str, Any] = {
        "reads": "sensor", "value": ValueSpec("value"), "key": ("sensor_id",),
        "subject": "sensor_id", "settings": StreamSettings(warmup=60),
    }  # fmt: skip
    return [MonitorSpec(name=kind, detector=kind, params={}, **common) for kind in KINDS]


def _events(n: int = 2400, seed: int = 4) -> list[tuple[dict[str, Any], float]]:
    """SENSORS interleaved sensors; each shifts by 3 sigma a third of the way in and
    back, gets noisier, throws a spike and sticks at one value for a while."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        for s in range(SENSORS):
            shift = 3.0 if n // 3 + 40 * s <= i < 2 * n // 3 else 0.0
            sd = 3.0 if 2 * n // 3 + 100 <= i < 2 * n // 3 + 300 else 1.0
            value = rng.gauss(10.0 + s + shift, sd) + (25.0 if i == n // 2 + 7 * s else 0.0)
            if n - 400 <= i < n - 100 and s % 2:
                value = 7.25
            out.append(({"event_id": f"s{s}/{i}", "time": "", "sensor_id": f"s{s}",
                         "value": value}, T0 + i + s / 10))  # fmt: skip
    return out


def _straight() -> tuple[list[tuple[str, int]], dict[str, Any]]:
    detectors = PartitionDetectors(_specs(), "sensor")
    found = [(f.finding_id, f.alarm.onset) for e, t in _events() for f in detectors.observe(e, t)]
    return found, detectors.snapshot_all()


def _streams(store: dict[str, bytes]) -> list[bytes]:
    return [v for k, v in store.items() if k.startswith(tuple(f"{m}\x1fs" for m in KINDS))]


def test_packed_learned_streams_restored_at_random_points_behave_like_ones_that_never_stopped() -> (
    None
):
    want, want_state = _straight()
    assert {fid for fid, _ in want}, "the streams must alarm"
    events = _events()
    cuts = set(random.Random(9).sample(range(1, len(events)), 25))
    store: dict[str, bytes] = {}
    detectors = PartitionDetectors(_specs(), "sensor")
    got: list[tuple[str, int]] = []
    for i, (event, t) in enumerate(events):
        if i in cuts or i % 13 == 0:  # a checkpoint; at a cut, a restart from it too
            store.update(detectors.take_changed())
            for key in detectors.take_deleted():
                store.pop(key, None)
            if i in cuts:
                detectors = PartitionDetectors(_specs(), "sensor")
                assert detectors.load(dict(store)) == []
        got += [(f.finding_id, f.alarm.onset) for f in detectors.observe(event, t)]
    assert got == want  # the same incidents, ids and onsets included
    assert detectors.snapshot_all() == want_state
    streams = _streams(store)
    assert len(streams) == len(KINDS) * SENSORS
    assert all(v[:1] == HEAD for v in streams), "learned streams are saved packed"


def _feed(stream: LearnedStream, kind: str, rng: random.Random, n: int, at: int) -> list[Any]:
    out = []
    for i in range(at, at + n):
        if kind == "rate":
            x = 1.0 if rng.random() < (0.3 if i > 3000 else 0.1) else 0.0
        elif kind == "frozen":
            x = round(rng.gauss(5.0, 1.0), 1) if not 2600 <= i < 3400 else 4.5
        else:
            x = rng.gauss(50.0 if (i // 1000) % 2 else 20.0, 1.0) + (3.0 if i > 2500 else 0.0)
        out.append(stream.update(x, T0 + i))
    return out


def _via_json(stream: LearnedStream, kind: str) -> LearnedStream:
    snap = orjson.loads(orjson.dumps(stream.snapshot()))
    return LearnedStream.restore(snap, kind, learned_params(kind, {}), 300)


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_a_packed_stream_restores_as_its_json_snapshot_does_at_every_age(kind: str) -> None:
    """Through warm-up, alarms, regimes and refits: what unpack gives is what restore
    gives from the JSON snapshot, byte for byte, and both go on as the original does."""
    params = learned_params(kind, {})
    rng = random.Random(2)
    stream, at = LearnedStream(kind, params, 300), 0
    regimes = 0
    for n in [0, 31, 149, 190, 299, 330, 777, 1500, 2600, 3100, 4000, 6000, 9000]:
        _feed(stream, kind, rng, n - at, at)
        packed = stream.pack(T0 + n)
        assert packed is not None and packed[1] is None
        raw = packed[0]
        unpacked, seen = LearnedStream.unpack(raw, kind, params, 300)
        assert seen == T0 + n
        from_json = _via_json(stream, kind)
        assert orjson.dumps(unpacked.snapshot()) == orjson.dumps(from_json.snapshot())
        assert unpacked.pack(T0 + n) == packed  # and it packs the same again
        assert unpacked_as_data(raw) == {**from_json.snapshot(), "seen": T0 + n}
        ahead = [_feed(s, kind, random.Random(n), 30, n) for s in (stream, unpacked, from_json)]
        assert ahead[0] == ahead[1] == ahead[2]
        assert orjson.dumps(unpacked.snapshot()) == orjson.dumps(from_json.snapshot())
        stream, at = unpacked, n + 30  # go on from the unpacked one
        regimes = max(regimes, len(stream._regimes))
    if kind == "outlier":
        assert regimes, "a regime was kept on the way"


def test_non_finite_numbers_and_wide_time_steps_pack_exactly() -> None:
    params = learned_params("shift", {})
    stream = LearnedStream("shift", params, 300)
    _feed(stream, "shift", random.Random(1), 1000, 0)
    assert stream._base is not None and stream._long is not None
    stream._base[3], stream._base[7], stream._prev = math.inf, math.nan, -math.inf
    stream._long[4] = -0.0
    stream._times.ms[5] += 30 * 86_400_000  # a step beyond int32 ms: int64 times
    packed = stream.pack(T0)
    assert packed is not None
    unpacked, seen = LearnedStream.unpack(packed[0], "shift", params, 300)
    assert seen == T0
    assert orjson.dumps(unpacked.snapshot()) == orjson.dumps(_via_json(stream, "shift").snapshot())
    assert math.copysign(1.0, unpacked._long[4]) == -1.0  # type: ignore[index]
    assert unpacked._times.ms == stream._times.ms


@pytest.mark.parametrize("field", ["e", "u", "stat", "total", "seen"])
def test_a_non_finite_number_the_json_snapshot_cannot_spell_is_not_packed(field: str) -> None:
    """There the JSON snapshot's check holds the stream (tests/unit/test_poison_events.py),
    as it did before learned streams were packed."""
    stream = LearnedStream("noise", learned_params("noise", {}), 300)
    _feed(stream, "noise", random.Random(1), 500, 0)
    seen = math.inf if field == "seen" else T0
    if field in ("e", "u"):
        setattr(stream, "_" + field, math.inf)
    elif field != "seen":
        setattr(stream._cusums[1], field, math.nan)
    assert stream.pack(seen) is None


def test_a_stream_the_packed_form_cannot_hold_is_saved_as_its_checked_json_snapshot() -> None:
    detectors = PartitionDetectors(_specs(), "sensor")
    for event, t in _events(400):
        detectors.observe(event, t)
    detectors.take_changed()
    stream = detectors._by_name["shift"].streams["s1"]
    assert isinstance(stream, LearnedStream)
    stream.start = 2**63  # beyond int64, within JSON's uint64
    assert stream.pack(T0) is None
    detectors.mark_dirty(["shift\x1fs1"])
    changed = detectors.take_changed()
    assert changed["shift\x1fs1"][:1] == b"{"
    resumed = PartitionDetectors(_specs(), "sensor")
    assert resumed.load(changed) == []
    assert resumed._by_name["shift"].streams["s1"].start == 2**63  # type: ignore[union-attr]
    stream.start, stream._long = 0, [math.nan, "x"]  # and a JSON one that would not restore
    detectors.mark_dirty(["shift\x1fs1"])
    assert "shift\x1fs1" not in detectors.take_changed()
    assert "shift" in detectors.failures[-1].monitor and "s1" in detectors._by_name["shift"].held


def _saved_json(detectors: PartitionDetectors) -> dict[str, bytes]:
    """A partition's state as riskstream saved it before packed learned snapshots:
    every learned stream as its JSON snapshot (learned/2) with ``seen``."""
    out = detectors.take_changed()
    for m in detectors._monitors:
        for key, stream in m.streams.items():
            raw, bad = encode_checked({**stream.snapshot(), "seen": m.seen[key]})
            assert bad is None
            out[m.prefix + key] = raw
    return out


@pytest.mark.parametrize("version", ["learned/2", "learned/1"])
def test_a_json_snapshot_loads_and_is_saved_packed_from_then_on(version: str) -> None:
    want, want_state = _straight()
    events = _events()
    cut = len(events) // 4
    old = PartitionDetectors(_specs(), "sensor")
    got = [(f.finding_id, f.alarm.onset) for e, t in events[:cut] for f in old.observe(e, t)]
    saved = _saved_json(old)
    streams = [k for k in saved if k.startswith(tuple(f"{m}\x1fs" for m in KINDS))]
    assert len(streams) == len(KINDS) * SENSORS
    assert all(orjson.loads(saved[k])["v"] == "learned/2" for k in streams)
    if version == "learned/1":  # before the shift kind's level pair (idle this early)
        for k in streams:
            snap = orjson.loads(saved[k])
            snap["v"] = version
            if k.startswith("shift"):
                assert all(c[0] == 0.0 for c in snap["cusums"][2:])
                snap["cusums"] = snap["cusums"][:2]
            saved[k] = orjson.dumps(snap)
    resumed = PartitionDetectors(_specs(), "sensor")
    assert resumed.load(saved) == []
    got += [(f.finding_id, f.alarm.onset) for e, t in events[cut:] for f in resumed.observe(e, t)]
    assert got == want
    assert resumed.snapshot_all() == want_state
    changed = resumed.take_changed()
    assert all(changed[k][:1] == HEAD for k in streams)


def _checkpointed() -> tuple[PartitionDetectors, dict[str, bytes]]:
    detectors = PartitionDetectors(_specs(), "sensor")
    for event, t in _events(500):
        detectors.observe(event, t)
    return detectors, detectors.take_changed()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda raw: raw[:30], "cut short"),
        (lambda raw: raw + b"\x00", "beyond its end"),
        (lambda raw: raw[:1] + b"\x09" + raw[2:], "reset its state"),
        (lambda raw: raw[:1] + b"\x02" + raw[2:], "kind 'outlier'"),  # another kind's
    ],
)
def test_a_damaged_packed_learned_snapshot_restarts_that_stream_saying_why(
    damage: Any, says: str
) -> None:
    _, saved = _checkpointed()
    key = "noise" + STATE_KEY_SEPARATOR + "s2"
    saved[key] = damage(saved[key])
    detectors = PartitionDetectors(_specs(), "sensor")
    (reset,) = detectors.load(saved)
    assert (reset.monitor, reset.stream_key) == ("noise", "s2")
    assert "monitor 'noise', stream 's2'" in reset.reason and says in reset.reason
    assert len(detectors._by_name["noise"].streams) == SENSORS - 1


def test_saved_learned_state_reads_as_the_plain_data_snapshot_all_gives() -> None:
    detectors, saved = _checkpointed()
    plain = saved_as_data(saved)
    want = detectors.snapshot_all()
    streams = [k for k in want if k.startswith(tuple(f"{m}\x1fs" for m in KINDS))]
    assert len(streams) == len(KINDS) * SENSORS
    assert all(saved[k][:1] == HEAD for k in streams)
    assert {k: plain[k] for k in streams} == {k: want[k] for k in streams}


def test_the_time_index_packed_as_it_moves_is_the_one_packed_afresh() -> None:
    """The steps a stream kept from its last pack are reused: after every reading,
    after every few, across a step beyond int32 ms and back, they must be the same."""
    params = learned_params("outlier", {})
    stream = LearnedStream("outlier", params, 300)
    rng = random.Random(5)
    t = T0
    for i in range(3000):
        t += 1.0 if not 1500 <= i < 1520 else 3e6  # 20 readings ~35 days apart
        stream.update(rng.gauss(10.0, 1.0), t)
        if i % rng.choice([1, 1, 3, 17, 40]) == 0:
            packed = stream.pack(t)
            assert packed is not None
            fresh, _ = LearnedStream.unpack(packed[0], "outlier", params, 300)
            assert fresh._times.ms == stream._times.ms and fresh._times.first == stream._times.first
            assert fresh.pack(t) == packed  # (packed afresh: it has no steps kept)
