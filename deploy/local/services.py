"""Start a real Kafka broker and a real redis-server on loopback, without Docker.

Tests need the genuine wire protocols (consumer groups, committed offsets, Redis
commands), and this machine has no Docker engine. So Kafka runs straight from its
Maven jars (resolved once with ``mvn`` into a cache outside the repo) as a
single-node KRaft broker, and Redis runs from the distro's ``redis-server``.

Importable (a pytest conftest puts this directory on ``sys.path``) and runnable::

    python deploy/local/services.py fetch   # download the Kafka jars, print where
    python deploy/local/services.py up      # start both, print env vars, wait for Ctrl-C

Only the standard library and ``confluent_kafka`` are required.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.4.0"
HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
LOG4J_CONFIG = HERE / "kafka" / "log4j2.properties"
# Pinned: a bare ``dependency:copy-dependencies`` makes Maven 3.8 pick the ancient 2.8.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# A test broker wants to start fast, not run fast: C1 only, serial GC, small heap.
KAFKA_JVM_OPTS = (
    "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)  # fmt: skip
COMPLETE_MARKER = ".complete"


def cache_dir() -> Path:
    """Root of everything downloaded; outside the repo so ``git clean`` keeps it."""
    return Path(os.environ.get("RISKSTREAM_CACHE") or Path.home() / ".cache" / "riskstream")


@dataclass
class Service:
    """A started server process whose stdout+stderr go to ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path

    def stop(self) -> None:
        """SIGTERM (clean shutdown), wait up to 10 s, then SIGKILL. Idempotent."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own process group (start_new_session), so signal the
        # group: nothing it may have spawned survives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def log_tail(self, lines: int = 60) -> str:
        """Last ``lines`` lines of the log, for error messages."""
        try:
            with self.log_path.open(errors="replace") as f:
                return "".join(deque(f, maxlen=lines)) or "(empty: nothing logged yet)\n"
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc})"

    def _fail(self, what: str, hint: str) -> RuntimeError:
        """Stop the process and build an error that shows its log and what to do.

        The tail is read before stopping: a broker killed mid-start logs a
        misleading stack trace.
        """
        tail = self.log_tail()
        self.stop()
        return RuntimeError(
            f"{self.name}: {what}\n{hint}\n--- last lines of {self.log_path} ---\n{tail}"
        )


@dataclass
class KafkaBroker(Service):
    """A single-node KRaft broker (broker and controller in one JVM)."""

    bootstrap: str  # "127.0.0.1:PORT"


@dataclass
class RedisServer(Service):
    """A redis-server that keeps nothing on disk."""

    url: str  # "redis://127.0.0.1:PORT/0"


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _require(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"`{tool}` is not on PATH. Install it: {install}")
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise downloads across processes (e.g. pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def fetch_kafka(version: str = KAFKA_VERSION, progress: Callable[[str], None] = print) -> Path:
    """Return the directory of Kafka's runtime jars, downloading them if needed.

    The marker file is written only after Maven copied everything, so a download
    interrupted half-way is redone from scratch. Maven uses a private local repo
    under the cache so results do not depend on (or pollute) ``~/.m2``.
    """
    home = cache_dir() / f"kafka-{version}"
    libs, marker = home / "libs", home / COMPLETE_MARKER
    if marker.exists():
        return libs
    with _locked(home / ".lock"):
        if marker.exists():  # another process finished while we waited
            return libs
        mvn = _require("mvn", "apt-get install -y maven")
        shutil.rmtree(libs, ignore_errors=True)
        progress(f"Downloading Kafka {version} jars with Maven into {libs} (one-time, ~45 MB)...")
        cmd = [
            # -U: retry artifacts whose earlier download failed; Maven otherwise caches
            # the failure in the local repo for a day.
            mvn, "-q", "-B", "-U", "-f", str(POM), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-Dkafka.version={version}", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_die_with_parent)
        if result.returncode != 0 or not any(libs.glob(f"kafka_2.13-{version}.jar")):
            # Debian's Maven 3.8 emits colour codes even in batch mode.
            output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).strip()
            raise RuntimeError(
                f"Maven could not fetch Kafka {version} (exit {result.returncode}).\n"
                f"Check network access to Maven Central and that the version exists, "
                f"then rerun `python deploy/local/services.py fetch`.\n"
                f"Command: {' '.join(cmd)}\n" + "\n".join(output.splitlines()[-40:])
            )
        marker.write_text(f"{version}\n")
    return libs


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; held together so they are distinct.

    There is a small race until the server binds them; acceptable for tests.
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


# Resolved up front: preexec_fn runs between fork and exec and should do nothing else.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """preexec_fn: have Linux SIGKILL the child when the parent dies.

    So a crashed or SIGKILLed test run leaves no broker behind. Note: it fires
    when the *thread* that started the child exits, so start services from a
    long-lived thread (pytest fixtures run on the main thread).
    """
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _spawn(cmd: list[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:  # truncate: a reused workdir must not show old errors
        return subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the server
            preexec_fn=_die_with_parent,
        )  # fmt: skip


@contextlib.contextmanager
def _stop_on_error(service: Service) -> Iterator[None]:
    """Ctrl-C or an error while waiting must not leave the server running."""
    try:
        yield
    except BaseException:
        service.stop()
        raise


def _new_cluster_id() -> str:
    """A Kafka Uuid string: 16 random bytes, URL-safe base64 without padding.

    Kafka rejects ids starting with '-' (they look like CLI flags), as its
    Uuid.randomUuid() does.
    """
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _kafka_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replication: int = 1,
    min_insync: int = 1,
) -> str:
    """One node's server.properties: a single-node cluster by default, or one of the
    ``voters`` (``id@host:port,...``) with internal topics replicated ``replication``
    times."""
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_insync),
        "group.initial.rebalance.delay.ms": "0",
        # Internal topics: one partition, so the first consumer group / transaction
        # does not wait for 50 partitions to be created.
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_insync),
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": str(min_insync),
    }
    if voters is not None:  # a cluster: notice a killed broker in seconds, not the default 9
        props |= {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"}
    return "".join(f"{k}={v}\n" for k, v in props.items())


def start_kafka(
    workdir: Path, *, version: str = KAFKA_VERSION, timeout: float = 120.0
) -> KafkaBroker:
    """Format and start a single-node KRaft broker; return once it answers metadata.

    ``workdir`` holds server.properties, the data dir and kafka.log. Each start
    gets an empty data dir (a stale one would fail the format step), and the
    timeout covers the one-time jar download too.
    """
    deadline = time.monotonic() + timeout
    java = _require("java", "apt-get install -y openjdk-17-jre-headless")
    libs = fetch_kafka(version, progress=_progress)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port, controller_port = _free_ports(2)
    data, config = workdir / "data", workdir / "server.properties"
    shutil.rmtree(data, ignore_errors=True)
    config.write_text(_kafka_properties(data, port, controller_port))
    log_path = workdir / "kafka.log"
    classpath = ["-cp", f"{libs}/*", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]

    _progress(f"Formatting Kafka storage in {data}...")
    fmt = subprocess.run(
        [java, *KAFKA_JVM_OPTS, *classpath, "kafka.tools.StorageTool", "format",
         "-t", _new_cluster_id(), "-c", str(config)],
        capture_output=True, text=True, preexec_fn=_die_with_parent,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise RuntimeError(
            f"kafka: StorageTool format failed (exit {fmt.returncode}); "
            f"if {libs} looks broken, delete {libs.parent} and retry.\n{fmt.stdout}{fmt.stderr}"
        )

    _progress(f"Starting Kafka {version} on 127.0.0.1:{port} (log: {log_path})...")
    process = _spawn(
        [java, *KAFKA_JVM_OPTS, *classpath, "kafka.Kafka", str(config)], log_path, workdir
    )
    broker = KafkaBroker("kafka", process, log_path, workdir, bootstrap=f"127.0.0.1:{port}")
    with _stop_on_error(broker):
        _wait_for_kafka(broker, port, deadline)
    return broker


@dataclass
class KafkaCluster:
    """Brokers that are also the KRaft controller quorum, on loopback; each can be
    killed and started again on its ports with its data (:meth:`restart`)."""

    brokers: dict[int, KafkaBroker]  # node id -> broker
    commands: dict[int, list[str]]  # node id -> the command that starts it

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def node_of(self, address: str) -> int:
        """The node id of the broker at ``host:port``."""
        return next(i for i, b in self.brokers.items() if b.bootstrap == address)

    def kill(self, node_id: int) -> None:
        """SIGKILL: no clean shutdown, no leadership hand-over."""
        broker = self.brokers[node_id]
        broker._signal(signal.SIGKILL)
        broker.process.wait()

    def restart(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a stopped broker again with its data; return once it answers."""
        old = self.brokers[node_id]
        process = _spawn(
            self.commands[node_id], old.log_path.with_suffix(".restart.log"), old.workdir
        )
        broker = KafkaBroker(
            old.name, process, old.log_path.with_suffix(".restart.log"), old.workdir, old.bootstrap
        )
        self.brokers[node_id] = broker
        with _stop_on_error(broker):
            _wait_for_kafka(
                broker, int(old.bootstrap.rsplit(":", 1)[1]), time.monotonic() + timeout
            )

    def stop(self) -> None:
        for broker in self.brokers.values():
            broker.stop()


