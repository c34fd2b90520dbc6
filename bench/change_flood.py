"""A flood of change events through `riskstream run processor`: change events per second.

Not a test: it prints its figures and asserts nothing.  One run::

    .venv/bin/python bench/change_flood.py [--events 20000] [--partitions 1]
        [--baseline REF] --bootstrap HOST:PORT --redis-url redis://...

Produces ``--events`` valid change events (one subject per 50, data time now) into a
new change topic, then starts one processor in a new consumer group (its change log a
new Redis key) and times it from Popen until the group's committed offsets (Kafka's,
committed after each checkpoint) reach the topic's end; also from its first committed
offset, which leaves out the process's start.  ``--baseline REF`` runs REF's ``src``
(git archive, as bench/instructions.py does) the same way first.  The processor
settings are the product's defaults (batch 1000).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from end_to_end import Committed, free_port, write_config
from harness import ROOT, baseline_src, create_topics, delete_keys, delete_topics, progress


def change_events(n: int) -> list[tuple[bytes, bytes]]:
    now = time.time()
    out = []
    for i in range(n):
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 60 + i * 1e-3))
        subject = f"model-{i // 50:04d}"
        event = {"event_id": f"chg-{i}", "time": f"{at}Z", "kind": "deploy",
                 "subject": subject, "version": f"v{i}", "actor": "ci"}  # fmt: skip
        out.append((subject.encode(), orjson.dumps(event)))
    return out


def produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def run_once(
    label: str, src: Path, args: argparse.Namespace, work: Path
) -> tuple[float, float | None]:
    topic = f"flood-{uuid.uuid4().hex[:6]}"
    group = f"flood-{label}-{uuid.uuid4().hex[:6]}"
    config = work / f"{group}.yaml"
    write_config(config, topic, group, "bench", src)
    change = f"{topic}-change"
    names = [topic, change, *(f"{topic}-{k}" for k in ("inference", "label", "incidents"))]
    names += [f"{topic}-routing", f"{topic}-dead"]
    create_topics(args.bootstrap, {t: args.partitions for t in names})
    produce(args.bootstrap, change, change_events(args.events))
    committed = Committed(args.bootstrap, group, change, args.partitions)
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "riskstream", "run", "processor", "--config", str(config),
           "--bootstrap", args.bootstrap, "--redis-url", args.redis_url,
           "--metrics-port", str(free_port())]  # fmt: skip
    log = (work / f"{group}.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    first: float | None = None
    first_done = 0
    try:
        while True:
            done = committed.total()
            now = time.perf_counter()
            if first is None and done > 0:
                first, first_done = now, done
            if done >= args.events:
                break
            if proc.poll() is not None or now - started > 600:
                raise RuntimeError(f"{label}: committed {done} of {args.events}; see {log.name}")
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(30)
        committed.close()
        delete_topics(args.bootstrap, names)
        delete_keys(args.redis_url, f"*{group}*")
    total = now - started
    # (None: the first commit came with the last event, leaving nothing to time after it)
    after_first = None
    if first is not None and done > first_done:
        after_first = (args.events - first_done) / (now - first)
    progress(f"{label}: {args.events:,} change events in {total:.2f} s from start "
             f"({args.events / total:,.0f}/s)")  # fmt: skip
    return args.events / total, after_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--bootstrap", default=os.environ.get("RISKSTREAM_KAFKA_BOOTSTRAP"))
    parser.add_argument("--redis-url", default=os.environ.get("RISKSTREAM_REDIS_URL"))
    args = parser.parse_args()
    if not args.bootstrap or not args.redis_url:
        parser.error("--bootstrap and --redis-url (or RISKSTREAM_KAFKA_BOOTSTRAP/_REDIS_URL)")
    runs = [("this", ROOT / "src")]
    if args.baseline:
        runs.insert(0, (args.baseline, baseline_src(args.baseline)))
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for label, src in runs:
                start, steady = run_once(label.replace("/", "-"), src, args, Path(tmp))
                after = "all in the first commit" if steady is None else f"{steady:,.0f}/s"
                print(f"{label}: {args.events:,} events: {start:,.0f} change events/s from "
                      f"start; after the first commit: {after}")  # fmt: skip


if __name__ == "__main__":
    main()
