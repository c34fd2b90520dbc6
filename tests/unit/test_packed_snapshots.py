"""The packed checkpoint of Page-Hinkley and ADWIN streams: a hot part per stream, a cold
part saved only when it moves, restored bit for bit — and the JSON snapshots of
version 3 that earlier versions saved still load."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.core.detectors import ADWIN, PageHinkley
from riskstream.core.detectors.adwin import HOT_ROWS
from riskstream.core.monitors import MonitorSpec, PartitionDetectors, saved_as_data
from riskstream.core.specs import StreamSettings, ValueSpec
from riskstream.core.state_check import encode_checked
from riskstream.core.state_keys import COLD_MARK, STATE_KEY_SEPARATOR, StateKind
from riskstream.core.state_keys import parse as parse_state_key
from riskstream.core.streams import SNAPSHOT_VERSION

T0 = 1.8e9
SENSORS = 6


def _specs() -> list[MonitorSpec]:
    common: dict[str, Any] = {
        "reads": "sensor", "value": ValueSpec("value"), "key": ("sensor_id",),
        "subject": "sensor_id", "settings": StreamSettings(warmup=50),
    }  # fmt: skip
    return [
        MonitorSpec(name="ph", detector="page-hinkley",
                    params={"delta": 0.5, "threshold": 25, "min_instances": 1}, **common),
        MonitorSpec(name="adwin", detector="adwin", params={"delta": 0.001}, **common),
    ]  # fmt: skip


def _events(n: int = 2400, seed: int = 4) -> list[tuple[dict[str, Any], float]]:
    """SENSORS interleaved sensors; each shifts by 3 sigma a third of the way in and back."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        for s in range(SENSORS):
            shift = 3.0 if n // 3 + 40 * s <= i < 2 * n // 3 else 0.0
            event = {"event_id": f"s{s}/{i}", "time": "", "sensor_id": f"s{s}",
                     "value": rng.gauss(10.0 + s + shift, 1.0)}  # fmt: skip
            out.append((event, T0 + i + s / 10))
    return out


def _apply(store: dict[str, bytes], changed: dict[str, bytes], deleted: list[str]) -> None:
    store.update(changed)
    for key in deleted:
        store.pop(key, None)


def _straight() -> tuple[list[tuple[str, int]], dict[str, Any]]:
    detectors = PartitionDetectors(_specs(), "sensor")
    found = [(f.finding_id, f.alarm.onset) for e, t in _events() for f in detectors.observe(e, t)]
    return found, detectors.snapshot_all()


def test_packed_streams_restored_at_random_points_behave_like_ones_that_never_stopped() -> None:
    want, want_state = _straight()
    assert len({fid for fid, _ in want}) >= 2 * SENSORS, "each stream must alarm"
    events = _events()
    cuts = set(random.Random(9).sample(range(1, len(events)), 25))
    store: dict[str, bytes] = {}
    detectors = PartitionDetectors(_specs(), "sensor")
    got: list[tuple[str, int]] = []
    writes: dict[tuple[str, StateKind], int] = {}
    for i, (event, t) in enumerate(events):
        if i in cuts or i % 13 == 0:  # a checkpoint; at a cut, a restart from it too
            changed = detectors.take_changed()
            for key in changed:
                monitor, kind, _ = parse_state_key(key)
                writes[monitor, kind] = writes.get((monitor, kind), 0) + 1
            _apply(store, changed, detectors.take_deleted())
            if i in cuts:
                detectors = PartitionDetectors(_specs(), "sensor")
                assert detectors.load(dict(store)) == []
        got += [(f.finding_id, f.alarm.onset) for f in detectors.observe(event, t)]
    assert got == want  # the same incidents, ids and onsets included
    assert detectors.snapshot_all() == want_state
    streams = [v for k, v in store.items() if k.startswith(("ph\x1fs", "adwin\x1fs"))]
    assert streams and all(v[:1] == b"\x04" for v in streams), "streams are saved packed"
    # About 2 samples per stream between checkpoints: the cold part moves with the time
    # index (every 16 samples) and, for ADWIN, its third bucket row (every 4 or so: at
    # every other checkpoint here).
    hot, cold = StateKind.STREAM, StateKind.COLD
    assert 0 < writes["ph", cold] < writes["ph", hot] / 6
    assert 0 < writes["adwin", cold] < writes["adwin", hot] * 0.7