def start_kafka_cluster(
    workdir: Path,
    *,
    brokers: int = 3,
    min_insync: int = 2,
    version: str = KAFKA_VERSION,
    timeout: float = 180.0,
) -> KafkaCluster:
    """``brokers`` KRaft nodes, each broker and controller, replicating every topic
    ``brokers`` times with ``min.insync.replicas`` ``min_insync``; return once each
    answers metadata and sees every other."""
    deadline = time.monotonic() + timeout
    java = _require("java", "apt-get install -y openjdk-17-jre-headless")
    libs = fetch_kafka(version, progress=_progress)
    workdir = Path(workdir).resolve()
    ports = _free_ports(2 * brokers)
    voters = ",".join(f"{i + 1}@127.0.0.1:{ports[brokers + i]}" for i in range(brokers))
    cluster_id = _new_cluster_id()
    classpath = ["-cp", f"{libs}/*", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]
    found = KafkaCluster({}, {})
    try:
        for i in range(brokers):
            node_id, home = i + 1, workdir / f"broker-{i + 1}"
            home.mkdir(parents=True, exist_ok=True)
            data, config = home / "data", home / "server.properties"
            shutil.rmtree(data, ignore_errors=True)
            config.write_text(_kafka_properties(
                data, ports[i], ports[brokers + i], node_id=node_id, voters=voters,
                replication=brokers, min_insync=min_insync,
            ))  # fmt: skip
            fmt = subprocess.run(
                [java, *KAFKA_JVM_OPTS, *classpath, "kafka.tools.StorageTool", "format",
                 "-t", cluster_id, "-c", str(config)],
                capture_output=True, text=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka-{node_id}: StorageTool format failed\n{fmt.stderr}")
            command = [java, *KAFKA_JVM_OPTS, *classpath, "kafka.Kafka", str(config)]
            _progress(f"Starting Kafka broker {node_id} on 127.0.0.1:{ports[i]}...")
            found.commands[node_id] = command
            found.brokers[node_id] = KafkaBroker(
                f"kafka-{node_id}", _spawn(command, home / "kafka.log", home),
                home / "kafka.log", home, bootstrap=f"127.0.0.1:{ports[i]}",
            )  # fmt: skip
        for node_id, broker in found.brokers.items():
            _wait_for_kafka(broker, ports[node_id - 1], deadline, expect_brokers=brokers)
    except BaseException:
        found.stop()
        raise
    return found


def _wait_for_kafka(
    broker: KafkaBroker, port: int, deadline: float, expect_brokers: int = 1
) -> None:
    """Wait for the port to accept, then for a real metadata answer.

    Waiting for TCP first keeps librdkafka from logging a connection-refused
    line every 50 ms while the JVM boots.
    """
    from confluent_kafka.admin import AdminClient

    admin: AdminClient | None = None
    while True:
        if broker.process.poll() is not None:
            raise broker._fail(
                f"broker exited with code {broker.process.returncode} during start.",
                "See its log below. If it points at missing classes or a corrupt jar, "
                f"delete {cache_dir()}/kafka-* and retry (the jars are fetched again).",
            )
        if time.monotonic() > deadline:
            raise broker._fail(
                "broker did not answer metadata requests before the timeout.",
                "If the log below shows it still starting, the machine is slow: raise "
                "start_kafka(timeout=...). Otherwise the log says what went wrong.",
            )
        if admin is None:
            if _port_open(port):
                admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 3})
            else:
                time.sleep(0.1)
            continue
        try:
            if len(admin.list_topics(timeout=1).brokers) >= expect_brokers:
                return
        except Exception:  # KafkaException while the broker is still fenced
            time.sleep(0.1)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_redis(
    workdir: Path,
    *,
    timeout: float = 20.0,
    port: int | None = None,
    persistent: bool = False,
    cluster: int | None = None,
    cluster_port: int | None = None,
) -> RedisServer:
    """Start a redis-server; return once PING answers.

    Throwaway and non-persistent by default, on a free port.  ``port`` restarts one
    where it was (chaos tests stop and start it under running clients);
    ``persistent`` keeps an append-only file in ``workdir``, fsynced on every write,
    so a restart (even after SIGKILL) comes back with everything acknowledged.
    ``cluster`` (a ``cluster-node-timeout`` in ms) starts it as a Redis Cluster node
    whose ``nodes.conf`` lives in ``workdir``, its bus on ``cluster_port`` (see
    :func:`start_redis_cluster`).
    """
    server = _require(
        "redis-server", "apt-get install -y redis-server (the Makefile's setup target does this)"
    )
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if port is None:
        (port,) = _free_ports(1)
    log_path = workdir / "redis.log"
    aof = (
        ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    )
    cmd = [
        server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
        "--save", "", *aof, "--daemonize", "no", "--logfile", "",
    ]  # fmt: skip
    if cluster is not None:
        cmd += [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(cluster), "--repl-diskless-sync-delay", "0",
            *(["--cluster-port", str(cluster_port)] if cluster_port else []),
        ]  # fmt: skip
    _progress(f"Starting redis-server on 127.0.0.1:{port} (log: {log_path})...")
    redis = RedisServer(
        "redis",
        _spawn(cmd, log_path, workdir),
        log_path,
        workdir,
        url=f"redis://127.0.0.1:{port}/0",
    )
    deadline = time.monotonic() + timeout
    hint = "Its log below says why."
    with _stop_on_error(redis):
        while not _redis_pings(port):
            if redis.process.poll() is not None:
                raise redis._fail(
                    f"redis-server exited with code {redis.process.returncode}.", hint
                )
            if time.monotonic() > deadline:
                raise redis._fail(f"no PONG within {timeout:.0f}s.", hint)
            time.sleep(0.05)
    return redis


