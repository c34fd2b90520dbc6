"""The ApprovalStore contract, run over every backend (in-memory and real Redis).

Human oversight rests on these: an action is decided once, by a named person,
never by the one who asked when a separate approver is required; the record
says who decided, when and why; and racing deciders cannot both win.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from riskstream.adapters.memory.flags import InMemoryApprovalStore
from riskstream.adapters.redis.flags import RedisApprovalStore
from riskstream.core.approvals import Member, PendingAction
from riskstream.errors import ContainmentError

Store = InMemoryApprovalStore | RedisApprovalStore

T0 = 1_795_687_200.0
REQUESTER = "riskstream/containment"


def _pending(action_id: str = "a1", requested_at: float = T0, **fields: object) -> PendingAction:
    base = PendingAction(
        action_id=action_id,
        incident_id="incident-1",
        model_id="credit-v3",
        action={"kind": "fallback", "version": "v2", "fraction": 0.5, "steps": [1, 2]},
        requested_by=REQUESTER,
        requested_at=requested_at,
        expires_at=requested_at + 3600,
        labels={"team": "risk"},
    )
    return replace(base, **fields)


def test_an_action_is_added_once(approval_store: Store) -> None:
    first = _pending()
    assert approval_store.add(first) is True
    assert approval_store.add(_pending(note="a second request with the same id")) is False
    assert approval_store.get("a1") == first
    assert approval_store.get("never-added") is None


@pytest.mark.parametrize("status", ["approved", "rejected", "expired"])
def test_a_decision_is_recorded_with_who_when_and_why(approval_store: Store, status: str) -> None:
    approval_store.add(_pending())
    decided = approval_store.decide("a1", status, "dr.lee", T0 + 60, note="checked the drift")
    assert decided == _pending().decided(status, "dr.lee", T0 + 60, "checked the drift")
    assert approval_store.get("a1") == decided


@pytest.mark.parametrize("first", ["approved", "rejected", "expired"])
@pytest.mark.parametrize("second", ["approved", "rejected", "expired"])
def test_a_second_decision_is_refused_and_changes_nothing(
    approval_store: Store, first: str, second: str
) -> None:
    approval_store.add(_pending())
    decided = approval_store.decide("a1", first, "dr.lee", T0 + 60)
    with pytest.raises(ContainmentError, match=rf"a1 is already {first} \(by dr.lee\)"):
        approval_store.decide("a1", second, "dr.kim", T0 + 120)
    assert approval_store.get("a1") == decided


def test_the_requester_may_not_approve_their_own_action(approval_store: Store) -> None:
    approval_store.add(_pending())
    with pytest.raises(ContainmentError, match="may not approve it too; ask another approver"):
        approval_store.decide("a1", "approved", REQUESTER, T0 + 1)
    assert approval_store.get("a1") == _pending()
    # Withdrawing (rejecting) one's own request is allowed.
    assert approval_store.decide("a1", "rejected", REQUESTER, T0 + 2).status == "rejected"


def test_without_a_separate_approver_the_requester_may_approve(approval_store: Store) -> None:
    approval_store.add(_pending(separate_approver=False))
    assert approval_store.decide("a1", "approved", REQUESTER, T0 + 1).decided_by == REQUESTER


@pytest.mark.parametrize(
    ("action_id", "status", "by", "match"),
    [
        ("nope", "approved", "dr.lee", "cannot decide \\(approved\\) action nope: no such"),
        ("a1", "applied", "dr.lee", "unknown decision 'applied'"),
        ("a1", "maybe", "dr.lee", "unknown decision 'maybe'"),
        ("a1", "approved", "  ", "needs the name of the person"),
    ],
)
def test_malformed_decisions_are_refused(
    approval_store: Store, action_id: str, status: str, by: str, match: str
) -> None:
    approval_store.add(_pending())
    with pytest.raises(ContainmentError, match=match):
        approval_store.decide(action_id, status, by, T0 + 1)
    assert approval_store.get("a1") == _pending()


def test_only_new_pending_actions_can_be_added(approval_store: Store) -> None:
    decided = _pending().decided("approved", "dr.lee", T0)
    with pytest.raises(ContainmentError, match="is approved, not pending"):
        approval_store.add(decided)
    assert approval_store.get("a1") is None


def test_an_action_that_is_not_json_data_is_refused(approval_store: Store) -> None:
    with pytest.raises(ContainmentError, match="must be plain JSON data"):
        approval_store.add(_pending(action={"when": object()}))
    assert approval_store.get("a1") is None


def test_list_filters_by_status_and_sorts_by_request_time(approval_store: Store) -> None:
    for action_id, at in [("c", T0 + 30), ("a", T0 + 10), ("d", T0 + 40), ("b", T0 + 10)]:
        approval_store.add(_pending(action_id, requested_at=at))
    approval_store.decide("d", "approved", "dr.lee", T0 + 50)
    approval_store.decide("a", "rejected", "dr.lee", T0 + 50)

    def ids(status: str | None = None) -> list[str]:
        return [action.action_id for action in approval_store.list(status)]

    assert ids() == ["a", "b", "c", "d"]  # ties by requested_at go by id
    assert ids("pending") == ["b", "c"]
    assert ids("approved") == ["d"]
    assert ids("rejected") == ["a"]
    assert ids("expired") == []


def test_mark_applied_moves_approved_to_applied_only(approval_store: Store) -> None:
    for action_id in ("ok", "still-pending", "no"):
        approval_store.add(_pending(action_id))
    approved = approval_store.decide("ok", "approved", "dr.lee", T0 + 1)
    approval_store.decide("no", "rejected", "dr.lee", T0 + 1)

    approval_store.mark_applied("ok")
    assert approval_store.get("ok") == replace(approved, status="applied")
    assert [a.action_id for a in approval_store.list("applied")] == ["ok"]

    for action_id, status in [("still-pending", "pending"), ("no", "rejected"), ("ok", "applied")]:
        before = approval_store.get(action_id)
        with pytest.raises(ContainmentError, match=rf"{action_id} is {status}, not approved"):
            approval_store.mark_applied(action_id)
        assert approval_store.get(action_id) == before
    with pytest.raises(ContainmentError, match="no such action"):
        approval_store.mark_applied("never-added")
    with pytest.raises(ContainmentError, match="already applied"):
        approval_store.decide("ok", "rejected", "dr.kim", T0 + 2)


def test_expire_approved_moves_approved_to_expired_only(approval_store: Store) -> None:
    """An action approved but not carried out when its incident is resolved is closed
    as expired, saying by whom, when and why; nothing in any other state moves so."""
    for action_id in ("ok", "still-pending", "no", "done"):
        approval_store.add(_pending(action_id))
    approved = approval_store.decide("ok", "approved", "dr.lee", T0 + 1)
    approval_store.decide("no", "rejected", "dr.lee", T0 + 1)
    approval_store.decide("done", "approved", "dr.lee", T0 + 1)
    approval_store.mark_applied("done")

    why = "incident incident-1 resolved"
    expired = approval_store.expire_approved("ok", REQUESTER, T0 + 2, why)
    assert expired == approved.decided("expired", REQUESTER, T0 + 2, why)
    assert approval_store.get("ok") == expired
    assert [a.action_id for a in approval_store.list("expired")] == ["ok"]
    assert approval_store.list("approved") == []

    states = [("still-pending", "pending"), ("no", "rejected"), ("done", "applied"),
              ("ok", "expired"), ("never-added", None)]  # fmt: skip
    for action_id, status in states:
        before = approval_store.get(action_id)
        refused = f"{action_id} is {status}, not approved" if status else "no such action"
        with pytest.raises(ContainmentError, match=refused):
            approval_store.expire_approved(action_id, REQUESTER, T0 + 3, why)
        assert approval_store.get(action_id) == before


def test_racing_deciders_cannot_both_win(approval_store: Store) -> None:
    approval_store.add(_pending())
    barrier = threading.Barrier(8)
    wins: list[PendingAction] = []
    refusals: list[str] = []

    def decide(n: int) -> None:
        status = ("approved", "rejected", "expired")[n % 3]
        barrier.wait()
        try:
            wins.append(approval_store.decide("a1", status, f"approver-{n}", T0 + n))
        except ContainmentError as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(wins) == 1 and len(refusals) == 7
    assert approval_store.get("a1") == wins[0]
    assert all(f"already {wins[0].status} (by {wins[0].decided_by})" in r for r in refusals)


def test_returned_actions_are_copies(approval_store: Store) -> None:
    approval_store.add(_pending())
    got = approval_store.get("a1")
    assert got is not None
    got.action["kind"] = "forged"
    got.labels["team"] = "forged"
    approval_store.list()[0].action["version"] = "forged"
    assert approval_store.get("a1") == _pending()


# --- lists page at a constant cost; counts, deadlines and storms (issue 12) ----------


def test_lists_page_in_request_order_with_an_action_id_cursor(approval_store: Store) -> None:
    for i in range(7):  # requested out of order; two at the same instant
        approval_store.add(_pending(f"a{i}", T0 + (3 - i) % 5))
    order = [a.action_id for a in approval_store.list()]
    assert order == ["a3", "a2", "a1", "a6", "a0", "a5", "a4"]  # by (requested_at, id)
    pages, after = [], None
    while True:
        page = approval_store.list(after=after, limit=3)
        pages.append([a.action_id for a in page])
        if len(page) < 3:
            break
        after = page[-1].action_id
    assert pages == [order[:3], order[3:6], order[6:]]
    approval_store.decide("a1", "approved", "dr.lee", T0 + 60)
    assert [a.action_id for a in approval_store.list("pending", limit=3)] == ["a3", "a2", "a6"]
    assert [a.action_id for a in approval_store.list("approved")] == ["a1"]
    assert [a.action_id for a in approval_store.list("pending", after="a1")] == order[3:]
    with pytest.raises(ContainmentError, match="no such action"):
        approval_store.list(after="never-added")


def test_the_summary_and_due_follow_decisions(approval_store: Store) -> None:
    assert approval_store.summary().pending == 0
    approval_store.add(_pending("early", T0, expires_at=T0 + 10))
    approval_store.add(_pending("late", T0 + 5, expires_at=T0 + 100))
    approval_store.add(_pending("never", T0 + 6, expires_at=None))
    summary = approval_store.summary()
    assert (summary.pending, summary.oldest, summary.next_deadline) == (3, T0, T0 + 10)
    assert [a.action_id for a in approval_store.due(T0 + 50)] == ["early"]
    approval_store.decide("early", "rejected", "dr.lee", T0 + 20)
    assert approval_store.due(T0 + 50) == []
    summary = approval_store.summary()
    assert (summary.pending, summary.oldest, summary.next_deadline) == (2, T0 + 5, T0 + 100)


def test_a_grouped_action_holds_each_incident_once(approval_store: Store) -> None:
    group = _pending("g1", incident_id="storm:drift@1", model_id="*", group="drift")
    approval_store.add(group)
    approval_store.add(_pending("solo"))  # incident-1's own action
    first = Member("incident-1", "credit-v3", 0, T0 + 1, {"summary": "x"})
    assert approval_store.join("g1", first) is True
    assert approval_store.join("g1", replace(first, at=T0 + 9)) is False  # a redelivery
    assert approval_store.join("g1", Member("incident-2", "credit-v4", 0, T0 + 2)) is True
    assert [m.incident_id for m in approval_store.members("g1")] == ["incident-1", "incident-2"]
    assert approval_store.members("g1")[0] == first
    of_one = approval_store.list(incident_id="incident-1")
    assert sorted(a.action_id for a in of_one) == ["g1", "solo"]
    assert [a.action_id for a in approval_store.list(incident_id="incident-2")] == ["g1"]
    with pytest.raises(ContainmentError, match="not a grouped action"):
        approval_store.join("solo", Member("incident-3", "m", 0, T0))
    approval_store.decide("g1", "rejected", "dr.lee", T0 + 60)
    with pytest.raises(ContainmentError, match="start a new group"):
        approval_store.join("g1", Member("incident-3", "m", 0, T0))
    with pytest.raises(ContainmentError, match="no such action"):
        approval_store.join("nope", Member("incident-3", "m", 0, T0))
