"""Containment benchmark: incident produced -> decision visible to a router client.

Not a test: it prints its setup and figures and asserts nothing.  One run::

    .venv/bin/python bench/containment_latency.py [--incidents 200] [--interval 0.05]

It starts Kafka and Redis with ``deploy/local/services.py`` (unless
RISKSTREAM_KAFKA_BOOTSTRAP / RISKSTREAM_REDIS_URL point at running servers), then
``riskstream run containment`` (the faust worker) as a child process, and a
:class:`riskstream.router.Router` in this process.  For each of N models it
produces two deploy events (so a last known-good version exists), waits until the
worker recorded them, then produces one incident and measures the wall time from
just before ``produce()`` to the moment ``Router.route()`` returns the new revision
(polled every 0.2 ms).  Incidents go one at a time, ``--interval`` apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import orjson
from confluent_kafka import Producer

from harness import progress, start_servers
from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.router import Router
from support import CONTAINMENT_YAML, START, create_topics, deploy, incident, make_setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between incidents")
    args = parser.parse_args()

    progress("starting Kafka and Redis (unless the environment names running ones) ...")
    servers = start_servers(server_jvm=False)
    work, bootstrap, redis_url = servers.workdir, servers.bootstrap, servers.redis_url
    worker = None
    try:
        # Lift the automatic-action limit: every incident here is for a different model.
        extra = CONTAINMENT_YAML + "limits: {max_models: 1000000}\n"
        setup = make_setup(work, f"bench{os.getpid()}", extra_yaml=extra)
        create_topics(bootstrap, setup.topics.values(), partitions=1)
        namespace = f"bench{os.getpid()}"
        log = (work / "worker.log").open("ab")
        worker = subprocess.Popen(
            [sys.executable, "-m", "riskstream", "run", "containment",
             "--config", str(setup.config_path), "--bootstrap", bootstrap,
             "--redis-url", redis_url, "--metrics-port", "0", "--namespace", namespace,
             "--app-id", f"{setup.group}-containment"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
        router = Router(redis_url, namespace=namespace)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        models = [f"chatbot-{i:04d}" for i in range(args.incidents)]

        progress(f"deploying {len(models)} models (two versions each) ...")
        for m in models:
            for n, version in enumerate(("v1", "v2")):
                event = deploy(f"{m}-{version}", m, version, START + n)
                producer.produce(setup.topics["change"], orjson.dumps(event), m.encode())
        producer.flush(30)
        deadline = time.monotonic() + 120
        while len(flags.all()) < len(models) or any(f.revision < 2 for f in flags.all().values()):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the worker did not record the deploys; see {work}/worker.log")
            time.sleep(0.2)

        progress(f"measuring {len(models)} incidents ...")
        latencies = []
        for m in models:
            value = orjson.dumps(incident(f"inc-{m}", m))
            t0 = time.perf_counter()
            producer.produce(setup.topics["incidents"], value, m.encode())
            producer.poll(0)
            while router.route(m).revision < 3:
                time.sleep(0.0002)
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"{m}: no decision within 30 s; see {work}/worker.log")
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(args.interval)
        router.close()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        servers.stop(keep_workdir=True)  # the worker's log stays for a look

    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print("setup")
    print(f"  machine        {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print(f"  python         {platform.python_version()}")
    print(f"  servers        Kafka at {bootstrap}, Redis at {redis_url.split('@')[-1]}")
    print("  worker         riskstream run containment (faust-streaming), one process")
    print(f"  incidents      {len(latencies)}, one at a time, {args.interval * 1000:.0f} ms apart")
    print("  measured       produce() of the incident -> Router.route() shows the new revision")
    print("results (ms)")
    print(f"  p50 {q[49]:.1f}   p90 {q[89]:.1f}   p99 {q[98]:.1f}   max {latencies[-1]:.1f}")
    print(f"  goal p99 < 100 ms: {'met' if q[98] < 100 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