@dataclass
class RedisCluster:
    """A Redis Cluster of ``masters`` primaries with ``replicas`` replicas each, on loopback.

    ``nodes`` maps each port to its server; :meth:`masters` and :meth:`replica_of` read
    the roles from ``CLUSTER NODES`` (they change with a failover).
    """

    nodes: dict[int, RedisServer]
    node_timeout_ms: int
    bus_ports: dict[int, int]  # client port -> cluster bus port

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in sorted(self.nodes))

    def cluster_nodes(self, via: int | None = None) -> list[dict[str, str]]:
        """``CLUSTER NODES`` as seen by a live node: id, port, role, master id, flags."""
        ports = [via] if via else [p for p, s in self.nodes.items() if s.process.poll() is None]
        for port in ports:
            out = _redis_cli(port, "CLUSTER", "NODES", check=False)
            if out.returncode == 0 and out.stdout.strip():
                found = []
                for line in out.stdout.strip().splitlines():
                    node_id, address, flags, master = line.split()[:4]
                    found.append({
                        "id": node_id, "port": address.split("@")[0].rsplit(":", 1)[1],
                        "flags": flags, "master": master,
                        "role": "master" if "master" in flags else "replica",
                    })  # fmt: skip
                return found
        raise RuntimeError("no Redis Cluster node answers CLUSTER NODES")

    def masters(self) -> list[int]:
        """Ports of the live primaries that serve slots."""
        return sorted(
            int(n["port"]) for n in self.cluster_nodes()
            if n["role"] == "master" and "fail" not in n["flags"]
        )  # fmt: skip

    def replica_of(self, master_port: int) -> list[int]:
        nodes = self.cluster_nodes()
        master_id = next(n["id"] for n in nodes if int(n["port"]) == master_port)
        return sorted(int(n["port"]) for n in nodes if n["master"] == master_id)

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start a stopped node again on its port, with its nodes.conf (it rejoins)."""
        old = self.nodes[port]
        self.nodes[port] = start_redis(
            old.workdir, port=port, cluster=self.node_timeout_ms, cluster_port=self.bus_ports[port]
        )
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until every live node says cluster_state:ok, every master has a replica and
        every replica's link to its master is up (synced)."""
        deadline = time.monotonic() + timeout
        while True:
            live = [p for p, s in self.nodes.items() if s.process.poll() is None]
            ok = all(
                "cluster_state:ok" in _redis_cli(p, "CLUSTER", "INFO", check=False).stdout
                for p in live
            )
            if ok:
                nodes = self.cluster_nodes()
                live_ids = {n["id"] for n in nodes if "fail" not in n["flags"]}
                masters = [n for n in nodes if n["role"] == "master" and n["id"] in live_ids]
                covered = all(
                    any(r["master"] == m["id"] and r["id"] in live_ids for r in nodes)
                    for m in masters
                )
                replicas = [int(n["port"]) for n in nodes if n["role"] == "replica"]
                synced = all(
                    "master_link_status:up"
                    in _redis_cli(p, "INFO", "replication", check=False).stdout
                    for p in replicas
                    if p in live
                )
                if synced and (covered or len(live) < 2 * len(masters)):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "Redis Cluster not healthy in time:\n"
                    + _redis_cli(live[0], "CLUSTER", "NODES", check=False).stdout
                )
            time.sleep(0.1)

    def stop(self) -> None:
        for server in self.nodes.values():
            server.stop()