@pytest.mark.parametrize("kind", [PageHinkley, ADWIN])
def test_pack_unpack_is_bit_exact_at_every_age(kind: type[PageHinkley] | type[ADWIN]) -> None:
    rng = random.Random(1)
    det = kind()
    for n in [0, 1, 2, 5, 11, 40, 333, 1000, 4444]:
        while det._n < n:
            det.update(rng.gauss(0.0, 1.0) + (2.0 if det._n > 3000 else 0.0))
        packed = det.pack()
        assert packed is not None
        hot, tag = packed
        again = kind.unpack(hot, det.pack_cold(tag))
        assert again.snapshot() == det.snapshot()
        assert again.pack() == packed
        xs = [rng.gauss(0.0, 1.0) for _ in range(300)]
        assert [again.update(x) for x in xs] == [det.update(x) for x in xs]


def test_adwin_leaves_out_unused_bucket_slots() -> None:
    det = ADWIN()
    for i in range(5000):
        det.update(float(i % 7))
    packed = det.pack()
    assert packed is not None
    hot, tag = packed
    cold = det.pack_cold(tag)
    raw = det._det._helper.__getstate__()
    rows = (len(raw) - 120) // 128
    assert rows > HOT_ROWS + 3 and len(tag) == (rows - HOT_ROWS) * 128 + 28
    assert len(hot) < 9 + 56 + HOT_ROWS * 128 * 0.8  # the newest rows, squeezed
    assert len(cold) < 8 + 36 + len(tag) * 0.8  # and the older ones


def _saved_v3(detectors: PartitionDetectors) -> dict[str, bytes]:
    """A partition's state as riskstream saved it before packed snapshots: every stream
    as its JSON snapshot (version 3) with ``seen``, no cold parts."""
    out = {k: v for k, v in detectors.take_changed().items() if COLD_MARK not in k}
    for m in detectors._monitors:
        for key, stream in m.streams.items():
            raw, bad = encode_checked({**stream.snapshot(), "seen": m.seen[key]})
            assert bad is None
            out[m.prefix + key] = raw
    return out


def test_a_version_3_json_snapshot_loads_and_is_saved_packed_from_then_on() -> None:
    want, want_state = _straight()
    events = _events()
    cut = len(events) // 2
    old = PartitionDetectors(_specs(), "sensor")
    got = [(f.finding_id, f.alarm.onset) for e, t in events[:cut] for f in old.observe(e, t)]
    saved = _saved_v3(old)
    streams = [k for k in saved if k.startswith(("ph\x1fs", "adwin\x1fs"))]
    assert len(streams) == 2 * SENSORS
    assert all(orjson.loads(saved[k])["v"] == SNAPSHOT_VERSION == 3 for k in streams)
    resumed = PartitionDetectors(_specs(), "sensor")
    assert resumed.load(saved) == []
    got += [(f.finding_id, f.alarm.onset) for e, t in events[cut:] for f in resumed.observe(e, t)]
    assert got == want
    assert resumed.snapshot_all() == want_state
    changed = resumed.take_changed()
    for key in streams:  # written packed now, each with its cold part beside it
        monitor, _, stream = key.partition(STATE_KEY_SEPARATOR)
        assert changed[key][:1] == b"\x04"
        assert monitor + STATE_KEY_SEPARATOR + COLD_MARK + stream in changed


def _checkpointed() -> tuple[PartitionDetectors, dict[str, bytes]]:
    detectors = PartitionDetectors(_specs(), "sensor")
    for event, t in _events(300):
        detectors.observe(event, t)
    return detectors, detectors.take_changed()


def test_a_packed_snapshot_without_its_cold_part_restarts_that_stream_saying_why() -> None:
    _, saved = _checkpointed()
    cold = "adwin" + STATE_KEY_SEPARATOR + COLD_MARK + "s1"
    del saved[cold]
    detectors = PartitionDetectors(_specs(), "sensor")
    (reset,) = detectors.load(saved)
    assert (reset.monitor, reset.stream_key) == ("adwin", "s1")
    assert "no cold part" in reset.reason and "reset the state" in reset.reason
    assert "adwin\x1fs1" in detectors.take_deleted()  # its hot part goes too
    assert len(detectors._by_name["adwin"].streams) == SENSORS - 1


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda raw: b"\x04\x09" + raw[2:], "detector code 9"),
        (lambda raw: raw[:20], "cut short"),
    ],
)
def test_a_damaged_packed_snapshot_is_refused_naming_the_stream(damage: Any, says: str) -> None:
    _, saved = _checkpointed()
    key = "ph" + STATE_KEY_SEPARATOR + "s2"
    saved[key] = damage(saved[key])
    (reset,) = PartitionDetectors(_specs(), "sensor").load(saved)
    assert (reset.monitor, reset.stream_key) == ("ph", "s2")
    assert "monitor 'ph', stream 's2'" in reset.reason and says in reset.reason


