"""The FlagStore contract, run over every backend (in-memory and real Redis).

What containment relies on: a change is applied at most once however often it is
redelivered; a change decided on a stale revision is refused whole; every applied
change leaves exactly one audit entry, chained to the one before; and all of that
holds with several appliers at once.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import pytest

from riskstream.adapters.memory.flags import InMemoryFlagStore
from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.core.audit import GENESIS, entry_body, entry_hash
from riskstream.core.routing import FlagChange, RoutingFlag, change_id
from riskstream.errors import ContainmentError
from riskstream.ports import ApplyResult, AuditReport

Store = InMemoryFlagStore | RedisFlagStore

T0 = 1_795_687_200.0
MODEL = "model-a"


def _flag(model_id: str, revision: int, **fields: object) -> RoutingFlag:
    base = RoutingFlag(
        model_id=model_id,
        active_version="v1",
        revision=revision,
        updated_at=T0 + revision,
    )
    return base.evolve(**fields)


def _change(model_id: str, expected: int, step: str = "apply", **fields: object) -> FlagChange:
    return FlagChange(
        change_id=change_id(f"incident-{model_id}-{expected}", 0, step),
        expected_revision=expected,
        flag=_flag(model_id, expected + 1, **fields),
    )


def _next(store: Store, model_id: str, tag: str, **fields: object) -> ApplyResult:
    """Apply one change on whatever the model's flag is now."""
    current = store.get(model_id)
    expected = 0 if current is None else current.revision
    change = FlagChange(
        change_id=change_id(f"{tag}|{model_id}", expected),
        expected_revision=expected,
        flag=_flag(model_id, expected + 1, **fields),
    )
    return store.apply(change, at=T0 + expected)


def test_the_first_change_applies_with_revision_one(flag_store: Store) -> None:
    store, model = flag_store, MODEL
    assert store.get(model) is None and store.all() == {} and store.count() == 0
    change = _change(model, 0, mode="fallback", active_version="v0", reason="drift")

    result = store.apply(change, at=T0)

    assert result == ApplyResult("applied", change.flag)
    assert store.get(model) == change.flag
    assert store.all() == {model: change.flag}
    assert store.count() == 1
    (entry,) = store.audit()
    assert (entry.seq, entry.change_id, entry.model_id, entry.actor, entry.at) == (
        1,
        change.change_id,
        model,
        "riskstream",
        T0,
    )
    assert (entry.before, entry.after, entry.prev_hash) == (None, change.flag.to_data(), GENESIS)
    assert entry.hash == entry_hash(GENESIS, entry_body(entry))
    assert store.verify_audit() == AuditReport(ok=True, length=1)


def test_the_same_change_twice_is_written_once(flag_store: Store) -> None:
    store, model = flag_store, MODEL
    change = _change(model, 0)
    assert store.apply(change, at=T0).outcome == "applied"

    again = store.apply(change, at=T0 + 5)
    # A redelivery that somehow carries other content is the same change: refused.
    altered = FlagChange(change.change_id, 0, change.flag.evolve(mode="blocked"))
    assert store.apply(altered, at=T0 + 6) == again

    assert again == ApplyResult("duplicate", change.flag)
    assert len(store.audit()) == 1
    assert store.get(model) == change.flag


def test_a_duplicate_is_reported_even_after_later_changes(
    flag_store: Store,
) -> None:
    store, model = flag_store, MODEL
    first = _change(model, 0)
    second = _change(model, 1, mode="shadow")
    store.apply(first, at=T0)
    store.apply(second, at=T0 + 1)
    # "duplicate" wins over "conflict": the change was applied, whatever came after.
    assert store.apply(first, at=T0 + 2) == ApplyResult("duplicate", second.flag)
    assert len(store.audit()) == 2


def test_a_stale_expected_revision_conflicts_and_writes_nothing(
    flag_store: Store,
) -> None:
    store, model = flag_store, MODEL
    store.apply(_change(model, 0), at=T0)
    current = store.apply(_change(model, 1, mode="fallback"), at=T0 + 1).current

    stale = _change(model, 1, step="other-decision", mode="blocked")
    result = store.apply(stale, at=T0 + 2)

    assert result == ApplyResult("conflict", current)
    assert store.get(model) == current
    assert [entry.seq for entry in store.audit()] == [1, 2]
    # The refused change id was not consumed: decided again on revision 2, it applies.
    retried = FlagChange(stale.change_id, 2, stale.flag.evolve(revision=3))
    assert store.apply(retried, at=T0 + 3).outcome == "applied"


def test_a_change_expecting_a_flag_that_does_not_exist_conflicts(
    flag_store: Store,
) -> None:
    store, model = flag_store, MODEL
    assert store.apply(_change(model, 4), at=T0) == ApplyResult("conflict", None)
    assert store.get(model) is None and store.audit() == []


@pytest.mark.parametrize("revision", [0, 1, 3])
def test_a_revision_that_is_not_expected_plus_one_is_refused(
    flag_store: Store, revision: int
) -> None:
    store, model = flag_store, MODEL
    store.apply(_change(model, 0), at=T0)
    bad = FlagChange("bad-revision", 1, _flag(model, revision))
    with pytest.raises(ContainmentError, match=r"the new revision must be 2; nothing changed"):
        store.apply(bad, at=T0 + 1)
    assert store.get(model) == _flag(model, 1)
    assert len(store.audit()) == 1