def _redis_cli(port: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cli = _require("redis-cli", "apt-get install -y redis-tools (redis-server brings it)")
    return subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, check=check, timeout=30,
    )  # fmt: skip


def start_redis_cluster(
    workdir: Path, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000
) -> RedisCluster:
    """``masters * (1 + replicas)`` redis-servers joined by ``redis-cli --cluster create``.

    A small ``cluster-node-timeout`` makes a failover take a second or two, so a test
    can kill a primary and watch its replica take over.
    """
    count = masters * (1 + replicas)
    both = _free_ports(2 * count)
    ports, bus_ports = both[:count], dict(zip(both[:count], both[count:], strict=True))
    nodes: dict[int, RedisServer] = {}
    try:
        for port in ports:
            nodes[port] = start_redis(
                Path(workdir) / f"node-{port}", port=port, cluster=node_timeout_ms,
                cluster_port=bus_ports[port],
            )  # fmt: skip
        _progress(f"Creating a Redis Cluster of {masters} masters x {replicas} replicas...")
        _redis_cli(
            ports[0], "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas", str(replicas), "--cluster-yes",
        )  # fmt: skip
        cluster = RedisCluster(nodes, node_timeout_ms, bus_ports)
        cluster.wait_healthy()
        return cluster
    except BaseException:
        for server in nodes.values():
            server.stop()
        raise


