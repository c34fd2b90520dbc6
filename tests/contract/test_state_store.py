"""The StateStore contract, run over every backend (in-memory and real Redis).

What the detection service relies on: a claim hands back exactly what the previous
owner last saved and fences that owner out; a save is all-or-nothing; bytes come
back bit for bit.  A backend passes all of these or it is not a StateStore.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.adapters.redis.state import RedisStateStore
from riskstream.errors import FencedError
from riskstream.ports import PartitionState

Store = InMemoryStateStore | RedisStateStore

TP = ("events", 0)


def _saved(state: PartitionState) -> tuple[object, ...]:
    """Everything but the epoch, to compare what two claims saw."""
    return state.offset, dict(state.counters), dict(state.snapshots)


def test_a_fresh_claim_gets_epoch_one_and_nothing_saved(
    store: Store, unique: Callable[[str], str]
) -> None:
    state = store.claim(unique("fresh"), TP)
    assert state == PartitionState(epoch=1, offset=None, counters={}, snapshots={})


def test_a_claim_returns_the_last_save_and_bumps_the_epoch(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("resume")
    first = store.claim(scope, TP)
    store.save(scope, TP, first.epoch, 42, {"applied": 40, "dead": 2}, {"a": b"1", "b": b"2"})
    second = store.claim(scope, TP)
    assert second.epoch == first.epoch + 1
    assert _saved(second) == (42, {"applied": 40, "dead": 2}, {"a": b"1", "b": b"2"})


def test_snapshots_accumulate_while_offset_and_counters_are_replaced(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("increment")
    epoch = store.claim(scope, TP).epoch
    store.save(scope, TP, epoch, 10, {"applied": 10, "dead": 1}, {"a": b"1", "b": b"2"})
    store.save(scope, TP, epoch, 20, {"applied": 20}, {"b": b"22", "c": b"3"})
    assert _saved(store.claim(scope, TP)) == (
        20,
        {"applied": 20},
        {"a": b"1", "b": b"22", "c": b"3"},
    )


def test_deleted_keys_vanish_and_unknown_ones_are_ignored(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("delete")
    epoch = store.claim(scope, TP).epoch
    store.save(scope, TP, epoch, 1, {}, {"a": b"1", "b": b"2", "c": b"3"})
    store.save(scope, TP, epoch, 2, {}, {}, deleted=iter(["a", "c", "never-saved"]))
    assert store.claim(scope, TP).snapshots == {"b": b"2"}


def test_a_stale_owner_is_fenced_and_writes_nothing(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("fence")
    old = store.claim(scope, ("events", 3))
    store.save(scope, ("events", 3), old.epoch, 7, {"applied": 7}, {"a": b"1", "b": b"2"})
    new = store.claim(scope, ("events", 3))

    with pytest.raises(FencedError) as raised:
        store.save(
            scope,
            ("events", 3),
            old.epoch,
            offset=99,
            counters={"applied": 99, "extra": 1},
            changed={f"k{i}": b"x" * 300 for i in range(1000)} | {"a": b"overwritten"},
            deleted=["b"],
        )
    message = str(raised.value)
    for part in (scope, "events[3]", f"epoch {old.epoch}", f"current epoch is {new.epoch}"):
        assert part in message
    after = store.claim(scope, ("events", 3))
    assert _saved(after) == (7, {"applied": 7}, {"a": b"1", "b": b"2"})
    assert after.epoch == new.epoch + 1


@pytest.mark.parametrize("offset_from_current", [-1, +1])
def test_any_epoch_but_the_current_one_is_fenced(
    store: Store, unique: Callable[[str], str], offset_from_current: int
) -> None:
    scope = unique("epochs")
    store.claim(scope, TP)
    current = store.claim(scope, TP).epoch
    with pytest.raises(FencedError):
        store.save(scope, TP, current + offset_from_current, 1, {}, {"a": b"1"})
    assert _saved(store.claim(scope, TP)) == (None, {}, {})


def test_saving_a_never_claimed_partition_is_fenced(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("unclaimed")
    for epoch in (0, 1):
        with pytest.raises(FencedError, match="never claimed"):
            store.save(scope, TP, epoch, 1, {"applied": 1}, {"a": b"1"})
    assert store.claim(scope, TP) == PartitionState(epoch=1)


@pytest.mark.parametrize(
    ("offset", "changed", "deleted", "match"),
    [
        (-1, {}, (), "offset must be >= 0"),
        (5, {"a": b"1", "b": b"2"}, ("b",), "both changed and deleted"),
    ],
)
def test_caller_bugs_are_refused_before_anything_is_written(
    store: Store,
    unique: Callable[[str], str],
    offset: int,
    changed: dict[str, bytes],
    deleted: tuple[str, ...],
    match: str,
) -> None:
    scope = unique("refuse")
    epoch = store.claim(scope, TP).epoch
    with pytest.raises(ValueError, match=match):
        store.save(scope, TP, epoch, offset, {"applied": 1}, changed, deleted)
    assert _saved(store.claim(scope, TP)) == (None, {}, {})


def test_scopes_topics_and_partitions_are_isolated(
    store: Store, unique: Callable[[str], str]
) -> None:
    run = unique("iso")
    # The last two would collide under a naive "scope|topic" key.
    places = [
        (f"{run}-a", ("events", 0)),
        (f"{run}-a", ("events", 1)),
        (f"{run}-a", ("alerts", 0)),
        (f"{run}-b", ("events", 0)),
        (f"{run}|x", ("y", 0)),
        (run, ("x|y", 0)),
    ]
    for n, (scope, tp) in enumerate(places):
        epoch = store.claim(scope, tp).epoch
        assert epoch == 1, f"{scope} {tp} shares an epoch with an earlier place"
        store.save(scope, tp, epoch, n, {"n": n}, {"key": str(n).encode()})
    for n, (scope, tp) in enumerate(places):
        assert _saved(store.claim(scope, tp)) == (n, {"n": n}, {"key": str(n).encode()})


def test_ten_thousand_snapshots_round_trip_in_one_save(
    store: Store, unique: Callable[[str], str]
) -> None:
    rng = random.Random(7)
    snapshots = {
        f"model-{i}/feature-{i % 17}": rng.randbytes(rng.randint(200, 1500)) for i in range(10_000)
    }
    scope = unique("big")
    epoch = store.claim(scope, TP).epoch
    store.save(scope, TP, epoch, 10_000, {"applied": 10_000}, snapshots)
    state = store.claim(scope, TP)
    assert state.snapshots == snapshots
    payload = sum(len(k) + len(v) for k, v in snapshots.items())
    # Redis estimates by sampling and adds overhead; the memory store is exact.
    assert payload * 0.7 <= store.state_bytes(scope, TP) <= payload * 2


def test_bytes_keys_and_numbers_survive_exactly(store: Store, unique: Callable[[str], str]) -> None:
    every_byte = bytes(range(256))
    snapshots = {f"byte-{b}": bytes([b]) for b in range(256)} | {
        "all": every_byte,
        "all-reversed": every_byte[::-1] * 4,
        "empty": b"",
        "ünïcödé-€-🚀": b"\x00\r\n\xff",
        # Names the Redis layout uses internally must not leak into the data.
        "epoch": b"e",
        "offset": b"o",
        "c:applied": b"c",
    }
    counters = {"epoch": 1, "offset": 2, "c:x": -3, "big": 2**63 - 1, "ünï": 0}
    scope = unique("bytes")
    epoch = store.claim(scope, TP).epoch
    store.save(scope, TP, epoch, 2**63 - 1, counters, snapshots)
    assert _saved(store.claim(scope, TP)) == (2**63 - 1, counters, snapshots)


def test_claimed_state_is_a_copy_not_a_live_view(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("copy")
    epoch = store.claim(scope, TP).epoch
    changed = {"a": b"1"}
    counters = {"applied": 1}
    store.save(scope, TP, epoch, 1, counters, changed)
    changed["b"] = b"2"
    counters["applied"] = 5
    state = store.claim(scope, TP)
    assert _saved(state) == (1, {"applied": 1}, {"a": b"1"})
    assert isinstance(state.snapshots, dict)
    state.snapshots["c"] = b"3"
    assert "c" not in store.claim(scope, TP).snapshots


def test_concurrent_claims_each_get_a_distinct_epoch(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("race")
    epochs: list[int] = []
    lock = threading.Lock()

    def claim_many() -> None:
        for _ in range(25):
            epoch = store.claim(scope, TP).epoch
            with lock:
                epochs.append(epoch)

    threads = [threading.Thread(target=claim_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(epochs) == list(range(1, 201))


def test_state_bytes_is_zero_for_an_unknown_partition(
    store: Store, unique: Callable[[str], str]
) -> None:
    assert store.state_bytes(unique("nothing"), TP) == 0


def test_peek_reads_the_saved_state_without_taking_ownership(
    store: Store, unique: Callable[[str], str]
) -> None:
    scope = unique("peek")
    assert store.peek(scope, TP) == PartitionState(epoch=0)
    owner = store.claim(scope, TP)
    store.save(scope, TP, owner.epoch, 7, {"applied": 7}, {"k": b"v"})
    seen = store.peek(scope, TP)
    assert (seen.epoch, *_saved(seen)) == (owner.epoch, 7, {"applied": 7}, {"k": b"v"})
    store.save(scope, TP, owner.epoch, 8, {"applied": 8}, {})  # the owner was not fenced
    assert store.peek(scope, TP).offset == 8