def test_an_empty_change_id_is_refused(flag_store: Store) -> None:
    store, model = flag_store, MODEL
    with pytest.raises(ContainmentError, match="empty change_id"):
        store.apply(FlagChange("", 0, _flag(model, 1)), at=T0)
    assert store.get(model) is None


def test_the_audit_chain_links_every_change_across_models(
    flag_store: Store,
) -> None:
    store, prefix = flag_store, MODEL
    models = [f"{prefix}-{n}" for n in range(5)]
    for round_ in range(12):
        for n, model in enumerate(models):
            actor = f"person-{(round_ + n) % 3}"
            result = _next(store, model, f"r{round_}", actor=actor, traffic_fraction=n / 10)
            assert result.outcome == "applied"

    entries = store.audit()
    assert [entry.seq for entry in entries] == list(range(1, 61))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    # Each entry's `before` is exactly the `after` of that model's previous entry.
    last: dict[str, object] = {}
    for entry in entries:
        assert entry.before == last.get(entry.model_id)
        last[entry.model_id] = entry.after
    assert {model: flag.revision for model, flag in store.all().items()} == dict.fromkeys(
        models, 12
    )
    assert store.verify_audit() == AuditReport(ok=True, length=60)


def test_audit_pages_by_the_last_seq_seen(flag_store: Store) -> None:
    store, model = flag_store, MODEL
    for n in range(7):
        _next(store, model, f"p{n}")
    everything = store.audit()
    assert store.audit(start=0, count=3) == everything[:3]
    assert store.audit(start=3, count=3) == everything[3:6]
    assert store.audit(start=6) == everything[6:]
    assert store.audit(start=7) == []
    assert store.audit(start=2, count=0) == []
    for start, count in [(-1, None), (0, -1)]:
        with pytest.raises(ValueError, match="must be >= 0"):
            store.audit(start, count)


def test_audit_entries_are_copies(flag_store: Store) -> None:
    store, model = flag_store, MODEL
    _next(store, model, "a")
    store.audit()[0].after["mode"] = "forged"
    assert store.audit()[0].after["mode"] == "normal"
    assert store.verify_audit().ok


def test_an_empty_trail_verifies(flag_store: Store) -> None:
    assert flag_store.verify_audit() == AuditReport(ok=True, length=0)
    assert flag_store.audit() == []


def test_flags_come_back_at_millisecond_precision(flag_store: Store) -> None:
    """Flags are stored as to_data() (RFC 3339, ms): both stores round alike."""
    store, model = flag_store, MODEL
    flag = _flag(model, 1, updated_at=T0 + 0.123456, expires_at=T0 + 60.0009)
    result = store.apply(FlagChange("precise", 0, flag), at=T0)
    assert result.current == RoutingFlag.from_data(flag.to_data()) == store.get(model)
    assert result.current is not None and result.current.updated_at == T0 + 0.123


def test_concurrent_appliers_keep_one_valid_chain(flag_store: Store) -> None:
    """Threads race on shared models: every applied change is audited once, in one chain."""
    store, prefix = flag_store, MODEL
    models = [f"{prefix}-{n}" for n in range(3)]
    applied: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[BaseException] = []

    def applier(worker: int) -> None:
        try:
            for n in range(15):
                model = models[(worker + n) % len(models)]
                while True:
                    result = _next(store, model, f"w{worker}-{n}", actor=f"w{worker}")
                    with lock:
                        (applied if result.outcome == "applied" else conflicts)[model] += 1
                    if result.outcome == "applied":
                        break
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=applier, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures, failures
    assert sum(applied.values()) == 120
    assert {m: f.revision for m, f in store.all().items()} == dict(applied)
    entries = store.audit()
    assert len(entries) == 120 and len({entry.change_id for entry in entries}) == 120
    assert store.verify_audit() == AuditReport(ok=True, length=120)


def test_racing_redeliveries_of_one_change_apply_it_once(
    flag_store: Store,
) -> None:
    store, model = flag_store, MODEL
    change = _change(model, 0)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        outcomes.append(store.apply(change, at=T0).outcome)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 7
    assert len(store.audit()) == 1


def test_the_memory_store_tells_listeners_of_applied_changes_only() -> None:
    store = InMemoryFlagStore()
    heard: list[tuple[str, int]] = []
    unsubscribe = store.subscribe(lambda model, revision: heard.append((model, revision)))
    store.apply(_change("m", 0), at=T0)
    store.apply(_change("m", 0), at=T0)  # duplicate
    store.apply(_change("m", 0, step="late"), at=T0)  # conflict
    store.apply(_change("m", 1), at=T0)
    unsubscribe()
    unsubscribe()  # twice is harmless
    store.apply(_change("m", 2), at=T0)
    assert heard == [("m", 1), ("m", 2)]


def test_a_shift_in_flight_round_trips_with_its_fraction_and_plan(flag_store: Store) -> None:
    from riskstream.core.routing import Rollout

    plan = Rollout("inc-1", "c0ffee", (0.1, 0.5, 1.0), 0, 300.0, T0, T0 + 300.0)
    fields = {"traffic_fraction": 0.1, "previous_version": "v0", "previous_mode": "normal"}
    assert _next(flag_store, MODEL, "step", rollout=plan, **fields).outcome == "applied"
    stored = flag_store.get(MODEL)
    assert stored is not None
    assert (stored.traffic_fraction, stored.previous_version, stored.rollout) == (0.1, "v0", plan)
    assert flag_store.audit()[-1].after["rollout"]["steps"] == [0.1, 0.5, 1.0]
    assert flag_store.verify_audit().ok
