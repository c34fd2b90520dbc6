"""A grouped story is told from its root: lineage, then onset, then detection (issue 15, 3)."""

from __future__ import annotations

from typing import Any

from riskstream.core.incident_records import join_group, record_incident
from riskstream.core.stories import MAX_MEMBERS, Member, explains, join_story, order, tell
from riskstream.core.timeutil import format_time, parse_time

T0 = parse_time("2026-11-26T13:00:00Z")
LINEAGE = {"sensor": ["anomaly"], "anomaly": ["maintenance"]}


def inc(
    incident_id: str, subject: str, onset_min: float, detected_min: float, **extra: Any
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "type": extra.pop("type", "drift"),
        "subject": subject,
        "severity": "warning",
        "onset_at": format_time(T0 + onset_min * 60),
        "detected_at": format_time(T0 + detected_min * 60),
        **extra,
    }


def ids(members: list[Member]) -> list[str]:
    return [m.incident_id for m in members]


def test_lineage_beats_onset_and_detection() -> None:
    # The model went flat and was detected first; the sensor feeding it is the root,
    # even with an onset estimated later than the model's.
    flat = Member.of(inc("flat", "anomaly", 4, 17, type="model-output-flat"))
    drift = Member.of(inc("drift", "sensor", 8, 22, type="sensor-drift"))
    assert ids(order([flat, drift], LINEAGE)) == ["drift", "flat"]
    story = tell([flat, drift], LINEAGE)
    assert story["root"] == "drift"
    assert "sensor feeds anomaly (declared lineage)" in story["why"]
    assert "lineage decides" in story["why"]  # and says the onsets disagree
    assert story["members"][1]["because"] == "anomaly is fed by sensor (declared lineage)"


def test_onset_beats_detection_without_lineage() -> None:
    early = Member.of(inc("early", "a", 4, 40))
    late = Member.of(inc("late", "b", 8, 10))
    assert ids(order([late, early], {})) == ["early", "late"]
    story = tell([late, early], {})
    assert story["root"] == "early"
    assert "no lineage links it to b, and its change began first" in story["why"]
    assert "began later" in story["members"][1]["because"]


def test_equal_onsets_fall_back_to_detection_then_id() -> None:
    seen_late = Member.of(inc("x", "a", 5, 30))
    seen_first = Member.of(inc("y", "b", 5, 20))
    assert ids(order([seen_late, seen_first], {})) == ["y", "x"]
    assert "it was detected first" in tell([seen_late, seen_first], {})["why"]
    tie_b, tie_a = Member.of(inc("b", "s1", 5, 20)), Member.of(inc("a", "s2", 5, 20))
    assert ids(order([tie_b, tie_a], {})) == ["a", "b"]
    assert "the lower incident id breaks the tie" in tell([tie_b, tie_a], {})["why"]


def test_a_child_incident_is_explained_by_its_parent() -> None:
    parent = Member.of(inc("p", "sensor", 4, 22))
    child = Member.of(inc("c", "maintenance", 4, 22, parent_id="p", type="upstream-failure"))
    assert explains(parent, child, {}) and not explains(child, parent, {})
    assert ids(order([child, parent], {})) == ["p", "c"]
    assert tell([child, parent], {})["members"][1]["because"].startswith("opened by sensor's")


def test_lineage_orders_a_chain_and_unrelated_incidents_by_onset() -> None:
    chain = [
        Member.of(inc("m", "maintenance", 60, 72)),
        Member.of(inc("a", "anomaly", 8, 17)),
        Member.of(inc("s", "sensor", 4, 22)),
    ]
    other = Member.of(inc("o", "elsewhere", 30, 31))
    assert ids(order([*chain, other], LINEAGE)) == ["s", "a", "o", "m"]


def test_a_lineage_cycle_is_broken_by_onset() -> None:
    cycle = {"a": ["b"], "b": ["a"]}
    a, b = Member.of(inc("a", "a", 9, 10)), Member.of(inc("b", "b", 3, 12))
    assert not explains(a, b, cycle) and not explains(b, a, cycle)
    assert ids(order([a, b], cycle)) == ["b", "a"]


