"""Containment benchmark: incident produced -> first step visible to a router client.

Not a test: it prints its setup and figures and asserts nothing.  One run::

    .venv/bin/python bench/containment_latency.py [--incidents 200] [--interval 0.05]
        [--steps 10,50,100] [--bootstrap HOST:PORT --redis-url redis://...]

It starts Kafka and Redis with ``deploy/local/services.py`` (unless ``--bootstrap`` /
``--redis-url``, or RISKSTREAM_KAFKA_BOOTSTRAP / RISKSTREAM_REDIS_URL, point at running
servers), then ``riskstream run containment`` (the faust worker) as a child process,
and a :class:`riskstream.router.Router` in this process.  For each of N models it
produces two deploy events (so a last known-good version exists), waits until the
worker recorded them, then produces one incident and measures the wall time from
just before ``produce()`` to the moment ``Router.route()`` returns the new revision
(polled every 0.2 ms).  Incidents go one at a time, ``--interval`` apart.

The playbook rolls back to the last known-good version with the fallback as second
candidate, so each measurement includes the target check (incident store and audit
trail reads), and, with ``--steps``, writes the first step of a progressive shift
(the dwell is an hour: later steps are not part of this figure).  ``--steps 100``
measures the old, all-at-once action (still with the check).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer

from harness import progress, start_servers
from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.router import Router
from support import START, create_topics, deploy, incident, make_setup

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def playbook(steps: list[int]) -> str:
    shift = f"steps: {steps}, dwell: 3600, " if len(steps) > 1 else ""
    return (
        "playbooks:\n  - name: safety\n    match: {type: safety}\n    actions:\n"
        "      - {kind: route-to-version, version: last-known-good, targets: [fallback], "
        f"{shift}revert_on_resolve: true}}\n"
        # Lift the automatic-action limit (every incident here is for a different model)
        # and storm grouping (they all come from one monitor, a storm by design).
        "limits: {max_models: 1000000, storm_incidents: 0}\n"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between incidents")
    parser.add_argument("--steps", default="10,50,100", help="percent steps (100: at once)")
    parser.add_argument("--bootstrap", help="a running Kafka (else one is started)")
    parser.add_argument("--redis-url", help="a running Redis (else one is started)")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    if args.bootstrap:
        os.environ["RISKSTREAM_KAFKA_BOOTSTRAP"] = args.bootstrap
    if args.redis_url:
        os.environ["RISKSTREAM_REDIS_URL"] = args.redis_url

    progress("starting Kafka and Redis (unless the environment names running ones) ...")
    servers = start_servers(server_jvm=False)
    work, bootstrap, redis_url = servers.workdir, servers.bootstrap, servers.redis_url
    worker = None
    try:
        extra = "models: {}\n" + playbook(steps)
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
        first = steps[0] / 100
        load_before = os.getloadavg()
        worker_cpu0, own0 = cpu_seconds(worker.pid), resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
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
            decision = router.route(m)
            if abs(decision.traffic_fraction - first) > 1e-9 or decision.version != "v1":
                raise SystemExit(f"{m}: expected v1 at {first:.0%}, got {decision}")
            time.sleep(args.interval)
        wall = time.perf_counter() - wall0
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu0
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        own_cpu = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
        load_after = os.getloadavg()
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
    print(f"  playbook       last-known-good, then fallback (target check); steps {steps} %")
    print(f"  incidents      {len(latencies)}, one at a time, {args.interval * 1000:.0f} ms apart")
    print(
        "  measured       produce() of the incident -> Router.route() shows the first step "
        f"({steps[0]} % on the checked target)"
    )
    print(
        f"  load average   {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before, "
        f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after (1/5/15 min)"
    )
    print("results (ms)")
    print(f"  p50 {q[49]:.1f}   p90 {q[89]:.1f}   p99 {q[98]:.1f}   max {latencies[-1]:.1f}")
    print(f"  goal p99 < 100 ms: {'met' if q[98] < 100 else 'NOT met'}")
    n = len(latencies)
    print("cpu (user + system) during the measurement")
    print(
        f"  worker         {worker_cpu:.2f} s = {worker_cpu / n * 1000:.1f} ms per incident "
        "(incl. its 1 s timer and the Kafka client threads)"
    )
    print(f"  this process   {own_cpu:.2f} s (router, producer, polling) over {wall:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
