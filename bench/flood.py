"""A flood of change events or labels through `riskstream run processor`: events per second.

Not a test: it prints its figures and asserts nothing.  One run::

    .venv/bin/python bench/flood.py [--kind change|label] [--events 20000] [--partitions 1]
        [--baseline REF] --bootstrap HOST:PORT --redis-url redis://...

``--kind change``: ``--events`` valid change events (one subject per 50, data time now)
in a new change topic.  ``--kind label``: ``--events`` inference events in a new
inference topic, then as many labels of those predictions in a new label topic (a
reviewing team's backlog), with one label monitor (page-hinkley on ``missed`` per
model), so that the processor stores the predictions and joins each label.  Then one
processor starts in a new consumer group (its change log and predictions new Redis
keys) and is timed from Popen until the group's committed offsets (Kafka's, committed
after each checkpoint) reach the end of the flooded topics; also from its first
committed offset, which leaves out the process's start.  ``--baseline REF`` runs REF's
``src`` (git archive, as bench/instructions.py does) the same way first.  The processor
settings are the product's defaults (batch 1000).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import yaml

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


def label_events(n: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Predictions of 20 models, and a label for each (one in 10 a miss)."""
    now = time.time()
    predictions, labels = [], []
    for i in range(n):
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3600 + i * 1e-3))
        model = f"model-{i % 20:02d}"
        predicted = "positive" if i % 2 else "negative"
        truth = predicted if i % 10 else ("negative" if i % 2 else "positive")
        prediction = {"event_id": f"inf-{i}", "time": f"{at}Z", "model_id": model,
                      "prediction_id": f"pred-{i}", "prediction": {"label": predicted}}  # fmt: skip
        label = {"event_id": f"lbl-{i}", "time": f"{at}Z", "model_id": model,
                 "prediction_id": f"pred-{i}", "label": truth}  # fmt: skip
        predictions.append((model.encode(), orjson.dumps(prediction)))
        labels.append((model.encode(), orjson.dumps(label)))
    return predictions, labels


LABEL_MONITOR = {
    "name": "missed", "reads": "label", "key": ["model_id"], "subject": "model_id",
    "value": "missed", "detector": {"kind": "page-hinkley", "threshold": 50},
}  # fmt: skip


def labels_joined(port: int) -> float:
    """riskstream_labels_total{outcome="joined"} of the processor's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "riskstream_labels_total" and s.labels.get("outcome") == "joined"
    )


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
    names = [topic, *(f"{topic}-{k}" for k in ("change", "inference", "label", "incidents"))]
    names += [f"{topic}-routing", f"{topic}-dead"]
    create_topics(args.bootstrap, {t: args.partitions for t in names})
    if args.kind == "change":
        flooded = [f"{topic}-change"]
        produce(args.bootstrap, flooded[0], change_events(args.events))
    else:
        doc = yaml.safe_load(config.read_text())
        doc["monitors"].append(LABEL_MONITOR)
        doc["labels"] = {"ttl_days": 1, "positive": ["positive"]}
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        flooded = [f"{topic}-inference", f"{topic}-label"]
        for name, items in zip(flooded, label_events(args.events), strict=True):
            produce(args.bootstrap, name, items)
    total_events = args.events * len(flooded)
    watched = [Committed(args.bootstrap, group, name, args.partitions) for name in flooded]
    env = {**os.environ, "PYTHONPATH": str(src)}
    port = free_port()
    cmd = [sys.executable, "-m", "riskstream", "run", "processor", "--config", str(config),
           "--bootstrap", args.bootstrap, "--redis-url", args.redis_url,
           "--metrics-port", str(port)]  # fmt: skip
    log = (work / f"{group}.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    first: float | None = None
    first_done = 0
    try:
        while True:
            done = sum(c.total() for c in watched)
            now = time.perf_counter()
            if first is None and done > 0:
                first, first_done = now, done
            if done >= total_events:
                break
            if proc.poll() is not None or now - started > 600:
                raise RuntimeError(f"{label}: committed {done} of {total_events}; see {log.name}")
            time.sleep(0.02)
        if args.kind == "label":  # each label joined, else the figure means nothing
            joined = labels_joined(port)
            progress(f"{label}: {joined:,.0f} of {args.events:,} labels joined")
            if joined != args.events:
                raise RuntimeError(f"{label}: {joined:,.0f} of {args.events:,} labels joined")
    finally:
        proc.terminate()
        proc.wait(30)
        for c in watched:
            c.close()
        delete_topics(args.bootstrap, names)
        delete_keys(args.redis_url, f"*{group}*")
    total = now - started
    # (None: the first commit came with the last event, leaving nothing to time after it)
    after_first = None
    if first is not None and done > first_done:
        after_first = (total_events - first_done) / (now - first)
    progress(f"{label}: {total_events:,} {args.kind} flood events in {total:.2f} s from start "
             f"({total_events / total:,.0f}/s)")  # fmt: skip
    return total_events / total, after_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("change", "label"), default="change")
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
                what = "change events" if args.kind == "change" else "predictions + labels"
                print(f"{label}: {args.events:,} {what}: {start:,.0f} events/s from start; "
                      f"after the first commit: {after}")  # fmt: skip


if __name__ == "__main__":
    main()
