"""What only the Redis store can get wrong: the wire, the server, the key layout.

A save is one Lua script, so whatever breaks (a killed connection, a request cut
half-way, a reply lost after the script ran) the stored state is the old one or
the new one, never a mix.  These tests break the connection at each of those
moments on a real redis-server and read back what is stored.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from riskstream.adapters.redis.state import (
    REQUIRED_ACL,
    SCRIPT_ENTRIES,
    RedisStateStore,
    partition_keys,
)
from riskstream.errors import StateStoreError
from riskstream.ports import PartitionState

TP = ("events", 0)
OLD = {"a": b"old-a", "b": b"old-b"}
NEW = {f"k{i}": bytes([i % 256]) * 300 for i in range(10_000)} | {"a": b"new-a"}


def _save_old(store: RedisStateStore, scope: str) -> int:
    """Claim, save the OLD state at offset 1, return the epoch."""
    epoch = store.claim(scope, TP).epoch
    store.save(scope, TP, epoch, 1, {"applied": 1}, OLD)
    return epoch


def _save_new(store: RedisStateStore, scope: str, epoch: int) -> None:
    store.save(scope, TP, epoch, 2, {"applied": 2}, NEW, deleted=["b"])


def _stored(url: str, scope: str) -> tuple[int | None, dict[str, int], dict[str, bytes]]:
    """Offset, counters and snapshots as stored, read by a fresh store."""
    store = RedisStateStore.from_url(url)
    try:
        state = store.claim(scope, TP)
    finally:
        store.close()
    return state.offset, dict(state.counters), dict(state.snapshots)


BEFORE = (1, {"applied": 1}, OLD)
AFTER = (2, {"applied": 2}, NEW)  # "b" deleted, "a" overwritten


def _no_retry(url: str, **kwargs: object) -> RedisStateStore:
    """A store whose client reports the first failure instead of reconnecting."""
    return RedisStateStore.from_url(url, retry=Retry(NoBackoff(), 0), **kwargs)


# --- key layout (no server needed) -------------------------------------------


def test_both_keys_of_a_partition_share_one_cluster_slot() -> None:
    for scope in ("group", "a}b{c", "{weird}", "%7C|"):
        meta, snap = partition_keys(scope, ("events", 12))
        assert key_slot(meta.encode()) == key_slot(snap.encode())
        assert meta.endswith(":meta") and snap.endswith(":snap")
    assert partition_keys("g", ("events", 3)) == ("rs:{g|events|3}:meta", "rs:{g|events|3}:snap")


def test_escaping_keeps_distinct_partitions_distinct() -> None:
    names = {
        partition_keys(scope, tp)
        for scope, tp in [("a|b", ("c", 0)), ("a", ("b|c", 0)), ("a%7Cb", ("c", 0))]
    }
    assert len(names) == 3


# --- on the real server --------------------------------------------------------


@pytest.mark.integration
def test_only_the_two_partition_keys_are_written(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    scope = unique("layout")
    store = RedisStateStore.from_url(redis_url)
    _save_old(store, scope)
    client = redis.Redis.from_url(redis_url)
    assert sorted(client.scan_iter(match=f"rs:{{{scope}|*")) == sorted(
        k.encode() for k in partition_keys(scope, TP)
    )
    store.close()
    client.close()


@pytest.mark.integration
def test_a_save_killed_while_queued_on_the_server_writes_nothing(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    """CLIENT PAUSE holds the save on the server; CLIENT KILL drops it there."""
    scope = unique("kill")
    store = _no_retry(redis_url, client_name=scope)
    epoch = _save_old(store, scope)
    admin = redis.Redis.from_url(redis_url)
    failure: list[BaseException] = []

    def save() -> None:
        try:
            _save_new(store, scope, epoch)
        except BaseException as exc:
            failure.append(exc)

    admin.client_pause(10_000, all=False)  # holds writes only
    try:
        saver = threading.Thread(target=save)
        saver.start()
        _wait_for(lambda: _is_held(_client(admin, scope)), "the save to be held")
        admin.client_kill_filter(_id=_client(admin, scope)["id"])
    finally:
        admin.client_unpause()
    saver.join(timeout=30)

    assert len(failure) == 1 and isinstance(failure[0], StateStoreError), failure
    assert "may or may not have been applied" in str(failure[0])
    assert _stored(redis_url, scope) == BEFORE
    admin.close()


@pytest.mark.integration
def test_with_retries_a_killed_save_is_resent_and_applied_once(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    """redis-py's default retry re-sends the save; a save is idempotent, so that is safe."""
    scope = unique("retry")
    store = RedisStateStore.from_url(redis_url, client_name=scope)
    epoch = _save_old(store, scope)
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_id=_client(admin, scope)["id"])
    admin.close()
    _save_new(store, scope, epoch)
    assert _stored(redis_url, scope) == AFTER


