"""Incident-storm benchmark: 2,000 incidents through the real containment worker.

Not a test: it prints its setup and figures and asserts nothing.  One run::

    .venv/bin/python bench/incident_storm.py [--incidents 2000]

It starts Kafka and Redis with ``deploy/local/services.py`` (unless
RISKSTREAM_KAFKA_BOOTSTRAP / RISKSTREAM_REDIS_URL point at running servers), then
``riskstream run containment`` (the faust worker) as a child process, with one
playbook (human review for a model with a safety incident) and the default limits
(10 models per hour automatically, the rest wait for a person).  One warm-up
incident (no playbook matches it) proves the worker consumes; then N safety
incidents of one monitor, each for its own model, are produced at once, and the
clock runs until the worker's consumer group has committed past the last of
them.  That is the storm of issue 12: after the tenth model every incident's
action waits for approval, so pending actions pile up (or, with storm control,
join one grouped action).

Reported: the wall time from the first produce to the last commit (faust commits
every 2.8 s at most, so up to that much is commit delay, not work), the rate, the
worker's CPU seconds, how many actions wait for a person afterwards, and the size
of the first page ``GET /api/v1/actions`` would answer (via the operator service,
as the API builds it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from harness import cpu_model, cpu_seconds_of, git_state, progress, redis_version, start_servers
from riskstream.progress import Progress
from support import ContainmentProcess, create_topics, incident, make_setup

# Human review for every model with a safety incident: after the tenth model in an hour
# (the default limit), each waits for a person.
STORM_YAML = """
playbooks:
  - name: storm
    match: {type: safety}
    actions:
      - {kind: human-review, revert_on_resolve: true}
"""


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset; 0 while the group coordinator is moving (a new
    group's first seconds answer NOT_COORDINATOR, which ended a run once)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return max(tp.offset, 0)
    except KafkaException as exc:
        if exc.args[0].retriable() or exc.args[0].code() == KafkaError.NOT_COORDINATOR:
            return 0
        raise
    finally:
        consumer.close()


def actions_page_bytes(config_path: str, redis_url: str, namespace: str) -> tuple[int, int]:
    """(pending actions, bytes of the first page of GET /actions as the API renders it)."""
    from riskstream.api import routes
    from riskstream.api.views import action_view
    from riskstream.bootstrap import redis_operations
    from riskstream.config import load_config

    ops = redis_operations(load_config(config_path), redis_url, namespace)
    actions = ops.actions("pending")
    # Before issue 12 the route answered every action; since, a page of DEFAULT_LIMIT.
    page = actions[: getattr(routes, "DEFAULT_LIMIT", len(actions))]
    body = orjson.dumps({"actions": [action_view(a) for a in page]})
    return len(actions), len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument(
        "--models",
        type=int,
        help="spread the incidents over this many models (default: one model each); "
        "--models 1 is a flood on one subject, which correlation joins into one group",
    )
    parser.add_argument(
        "--storm-incidents",
        type=int,
        help="limits.storm_incidents (default: the config's default; 0 turns storm control off)",
    )
    args = parser.parse_args()

    progress("starting Kafka and Redis (unless the environment names running ones) ...")
    servers = start_servers(server_jvm=False)
    work, bootstrap, redis_url = servers.workdir, servers.bootstrap, servers.redis_url
    worker = None
    try:
        name = f"storm{os.getpid()}"
        extra = STORM_YAML
        if args.storm_incidents is not None:
            extra += f"limits: {{storm_incidents: {args.storm_incidents}}}\n"
        setup = make_setup(work, name, extra_yaml=extra)
        create_topics(bootstrap, setup.topics.values(), partitions=1)
        worker = ContainmentProcess(setup, bootstrap, redis_url, work / "worker.log", name)
        group, topic = f"{setup.group}-containment", setup.topics["incidents"]
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

        progress("waiting for the worker to consume (one warm-up incident) ...")
        warm = incident("warm-up", "nobody", type="quality")
        producer.produce(topic, orjson.dumps(warm), b"nobody")
        producer.flush(30)
        deadline = time.monotonic() + 180
        while committed(bootstrap, group, topic) < 1:
            if time.monotonic() > deadline or worker.process.poll() is not None:
                raise SystemExit(f"the worker did not start; see {work}/worker.log")
            time.sleep(0.5)
        redis_v = redis_version(redis_url)
        cpu0 = cpu_seconds_of(worker.process.pid) or 0.0

        progress(f"producing {args.incidents} incidents of one monitor ...")
        t0 = time.perf_counter()
        models = args.models or args.incidents
        for i in range(args.incidents):
            model = f"storm-{i % models:05d}"
            producer.produce(topic, orjson.dumps(incident(f"storm-{i:05d}", model)), model.encode())
            producer.poll(0)
        producer.flush(60)
        produced = time.perf_counter() - t0
        done_at = None
        quarters: list[float] = []  # when each quarter of the incidents was committed
        bar = Progress("  committed", args.incidents, unit="incidents")
        while done_at is None:
            n = committed(bootstrap, group, topic) - 1
            bar.update(max(n, 0))
            while len(quarters) < 4 and n >= args.incidents * (len(quarters) + 1) / 4:
                quarters.append(time.perf_counter())
            if n >= args.incidents:
                done_at = time.perf_counter()
            elif worker.process.poll() is not None:
                bar.close()
                raise SystemExit(f"the worker exited; see {work}/worker.log")
            else:
                time.sleep(0.5)
        bar.close(args.incidents)
        cpu = (cpu_seconds_of(worker.process.pid) or 0.0) - cpu0
        del producer
        pending, page = actions_page_bytes(str(setup.config_path), redis_url, name)
    finally:
        if worker is not None:
            worker.stop()
        servers.stop(keep_workdir=True)  # the worker's log stays for a look

    elapsed = done_at - t0
    print("setup")
    print(f"  machine        {os.cpu_count()} cores, {cpu_model()}")
    print(f"  commit         {git_state()}")
    print(f"  servers        Kafka at {bootstrap}, Redis {redis_v} at {redis_url.split('@')[-1]}")
    print("  worker         riskstream run containment (faust-streaming), one process")
    spread = "one model each" if not args.models else f"over {args.models} model(s)"
    print(f"  incidents      {args.incidents} safety incidents, one monitor, {spread},")
    print(f"                 produced at once ({produced:.2f} s); default limits (10 models/h)")
    storms = "default" if args.storm_incidents is None else args.storm_incidents
    print(f"  storm control  limits.storm_incidents: {storms}")
    print("results")
    print(f"  time           {elapsed:.1f} s first produce -> last offset committed")
    print(f"  rate           {args.incidents / elapsed:.1f} incidents/s")
    quarter = args.incidents / 4
    rates = [quarter / max(b - a, 1e-9) for a, b in zip([t0, *quarters], quarters, strict=False)]
    print(
        "  by quarter     "
        + ", ".join(f"{r:.1f}" for r in rates)
        + " incidents/s (a falling rate is a cost that grows with the incidents seen)"
    )
    print(f"  worker CPU     {cpu:.1f} s ({cpu / args.incidents * 1000:.2f} ms per incident)")
    print(f"  pending after  {pending} actions waiting for a person (a grouped one counts once)")
    print(f"  GET /actions   {page:,} bytes (what the route answers without paging parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
