"""``riskstream replay``: a back-test of monitors on a file of recorded events.

The records go through the very processor that runs on Kafka — decoding,
validation, dead letters, monitors — on the in-memory bus and store, so what a
monitor does here is what it will do in production.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_processor
from riskstream.config import Config
from riskstream.errors import ConfigError
from riskstream.progress import Progress

__all__ = ["ReplaySummary", "replay"]

CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    records: int
    applied: int
    dead_lettered: int
    incidents: int
    bad_lines: int


def _lines(source: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) per line of ``source``; None for one over ``limit`` bytes, which
    is skipped without being held in memory (a file with no newline is one line)."""
    n = 0
    while line := source.readline(limit + 1):
        n += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := source.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield n, None
            continue
        if n == 1 and line.startswith(_BOM):  # what some editors put first: not data
            line = line[len(_BOM) :]
        yield n, line


_BOM = b"\xef\xbb\xbf"


def _records(
    lines: IO[bytes], topic: str | None, config: Config, errors: Callable[[str], None]
) -> Iterator[tuple[str, bytes | None, bytes] | None]:
    """(topic, key, value) per line; None for a line that is not a record."""
    kinds = config.topics.input_kinds()
    # A record holds one event of at most max_event_bytes (the processor dead-letters a
    # larger one as oversize); room for its key, its topic and its escapes besides.
    limit = max(8 * config.processor.max_event_bytes, 1 << 20)
    for n, line in _lines(lines, limit):
        if line is None:
            errors(
                f"replay: line {n}: skipped, over {limit:,} bytes (events over "
                f"processor.max_event_bytes, {config.processor.max_event_bytes:,}, are "
                "refused): is it one record per line?"
            )
            yield None
            continue
        if not line.strip():
            continue
        try:
            if topic is not None:
                value = line.rstrip(b"\r\n")
                event = orjson.loads(value)
                field = config.processor.keyed_by.get(kinds.get(topic, ""), "subject")
                key = event.get(field) if isinstance(event, dict) else None
                yield topic, None if key is None else str(key).encode(), value
                continue
            rec = orjson.loads(line)
            if not isinstance(rec, dict) or "topic" not in rec or "value" not in rec:
                raise ValueError('expected {"topic": ..., "key": ..., "value": ...}')
            raw = rec["value"]
            value = raw.encode() if isinstance(raw, str) else orjson.dumps(raw)
            if not isinstance(rec["topic"], str) or rec["topic"] not in kinds:
                raise ValueError(f"topic {rec['topic']!r} is not an input topic of the config")
            key = rec.get("key")
            yield str(rec["topic"]), None if key is None else str(key).encode(), value
        except (orjson.JSONDecodeError, orjson.JSONEncodeError, ValueError) as exc:
            if topic is not None:  # a bare event that is not JSON: the processor dead-letters it
                yield topic, None, line.rstrip(b"\r\n")
                continue
            errors(f"replay: line {n}: skipped, not a record: {exc}")
            yield None


def replay(
    config: Config,
    source: IO[bytes],
    out: IO[bytes],
    topic: str | None = None,
    progress: IO[str] | None = None,
    now: float | None = None,
) -> ReplaySummary:
    """Replay ``source`` through the processor; ``now``: the wall clock event times are
    judged against (default: the real one)."""
    bar = Progress("replay", stream=progress or sys.stderr, unit="records")
    if topic is not None and topic not in config.topics.input_kinds():
        known = ", ".join(config.topics.input_kinds())
        raise ConfigError(f"--topic {topic!r} is not an input topic of the config; known: {known}")
    bus = InMemoryBus()
    producer = bus.producer()
    incidents = 0

    def write(data: dict[str, Any]) -> None:
        nonlocal incidents
        incidents += 1
        out.write(orjson.dumps(data) + b"\n")

    clock: Callable[[], float] = time.time
    if now is not None:
        at = now
        clock = lambda: at  # noqa: E731 - a fixed wall clock
    processor = embedded_processor(config, bus, on_incident=write, wall_clock=clock)
    processor.start()
    records = bad = 0
    for item in _records(source, topic, config, bar.print):
        if item is None:
            bad += 1
            continue
        producer.produce(item[0], item[2], item[1])
        records += 1
        if records % CHUNK == 0:
            while processor.step(0):
                pass
            bar.update(records, f"{incidents} incidents")
    while processor.step(0):
        pass
    totals = list(processor.counters().values())
    processor.close()
    summary = ReplaySummary(
        records=records,
        applied=sum(c["applied"] for c in totals),
        dead_lettered=sum(c["dead_lettered"] for c in totals),
        incidents=incidents,
        bad_lines=bad,
    )
    bar.close()
    bar.print(
        f"replay: done: {summary.records:,} records, {summary.applied:,} applied, "
        f"{summary.dead_lettered:,} dead-lettered, {summary.incidents} incidents"
        + (f", {bad} lines skipped" if bad else "")
    )
    return summary