@pytest.mark.integration
def test_a_save_cut_half_way_through_the_request_writes_nothing(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    scope = unique("cut")
    with _CuttingProxy(redis_url) as proxy:
        store = _no_retry(proxy.url)
        epoch = _save_old(store, scope)
        proxy.cut_request_after = 1_500_000  # of a ~3.2 MB request
        with pytest.raises(StateStoreError, match="ConnectionError"):
            _save_new(store, scope, epoch)
    assert _stored(redis_url, scope) == BEFORE


@pytest.mark.integration
def test_a_save_whose_reply_is_lost_was_applied_whole_or_not_at_all(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    """This save is large, so it is chunked: the first chunk's reply is lost, nothing
    committed, and a claim reads the state before it (a small one-script save whose
    reply is lost reads as after: either way never half)."""
    scope = unique("noreply")
    with _CuttingProxy(redis_url) as proxy:
        store = _no_retry(proxy.url)
        epoch = _save_old(store, scope)
        proxy.swallow_replies = True
        with pytest.raises(StateStoreError, match="ConnectionError"):
            _save_new(store, scope, epoch)
    assert _stored(redis_url, scope) in (BEFORE, AFTER)


@pytest.mark.integration
def test_a_save_that_hits_a_wrong_key_type_writes_nothing(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    """Scripts are atomic but not transactional: the first write must be the one to fail."""
    scope = unique("wrongtype")
    store = RedisStateStore.from_url(redis_url)
    epoch = _save_old(store, scope)
    client = redis.Redis.from_url(redis_url)
    _, snap = partition_keys(scope, TP)
    client.delete(snap)
    client.set(snap, b"not a hash")
    with pytest.raises(StateStoreError, match="WRONGTYPE"):
        _save_new(store, scope, epoch)
    meta, _ = partition_keys(scope, TP)
    assert client.hgetall(meta) == {
        b"epoch": str(epoch).encode(),
        b"offset": b"1",
        b"c:applied": b"1",
    }
    client.close()


@pytest.mark.integration
def test_saves_survive_a_flushed_script_cache(redis_url: str, unique: Callable[[str], str]) -> None:
    """A restarted or failed-over Redis has no scripts cached: NOSCRIPT -> load -> retry."""
    scope = unique("noscript")
    store = RedisStateStore.from_url(redis_url)
    epoch = _save_old(store, scope)
    redis.Redis.from_url(redis_url).script_flush()
    _save_new(store, scope, epoch)
    assert _stored(redis_url, scope) == AFTER


# --- TLS with client certificates and an ACL user ------------------------------

PASSWORD = "s3cret-pw-not-in-messages"


@pytest.mark.integration
def test_tls_with_client_certificate_and_acl_user(
    tls_redis: tuple[str, dict[str, str]], unique: Callable[[str], str]
) -> None:
    url, tls = tls_redis
    store = RedisStateStore.from_url(url, username="riskstream", password=PASSWORD, **tls)
    scope = unique("tls")
    epoch = store.claim(scope, TP).epoch
    store.save(scope, TP, epoch, 5, {"applied": 5}, {"a": bytes(range(256))})
    assert store.claim(scope, TP) == PartitionState(
        epoch=epoch + 1, offset=5, counters={"applied": 5}, snapshots={"a": bytes(range(256))}
    )
    assert store.state_bytes(scope, TP) > 256
    assert PASSWORD not in repr(store)
    store.close()


@pytest.mark.integration
def test_an_acl_user_missing_a_command_writes_nothing(
    tls_redis: tuple[str, dict[str, str]], unique: Callable[[str], str]
) -> None:
    """A script stopped by the ACL half-way would keep its earlier writes."""
    url, tls = tls_redis
    scope = unique("acl")
    full = RedisStateStore.from_url(url, username="riskstream", password=PASSWORD, **tls)
    cramped = RedisStateStore.from_url(url, username="no-hdel", password=PASSWORD, **tls)
    epoch = _save_old(full, scope)
    with pytest.raises(StateStoreError, match=r"may not run HDEL.*nothing was written"):
        _save_new(cramped, scope, epoch)
    state = full.claim(scope, TP)
    assert (state.offset, dict(state.counters), dict(state.snapshots)) == BEFORE
    full.close()
    cramped.close()


@pytest.mark.integration
def test_a_wrong_password_is_reported_without_echoing_it(
    tls_redis: tuple[str, dict[str, str]],
) -> None:
    url, tls = tls_redis
    wrong = PASSWORD + "-wrong"
    store = _no_retry(url.replace("rediss://", f"rediss://riskstream:{wrong}@"), **tls)
    with pytest.raises(StateStoreError, match="Check the Redis username and password") as raised:
        store.claim("g", TP)
    assert wrong not in str(raised.value) and wrong not in repr(store)


@pytest.fixture(scope="module")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str]]]:
    """A TLS-only redis-server that wants a client certificate and an ACL user.

    Yields its URL and the ``ssl_*`` keyword arguments of ``from_url``.

    User ``riskstream`` gets exactly ``REQUIRED_ACL``, so the documented minimum
    is tested; ``no-hdel`` lacks one command the save script needs.
    """
    tools = {tool: shutil.which(tool) for tool in ("openssl", "redis-server")}
    missing = [tool for tool, path in tools.items() if path is None]
    assert not missing, f"{missing} not on PATH: apt-get install -y openssl redis-server"
    certs = tmp_path_factory.mktemp("tls")
    _make_certificates(certs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = certs / "redis.log"
    cmd = [
        "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(certs / "server.crt"), "--tls-key-file", str(certs / "server.key"),
        "--tls-ca-cert-file", str(certs / "ca.crt"), "--tls-auth-clients", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(certs),
        "--user", "default", "off",
        "--user", "riskstream", "on", f">{PASSWORD}", *REQUIRED_ACL.split(),
        "--user", "no-hdel", "on", f">{PASSWORD}", *REQUIRED_ACL.replace(" +hdel", "").split(),
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(
            lambda: server.poll() is not None or _accepts(port),
            f"TLS redis-server on {port} (log: {log})",
        )
        assert server.poll() is None, f"TLS redis-server exited:\n{log.read_text()}"
        yield (
            f"rediss://127.0.0.1:{port}/0",
            {
                "ssl_ca_certs": str(certs / "ca.crt"),
                "ssl_certfile": str(certs / "client.crt"),
                "ssl_keyfile": str(certs / "client.key"),
            },
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


def _make_certificates(into: Path) -> None:
    """A throwaway CA, and a server and a client certificate it signed."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=into, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=riskstream-test-ca")  # fmt: skip
    (into / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "san.cnf",
                "-out", f"{name}.crt")  # fmt: skip


# --- helpers -------------------------------------------------------------------


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


def _is_held(client: dict[str, str]) -> bool:
    """Blocked (flag ``b``) on an EVALSHA: our save, held by CLIENT PAUSE.

    ``cmd`` alone would not do: it names the connection's *last* command, which
    was already the EVALSHA of the previous save.
    """
    return "b" in client["flags"] and client["cmd"] == "evalsha"


def _client(admin: redis.Redis, name: str) -> dict[str, str]:
    """The one connection named ``name``, as CLIENT LIST shows it."""
    (found,) = [client for client in admin.client_list() if client["name"] == name]
    return found


class _CuttingProxy:
    """A TCP relay to Redis that breaks the connection at a chosen moment.

    Set ``cut_request_after`` to forward only that many more request bytes and
    then close both sides (the server sees half a command); set
    ``swallow_replies`` to forward requests whole but close the client's side
    instead of passing on the server's reply (the server did the work).
    """

    def __init__(self, redis_url: str) -> None:
        target = urlsplit(redis_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}{target.path}"
        self.cut_request_after: int | None = None
        self.swallow_replies = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> _CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in [self._listener, *self._sockets]:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._sockets += (client, server)
            for args in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, is_request: bool) -> None:
        try:
            while data := src.recv(65536):
                if is_request and self.cut_request_after is not None:
                    if len(data) >= self.cut_request_after:
                        dst.sendall(data[: self.cut_request_after])
                        break
                    self.cut_request_after -= len(data)
                if not is_request and self.swallow_replies:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.mark.integration
@pytest.mark.parametrize("crash", ["staging", "moving"])
def test_a_chunked_save_cut_short_reads_as_before_or_after_and_the_next_save_finishes_it(
    redis_url: str, unique: Callable[[str], str], crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save of 10,000 snapshots goes in chunks; a crash before its commit leaves the
    old state, after it the new one (the staged chunks read over the old), and the new
    owner's first save moves the rest in and clears the stage."""
    scope = unique(f"chunk-{crash}")
    store = RedisStateStore.from_url(redis_url)
    epoch = _save_old(store, scope)
    cut = "_stage" if crash == "staging" else "_move"
    calls = {"n": 0}
    real = getattr(store, cut)

    def dies_on_the_third_call(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise redis.ConnectionError("the process died here")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, cut, dies_on_the_third_call)
    with pytest.raises(StateStoreError):
        _save_new(store, scope, epoch)
    store.close()
    heir = RedisStateStore.from_url(redis_url)
    state = heir.claim(scope, TP)
    got = (state.offset, dict(state.counters), dict(state.snapshots))
    assert got == (BEFORE if crash == "staging" else AFTER)
    heir.save(scope, TP, state.epoch, 3, {"applied": 3}, {"a": b"newest-a"})
    heir.close()
    expected = dict(got[2]) | {"a": b"newest-a"}
    assert _stored(redis_url, scope) == (3, {"applied": 3}, expected)
    client = redis.Redis.from_url(redis_url)
    meta, snap = partition_keys(scope, TP)
    assert not client.exists(snap.removesuffix(":snap") + ":stage")
    assert client.hget(meta, "staged") is None
    client.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["one-script", "chunked"])
def test_a_save_over_a_checkpoint_a_failover_lost_is_refused_and_a_claim_resumes(
    redis_url: str, unique: Callable[[str], str], chunked: bool
) -> None:
    """Saves are deltas: one written over an older checkpoint (what a promoted replica
    holds when asynchronous replication lost the last writes) would mix the two.  The
    store refuses it, writing nothing, and a claim reads back the older checkpoint whole."""
    scope = unique("rollback")
    meta, _ = partition_keys(scope, TP)
    raw = redis.Redis.from_url(redis_url)
    store = RedisStateStore.from_url(redis_url)
    try:
        epoch = _save_old(store, scope)
        store.save(scope, TP, epoch, 5, {"applied": 5}, {"a": b"lost-a"})
        raw.hset(meta, mapping={"offset": 1, "c:applied": 1})  # a failover lost that save
        raw.hset(f"{meta.removesuffix(':meta')}:snap", "a", b"old-a")
        with pytest.raises(StateStoreError, match="lost the latest writes"):
            if chunked:
                _save_new(store, scope, epoch)
            else:
                store.save(scope, TP, epoch, 9, {"applied": 9}, {"c": b"new-c"})
        peeked = store.peek(scope, TP)  # nothing of the refused save
        assert (peeked.offset, peeked.counters, peeked.snapshots) == BEFORE
        store._held[(scope, TP)] = (epoch, 1)  # as before the refusal
        raw.hset(meta, "epoch", epoch - 1)  # a failover that lost the claim too
        with pytest.raises(StateStoreError, match="lost the latest writes"):
            store.save(scope, TP, epoch, 9, {"applied": 9}, {"c": b"new-c"})
        again = store.claim(scope, TP)
        assert (again.offset, dict(again.snapshots)) == (1, OLD)
        store.save(scope, TP, again.epoch, 9, {"applied": 9}, {"c": b"new-c"})
        assert _stored(redis_url, scope)[0] == 9
    finally:
        store.close()
        raw.close()


def test_a_save_repeated_after_a_lost_reply_is_not_taken_for_a_rollback(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    scope = unique("repeat")
    store = RedisStateStore.from_url(redis_url)
    try:
        epoch = _save_old(store, scope)
        store.save(scope, TP, epoch, 5, {"applied": 5}, {"a": b"x"})
        store._held[(scope, TP)] = (epoch, 1)  # as if the reply of the save above was lost
        store.save(scope, TP, epoch, 5, {"applied": 5}, {"a": b"x"})
        assert _stored(redis_url, scope)[0] == 5
    finally:
        store.close()


def test_checkpoint_replicas_without_a_replica_times_out_and_keeps_the_save(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    scope = unique("wait")
    store = RedisStateStore.from_url(redis_url, replicas=1, replica_timeout_ms=50)
    try:
        _save_old(store, scope)
        assert store.unreplicated == 1  # this Redis has no replica: WAIT gave up after 50 ms
    finally:
        store.close()
    assert _stored(redis_url, scope) == BEFORE


@pytest.mark.integration
def test_one_script_writes_and_deletes_thousands_of_fields_in_batches(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    """Saves up to SCRIPT_ENTRIES go in one script, which writes a batch of fields per
    HSET/HDEL: every field lands, across the batches' edges, and none is left over."""
    scope = unique("batches")
    store = RedisStateStore.from_url(redis_url)
    calls: list[str] = []
    real = store._stage

    def staged(*args: object, **kwargs: object) -> object:
        calls.append("stage")
        return real(*args, **kwargs)

    store._stage = staged  # type: ignore[method-assign]
    try:
        epoch = store.claim(scope, TP).epoch
        first = {f"s{i}": bytes([i % 251]) * (1 + i % 300) for i in range(SCRIPT_ENTRIES)}
        store.save(scope, TP, epoch, 1, {"applied": 1}, first)
        deleted = [f"s{i}" for i in range(0, SCRIPT_ENTRIES, 3)]  # 2,667: six batches and a bit
        second = {f"s{i}": b"new" for i in range(1, 3001, 3)} | {"t": b"x"}
        store.save(scope, TP, epoch, 2, {"applied": 2}, second, deleted)
        assert calls == []  # neither save was chunked
        expected = {k: v for k, v in first.items() if k not in deleted} | second
        assert _stored(redis_url, scope) == (2, {"applied": 2}, expected)
    finally:
        store.close()
