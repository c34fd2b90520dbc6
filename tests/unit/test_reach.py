"""Blast radius in people: distinct users from the estimated onset to the alarm."""

from __future__ import annotations

from dataclasses import replace

from riskstream.core.incidents import incident_from_finding
from riskstream.core.monitors import MonitorSpec, PartitionDetectors, ValueSpec
from riskstream.core.reach import RecentUsers
from riskstream.core.streams import StreamSettings
from riskstream.core.timeutil import format_time

SPEC = MonitorSpec(
    name="score",
    reads="inference",
    value=ValueSpec("score"),
    key=("model_id",),
    subject="model_id",
    detector="page-hinkley",
    params={"threshold": 20.0, "delta": 0.1, "min_instances": 1, "alpha": 1.0, "mode": "up"},
    settings=StreamSettings(warmup=200, scale=True),
    users="user_id",
    users_window=64,
)


def _events(n_before: int, n_after: int) -> list[dict[str, object]]:
    """Users u0..u9 before the shift; after it, a new cohort of 5 users (v0..v4)."""
    out: list[dict[str, object]] = []
    for i in range(n_before + n_after):
        after = i >= n_before
        score = (3.0 if after else 0.0) + ((i * 7919) % 100) / 100.0
        user = f"v{i % 5}" if after else f"u{i % 10}"
        out.append({"time": format_time(1.8e9 + i), "model_id": "m", "score": score,
                    "user_id": user})  # fmt: skip
    return out


def test_an_alarm_counts_the_users_since_the_onset() -> None:
    detectors = PartitionDetectors([SPEC], "inference")
    found = [f for e in _events(400, 40) for f in detectors.observe(e)]
    assert found, "the shift must be detected"
    users, complete = found[0].users or (None, None)
    assert complete is True
    assert users is not None and 4 <= users <= 6  # the 5 new users, ±1 for onset error
    radius = incident_from_finding(found[0])["blast_radius"]
    assert radius == {"affected_users": users}


def test_a_window_shorter_than_the_delay_says_its_count_is_a_lower_bound() -> None:
    spec = replace(SPEC, users_window=2)
    detectors = PartitionDetectors([spec], "inference")
    found = [f for e in _events(400, 40) for f in detectors.observe(e)]
    assert found[0].users == (2, False)
    radius = incident_from_finding(found[0])["blast_radius"]
    assert radius["affected_users_is_lower_bound"] is True


def test_the_users_trail_survives_a_checkpoint() -> None:
    events = _events(400, 40)
    straight = PartitionDetectors([SPEC], "inference")
    expected = [f.users for e in events for f in straight.observe(e)]
    resumed = PartitionDetectors([SPEC], "inference")
    for e in events[:401]:
        resumed.observe(e)
    saved = resumed.take_changed()
    assert any("\x1c" in k for k in saved)
    restored = PartitionDetectors([SPEC], "inference")
    restored.load(saved)
    got = [f.users for e in events[401:] for f in restored.observe(e)]
    assert got == expected and restored.snapshot_all() == straight.snapshot_all()


def test_users_ring_keeps_only_its_capacity() -> None:
    ring = RecentUsers(3)
    for user in ("a", "b", "c", "d"):
        ring.add(user)
    assert ring.distinct_last(3) == (3, True)
    assert ring.distinct_last(4) == (3, False)
    assert RecentUsers.restore(ring.snapshot()).distinct_last(3) == (3, True)
