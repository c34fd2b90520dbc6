"""The processor as a user runs it: `riskstream run processor`, timed from process start
until its committed offsets reach the end of a pre-filled topic.

Not a test: it prints its setup and its figures, and asserts nothing.  One run::

    .venv/bin/python bench/end_to_end.py [--keys 1000] [--per-key 1000] [--partitions 4]
        [--monitors bench|default] [--processors 1 [2 3 ...]] [--live-rate 20000]
        [--peer quix|none] [--checkpoint-keys 10000] [--profile py-spy|cprofile]
        [--bootstrap HOST:PORT --redis-url redis://...]

Phases (each says on stderr what it is doing):

1. services   Kafka and Redis the way tests/conftest.py starts them (deploy/local/services.py,
              no Docker), unless --bootstrap / --redis-url (or RISKSTREAM_KAFKA_BOOTSTRAP /
              RISKSTREAM_REDIS_URL) name running ones.
2. produce    keys x per-key sensor events (interleaved, 1 ms apart in data time; a few keys
              shift by 2 sigma late, so incidents happen), by a child process, into one topic.
3. catch-up   for each N in --processors: N `python -m riskstream run processor` processes in
              one new consumer group (fresh state), started together; the clock runs from the
              first Popen until the group's committed offsets (Kafka's, which the processor
              commits after each checkpoint) equal the topic's end.  Then each process's CPU
              (utime + stime from /proc/<pid>/stat, all its threads, plus cutime + cstime: its
              forked checkpoint writers) and its own metrics
              (checkpoint seconds, state bytes, streams) are read, and it is stopped.  The
              processor settings are the product's defaults (batch 1000, checkpoint every 1 s
              or 50,000 events, budget 0.25): what a user gets.
4. live       (--live-rate R, R > 0) one processor in a new group catches up from the start
              of the topic while a child process produces R events/s more (continuing every
              key); the clock stops when the committed offsets reach the end offsets read at
              that moment, i.e. when the processor has caught up with the live traffic.
5. peer       (--peer quix) the same job written idiomatically with Quix Streams
              (bench/peers/quix/app.py: per-key River ADWIN + PageHinkley in its RocksDB
              state, commit every 1 s), in its own venv under ~/.cache/riskstream/bench,
              installed from bench/peers/quix/requirements.txt, on the same topic, timed
              the same way; and the ratio.
6. checkpoint the steady-state checkpoint of --checkpoint-keys sensors x 2 monitors (20,000
              streams by default): streams fed past their time index (5,000 to 5,015 events
              each; 64 distinct ones restored under every key).  First in the real
              `riskstream run processor`, once with processor.checkpoint_writer inline and
              once with fork: its group's state seeded in Redis, then rounds of one event per
              sensor, a checkpoint per round; how long the loop stopped and how long until
              the save landed (its own metrics), and the CPU of the process and of its
              forked writers.  Then the checkpoint's parts in this process:
              PartitionDetectors.take_changed() + RedisStateStore.save() per partition;
              ms and bytes, the median of 5 rounds.

--profile runs one more catch-up (1 processor) under py-spy (sampling, native frames
off, GIL-only off) or cProfile (``python -m cProfile``) and prints the top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import (
    CACHE,
    ROOT,
    baseline_src,
    cpu_model,
    create_topics,
    delete_keys,
    delete_topics,
    end_offsets,
    git_state,
    mb,
    progress,
    redis_version,
    run_child,
    sigterm_as_interrupt,
    start_servers,
    versions,
)
from throughput import MONITORS_YAML, EventMaker, key_name, produce_bulk

PEERS = Path(__file__).resolve().parent / "peers"
IN_PROCESS_FIGURE = "bench/throughput.py: 70-74k events/s, 13 µs CPU/ev (results/throughput-*.txt)"


# --------------------------------------------------------------------------- config


def write_config(
    path: Path, topic: str, group: str, monitors: str, src: Path = ROOT / "src"
) -> None:
    """A config file: the product's default processor settings (those of the riskstream
    in ``src``: a baseline's own), our topics and group."""
    default = yaml.safe_load((src / "riskstream" / "default-config.yaml").read_text())
    doc: dict[str, Any] = {
        "version": 1,
        "topics": {
            "sensor": topic,
            **{k: f"{topic}-{k}" for k in ("inference", "label", "change", "incidents")},
            "routing_changes": f"{topic}-routing",
            "dead_letter": f"{topic}-dead",
        },
        "processor": {**default["processor"], "group_id": group},
    }
    if monitors == "default":
        doc["monitors"] = default["monitors"]
        for extra in ("lineage", "costs", "playbooks", "enrichment", "labels"):
            if extra in default:
                doc[extra] = default[extra]
    else:
        doc["monitors"] = yaml.safe_load(MONITORS_YAML)["monitors"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def monitor_text(monitors: str) -> str:
    if monitors == "default":
        default = yaml.safe_load((ROOT / "src" / "riskstream" / "default-config.yaml").read_text())
        names = [
            f"{m['name']} ({m.get('detector', {}).get('kind', '?')})"
            for m in default["monitors"]
            if m.get("reads") == "sensor"
        ]
        return "the shipped default config's sensor monitors: " + ", ".join(names)
    return "page-hinkley + adwin per sensor (bench/throughput.py's MONITORS_YAML, warmup 20)"


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds of one process (all its threads) and of its forked checkpoint writers
    reaped so far: utime + stime + cutime + cstime, from /proc/<pid>/stat."""
    split = cpu_split(pid)
    return None if split is None else split[0] + split[1]


def cpu_split(pid: int) -> tuple[float, float] | None:
    """(utime + stime, cutime + cstime) of one process, in seconds: its own CPU, and
    that of the children it waited for (the processor's forked checkpoint writers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def scrape(port: int) -> dict[str, float]:
    """A process's /metrics, summed over labels, by sample name; and, for samples with a
    ``phase`` label, also by ``name{phase}``."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + float(s.value)
            if "phase" in s.labels:
                out[f"{s.name}{{{s.labels['phase']}}}"] = float(s.value)
    return out


def redis_stats(url: str) -> dict[str, float]:
    """The Redis server's CPU seconds, commands and memory so far (INFO)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info()
    finally:
        client.close()
    keys = ("used_cpu_user", "used_cpu_sys", "total_commands_processed", "used_memory")
    return {k: float(info.get(k, 0.0)) for k in keys}


class Committed:
    """The committed offsets of a consumer group, read without joining it."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._tps = [TopicPartition(topic, p) for p in range(partitions)]

    def total(self) -> int:
        try:
            got = self._consumer.committed(self._tps, timeout=5)
        except Exception:
            return 0
        return sum(max(tp.offset, 0) for tp in got)

    def close(self) -> None:
        self._consumer.close()


def wait_committed(committed: Committed, target: int, procs: list[Any], limit: float) -> float:
    """Poll until the committed total reaches ``target``; the perf_counter time it did."""
    deadline = time.perf_counter() + limit
    last_note = 0.0
    while True:
        done = committed.total()
        now = time.perf_counter()
        if done >= target:
            return now
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a process exited ({p.returncode}) before the end: see its log")
        if now > deadline:
            raise RuntimeError(f"committed {done:,} of {target:,} after {limit:.0f} s")
        if now - last_note > 10:
            progress(f"  committed {done:,} of {target:,}")
            last_note = now
        time.sleep(0.05)


@dataclass
class ProcRun:
    """What one timed run of N processes measured."""

    label: str
    processes: int
    events: int
    wall: float
    first_commit: float | None  # s from start to the first committed offset
    cpu: list[float]  # per process, s, at the end
    cpu_at_first: list[float]
    metrics: list[dict[str, float]]
    load_start: str
    load_end: str
    logs: list[Path] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.wall

    @property
    def cpu_us(self) -> float:
        return sum(self.cpu) / self.events * 1e6


def processor_command(
    config: Path, servers: Any, port: int, profile: str | None, out: Path
) -> list[str]:
    python = sys.executable
    run = [
        "run",
        "processor",
        "--config",
        str(config),
        "--bootstrap",
        servers.bootstrap,
        "--redis-url",
        servers.redis_url,
        "--metrics-port",
        str(port),
    ]
    if profile == "cprofile":
        return [python, "-m", "cProfile", "-o", str(out), "-m", "riskstream", *run]
    if profile == "py-spy":
        spy = str(Path(sys.executable).parent / "py-spy")
        return [
            spy,
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(out),
            "--",
            python,
            "-m",
            "riskstream",
            *run,
        ]
    return [python, "-m", "riskstream", *run]


def run_processors(
    n: int,
    topic: str,
    partitions: int,
    events: int,
    servers: Any,
    monitors: str,
    work: Path,
    label: str,
    profile: str | None = None,
    live: dict[str, Any] | None = None,
    pythonpath: Path | None = None,
) -> ProcRun:
    group = f"e2e-{label}-{uuid.uuid4().hex[:6]}"
    config = work / f"{group}.yaml"
    write_config(config, topic, group, monitors, pythonpath or ROOT / "src")
    committed = Committed(servers.bootstrap, group, topic, partitions)
    ports = [free_port() for _ in range(n)]
    logs = [work / f"{group}-{i}.log" for i in range(n)]
    prof = work / f"{group}.prof"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if pythonpath is not None:  # an older riskstream's src/, ahead of the editable install
        env["PYTHONPATH"] = str(pythonpath)
    load_start = loadavg()
    redis_before = redis_stats(servers.redis_url)
    progress(f"{label}: {n} processor(s), group {group}, load {load_start}")
    handles = [open(log, "wb") for log in logs]  # noqa: SIM115
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            processor_command(config, servers, port, profile if i == 0 else None, prof),
            stdout=h,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
        for i, (port, h) in enumerate(zip(ports, handles, strict=True))
    ]
    live_child = None
    try:
        if live is not None:
            live_child = start_live(servers.bootstrap, topic, live)
        first_commit = None
        cpu_at_first: list[float] = []
        while committed.total() == 0:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a processor exited early: see {logs[0]}")
            time.sleep(0.02)
        first_commit = time.perf_counter() - started
        pids = [spy_child(p) if profile == "py-spy" else p.pid for p in procs]
        cpu_at_first = [cpu_seconds(pid) or 0.0 for pid in pids]
        if live is None:
            done_at = wait_committed(committed, events, procs, 3600)
            total = events
        else:
            done_at, total = catch_up_live(
                servers.bootstrap, topic, partitions, committed, procs, live
            )
        wall = done_at - started
        cpu = [cpu_seconds(pid) or 0.0 for pid in pids]
        metrics = [scrape(port) for port in ports]
        load_end = loadavg()
        redis_after = redis_stats(servers.redis_url)
    finally:
        if live_child is not None:
            live_child.terminate()
            live_child.wait(30)
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT if profile == "py-spy" else signal.SIGTERM)
        for p in procs:
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill()
        for h in handles:
            h.close()
        committed.close()
    run = ProcRun(
        label, n, total, wall, first_commit, cpu, cpu_at_first, metrics, load_start, load_end, logs
    )
    run.extra["group"] = group
    run.extra["redis"] = {k: redis_after[k] - redis_before.get(k, 0.0) for k in redis_after}
    run.extra["redis_memory"] = redis_after.get("used_memory", 0.0)
    run.extra["profile"] = prof if profile else None
    with contextlib.suppress(Exception):
        delete_keys(servers.redis_url, f"*{group}*")
    return run


def spy_child(p: subprocess.Popen[bytes]) -> int:
    """The python process py-spy started (its only child)."""
    for _ in range(100):
        try:
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return p.pid


# --------------------------------------------------------------------------- live traffic


def live_producer(
    bootstrap: str, topic: str, keys: int, first_step: int, rate: float, seconds: float, seed: int
) -> None:
    """Child process body: ``rate`` events/s for ``seconds``, continuing every key."""
    from confluent_kafka import Producer

    maker = EventMaker(keys, seed)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    idx = keys * first_step
    sent, step, k = 0, first_step, 0
    begin = time.perf_counter()
    while (elapsed := time.perf_counter() - begin) < seconds:
        target = int(rate * elapsed)
        while sent < target:
            key, value, _ = maker.event(k, step, idx)
            while True:
                try:
                    producer.produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.05)
            idx += 1
            sent += 1
            k += 1
            if k == keys:
                k, step = 0, step + 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(60)
    print(f"LIVE {sent} {sent / (time.perf_counter() - begin):.0f}", flush=True)


def start_live(bootstrap: str, topic: str, live: dict[str, Any]) -> subprocess.Popen[bytes]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import end_to_end as e; "
        f"e.live_producer({bootstrap!r}, {topic!r}, {live['keys']}, {live['first_step']}, "
        f"{live['rate']}, {live['seconds']}, 7)"
    )
    live["out"] = live["work"] / f"live-{uuid.uuid4().hex[:6]}.out"
    live["started"] = time.perf_counter()
    return subprocess.Popen([sys.executable, "-c", code], stdout=open(live["out"], "wb"))


def catch_up_live(
    bootstrap: str,
    topic: str,
    partitions: int,
    committed: Committed,
    procs: list[Any],
    live: dict[str, Any],
) -> tuple[float, int]:
    """Wait until the committed offsets reach the end offsets of the moment."""
    deadline = time.perf_counter() + 3600
    last_note = 0.0
    while True:
        ends = sum(end_offsets(bootstrap, topic, partitions).values())
        done = committed.total()
        now = time.perf_counter()
        if done >= ends:
            live["caught_up_at_live_s"] = now - live["started"]
            live["end"] = ends
            return now, ends - live["base"]
        if any(p.poll() is not None for p in procs) or now > deadline:
            raise RuntimeError("the processor never caught up")
        if now - last_note > 10:
            progress(f"  live: committed {done:,}, end {ends:,}")
            last_note = now
        time.sleep(0.1)


# --------------------------------------------------------------------------- the Quix peer


def peer_python(name: str) -> Path:
    """The peer's venv (created and installed from its requirements.txt once)."""
    req = PEERS / name / "requirements.txt"
    venv = CACHE / f"{name}-venv"
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.read_text() != req.read_text():
        progress(f"peer {name}: creating {venv} from {req}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(req)], check=True)
        stamp.write_text(req.read_text())
    return venv / "bin" / "python"


def run_peer(
    name: str, topic: str, partitions: int, events: int, servers: Any, work: Path
) -> ProcRun:
    python = peer_python(name)
    group = f"e2e-peer-{name}-{uuid.uuid4().hex[:6]}"
    committed = Committed(servers.bootstrap, group, topic, partitions)
    log = work / f"{group}.log"
    state = work / f"{group}-state"
    cmd = [
        str(python),
        str(PEERS / name / "app.py"),
        "--bootstrap",
        servers.bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--state-dir",
        str(state),
    ]
    load_start = loadavg()
    progress(f"peer {name}: group {group}, load {load_start}")
    with open(log, "wb") as h:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=h, stderr=subprocess.STDOUT, cwd=work)
        try:
            while committed.total() == 0:
                if proc.poll() is not None:
                    raise RuntimeError(f"the peer exited early: {log.read_text()[-2000:]}")
                time.sleep(0.05)
            first = time.perf_counter() - started
            cpu_first = cpu_seconds(proc.pid) or 0.0
            done_at = wait_committed(committed, events, [proc], 7200)
            cpu = cpu_seconds(proc.pid) or 0.0
            load_end = loadavg()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            committed.close()
    return ProcRun(
        f"peer {name}",
        1,
        events,
        done_at - started,
        first,
        [cpu],
        [cpu_first],
        [{}],
        load_start,
        load_end,
        [log],
    )


# --------------------------------------------------------------------------- checkpoint, N streams


class TemplateState:
    """Steady-state snapshots for any number of sensors: 64 template sensors fed past
    their time index (5,000 to 5,015 events each), their snapshots restored under
    every other sensor's name."""

    templates = 64
    per_template = 5000
    t0 = 1_795_687_200.0

    def __init__(self, work: Path) -> None:
        from riskstream.config import load_config
        from riskstream.core.monitors import PartitionDetectors
        from riskstream.core.state_keys import parse as parse_state_key

        cfg_path = work / "checkpoint.yaml"
        write_config(cfg_path, "ckpt", "ckpt", "bench")
        config = load_config(cfg_path)
        self.specs, self.limits = config.monitors, config.processor.stream_limits
        self.rng = rng = random.Random(5)
        templates, per_template, t0 = self.templates, self.per_template, self.t0
        progress(f"checkpoint: {templates} template sensors x {per_template:,} events")
        seed_pd = PartitionDetectors(self.specs, "sensor", self.limits)
        for i in range(per_template):
            for k in range(templates):
                name = key_name(k)
                seed_pd.observe(
                    {
                        "event_id": f"{name}/{i}",
                        "time": "",
                        "sensor_id": name,
                        "value": rng.gauss(20.0 + k % 7, 1.0),
                        "unit": "degC",
                        "quality": "good",
                    },
                    t0 + i * templates + k,
                )
        # A few more events for some templates: streams' time indexes and ADWIN bucket rows
        # then move at different rounds, as real streams' do, not all in the same one.
        for k in range(templates):
            name = key_name(k)
            for i in range(k % 16):
                value = rng.gauss(20.0 + k % 7, 1.0)
                event = {"event_id": f"{name}/+{i}", "time": "", "sensor_id": name,
                         "value": value, "unit": "degC", "quality": "good"}  # fmt: skip
                seed_pd.observe(event, t0 + (per_template + i) * templates + k)
        saved = seed_pd.take_changed()
        names = {key_name(k): k for k in range(templates)}
        self.by_template: dict[int, dict[str, bytes]] = {}
        self.shared: dict[str, bytes] = {}
        for state_key, raw in saved.items():
            k = names.get(parse_state_key(state_key).key)  # a stream's snapshot, or its cold
            if k is None:
                self.shared[state_key] = raw
            else:
                self.by_template.setdefault(k, {})[state_key] = raw
        self.next_time = t0 + (per_template + 16) * templates  # data time after the seeds

    def partition(self, p: int, keys: int, partitions: int) -> dict[str, bytes]:
        """The snapshots of partition ``p``'s sensors (sensor k is in partition k % partitions)."""
        snaps = dict(self.shared)
        for k in range(p, keys, partitions):
            template = key_name(k % self.templates)
            for sk, raw in self.by_template[k % self.templates].items():
                snaps[sk.replace(template, key_name(k))] = raw
        return snaps


def checkpoint_phase(
    keys: int, partitions: int, redis_url: str, seeds: TemplateState
) -> dict[str, Any]:
    """The steady-state checkpoint of ``keys`` sensors x 2 monitors, its parts timed in
    this process: PartitionDetectors.take_changed() (encode) and RedisStateStore.save()."""
    from riskstream.adapters.redis.state import RedisStateStore
    from riskstream.core.monitors import PartitionDetectors
    from riskstream.core.state_keys import StateKind
    from riskstream.core.state_keys import parse as parse_state_key

    specs, limits, rng = seeds.specs, seeds.limits, seeds.rng
    t0, per_template, templates = seeds.t0, seeds.per_template, seeds.templates
    by_template = seeds.by_template
    store = RedisStateStore.from_url(redis_url)
    scope = f"e2e-ckpt-{uuid.uuid4().hex[:6]}"
    out: dict[str, Any] = {"keys": keys, "streams": 0, "encode_s": 0.0, "save_s": 0.0, "bytes": 0}
    try:
        parts = []
        for p in range(partitions):
            snaps = seeds.partition(p, keys, partitions)
            pd = PartitionDetectors(specs, "sensor", limits)
            assert pd.load(snaps) == [], "every stream restores"
            pd.take_changed()
            tp = ("ckpt", p)
            epoch = store.claim(scope, tp).epoch
            store.save(scope, tp, epoch, 999, {"applied": 0}, snaps)  # the state, as it stands
            parts.append((tp, pd, epoch, [k for k in range(p, keys, partitions)]))
        redis_before = redis_stats(redis_url)
        rounds = 5
        for rnd in range(rounds):  # a few rounds, the median kept
            enc = save = enc_cpu = save_cpu = 0.0
            nbytes = streams = colds = 0
            for tp, pd, epoch, mine in parts:
                for k in mine:
                    name = key_name(k)
                    pd.observe(
                        {
                            "event_id": f"{name}/x{rnd}",
                            "time": "",
                            "sensor_id": name,
                            "value": rng.gauss(20.0, 1.0),
                            "unit": "degC",
                            "quality": "good",
                        },
                        t0 + per_template * templates + rnd,
                    )
                a, a_cpu = time.perf_counter(), time.process_time()
                changed = pd.take_changed()
                b, b_cpu = time.perf_counter(), time.process_time()
                store.save(scope, tp, epoch, 1000 + rnd, {"applied": 1}, changed)
                c, c_cpu = time.perf_counter(), time.process_time()
                enc += b - a
                save += c - b
                enc_cpu += b_cpu - a_cpu
                save_cpu += c_cpu - b_cpu
                nbytes += sum(len(v) for v in changed.values())
                kinds = [parse_state_key(sk).kind for sk in changed if sk.startswith("value-")]
                streams += kinds.count(StateKind.STREAM)
                colds += kinds.count(StateKind.COLD)
            out.setdefault("rounds", []).append((enc, save, nbytes, streams, colds))
            out.setdefault("cpu", []).append((enc_cpu, save_cpu))
        redis_after = redis_stats(redis_url)
        out["redis_cpu_per_round"] = (
            sum(redis_after[k] - redis_before[k] for k in ("used_cpu_user", "used_cpu_sys"))
            / rounds
        )
        out["rounds"].sort(key=lambda r: r[0] + r[1])
        median = out["rounds"][rounds // 2]
        out["cpu"] = sorted(out["cpu"], key=sum)[rounds // 2]
        out["encode_s"], out["save_s"], out["bytes"], out["streams"], out["colds"] = median
        out["redis_memory"] = sum(store.state_bytes(scope, tp) for tp, *_ in parts)
        out["example"] = {
            sk.split("\x1f")[0] + (" cold" if "\x16" in sk else ""): len(raw)
            for sk, raw in by_template[0].items()
        }
    finally:
        store.close()
        with contextlib.suppress(Exception):
            delete_keys(redis_url, f"*{scope}*")
    return out


def checkpoint_process_phase(
    keys: int,
    partitions: int,
    servers: Any,
    work: Path,
    seeds: TemplateState,
    writer: str,
    rounds: int = 6,
) -> dict[str, Any]:
    """The same checkpoint as the real `riskstream run processor` takes it.

    Its group's state is seeded in Redis (``keys`` sensors x 2 monitors, offset 0 of an
    empty topic); the process starts and claims it; then, ``rounds`` times, one event
    per sensor is produced and the bench waits until the group's committed offsets
    cover it.  The config is the shipped default's but for ``checkpoint_events`` =
    ``keys`` and a long interval, so each checkpoint saves every stream changed once,
    and ``checkpoint_writer`` = ``writer``.  Per round, from the process's metrics: how
    long the loop stopped (riskstream_checkpoint_seconds) and how long until the save
    landed (riskstream_checkpoint_landed_seconds); from /proc, the CPU of the process
    and of its forked writers (cutime + cstime, once reaped).
    """
    import orjson
    from confluent_kafka import Producer

    from riskstream.adapters.redis.state import RedisStateStore
    from riskstream.core.timeutil import format_time

    tag = uuid.uuid4().hex[:6]
    topic, group = f"e2e-ckpt-{tag}-sensor", f"e2e-ckpt-{writer}-{tag}"
    create_topics(servers.bootstrap, {topic: partitions})
    config = work / f"{group}.yaml"
    write_config(config, topic, group, "bench")
    doc = yaml.safe_load(config.read_text())
    doc["processor"].update(
        checkpoint_events=keys, checkpoint_interval_ms=600_000, checkpoint_writer=writer
    )
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    store = RedisStateStore.from_url(servers.redis_url)
    try:
        for p in range(partitions):
            epoch = store.claim(group, (topic, p)).epoch
            store.save(group, (topic, p), epoch, 0, {"applied": 0},
                       seeds.partition(p, keys, partitions))  # fmt: skip
    finally:
        store.close()
    port = free_port()
    log = work / f"{group}.log"
    committed = Committed(servers.bootstrap, group, topic, partitions)
    producer = Producer({"bootstrap.servers": servers.bootstrap, "linger.ms": 5})
    out: dict[str, Any] = {"writer": writer, "keys": keys, "rounds": []}
    progress(f"checkpoint in the processor ({writer} writer): {keys:,} sensors, {rounds} rounds")
    # (one checkpoint per round: stop_s is that checkpoint's stop, not a mean of several)
    with open(log, "wb") as handle:
        started = time.perf_counter()
        proc = subprocess.Popen(
            processor_command(config, servers, port, None, work / "none.prof"),
            stdout=handle, stderr=subprocess.STDOUT, cwd=work,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            while scrape(port).get("riskstream_partitions_owned", 0) < partitions:  # claimed
                if proc.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError(f"the processor did not load its state: see {log}")
                time.sleep(0.1)
            out["load_s"] = time.perf_counter() - started
            before, cpu_before = scrape(port), cpu_split(proc.pid)
            for rnd in range(rounds):
                at = format_time(seeds.next_time + rnd)
                for k in range(keys):
                    name = key_name(k)
                    event = {"event_id": f"{name}/ck{rnd}", "time": at, "sensor_id": name,
                             "value": seeds.rng.gauss(20.0 + k % 7, 1.0), "unit": "degC",
                             "quality": "good"}  # fmt: skip
                    producer.produce(topic, orjson.dumps(event), name.encode(), k % partitions)
                    producer.poll(0)
                producer.flush()
                wait_committed(committed, (rnd + 1) * keys, [proc], 300)
                now, cpu_now = scrape(port), cpu_split(proc.pid)
                stop_s = delta(now, before, "riskstream_checkpoint_seconds")
                fork = "riskstream_processor_phase_seconds_total{fork}"
                out["rounds"].append({
                    "stop_s": stop_s,
                    # the loop's time in the fork phase less the forks: taking in reports
                    "report_s": max(0.0, now.get(fork, 0) - before.get(fork, 0) - stop_s),
                    "landed_s": delta(now, before, "riskstream_checkpoint_landed_seconds"),
                    "cpu_s": cpu_now[0] - cpu_before[0],
                    "writer_cpu_s": cpu_now[1] - cpu_before[1],
                    "writer_encode_s": now.get("riskstream_checkpoint_writer_seconds_total", 0)
                    - before.get("riskstream_checkpoint_writer_seconds_total", 0),
                })  # fmt: skip
                before, cpu_before = now, cpu_now
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            if proc.poll() is None:
                proc.kill()
            committed.close()
            with contextlib.suppress(Exception):
                delete_topics(servers.bootstrap, [topic])
            with contextlib.suppress(Exception):
                delete_keys(servers.redis_url, f"*{group}*")
    steady = sorted(out["rounds"][1:], key=lambda r: r["stop_s"])  # the first: warm-up
    out["median"] = steady[len(steady) // 2]
    return out


def delta(now: dict[str, float], before: dict[str, float], histogram: str) -> float:
    """The mean of a histogram's observations between two scrapes (0: none)."""
    n = now.get(histogram + "_count", 0) - before.get(histogram + "_count", 0)
    total = now.get(histogram + "_sum", 0) - before.get(histogram + "_sum", 0)
    return total / n if n else 0.0


# --------------------------------------------------------------------------- unit costs


def unit_costs(keys: int = 200, warm: int = 3000, timed: int = 1000) -> list[dict[str, Any]]:
    """CPU µs per event and snapshot bytes per stream, for each sensor monitor kind alone,
    then for the shipped default's sensor monitors together.

    Each kind runs as the only monitor of a PartitionDetectors (the core, in this
    process): ``keys`` streams fed ``warm`` events each (past warm-up and the time
    index), then ``timed`` more each under ``time.process_time``; then every stream's
    snapshot is encoded as a checkpoint does.  The last row runs the default's five
    sensor monitors in one PartitionDetectors, as a processor does: the kinds alone
    added up to less than that in every sitting so far (with the same calls made: the
    CPU's caches or the collector, not pinned down), so a capacity model takes the row,
    not the sum.
    """
    from riskstream.config import load_config
    from riskstream.core.monitors import PartitionDetectors

    default = yaml.safe_load((ROOT / "src" / "riskstream" / "default-config.yaml").read_text())
    bench = yaml.safe_load(MONITORS_YAML)["monitors"]
    sensor = [m for m in default["monitors"] if m.get("reads") == "sensor"]
    together = {"name": "default sensor (all 5)", "detector": {"kind": "together"}}
    out = []
    for monitor in [*bench, *sensor, together]:
        path = Path(tempfile.mkdtemp()) / "unit.yaml"
        runs = sensor if monitor is together else [monitor]
        path.write_text(yaml.safe_dump({"version": 1, "monitors": runs}))
        config = load_config(path)
        pd = PartitionDetectors(config.monitors, "sensor", config.processor.stream_limits)
        rng = random.Random(11)
        t0 = 1_795_687_200.0
        names = [key_name(k) for k in range(keys)]

        def feed(
            first: int,
            n: int,
            pd: Any = pd,
            names: list[str] = names,
            rng: Any = rng,
            t0: float = t0,
        ) -> None:
            for i in range(first, first + n):
                for k, name in enumerate(names):
                    event = {"event_id": f"{name}/{i}", "time": "", "sensor_id": name,
                             "value": rng.gauss(20.0 + k % 7, 1.0), "unit": "degC",
                             "quality": "good"}  # fmt: skip
                    pd.observe(event, t0 + i + k / keys)

        feed(0, warm)
        pd.take_changed()
        events = [
            {"event_id": f"{name}/{i}", "time": "", "sensor_id": name,
             "value": rng.gauss(20.0 + k % 7, 1.0), "unit": "degC", "quality": "good"}
            for i in range(warm, warm + timed) for k, name in enumerate(names)
        ]  # fmt: skip
        times = [t0 + i + k / keys for i in range(warm, warm + timed) for k in range(keys)]
        observe = pd.observe
        started = time.process_time()
        for event, t in zip(events, times, strict=True):
            observe(event, t)
        cpu = time.process_time() - started
        started = time.process_time()
        changed = pd.take_changed()
        encode = time.process_time() - started
        names = tuple(m["name"] + "\x1f" for m in runs)
        mine = {k: v for k, v in changed.items() if k.startswith(names)}
        streams = {k: v for k, v in mine.items() if "\x16" not in k}  # not the cold parts
        cold = sum(len(v) for k, v in mine.items() if "\x16" in k)
        kind = monitor.get("detector", {}).get("kind", "?")
        out.append(
            {
                "monitor": monitor["name"],
                "kind": kind,
                "us_per_event": cpu / len(events) * 1e6,
                "bytes_per_stream": sum(len(v) for v in mine.values()) / max(len(streams), 1),
                "cold_per_stream": cold / max(len(streams), 1),
                "encode_us_per_stream": encode / max(len(streams), 1) * 1e6,
                "streams": len(streams),
                "bytes_per_key": sum(len(v) for v in mine.values()) / keys,
            }
        )
        progress(f"units: {monitor['name']} ({kind}) {out[-1]['us_per_event']:.2f} µs/event")
    return out


# --------------------------------------------------------------------------- profiles


def top_functions(run: ProcRun, profile: str, limit: int = 30) -> list[str]:
    path = run.extra.get("profile")
    if path is None or not Path(path).exists():
        return ["(no profile written)"]
    if profile == "cprofile":
        import io
        import pstats

        buf = io.StringIO()
        stats = pstats.Stats(str(path), stream=buf)
        stats.sort_stats("tottime").print_stats(limit)
        return buf.getvalue().splitlines()
    own: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for f in set(frames):  # inclusive time, shown with a "+"
            own["+ " + f] = own.get("+ " + f, 0) + n
    rows = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
    return [f"{n / total * 100:5.1f}%  {leaf}" for leaf, n in rows] + [f"({total:,} samples)"]


# --------------------------------------------------------------------------- printing


def describe(run: ProcRun) -> list[str]:
    lines = [f"{run.label}"]
    lines.append(f"  events                       {run.events:,}, {run.processes} process(es)")
    lines.append(f"  wall, process start -> committed offsets at the end   {run.wall:.2f} s")
    lines.append(f"  events/s                     {run.rate:,.0f}")
    if run.first_commit is not None:
        lines.append(
            f"  start-up                     {run.first_commit:.2f} s to the first commit "
            f"({sum(run.cpu_at_first):.2f} CPU s: imports, config, group join, claim)"
        )
        lines.append(
            f"  after the first commit       "
            f"{run.events / max(run.wall - run.first_commit, 1e-9):,.0f} events/s "
            f"(an upper bound: the first commit already covers up to a second of events)"
        )
    lines.append(
        f"  CPU per event                {run.cpu_us:.1f} µs (user+sys of the process(es), all "
        f"threads, start-up included: {sum(run.cpu):.2f} s)"
    )
    if run.processes > 1:
        lines.append(
            "  per process                  " + ", ".join(f"{c:.1f} CPU s" for c in run.cpu)
        )
    m = run.metrics
    ck_n = sum(x.get("riskstream_checkpoint_seconds_count", 0.0) for x in m)
    ck_s = sum(x.get("riskstream_checkpoint_seconds_sum", 0.0) for x in m)
    if ck_n:
        state = sum(x.get("riskstream_state_bytes", 0.0) for x in m)
        streams = sum(x.get("riskstream_streams", 0.0) for x in m)
        lines.append(
            f"  checkpoints                  {ck_n:.0f}, mean {ck_s / ck_n * 1000:.0f} ms "
            f"({ck_s / run.wall * 100:.0f}% of the wall time); state {mb(state)} over "
            f"{streams:,.0f} streams ({state / max(streams, 1):,.0f} B/stream)"
        )
        phases = {
            name: sum(x.get(f"riskstream_processor_phase_seconds_total{{{name}}}", 0.0) for x in m)
            for name in ("poll", "flush", "encode", "save", "fork")
        }
        phases["apply"] = sum(x.get("riskstream_batch_seconds_sum", 0.0) for x in m)
        lines.append(
            "  loop phases                  "
            + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items() if v)
            + f" (of {run.wall * run.processes:.2f} s of wall time; the rest is start-up)"
        )
        gc_s = sum(x.get("python_gc_collections_total", 0.0) for x in m)
        if gc_s:
            lines.append(f"  python gc collections        {gc_s:,.0f}")
    r = run.extra.get("redis")
    if r:
        cpu = r["used_cpu_user"] + r["used_cpu_sys"]
        lines.append(
            f"  redis server                 {cpu:.2f} CPU s "
            f"({cpu / run.events * 1e6:.2f} µs/event), "
            f"{r['total_commands_processed']:,.0f} commands "
            f"({r['total_commands_processed'] / run.wall:,.0f}/s), used_memory "
            f"{mb(run.extra.get('redis_memory', 0.0))} at the end (all scopes on the server)"
        )
    lines.append(f"  load average                 {run.load_start} at start, {run.load_end} at end")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--per-key", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--monitors", choices=("bench", "default"), default="bench")
    parser.add_argument("--processors", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=1, help="catch-up runs per N (median kept)")
    parser.add_argument("--live-rate", type=float, default=20_000)
    parser.add_argument("--live-seconds", type=float, default=20)
    parser.add_argument("--peer", choices=("quix", "none"), default="none")
    parser.add_argument(
        "--peer-events",
        type=int,
        default=0,
        help="time the peer until it committed this many events of the topic (0: all of it)",
    )
    parser.add_argument("--checkpoint-keys", type=int, default=10_000, help="0: skip the phase")
    parser.add_argument("--profile", choices=("py-spy", "cprofile"))
    parser.add_argument("--bootstrap", help="a running Kafka (else one is started here)")
    parser.add_argument("--redis-url", help="a running Redis (else one is started here)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--units", action="store_true", help="also measure each monitor kind alone (in-process)"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also time 1 processor of git revision REF (its src/ on PYTHONPATH), same topic",
    )
    args = parser.parse_args()
    if args.bootstrap:
        os.environ["RISKSTREAM_KAFKA_BOOTSTRAP"] = args.bootstrap
    if args.redis_url:
        os.environ["RISKSTREAM_REDIS_URL"] = args.redis_url
    began = time.perf_counter()
    load_begin = loadavg()
    work = Path(tempfile.mkdtemp(prefix="riskstream-e2e-"))
    with sigterm_as_interrupt():
        servers = start_servers(False)
        topic = f"e2e-{uuid.uuid4().hex[:8]}-sensor"
        try:
            return measure(args, servers, topic, work, load_begin, began)
        finally:
            with contextlib.suppress(Exception):
                delete_topics(servers.bootstrap, [topic])
            servers.stop()


def measure(args: Any, servers: Any, topic: str, work: Path, load_begin: str, began: float) -> int:
    events = args.keys * args.per_key
    create_topics(servers.bootstrap, {topic: args.partitions})
    progress(f"produce: {events:,} events into {topic}")
    produced = run_child(
        produce_bulk, servers.bootstrap, topic, args.keys, args.per_key, args.seed, timeout=3600
    )
    ends = end_offsets(servers.bootstrap, topic, args.partitions)
    assert sum(ends.values()) == events, (ends, produced)
    results: list[ProcRun] = []
    if args.baseline:  # first, so that it and the 1-processor run sit side by side
        src = baseline_src(args.baseline)
        pairs = []
        for n in range(args.runs):  # baseline and current alternate, so both see the same load
            # ... and which goes first too (ABBA): two runs of one hot path, the baseline
            # first, read 1.17x apart (end_to_end-baseline-first-2026-12-03.txt).
            def baseline() -> ProcRun:
                return run_processors(
                    1, topic, args.partitions, events, servers, args.monitors, work,
                    f"baseline-{src.parent.name[4:]}", pythonpath=src,
                )  # fmt: skip

            def current() -> ProcRun:
                return run_processors(
                    1, topic, args.partitions, events, servers, args.monitors, work, "catch-up-1p"
                )

            if n % 2:
                after = current()
                pairs.append((baseline(), after))
            else:
                before = baseline()
                pairs.append((before, current()))
        base = sorted((b for b, _ in pairs), key=lambda r: r.cpu_us)[len(pairs) // 2]
        base.extra["baseline"] = True
        base.extra["pairs"] = [
            f"{b.cpu_us:.1f} -> {a.cpu_us:.1f} µs ({b.rate:,.0f} -> {a.rate:,.0f}/s)"
            for b, a in pairs
        ]
        results.append(base)
        if args.processors[:1] == [1]:  # the 1-processor runs are done: the median of them
            now = sorted((a for _, a in pairs), key=lambda r: r.cpu_us)[len(pairs) // 2]
            results.append(now)
            args.processors = args.processors[1:]
    for n in args.processors:
        runs = [
            run_processors(
                n, topic, args.partitions, events, servers, args.monitors, work, f"catch-up-{n}p"
            )
            for _ in range(args.runs)
        ]
        runs.sort(key=lambda r: r.wall)
        results.append(runs[len(runs) // 2])
        if args.runs > 1:
            results[-1].extra["all"] = [f"{r.rate:,.0f}/s, {r.cpu_us:.1f} µs" for r in runs]
    live_run = None
    if args.live_rate > 0:
        live = {
            "keys": args.keys,
            "first_step": args.per_key,
            "rate": args.live_rate,
            "seconds": args.live_seconds,
            "work": work,
            "base": 0,
        }
        live_run = run_processors(
            1, topic, args.partitions, events, servers, args.monitors, work, "live", live=live
        )
        live_run.extra["live"] = live
        out = Path(live["out"]).read_text().split() if Path(live["out"]).exists() else []
        live["sent"] = out[1:3] if out[:1] == ["LIVE"] else None
        ends = end_offsets(servers.bootstrap, topic, args.partitions)
        events = sum(ends.values())  # the topic grew: later phases read all of it
    peer_run = None
    if args.peer != "none":
        peer_events = min(args.peer_events or events, events)
        peer_run = run_peer(args.peer, topic, args.partitions, peer_events, servers, work)
    ckpt = None
    ckpt_runs: list[dict[str, Any]] = []
    if args.checkpoint_keys:
        seeds = TemplateState(work)
        for writer in ("inline", "fork"):  # the loop's stop before and after forked writers
            ckpt_runs.append(
                checkpoint_process_phase(
                    args.checkpoint_keys, args.partitions, servers, work, seeds, writer
                )
            )
        ckpt = checkpoint_phase(args.checkpoint_keys, args.partitions, servers.redis_url, seeds)
    units = unit_costs() if args.units else None
    prof_lines: list[str] = []
    if args.profile:
        prof_run = run_processors(
            1,
            topic,
            args.partitions,
            events,
            servers,
            args.monitors,
            work,
            "profile",
            profile=args.profile,
        )
        prof_lines = [
            f"{prof_run.rate:,.0f} events/s under the profiler ({args.profile})",
            *top_functions(prof_run, args.profile),
        ]

    v = versions()
    bar = "=" * 100
    print(bar + "\nriskstream end-to-end benchmark: setup\n" + bar)
    rows = [
        ("machine", f"{os.cpu_count()} CPUs, {cpu_model()}"),
        (
            "load average at start",
            load_begin + "  (the machine is shared; CPU µs/event is the figure to compare)",
        ),
        ("python", f"{sys.version.split()[0]} ({sys.executable})"),
        ("libraries", ", ".join(f"{k} {x}" for k, x in v.items())),
        ("src", git_state()),
        (
            "kafka broker",
            f"{servers.bootstrap}, single-node KRaft on this machine; {servers.broker_note}",
        ),
        ("redis", f"{redis_version(servers.redis_url)} at {servers.redis_url}, on this machine"),
        (
            "topic",
            f"{topic}: {args.partitions} partitions, {args.keys:,} keys x {args.per_key:,} "
            f"events = {args.keys * args.per_key:,} (interleaved; 1 ms apart in data time)",
        ),
        ("produced", f"{produced['events']:,} in {produced['seconds']:.1f} s by a child process"),
        ("monitors", monitor_text(args.monitors)),
        (
            "processor",
            "`python -m riskstream run processor --config F --bootstrap B --redis-url R "
            "--metrics-port P`, one OS process each; config = the shipped default's processor "
            "section (batch_size 1000, checkpoint every 1000 ms or 50,000 events, "
            "checkpoint_budget 0.25, dedup_window 100,000) with its own group_id and topics",
        ),
        (
            "timing",
            "from the first Popen until the group's committed offsets (read from Kafka every "
            "50 ms) equal the topic's end; CPU = utime+stime of each processor, plus "
            "cutime+cstime (its forked checkpoint writers), from /proc/<pid>/stat then",
        ),
        ("in-process figure", IN_PROCESS_FIGURE),
    ]
    for k, x in rows:
        print(f"  {k:<24} {x}")
    print(bar + "\nresults\n" + bar)
    for r in results:
        print("\n".join(describe(r)))
        if "all" in r.extra:
            print("  all runs                     " + "; ".join(r.extra["all"]))
        print()
    if args.baseline:
        base, now = results[0], results[1]
        print(
            f"BEFORE / AFTER (same topic, same run): {base.rate:,.0f} -> {now.rate:,.0f} events/s "
            f"({now.rate / base.rate:.2f}x), {base.cpu_us:.1f} -> {now.cpu_us:.1f} CPU µs/event"
        )
        print(
            "  pairs (baseline -> current, one after the other; the baseline goes first in "
            "the 1st, 3rd, ... pair, second in the others): " + "; ".join(base.extra["pairs"])
        )
        print()
    scaling = [r for r in results if "baseline" not in r.extra]
    if len(scaling) > 1:
        one = scaling[0]
        print(
            "SCALING (one group, each N a fresh group on the same topic; machine has "
            f"{os.cpu_count()} cores, so N > {os.cpu_count()} processes share them)"
        )
        for r in scaling:
            print(
                f"  {r.processes} processor(s)  {r.rate:>9,.0f} events/s   "
                f"{r.rate / one.rate:4.2f}x of 1   "
                f"{r.cpu_us:5.1f} CPU µs/event   load {r.load_end}"
            )
        print()
    if live_run is not None:
        live = live_run.extra["live"]
        print(
            "\n".join(describe(live_run)).replace(
                "events                       ", "events (backlog + live)      ", 1
            )
        )
        print(
            f"  live traffic                 {args.live_rate:,.0f} events/s asked for "
            f"{args.live_seconds:.0f} s (sent, achieved/s: {live.get('sent')}); caught up "
            f"{live.get('caught_up_at_live_s', 0):.1f} s after the live producer started"
        )
        print()
    if peer_run is not None:
        print("\n".join(describe(peer_run)))
        first = next(r for r in results if "baseline" not in r.extra)
        print(
            f"  riskstream / {args.peer}          {first.rate / peer_run.rate:.1f}x events/s, "
            f"{peer_run.cpu_us / first.cpu_us:.1f}x less CPU per event (same topic, same run)"
        )
        print()
    if ckpt is not None:
        total = ckpt["encode_s"] + ckpt["save_s"]
        print(
            f"CHECKPOINT AT STEADY STATE ({ckpt['keys']:,} sensors x 2 monitors, every stream "
            f"changed, {args.partitions} partitions)"
        )
        print(
            "  in `riskstream run processor` (one event per sensor per round, a checkpoint "
            "per round; median of rounds 2-6; goal: the loop stops <= 100 ms)"
        )
        for run in ckpt_runs:
            m = run["median"]
            print(
                f"  writer {run['writer']:<7} loop stopped {m['stop_s'] * 1000:6.1f} ms"
                + (
                    f" + {m['report_s'] * 1000:.1f} ms taking in the writer's report"
                    if run["writer"] == "fork"
                    else ""
                )
                + "; "
                f"saved (landed) after {m['landed_s'] * 1000:4.0f} ms; CPU per round: "
                f"process {m['cpu_s'] * 1000:4.0f} ms + forked writers "
                f"{m['writer_cpu_s'] * 1000:4.0f} ms  (state loaded in {run['load_s']:.1f} s)"
            )
        for run in ckpt_runs:
            print(
                f"    {run['writer']:<6} rounds (stop ms, landed ms, report ms): "
                + ", ".join(
                    f"({r['stop_s'] * 1000:.0f}, {r['landed_s'] * 1000:.0f}, "
                    f"{r['report_s'] * 1000:.1f})"
                    for r in run["rounds"]
                )
            )
        print("  in this process, the checkpoint's parts (what the writer does):")
        print(
            f"  streams saved                {ckpt['streams']:,} (and {ckpt['colds']:,} cold "
            "parts: time index, settings, ADWIN's older rows; saved when they move)"
        )
        print(
            f"  time                         {total * 1000:.0f} ms = encode (take_changed) "
            f"{ckpt['encode_s'] * 1000:.0f} ms + RedisStateStore.save "
            f"{ckpt['save_s'] * 1000:.0f} ms"
        )
        print(
            f"  bytes to Redis               {mb(ckpt['bytes'])} "
            f"({ckpt['bytes'] / max(ckpt['streams'], 1):,.0f} B/stream)  (goal <= 10 MB)"
        )
        print(
            f"  this process's CPU           encode {ckpt['cpu'][0] * 1000:.0f} ms + save "
            f"{ckpt['cpu'][1] * 1000:.0f} ms (time.process_time, the median round by CPU)"
        )
        print(f"  Redis memory of the state    {mb(ckpt['redis_memory'])} (MEMORY USAGE)")
        print(
            f"  Redis server CPU per save    {ckpt['redis_cpu_per_round'] * 1000:.0f} ms "
            "(INFO used_cpu_user+sys, the mean of the rounds)"
        )
        print(f"  one sensor's snapshots       {ckpt['example']}")
        print(
            "  rounds (enc s, save s, B, streams, cold parts)  "
            + str([(round(a, 3), round(b, 3), c, d, e) for a, b, c, d, e in ckpt["rounds"]])
        )
        print()
    if units is not None:
        print(
            "UNIT COSTS BY MONITOR KIND (in-process core, 200 sensors past warm-up, process CPU;"
            " each kind alone, then the default's sensor monitors together)"
        )
        for u in units:
            print(
                f"  {u['monitor']:<22} {u['kind']:<13} {u['us_per_event']:6.2f} µs/event   "
                f"snapshot {u['bytes_per_stream']:6,.0f} B/stream, encoded in "
                f"{u['encode_us_per_stream']:5.1f} µs"
                + (f" ({u['cold_per_stream']:,.0f} B of it cold)" if u["cold_per_stream"] else "")
                + (f"; {u['bytes_per_key']:,.0f} B/sensor" if u["kind"] == "together" else "")
            )
        print()
    if prof_lines:
        print("PROFILE (1 processor, own time by function)")
        for line in prof_lines:
            print("  " + line)
        print()
    print(f"load average at end: {loadavg()}")
    print(f"total benchmark time: {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
