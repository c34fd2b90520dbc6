"""One incident per (monitor, subject) episode, updated as evidence grows."""

from __future__ import annotations

from riskstream.core.monitors import MonitorSpec, PartitionDetectors, ValueSpec
from riskstream.core.streams import StreamSettings
from riskstream.core.timeutil import format_time

SPEC = MonitorSpec(
    name="latency",
    reads="inference",
    value=ValueSpec("latency_ms"),
    key=("model_id", "segment.region"),
    subject="model_id",
    detector="threshold",
    params={"upper": 1000.0},
    settings=StreamSettings(warmup=0, scale=False),
    episode_s=3600.0,
)


def _event(t: float, region: str, latency: float) -> dict[str, object]:
    return {"time": format_time(1.8e9 + t), "model_id": "m", "segment": {"region": region},
            "latency_ms": latency}  # fmt: skip


# (time, region, latency): alarms at 0 (eu), 600 (us), 1200 (eu again) and 9000 (eu).
STORY = [(0, "eu", 5000), (60, "eu", 10), (600, "us", 5000), (660, "us", 10),
         (1200, "eu", 5000), (1260, "eu", 10), (9000, "eu", 5000)]  # fmt: skip


def test_alarms_within_the_window_update_one_incident_later_ones_open_another() -> None:
    detectors = PartitionDetectors([SPEC], "inference")
    found = [f for t, r, x in STORY for f in detectors.observe(_event(t, r, x))]
    ids = [f.finding_id for f in found]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert [f.update for f in found] == [False, True, True, False]
    assert found[2].episode is not None
    assert (found[2].episode["alarms"], found[2].episode["streams"]) == (3, ["m|eu", "m|us"])


def test_a_restored_partition_continues_the_same_episodes() -> None:
    straight = PartitionDetectors([SPEC], "inference")
    expected = [
        (f.finding_id, f.update) for t, r, x in STORY for f in straight.observe(_event(t, r, x))
    ]
    resumed = PartitionDetectors([SPEC], "inference")
    got = [
        (f.finding_id, f.update) for t, r, x in STORY[:3] for f in resumed.observe(_event(t, r, x))
    ]
    saved = resumed.take_changed()
    resumed = PartitionDetectors([SPEC], "inference")
    resumed.load(saved)
    got += [
        (f.finding_id, f.update) for t, r, x in STORY[3:] for f in resumed.observe(_event(t, r, x))
    ]
    assert got == expected
    assert resumed.snapshot_all() == straight.snapshot_all()
