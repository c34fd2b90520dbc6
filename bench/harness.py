"""What the benchmarks share: the servers, topics, CPU and load accounting, and the
setup lines every result prints.

A benchmark's figures are only comparable with the machine, the load on it and the
versions that produced them, so every script here prints those the same way.  The
servers come from ``deploy/local/services.py`` (the test launcher) and the Kafka
helpers from ``tests/support.py``, not from copies: a benchmark measures the code the
tests check.  Import it as ``harness`` from a script in ``bench/``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "riskstream" / "bench"
for _path in (ROOT / "deploy" / "local", ROOT / "tests"):  # services.py, support.py
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import services as local_services  # noqa: E402  (deploy/local/services.py)
import support  # noqa: E402  (tests/support.py)

#: Kafka's own bin/kafka-server-start.sh heap and JVM performance options, for
#: ``--server-jvm`` runs (the test launcher starts the broker with fast-start flags).
SERVER_JVM_OPTS = (
    "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)  # fmt: skip


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_child(target: Callable[..., None], *args: Any, timeout: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue), daemon=True)
    child.start()
    try:
        result: dict[str, Any] = queue.get(timeout=timeout)
    except BaseException:
        child.terminate()  # interrupted or timed out: do not wait for it
        raise
    finally:
        child.join(10)
        if child.is_alive():
            child.terminate()
    return result


# --------------------------------------------------------------------------- measurement helpers


def proc_status(field_name: str, pid: str = "self") -> int:
    """A kB figure from /proc/<pid>/status, in bytes (0 if unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds_of(pid: int | None) -> float | None:
    """utime + stime of a process, children included, from /proc/<pid>/stat."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


@dataclass
class CpuWatch:
    """CPU used by this process, the servers and the whole machine over one phase."""

    pids: dict[str, int | None]
    start: dict[str, float | None] = field(default_factory=dict)
    machine: tuple[float, float] = (0.0, 0.0)
    wall: float = 0.0

    def begin(self) -> None:
        self.start = {name: cpu_seconds_of(pid) for name, pid in self.pids.items()}
        self.start["self"] = time.process_time()
        self.machine = machine_busy()
        self.wall = time.perf_counter()

    def end(self) -> dict[str, float | None]:
        """Average cores used over the phase, by name, plus 'machine' and 'other'."""
        wall = time.perf_counter() - self.wall
        out: dict[str, float | None] = {"self": (time.process_time() - self.start["self"]) / wall}
        for name, pid in self.pids.items():
            now, then = cpu_seconds_of(pid), self.start.get(name)
            out[name] = None if now is None or then is None else (now - then) / wall
        busy, total = machine_busy()
        ncpu = os.cpu_count() or 1
        out["machine"] = (busy - self.machine[0]) / max(total - self.machine[1], 1) * ncpu
        known = sum(v for k, v in out.items() if v is not None and k != "machine")
        out["other"] = max(out["machine"] - known, 0.0)
        return out


def other_load(pids: dict[str, int | None], seconds: float = 1.0) -> float:
    """Cores busy over ``seconds`` with work that is not this process or its servers."""
    watch = CpuWatch(pids)
    watch.begin()
    time.sleep(seconds)
    return watch.end().get("other") or 0.0


def wait_for_quiet(servers: Servers, limit: float, threshold: float = 0.3) -> str:
    """Wait up to ``limit`` s for other work on the machine to drop below ``threshold``."""
    pids = {"kafka": servers.kafka_pid, "redis": servers.redis_pid}
    deadline = time.perf_counter() + limit
    load = other_load(pids)
    while load > threshold and time.perf_counter() < deadline:
        progress(f"waiting for a quieter machine: other work uses {load:.2f} cores")
        load = other_load(pids, 2.0)
    return f"{load:.2f} cores of other work just before"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def sample(registry: Any, name: str, labels: dict[str, str] | None = None) -> float | None:
    try:
        value = registry.get_sample_value(name, labels or {})
    except Exception:
        return None
    return None if value is None else float(value)


def fmt_cores(cpu: dict[str, float | None]) -> str:
    parts = []
    for name in ("self", "kafka", "redis", "other", "machine"):
        value = cpu.get(name)
        label = "processor" if name == "self" else name
        parts.append(f"{label} {value:.2f}" if value is not None else f"{label} n/a")
    return ", ".join(parts)


# --------------------------------------------------------------------------- the servers


@dataclass
class Servers:
    bootstrap: str
    redis_url: str
    started: list[Any]
    workdir: Path
    kafka_pid: int | None
    redis_pid: int | None
    broker_note: str

    def stop(self, keep_workdir: bool = False) -> None:
        """Stop what was started here; ``keep_workdir`` leaves the logs for a look."""
        for service in reversed(self.started):
            with contextlib.suppress(Exception):
                service.stop()
        self.started.clear()
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_servers(server_jvm: bool) -> Servers:
    """Redis and Kafka from ``deploy/local/services.py``, unless the environment
    (``RISKSTREAM_REDIS_URL``, ``RISKSTREAM_KAFKA_BOOTSTRAP``) names running ones."""
    workdir = Path(tempfile.mkdtemp(prefix="riskstream-bench-"))
    started: list[Any] = []
    servers = Servers("", "", started, workdir, None, None, "")
    try:
        if url := os.environ.get("RISKSTREAM_REDIS_URL"):
            servers.redis_url = url
        else:
            redis_server = local_services.start_redis(workdir / "redis")
            started.append(redis_server)
            servers.redis_url, servers.redis_pid = redis_server.url, redis_server.process.pid
        if bootstrap := os.environ.get("RISKSTREAM_KAFKA_BOOTSTRAP"):
            servers.bootstrap = bootstrap
            servers.broker_note = "external (RISKSTREAM_KAFKA_BOOTSTRAP); JVM options unknown"
        else:
            fast = " ".join(local_services.KAFKA_JVM_OPTS)
            if server_jvm:
                # start_kafka() takes no JVM options; --server-jvm swaps the module's
                # constant for this process only (the file is not edited).
                local_services.KAFKA_JVM_OPTS = SERVER_JVM_OPTS
                servers.broker_note = (
                    "started here, --server-jvm: start_kafka() takes no JVM options, so the "
                    "module constant services.KAFKA_JVM_OPTS was overridden in this process "
                    f"with Kafka's own server flags: {' '.join(SERVER_JVM_OPTS)}"
                )
            else:
                servers.broker_note = (
                    "started here by deploy/local/services.start_kafka() with the test "
                    f"launcher's FAST-START JVM flags ({fast}); start_kafka() accepts no JVM "
                    "options, so server-grade flags (C2 JIT, i.e. without "
                    "-XX:TieredStopAtLevel=1) were NOT used - pass --server-jvm to override "
                    "the constant in-process"
                )
            broker = local_services.start_kafka(workdir / "kafka")
            started.append(broker)
            servers.bootstrap, servers.kafka_pid = broker.bootstrap, broker.process.pid
    except BaseException:
        servers.stop()
        raise
    return servers


def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Each topic with its own partition count (the tests' helper takes one count)."""
    for count in sorted(set(partitions.values())):
        support.create_topics(bootstrap, [t for t, n in partitions.items() if n == count], count)


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(topics).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def delete_keys(redis_url: str, pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        cursor = 0
        while True:
            cursor, found = client.scan(cursor, match=pattern, count=5000)
            if found:
                client.delete(*found)
            if cursor == 0:
                break
    finally:
        client.close()


end_offsets = support.end_offsets
"""Each partition's end offset (the tests' helper)."""


# --------------------------------------------------------------------------- printing


def versions() -> dict[str, str]:
    out = {}
    for dist in ("confluent-kafka", "river", "redis", "orjson", "prometheus-client", "riskstream"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import confluent_kafka

        out["librdkafka"] = confluent_kafka.libversion()[0]
    except Exception:
        out["librdkafka"] = "?"
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = [line for line in git("status", "--porcelain", "src").splitlines() if line]
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}" + (f" + uncommitted changes in {len(dirty)} src/ file(s)" if dirty else "")


def redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT both raise KeyboardInterrupt, so the servers get stopped.

    SIGINT too, explicitly: a shell starting this in the background ignores SIGINT.
    """

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def baseline_src(ref: str) -> Path:
    """``src/`` (and the ``schemas/`` it reads) of git revision ``ref``, extracted once
    under the cache: no git worktree is made."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = CACHE / f"src-{commit}"
    if not (dest / "schemas").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit, "src", "schemas"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"