def _redis_pings(port: int) -> bool:
    """Raw RESP PING, so this module does not depend on the ``redis`` package."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _up(workdir: Path) -> None:
    """Start both services, print their addresses, block until Ctrl-C or SIGTERM."""
    services: list[Service] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally below
    try:
        redis = start_redis(workdir / "redis")
        services.append(redis)
        kafka = start_kafka(workdir / "kafka")
        services.append(kafka)
        print(f"RISKSTREAM_KAFKA_BOOTSTRAP={kafka.bootstrap}")
        print(f"RISKSTREAM_REDIS_URL={redis.url}", flush=True)
        _progress(f"Up (workdir {workdir}). Ctrl-C to stop.")
        while all(s.process.poll() is None for s in services):
            time.sleep(0.5)
        dead = next(s for s in services if s.process.poll() is not None)
        raise SystemExit(f"{dead.name} exited unexpectedly:\n{dead.log_tail()}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut this short
        _progress("Stopping...")
        for s in reversed(services):
            s.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the Kafka jars into the cache")
    up = sub.add_parser("up", help="start Kafka and Redis in the foreground")
    up.add_argument("--workdir", type=Path, help="default: a fresh temp dir, removed on exit")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_kafka(progress=_progress))
        elif args.workdir:
            _up(args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="riskstream-services-") as tmp:
                _up(Path(tmp))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
