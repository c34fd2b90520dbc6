"""``riskstream simulate``: a seeded scenario as Kafka records, with its ground truth.

    riskstream simulate chatbot --seed 7 --output chatbot.jsonl --truth chatbot-truth.json
    riskstream simulate manufacturing --bootstrap localhost:9092
    riskstream simulate medical --scale 0.2 --set failing_recall=0.5

``--output`` writes the replay format (``riskstream replay --input FILE``), topic names
from ``--config`` (default: the shipped default); ``--bootstrap`` produces the records to
Kafka in order, keyed by subject; without either, a summary goes to stdout.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import orjson

from riskstream.errors import ConfigError, RiskstreamError
from riskstream.progress import Progress

__all__ = ["register", "run"]

_SCENARIO_NAMES = ("chatbot", "manufacturing", "medical")
_TABLES = ("harmful_rates", "recall", "lineage", "options")
"""Bulky truth entries the stdout summary leaves out."""


def register(sub: Any) -> None:
    """Add ``simulate`` to the sub-commands ``sub`` of the riskstream parser."""
    p = sub.add_parser(
        "simulate",
        help="generate a seeded scenario (chatbot, manufacturing, medical) and its ground truth",
        description="Generate the records of one situation of docs/design/situations.md, "
        "deterministically from --seed, with the ground truth (failure start, failing "
        "subjects, cause).",
    )
    p.add_argument("scenario", choices=_SCENARIO_NAMES, help="which situation")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiplies traffic (default 1.0: ~20k-60k records)",
    )
    p.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a scenario option (e.g. harm_multiplier=2, drifting_sensor=line-1/temp-02); "
        "repeatable; `--set help` lists them",
    )
    p.add_argument("--output", help="write the records as replay JSON lines to this file")
    p.add_argument("--truth", help="write the ground truth as JSON to this file")
    p.add_argument("--bootstrap", help="produce the records to this Kafka cluster (HOST:PORT)")
    p.add_argument("--config", help="config (YAML) naming the topics; default: the shipped default")
    p.set_defaults(handler=run)


def _options(simulator: Any, pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` strings as keyword options, each converted to its default's type."""
    params = {
        name: p.default
        for name, p in inspect.signature(simulator).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("scale", "start")
    }
    known = ", ".join(f"{k} (default {v!r})" for k, v in params.items())
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or name not in params:
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE with NAME one of: {known}")
        default = params[name]
        try:
            out[name] = type(default)(text) if isinstance(default, int | float) else text
        except ValueError as exc:
            raise ConfigError(f"--set {name}: {text!r} is not a {type(default).__name__}") from exc
    return out


def _describe(simulator: Any) -> str:
    """One line per option: name, default and the docstring's description."""
    doc = inspect.getdoc(simulator) or ""
    notes: dict[str, str] = {}
    for block in doc.split(":param ")[1:]:
        names, _, text = block.partition(":")
        for name in names.split(","):
            notes[name.strip()] = " ".join(text.split())
    return "\n".join(
        f"  {name} (default {p.default!r}): {notes.get(name, '')}".rstrip(": ")
        for name, p in inspect.signature(simulator).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("scale", "start")
    )


def run(args: argparse.Namespace) -> int:
    from riskstream.config import load_config
    from riskstream.simulate import SCENARIOS

    simulator = SCENARIOS[args.scenario]
    if "help" in args.options:
        print(f"options of {args.scenario} (--set NAME=VALUE):")
        print(_describe(simulator))
        return 0
    config = load_config(args.config)
    options = _options(simulator, args.options)
    started = time.monotonic()
    try:
        sim = simulator(args.seed, scale=args.scale, **options)
    except ValueError as exc:
        raise ConfigError(f"simulate {args.scenario}: {exc}") from exc
    elapsed = time.monotonic() - started
    topic_of = {
        kind: getattr(config.topics, kind) for kind in ("inference", "sensor", "label", "change")
    }
    print(
        f"simulate {args.scenario}: {len(sim.records):,} records in {elapsed:.2f} s "
        f"(seed {args.seed}, scale {args.scale:g})",
        file=sys.stderr,
    )
    if args.truth:
        _write(args.truth, json.dumps(sim.truth, indent=2).encode() + b"\n")
    records = _keyed(sim.records, config.processor.keyed_by)
    if args.output:
        _write_records(args.output, records, topic_of)
    if args.bootstrap:
        _produce(args.bootstrap, records, topic_of)
    if not args.output and not args.bootstrap:
        _summary(sim.records, sim.truth, topic_of, sys.stdout)
        print(
            "simulate: nothing produced or written (a summary only): give --bootstrap "
            "HOST:PORT to produce to Kafka, or --output FILE for the records",
            file=sys.stderr,
        )
    return 0


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise RiskstreamError(f"{path}: {exc.strerror}") from exc


def _keyed(
    records: list[tuple[str, str, dict[str, Any]]], keyed_by: dict[str, str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """The records keyed as the config's processor checks (``processor.keyed_by``): the
    simulators key by subject, a plant may key sensor events by line."""
    return [
        (kind, str(event.get(keyed_by[kind], key)) if kind in keyed_by else key, event)
        for kind, key, event in records
    ]


def _write_records(
    path: str, records: list[tuple[str, str, dict[str, Any]]], topic_of: dict[str, str]
) -> None:
    try:
        with Path(path).open("wb") as out:
            for kind, key, event in records:
                out.write(orjson.dumps({"topic": topic_of[kind], "key": key, "value": event}))
                out.write(b"\n")
    except OSError as exc:
        raise RiskstreamError(f"--output {path}: {exc.strerror}") from exc
    print(f"simulate: wrote {len(records):,} records to {path}", file=sys.stderr)


def _produce(
    bootstrap: str, records: list[tuple[str, str, dict[str, Any]]], topic_of: dict[str, str]
) -> None:
    """Produce in order, keyed, with the idempotent producer; flush raises on any failure."""
    from riskstream.adapters.kafka.bus import KafkaProducer, KafkaSettings

    producer = KafkaProducer(KafkaSettings.from_env(bootstrap))
    started = time.monotonic()
    bar = Progress("simulate: produced", len(records), unit="records")
    for n, (kind, key, event) in enumerate(records, 1):
        producer.produce(topic_of[kind], orjson.dumps(event), key.encode())
        bar.update(n)
    bar.close(len(records))
    producer.flush(60.0)
    print(
        f"simulate: produced {len(records):,} records to {bootstrap} "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


def _summary(
    records: list[tuple[str, str, dict[str, Any]]],
    truth: dict[str, Any],
    topic_of: dict[str, str],
    out: IO[str],
) -> None:
    per_topic = Counter(topic_of[kind] for kind, _, _ in records)
    print(f"records: {len(records):,}", file=out)
    for topic, n in per_topic.items():
        print(f"  {topic}: {n:,}", file=out)
    tables = [k for k in _TABLES if k in truth]
    short = {k: v for k, v in truth.items() if k not in tables}
    print("truth:", file=out)
    print(json.dumps(short, indent=2), file=out)
    if tables:
        print(f"(also in the full truth, --truth FILE: {', '.join(tables)})", file=out)
