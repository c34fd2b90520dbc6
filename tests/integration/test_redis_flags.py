"""What only the Redis flag and approval stores can get wrong: layout, wire, tampering.

The router clients read the key layout directly, so it is pinned here.  The audit
trail lives in a server others can write to, so editing, deleting and reordering
its entries by hand must be caught by ``verify_audit``, naming the entry.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from riskstream.adapters.redis.flags import (
    REQUIRED_ACL,
    RedisApprovalStore,
    RedisFlagStore,
    flag_keys,
)
from riskstream.core.approvals import Member, PendingAction
from riskstream.core.audit import entry_hash, entry_to_data
from riskstream.core.routing import FlagChange, RoutingFlag, change_id
from riskstream.errors import ConfigError, StateStoreError
from riskstream.ports import AuditReport
from riskstream.router import flag_keys as router_flag_keys

T0 = 1_795_687_200.0
MODEL = "credit-v3"


def _change(expected: int, model: str = MODEL, tag: str = "i", **fields: Any) -> FlagChange:
    flag = RoutingFlag(model, "v2", revision=expected + 1, updated_at=T0 + expected)
    return FlagChange(change_id(f"{tag}|{model}", expected), expected, flag.evolve(**fields))


def _apply_n(store: RedisFlagStore, n: int) -> None:
    for expected in range(n):
        assert store.apply(_change(expected), at=T0 + expected).outcome == "applied"


# --- key layout (no server needed) -------------------------------------------


def test_the_layout_the_router_clients_read() -> None:
    assert flag_keys() == (
        "rs:{flags|default}:flags",
        "rs:{flags|default}:applied",
        "rs:{flags|default}:audit",
        "rs:{flags|default}:head",
        "rs:{flags|default}:pending",
        "rs:{flags|default}:changed",
        "rs:{flags|default}:incidents",
        "rs:{flags|default}:incidents_by_time",
        "rs:{flags|default}:actions",
        "rs:{flags|default}:deadlines",
        "rs:{flags|default}:action_incidents",
        "rs:{flags|default}:members",
        "rs:{flags|default}:incidents_of",
        "rs:{flags|default}:epoch",
        "rs:{flags|default}:health",
        "rs:{flags|default}:outbox",
        "rs:{flags|default}:outbox_events",
    )
    for namespace in ("default", "prod-eu", "team.a:b", "ünï"):
        slots = {key_slot(key.encode()) for key in flag_keys(namespace)}
        assert len(slots) == 1, namespace


def test_the_store_and_the_router_agree_on_keys_and_namespaces() -> None:
    for namespace in ("default", "prod-eu", "team.a:b"):
        keys = flag_keys(namespace)
        assert router_flag_keys(namespace) == (keys.flags, keys.changed)
    for bad in ("", "a|b", "a}b", "{x", "50%"):
        with pytest.raises(ConfigError, match="namespace"):
            flag_keys(bad)
        with pytest.raises(ConfigError, match="namespace"):
            RedisFlagStore(redis.Redis(), bad)


# --- on the real server --------------------------------------------------------


@pytest.fixture
def store(redis_url: str, unique: Callable[[str], str]) -> Iterator[RedisFlagStore]:
    flag_store = RedisFlagStore.from_url(redis_url, namespace=unique("flags"))
    yield flag_store
    flag_store.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    raw = redis.Redis.from_url(redis_url)
    yield raw
    raw.close()


@pytest.mark.integration
def test_what_is_stored_is_what_the_layout_says(
    store: RedisFlagStore, client: redis.Redis, redis_url: str
) -> None:
    keys = store.keys
    approvals = RedisApprovalStore(client, store.namespace)
    change = _change(0, mode="fallback")
    store.apply(change, at=T0)
    pending = PendingAction("act-1", "inc-1", MODEL, {"kind": "block"}, "riskstream", T0, None)
    approvals.add(pending)

    namespace_keys = sorted(client.scan_iter(match=keys.flags.rsplit(":", 1)[0] + ":*"))
    indexes = (f"{keys.actions}:all", f"{keys.actions}:pending", f"{keys.actions}:indexed")
    assert namespace_keys == sorted(
        k.encode()
        for k in (keys.flags, keys.applied, keys.audit, keys.head, keys.pending,
                  keys.action_incidents, *indexes)
    )  # fmt: skip
    assert orjson.loads(client.hget(keys.flags, MODEL)) == change.flag.to_data()
    assert client.smembers(keys.applied) == {change.change_id.encode()}
    (entry,) = store.audit()
    [(stream_id, fields)] = client.xrange(keys.audit)
    assert stream_id == b"1-0" and list(fields) == [b"entry"]
    assert orjson.loads(fields[b"entry"]) == entry_to_data(entry)
    assert client.hgetall(keys.head) == {b"seq": b"1", b"hash": entry.hash.encode()}
    assert orjson.loads(client.hget(keys.pending, "act-1")) == pending.to_data()
    member = f"{T0:021.6f}|act-1".encode()
    assert client.zrange(f"{keys.actions}:pending", 0, -1) == [member]
    assert orjson.loads(client.hget(keys.action_incidents, "inc-1")) == ["act-1"]


@pytest.mark.integration
def test_actions_stored_before_the_indexes_are_indexed_once(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    """A namespace written by an older riskstream (the pending hash only) still lists,
    counts and expires right: the first store to touch it indexes it, in one script."""
    keys = store.keys
    old = [
        PendingAction(f"old-{i}", f"inc-{i % 2}", MODEL, {"kind": "block"}, "riskstream",
                      T0 + i, T0 + 100 + i, status="pending" if i < 3 else "rejected")
        for i in range(5)
    ]  # fmt: skip
    for action in old:  # as the older store wrote them
        client.hset(keys.pending, action.action_id, orjson.dumps(action.to_data()))
    approvals = RedisApprovalStore(client, store.namespace)
    assert [a.action_id for a in approvals.list("pending")] == ["old-0", "old-1", "old-2"]
    assert [a.action_id for a in approvals.list("rejected")] == ["old-3", "old-4"]
    summary = approvals.summary()
    assert (summary.pending, summary.oldest, summary.next_deadline) == (3, T0, T0 + 100)
    assert [a.action_id for a in approvals.due(T0 + 101)] == ["old-0", "old-1"]
    assert [a.action_id for a in approvals.list(incident_id="inc-1")] == ["old-1", "old-3"]
    approvals.decide("old-0", "approved", "dr.lee", T0 + 5)
    again = RedisApprovalStore(client, store.namespace)  # indexed already: not redone
    assert [a.action_id for a in again.list("pending")] == ["old-1", "old-2"]
    assert [a.action_id for a in again.list("approved")] == ["old-0"]


@pytest.mark.integration
def test_each_applied_change_is_published(store: RedisFlagStore, client: redis.Redis) -> None:
    subscriber = client.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(store.keys.changed)
    _wait_for(lambda: client.pubsub_numsub(store.keys.changed)[0][1] == 1, "the subscription")

    store.apply(_change(0), at=T0)
    store.apply(_change(0), at=T0)  # duplicate: no message
    store.apply(_change(0, tag="late"), at=T0)  # conflict: no message
    store.apply(_change(1, model="other"), at=T0)  # conflict (no flag yet): no message
    store.apply(_change(1), at=T0 + 1)

    messages = [_next_message(subscriber) for _ in range(2)]
    assert [orjson.loads(m["data"]) for m in messages] == [
        {"model_id": MODEL, "revision": 1},
        {"model_id": MODEL, "revision": 2},
    ]
    assert all(m["channel"] == store.keys.changed.encode() for m in messages)
    time.sleep(0.2)
    assert subscriber.get_message(timeout=0.1) is None
    subscriber.close()


@pytest.mark.integration
def test_a_deleted_entry_is_reported_by_its_seq(store: RedisFlagStore, client: redis.Redis) -> None:
    _apply_n(store, 6)
    client.xdel(store.keys.audit, "3-0")
    report = store.verify_audit()
    assert not report.ok and report.length == 5
    assert report.problem == "audit entry seq 4 follows seq 2: seq 3 is missing (deleted)"


@pytest.mark.integration
def test_deleting_the_newest_entry_is_caught_by_the_head(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    _apply_n(store, 4)
    client.xdel(store.keys.audit, "4-0")
    report = store.verify_audit()
    assert not report.ok
    assert "head says the last audit entry is seq 4, but the trail ends at seq 3" in report.problem
    # The store goes on appending past the gap (XADD ids only grow); the gap stays visible.
    assert store.apply(_change(4), at=T0 + 4).outcome == "applied"
    assert "seq 4 is missing (deleted)" in store.verify_audit().problem


@pytest.mark.integration
def test_a_deleted_head_is_reported_and_blocks_further_applies(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    _apply_n(store, 3)
    client.delete(store.keys.head)
    report = store.verify_audit()
    assert not report.ok and report.length == 3
    assert report.problem.startswith("the trail goes on to seq 3, past the head's seq 0")
    # Restarting the chain from genesis would hide the history: XADD refuses seq 1.
    with pytest.raises(StateStoreError, match="holds entries past the head"):
        store.apply(_change(3), at=T0 + 3)
    assert [entry.seq for entry in store.audit()] == [1, 2, 3]


@pytest.mark.integration
def test_an_edited_entry_is_reported_by_its_seq(store: RedisFlagStore, client: redis.Redis) -> None:
    _apply_n(store, 5)

    def forge(data: dict[str, Any]) -> None:
        data["actor"] = "mallory"

    _rewrite_stream(client, store.keys.audit, {3: forge})
    report = store.verify_audit()
    assert not report.ok and report.length == 5
    assert report.problem.startswith("audit entry seq 3 was edited")


@pytest.mark.integration
def test_an_edited_and_rehashed_entry_is_reported_by_the_next_link(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    _apply_n(store, 5)

    def forge(data: dict[str, Any]) -> None:
        data["after"]["mode"] = "normal-looking"
        data["hash"] = entry_hash(data["prev_hash"], data)

    _rewrite_stream(client, store.keys.audit, {3: forge})
    report = store.verify_audit()
    assert not report.ok
    assert report.problem.startswith("audit entry seq 4 does not link to seq 3")


@pytest.mark.integration
def test_reordered_entries_are_reported(store: RedisFlagStore, client: redis.Redis) -> None:
    _apply_n(store, 5)
    entries = [fields for _, fields in client.xrange(store.keys.audit)]
    entries[1], entries[2] = entries[2], entries[1]
    client.delete(store.keys.audit)
    for n, fields in enumerate(entries, start=1):
        client.xadd(store.keys.audit, fields, id=f"{n}-0")
    report = store.verify_audit()
    assert not report.ok
    assert report.problem == (
        "audit stream entry 2-0 holds audit seq 3: entries were re-added under other ids"
    )


@pytest.mark.integration
def test_an_unreadable_entry_is_reported_not_raised(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    _apply_n(store, 3)

    def garble(data: dict[str, Any]) -> None:
        del data["hash"]

    _rewrite_stream(client, store.keys.audit, {2: garble})
    report = store.verify_audit()
    assert not report.ok and report.length == 1
    assert report.problem == (
        "audit stream entry 2-0 cannot be read (not an audit entry: missing fields "
        "['hash']): something else wrote it"
    )
    with pytest.raises(StateStoreError, match=r"audit field '2-0' is not what riskstream writes"):
        store.audit()


@pytest.mark.integration
def test_a_writer_that_appends_first_makes_apply_retry_on_the_new_head(
    store: RedisFlagStore, redis_url: str
) -> None:
    """Another writer appends between our read of the head and our script: 'retry'."""
    rival = _in_another_process(RedisFlagStore.from_url(redis_url, namespace=store.namespace))
    real_script = store._apply_script
    calls: list[int] = []

    def script_after_a_rival(**kwargs: Any) -> Any:
        if not calls:
            assert rival.apply(_change(0, model="rival"), at=T0).outcome == "applied"
        calls.append(1)
        return real_script(**kwargs)

    store._apply_script = script_after_a_rival
    assert store.apply(_change(0), at=T0 + 1).outcome == "applied"

    assert (len(calls), store.retries) == (2, 1)
    rival_entry, ours = store.audit()
    assert (rival_entry.model_id, ours.model_id) == ("rival", MODEL)
    assert (ours.seq, ours.prev_hash) == (2, rival_entry.hash)
    assert store.verify_audit().ok
    rival.close()


@pytest.mark.integration
def test_a_flag_rewritten_behind_the_stores_back_is_audited_as_found(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    """The entry's `before` must be the flag replaced, even if the head did not move."""
    store.apply(_change(0), at=T0)
    edited = _change(0).flag.evolve(reason="hand-edited").to_data()
    client.hset(store.keys.flags, MODEL, orjson.dumps(edited))
    assert store.apply(_change(1), at=T0 + 1).outcome == "applied"
    assert store.audit()[1].before == edited
    assert store.retries == 0  # the read already saw the edit; no retry was needed


