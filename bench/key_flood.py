"""The new-keys flood: N one-reading sensor ids through the processor with its defaults.

Not a test: it prints its setup and its figures, and asserts nothing.  One run::

    .venv/bin/python bench/key_flood.py [--keys 200000] [--src DIR]

An attacker (or a buggy gateway) that invents a new sensor id per reading makes a
stream per id in every sensor monitor.  This measures what that costs, with the
shipped default config (only its topic names and consumer group made unique):

1. services  Kafka and Redis from ``deploy/local/services.py``, unless
             RISKSTREAM_KAFKA_BOOTSTRAP / RISKSTREAM_REDIS_URL name running servers.
             Redis logs every command slower than 1 ms (``slowlog-log-slower-than
             1000``, ``slowlog-max-len 100000``), reset before the run.
2. produce   ``--keys`` sensor events on one partition of the sensor topic, each from a
             new sensor id, event times 1 ms apart starting now.
3. flood     ``riskstream run processor`` as a child process (``--src`` picks the source
             tree it imports, e.g. an export of an older commit); its RSS is sampled
             every 0.2 s until the saved offset reaches the topic's end.  Reported: peak
             and final RSS, Redis ``used_memory`` before and after, the longest Redis
             command in SLOWLOG and which it was, and the stream count it logs.
4. restart   SIGTERM, then a new processor on the same group: the time from its start
             to its log line ``assigned <sensor topic>[0]`` (the partition's state read
             and restored).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

import harness
from riskstream.core.timeutil import format_time
from riskstream.progress import Progress

DEFAULT_CONFIG = harness.ROOT / "src" / "riskstream" / "default-config.yaml"
TOPIC_NAMES = (
    "inference-events", "sensor-events", "label-events", "change-events", "incidents",
    "routing-changes", "dead-letter",
)  # fmt: skip


def flood_config(run: str, path: Path) -> tuple[Path, str, str]:
    """The shipped default with per-run topic names and group; (file, sensor topic, group)."""
    text = DEFAULT_CONFIG.read_text()
    for name in TOPIC_NAMES:
        text = text.replace(f": {name}", f": {run}-{name}")
    group = f"{run}-processor"
    text = text.replace("group_id: riskstream-processor", f"group_id: {group}")
    path.write_text(text)
    return path, f"{run}-sensor-events", group


def flood_events(keys: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    start = time.time()
    out = []
    for i in range(keys):
        sensor = f"flood-{i:07d}"
        event = {
            "event_id": f"{sensor}/0", "time": format_time(start + i / 1000.0),
            "line_id": "line-1", "asset_id": "asset-1", "sensor_id": sensor,
            "value": round(rng.gauss(20.0, 1.0), 4), "unit": "degC", "quality": "good",
        }  # fmt: skip
        out.append((sensor.encode(), orjson.dumps(event)))
    return out


class Child:
    """``riskstream run processor`` importing ``src``, its output in a log file."""

    def __init__(self, src: Path, config: Path, bootstrap: str, redis_url: str, log: Path):
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.log_path = log
        self._log = log.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "riskstream", "run", "processor", "--config", str(config),
             "--bootstrap", bootstrap, "--redis-url", redis_url, "--metrics-port", "0"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def rss(self) -> int:
        return harness.proc_status("VmRSS", str(self.process.pid))

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(300)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


def saved_offset(client: redis.Redis, group: str, topic: str) -> int:
    """The saved offset; -1 while none, or while Redis is BUSY running a long script."""
    try:
        raw = client.hget(f"rs:{{{group}|{topic}|0}}:meta", "offset")
    except redis.ResponseError as exc:
        if str(exc).startswith("BUSY"):
            harness.progress("redis answers BUSY: a script has run for over 5 s")
            return -1
        raise
    except redis.TimeoutError:
        harness.progress("redis did not answer within 60 s")
        return -1
    return -1 if raw is None else int(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument(
        "--src", type=Path, default=harness.ROOT / "src", help="source tree the processor imports"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after (s)")
    args = parser.parse_args()
    servers = harness.start_servers(server_jvm=False)
    work = Path(tempfile.mkdtemp(prefix="riskstream-flood-"))
    client = redis.Redis.from_url(servers.redis_url, socket_timeout=60)
    children: list[Child] = []
    try:
        run = f"flood{os.getpid()}"
        config, topic, group = flood_config(run, work / "config.yaml")
        harness.create_topics(servers.bootstrap, {topic: 1})
        records = flood_events(args.keys)
        harness.progress(f"producing {len(records):,} events, one per new sensor id...")
        harness.support.produce(servers.bootstrap, topic, records)
        end = harness.end_offsets(servers.bootstrap, topic, 1)[(topic, 0)]
        client.config_set("slowlog-log-slower-than", 1000)
        client.config_set("slowlog-max-len", 100_000)
        client.slowlog_reset()
        used_before = int(client.info("memory")["used_memory"])

        harness.progress("flood: the processor consumes them...")
        first = Child(args.src, config, servers.bootstrap, servers.redis_url, work / "first.log")
        children.append(first)
        peak = 0
        unfinished = ""
        bar = Progress("flood: saved", end, unit="events")
        while (saved := saved_offset(client, group, topic)) < end:
            if first.process.poll() is not None:
                bar.close()
                raise SystemExit(f"the processor exited:\n{first.text()[-3000:]}")
            if time.monotonic() - first.started > args.timeout:
                done = saved_offset(client, group, topic)
                bar.print(f"not done after {args.timeout:.0f}s: saved offset {done}")
                unfinished = f"; NOT DONE: saved offset {done:,} of {end:,} after --timeout"
                break
            peak = max(peak, first.rss())
            bar.update(max(saved, 0), f"processor RSS {harness.mb(peak)} peak")
            time.sleep(0.2)
        bar.close(max(saved_offset(client, group, topic), 0))
        took = time.monotonic() - first.started
        final_rss = first.rss()
        peak = max(peak, final_rss, harness.proc_status("VmHWM", str(first.process.pid)))
        used_after = int(client.info("memory")["used_memory"])
        slow = client.slowlog_get(100_000)
        code = first.stop()
        text = first.text()
        lost = text.count("lost 1 partitions") + text.count("lost 2 partitions")
        maxpoll = text.count("maximum poll interval")

        harness.progress("restart: a new processor on the same group...")
        second = Child(args.src, config, servers.bootstrap, servers.redis_url, work / "second.log")
        children.append(second)
        while f"assigned {topic}[0]" not in second.text():
            if second.process.poll() is not None:
                raise SystemExit(f"the restarted processor exited:\n{second.text()[-3000:]}")
            time.sleep(0.05)
        restart_s = time.monotonic() - second.started
        restored = re.findall(r"with (\d+) streams", second.text())
        second.stop()

        longest = max(slow, key=lambda e: e["duration"], default=None)
        print(
            f"setup: {args.keys:,} sensor events, one new sensor id each, 1 partition; "
            f"the shipped default config (5 sensor monitors); processor from {args.src}"
        )
        versions = f"redis {harness.redis_version(servers.redis_url)}"
        versions += f", python {sys.version.split()[0]}, {harness.cpu_model()}"
        print(f"       commit {harness.git_state()}, {versions}")
        print(
            f"consumed and saved in        {took:8.1f} s (exit code {code}; max.poll.interval "
            f"exceeded {maxpoll}x, partition lost {lost}x{unfinished})"
        )
        print(f"processor RSS peak / final   {harness.mb(peak)} / {harness.mb(final_rss)}")
        print(
            f"redis used_memory            {harness.mb(used_before)} -> {harness.mb(used_after)} "
            f"(+{harness.mb(used_after - used_before)})"
        )
        if longest is None:
            print("longest redis command        < 1 ms (nothing in SLOWLOG)")
        else:
            command = b" ".join(longest["command"].split()[:2]).decode(errors="replace")[:60]
            print(
                f"longest redis command        {longest['duration'] / 1000:8.1f} ms ({command}); "
                f"{len(slow)} commands over 1 ms"
            )
        print(
            f"restart to partition assigned {restart_s:7.1f} s "
            f"(restored {restored[-1] if restored else '?'} state keys)"
        )
    finally:
        for child in children:
            child.stop()
        client.close()
        servers.stop()
    return 0


if __name__ == "__main__":
    with harness.sigterm_as_interrupt():
        sys.exit(main())