def test_overlapping_onset_intervals_are_said() -> None:
    def with_interval(i: str, s: str, onset: float, low: float, high: float) -> Member:
        interval = {"from": format_time(T0 + low * 60), "to": format_time(T0 + high * 60)}
        return Member.of(inc(i, s, onset, 30, evidence={"onset_interval": interval}))

    first, second = with_interval("p", "a", 4, 2, 9), with_interval("q", "b", 6, 5, 8)
    assert "onset intervals overlap" in tell([first, second], {})["why"]
    # ...and the interval is kept in the story's members
    assert Member.of(tell([first, second], {})["members"][0]) == first


def test_join_story_is_incremental_idempotent_and_bounded() -> None:
    lead = inc("flat", "anomaly", 8, 17)
    story = join_story(None, lead, inc("drift", "sensor", 4, 22), LINEAGE)
    assert [m["incident_id"] for m in story["members"]] == ["drift", "flat"]
    assert join_story(story, lead, inc("drift", "sensor", 4, 22), LINEAGE) == story
    for n in range(MAX_MEMBERS + 5):
        story = join_story(story, lead, inc(f"e{n:03d}", "maintenance", 30 + n, 40 + n), LINEAGE)
    assert len(story["members"]) == MAX_MEMBERS and story["more"] == 7
    # a newcomer further upstream still becomes the root
    story = join_story(
        story, lead, inc("ingest", "ingest", 50, 90), {"ingest": ["sensor"], **LINEAGE}
    )
    assert story["root"] == "ingest" and story["more"] == 8


def test_the_group_record_says_the_root_and_why_once() -> None:
    flat = inc("flat", "anomaly", 8, 17, type="model-output-flat")
    drift = inc("drift", "sensor", 4, 22, type="sensor-drift")
    lead = record_incident(None, flat, T0 + 17 * 60)
    lead = join_group(lead, drift, T0 + 22 * 60, LINEAGE)
    assert lead.story is not None and lead.story["root"] == "drift"
    roots = [e for e in lead.timeline if e.kind == "root"]
    assert len(roots) == 1 and roots[0].detail.startswith("root cause: sensor-drift on sensor: ")
    assert join_group(lead, drift, T0 + 23 * 60, LINEAGE) == lead  # redelivered: unchanged
    assert type(lead).from_data(lead.to_data()) == lead


def test_the_explainers_found_by_subject_are_those_of_every_pair() -> None:
    """tell() finds what explains what per pair of subjects (a flood of incidents on one
    subject made the per-pair test cost 28M calls for 600 incidents); it must find
    exactly what :func:`explains` says of every pair, parents and cycles included."""
    import random

    from riskstream.core.stories import _below, _explainers

    rng = random.Random(11)
    subjects = [f"s{i}" for i in range(5)]
    for _ in range(200):
        lineage = {
            s: rng.sample(subjects, rng.randint(0, 3)) for s in subjects if rng.random() < 0.6
        }
        n = rng.randint(1, 40)
        members = [
            Member(
                f"i{i}", rng.choice(subjects), "t", float(rng.randint(0, 9)), 10.0,
                f"i{rng.randrange(n)}" if rng.random() < 0.3 else None,
            )
            for i in range(n)
        ]  # fmt: skip
        pool = {m.incident_id: m for m in members}
        below = _below(pool.values(), lineage)
        pairwise = {
            b.incident_id: {
                a.incident_id for a in members if a is not b and explains(a, b, lineage, below)
            }
            for b in members
        }
        assert _explainers(pool, lineage, below) == pairwise


def test_a_redelivered_member_adds_nothing_when_the_list_is_full() -> None:
    """The timeline lists MAX_MEMBERS members, then one "more" entry.  A member listed
    already, delivered again once the list is full, was counted as one too many."""
    lead = record_incident(None, inc("lead", "anomaly", 0, 1), T0)
    members = [inc(f"m{n:03d}", "anomaly", 1 + n, 2 + n) for n in range(MAX_MEMBERS)]
    for member in members:
        lead = join_group(lead, member, T0 + 60, {})
    kinds = [e.kind for e in lead.timeline]
    assert kinds.count("correlated") == MAX_MEMBERS and "correlated-more" not in kinds
    assert join_group(lead, members[7], T0 + 120, {}) == lead
    lead = join_group(lead, inc("late", "anomaly", 500, 501), T0 + 180, {})
    assert [e.kind for e in lead.timeline].count("correlated-more") == 1