@pytest.mark.integration
def test_store_objects_of_one_process_take_turns_instead_of_retrying(
    store: RedisFlagStore, redis_url: str
) -> None:
    """One lock per (server, db, namespace) in a process: its appliers never race."""
    others = [RedisFlagStore.from_url(redis_url, namespace=store.namespace) for _ in range(3)]
    stores = [store, *others]
    failures: list[BaseException] = []

    def applier(worker: int) -> None:
        try:
            for n in range(30):
                change = _change(n, model=f"w{worker}")
                assert stores[worker].apply(change, at=T0).outcome == "applied"
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=applier, args=(w,)) for w in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert [s.retries for s in stores] == [0, 0, 0, 0]
    assert store.verify_audit() == AuditReport(ok=True, length=120)
    for other in others:
        other.close()


@pytest.mark.integration
def test_apply_gives_up_after_its_attempts_and_writes_nothing(
    store: RedisFlagStore, redis_url: str
) -> None:
    rival = _in_another_process(RedisFlagStore.from_url(redis_url, namespace=store.namespace))
    real_script = store._apply_script
    rivals = iter(range(100))

    def script_after_a_rival(**kwargs: Any) -> Any:
        n = next(rivals)
        rival.apply(_change(n, model="rival"), at=T0)
        return real_script(**kwargs)

    store._apply_script = script_after_a_rival
    store.max_apply_attempts = 3
    with pytest.raises(StateStoreError, match=r"before each of 3 attempts; nothing was written"):
        store.apply(_change(0), at=T0)
    assert store.get(MODEL) is None
    assert {entry.model_id for entry in store.audit()} == {"rival"}
    assert store.verify_audit().ok
    rival.close()