def test_a_packed_snapshot_of_a_later_version_is_refused_saying_what_to_do() -> None:
    _, saved = _checkpointed()
    key = "ph" + STATE_KEY_SEPARATOR + "s2"
    saved[key] = b"\x04" + saved[key][1:]  # still packed, but its cold part's version:
    cold = "ph" + STATE_KEY_SEPARATOR + COLD_MARK + "s2"
    saved[cold] = b"\x05" + saved[cold][1:]
    (reset,) = PartitionDetectors(_specs(), "sensor").load(saved)
    assert "version 4/5 is not 4" in reset.reason and "reset the state" in reset.reason


def test_after_a_save_that_may_not_have_landed_the_cold_parts_are_given_again() -> None:
    detectors, _ = _checkpointed()
    for event, t in _events(301)[-SENSORS:]:
        detectors.observe(event, t)
    changed = detectors.take_changed()
    assert not any(COLD_MARK in k for k in changed)  # one more sample: hot parts only
    detectors.mark_dirty(changed)  # the save failed, outcome unknown
    again = detectors.take_changed()
    colds = [k for k in again if COLD_MARK in k]
    assert len(colds) == 2 * SENSORS  # every stream's cold part, in case it was lost


def test_an_evicted_stream_deletes_its_cold_part_too() -> None:
    detectors, _ = _checkpointed()
    m = detectors._by_name["ph"]
    m.seen["s3"] = T0 - 10 * detectors._limits.idle_ttl_s
    detectors._clock.now = T0 + 300
    detectors._evict_idle()
    deleted = detectors.take_deleted()
    assert {"ph\x1fs3", "ph\x1f" + COLD_MARK + "s3"} <= set(deleted)


def test_saved_state_reads_as_the_plain_data_snapshot_all_gives() -> None:
    detectors, saved = _checkpointed()
    plain = saved_as_data(saved)
    assert not any(COLD_MARK in k for k in plain)  # folded into their streams
    want = detectors.snapshot_all()
    streams = [k for k in want if k.startswith(("ph\x1fs", "adwin\x1fs"))]
    assert len(streams) == 2 * SENSORS
    assert {k: plain[k] for k in streams} == {k: want[k] for k in streams}


def test_state_saved_by_the_version_before_packing_loads_and_resumes_exactly() -> None:
    """tests/data/state-v3-ph-adwin.json: what riskstream saved before packed snapshots
    (JSON, stream version 3, Page-Hinkley v1 and ADWIN v1) after 120 events of one sensor;
    resumed, it gives what an unbroken run of today's code gives."""
    doc = orjson.loads((Path(__file__).parents[1] / "data" / "state-v3-ph-adwin.json").read_text())
    saved = {k: v.encode() for k, v in doc["state"].items()}
    rng = random.Random(7)
    events = [
        ({"event_id": f"s1/{i}", "time": "", "sensor_id": "s1",
          "value": rng.gauss(10.0, 1.0) + (3.0 if i >= 1200 else 0.0)}, 1.8e9 + i)
        for i in range(2400)
    ]  # fmt: skip
    straight = PartitionDetectors(_specs(), "sensor")
    want = [(f.finding_id, f.alarm.onset) for e, t in events for f in straight.observe(e, t)]
    assert len({fid for fid, _ in want}) >= 2  # both monitors alarm on the shift
    resumed = PartitionDetectors(_specs(), "sensor")
    assert resumed.load(saved) == []  # same fingerprints: nothing starts afresh
    got = [(f.finding_id, f.alarm.onset) for e, t in events[120:] for f in resumed.observe(e, t)]
    assert got == want
    assert resumed.snapshot_all() == straight.snapshot_all()
    assert resumed.take_changed()["ph\x1fs1"][:1] == b"\x04"  # saved packed from then on