@pytest.mark.integration
def test_a_wrong_key_type_fails_the_apply_before_any_write(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    client.set(store.keys.audit, b"not a stream")
    with pytest.raises(StateStoreError, match=r"WRONGTYPE.*nothing was written"):
        store.apply(_change(0), at=T0)
    assert client.exists(store.keys.flags, store.keys.applied, store.keys.head) == 0


@pytest.mark.integration
def test_a_stream_written_past_the_head_fails_the_apply_before_any_write(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    client.xadd(store.keys.audit, {"entry": b"{}"}, id="7-0")
    with pytest.raises(StateStoreError, match="holds entries past the head"):
        store.apply(_change(0), at=T0)
    assert client.exists(store.keys.flags, store.keys.applied, store.keys.head) == 0
    assert store.verify_audit().problem.startswith("audit stream entry 7-0 cannot be read")


@pytest.mark.integration
def test_a_corrupt_flag_is_reported_with_where_it_is(
    store: RedisFlagStore, client: redis.Redis
) -> None:
    client.hset(store.keys.flags, MODEL, b"{not json")
    with pytest.raises(StateStoreError, match=rf"{MODEL}' is not what riskstream writes"):
        store.get(MODEL)
    with pytest.raises(StateStoreError, match=rf"{MODEL}' is not what riskstream writes"):
        store.apply(_change(0), at=T0)
    assert client.exists(store.keys.audit, store.keys.applied) == 0


@pytest.mark.integration
def test_a_corrupt_flag_is_left_out_of_all_flags_not_raised(
    store: RedisFlagStore, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The containment worker reads every flag each second to lapse and step them: one
    record written by something else must not hold back every other model's."""
    store.apply(_change(0), at=T0)
    client.hset(store.keys.flags, "other-model", b"{not json")
    with caplog.at_level("WARNING"):
        assert list(store.all()) == [MODEL]
        assert list(store.all()) == [MODEL]
    said = [r.getMessage() for r in caplog.records if "left out of lists" in r.getMessage()]
    assert len(said) == 1 and "'other-model' is not what riskstream writes" in said[0]
    with pytest.raises(StateStoreError, match="'other-model' is not what riskstream writes"):
        store.get("other-model")


@pytest.mark.integration
def test_an_unreadable_member_is_left_out_of_the_members_not_raised(
    store: RedisFlagStore, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """One member record written by something else failed the whole list of a grouped
    action's members (a 503 in the API), hiding every other incident of the storm.
    It is left out now, with a warning once naming its key and how to repair it, as
    unreadable flags and actions are; carrying the action out still reads strictly."""
    approvals = RedisApprovalStore(client, store.namespace)
    group = PendingAction("g-1", "storm:s", "*", {"kind": "block"}, "riskstream/containment",
                          T0, None, group="harm")  # fmt: skip
    assert approvals.add(group)
    for n, incident_id in enumerate(("inc-a", "inc-x", "inc-b", "inc-y", "inc-z")):
        assert approvals.join("g-1", Member(incident_id, MODEL, 0, T0 + n))
    key = f"{store.keys.members}:g-1"
    client.hset(key, "inc-x", b"{not json")
    missing = orjson.loads(client.hget(key, "inc-y"))
    del missing["model_id"]
    client.hset(key, "inc-y", orjson.dumps(missing))
    client.hset(key, "inc-z", client.hget(key, "inc-a"))  # holds another incident
    with caplog.at_level("WARNING"):
        for _ in range(2):
            assert [m.incident_id for m in approvals.members("g-1")] == ["inc-a", "inc-b"]
    said = [r.getMessage() for r in caplog.records if "left out of lists" in r.getMessage()]
    assert len(said) == 3, said  # each once
    for field, why in [("inc-x", "JSONDecodeError"), ("inc-y", "model_id"),
                       ("inc-z", "holds the incident 'inc-a'")]:  # fmt: skip
        (line,) = [s for s in said if f"field '{field}'" in s]
        assert key in line and why in line and f"redis-cli HDEL '{key}' '{field}'" in line
        assert f"incident {field} then leaves the group" in line
    with pytest.raises(StateStoreError, match=r"field 'inc-\w' is not what riskstream writes"):
        approvals.members("g-1", strict=True)


@pytest.mark.integration
def test_applies_survive_a_flushed_script_cache(store: RedisFlagStore, client: redis.Redis) -> None:
    store.apply(_change(0), at=T0)
    client.script_flush()
    assert store.apply(_change(1), at=T0 + 1).outcome == "applied"
    approvals = RedisApprovalStore(client, store.namespace)
    approvals.add(PendingAction("a", "i", MODEL, {}, "riskstream", T0, None))
    client.script_flush()
    assert approvals.decide("a", "approved", "dr.lee", T0).status == "approved"


# --- an ACL user with a password -----------------------------------------------

PASSWORD = "fl4gs-pw-never-in-messages"


@pytest.mark.integration
def test_the_required_acl_is_enough_and_the_password_never_shows(
    acl_redis: str, unique: Callable[[str], str]
) -> None:
    namespace = unique("acl")
    flags = RedisFlagStore.from_url(
        acl_redis, namespace=namespace, username="flags", password=PASSWORD
    )
    approvals = RedisApprovalStore.from_url(
        acl_redis.replace("redis://", f"redis://flags:{PASSWORD}@"), namespace=namespace
    )
    assert flags.apply(_change(0), at=T0).outcome == "applied"
    assert flags.apply(_change(0), at=T0).outcome == "duplicate"
    assert flags.get(MODEL) is not None and list(flags.all()) == [MODEL]
    assert len(flags.audit()) == 1 and flags.verify_audit().ok
    approvals.add(PendingAction("a", "i", MODEL, {}, "riskstream", T0, None))
    approvals.decide("a", "approved", "dr.lee", T0)
    approvals.mark_applied("a")
    assert [a.status for a in approvals.list()] == ["applied"]
    for store in (flags, approvals):
        assert PASSWORD not in repr(store) and PASSWORD not in str(store)
        store.close()


@pytest.mark.integration
def test_a_wrong_password_is_reported_without_echoing_it(acl_redis: str) -> None:
    wrong = PASSWORD + "-wrong"
    for kwargs, url in [
        ({"username": "flags", "password": wrong}, acl_redis),
        ({}, acl_redis.replace("redis://", f"redis://flags:{wrong}@")),
    ]:
        store = RedisFlagStore.from_url(url, retry=Retry(NoBackoff(), 0), **kwargs)
        with pytest.raises(StateStoreError, match="Check the Redis username and password") as e:
            store.apply(_change(0), at=T0)
        assert wrong not in str(e.value) and wrong not in repr(store)
        assert PASSWORD not in str(e.value)
        store.close()


@pytest.mark.integration
def test_a_user_who_may_not_publish_writes_nothing(
    acl_redis: str, unique: Callable[[str], str]
) -> None:
    """The ACL is checked for every write before the first, so no half-applied change."""
    namespace = unique("nopub")
    cramped = RedisFlagStore.from_url(
        acl_redis, namespace=namespace, username="no-publish", password=PASSWORD
    )
    with pytest.raises(StateStoreError, match=r"may not run PUBLISH.*nothing was written"):
        cramped.apply(_change(0), at=T0)
    full = RedisFlagStore.from_url(
        acl_redis, namespace=namespace, username="flags", password=PASSWORD
    )
    assert full.get(MODEL) is None and full.audit() == []
    assert full.apply(_change(0), at=T0).outcome == "applied"  # the change id was not used up
    cramped.close()
    full.close()


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server whose only users are ``flags`` (exactly REQUIRED_ACL) and
    ``no-publish`` (REQUIRED_ACL without PUBLISH); both use PASSWORD."""
    server_binary = shutil.which("redis-server")
    assert server_binary, "redis-server not on PATH: apt-get install -y redis-server"
    workdir = tmp_path_factory.mktemp("acl-redis")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = workdir / "redis.log"
    cmd = [
        server_binary, "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(workdir),
        "--user", "default", "off",
        "--user", "flags", "on", f">{PASSWORD}", *REQUIRED_ACL.split(),
        "--user", "no-publish", "on", f">{PASSWORD}",
        *REQUIRED_ACL.replace(" +publish", "").split(),
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(
            lambda: server.poll() is not None or _accepts(port),
            f"ACL redis-server on {port} (log: {log})",
        )
        assert server.poll() is None, f"ACL redis-server exited:\n{log.read_text()}"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- helpers -------------------------------------------------------------------


def _in_another_process(store: RedisFlagStore) -> RedisFlagStore:
    """Give ``store`` its own apply lock, as a store in another process would have.

    Store objects of one process share the lock per namespace, so a rival made
    here would wait for the apply it is meant to overtake.
    """
    store._apply_lock = threading.Lock()
    return store


def _rewrite_stream(
    client: redis.Redis, key: str, edits: dict[int, Callable[[dict[str, Any]], None]]
) -> None:
    """Re-create the stream with the same ids, editing the entries of some seqs.

    Streams cannot be edited in place, so a tamperer would do just this.
    """
    entries = client.xrange(key)
    client.delete(key)
    for stream_id, fields in entries:
        data = orjson.loads(fields[b"entry"])
        if data["seq"] in edits:
            edits[data["seq"]](data)
        client.xadd(key, {"entry": orjson.dumps(data)}, id=stream_id)


def _next_message(subscriber: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscriber.get_message(timeout=0.5)
        if message is not None:
            return dict(message)
    raise AssertionError(f"no message within {timeout:.0f}s")


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.02)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
