"""Checkpoints written by a forked child (processor.checkpoint_writer: fork): they save
what inline checkpoints save, a crash resumes from the last one that landed, and a
writer that fails or hangs makes the processor claim its partitions again.

The store here is the in-memory one kept in a file, so that what a forked child saves
is what the parent reads back: a stand-in for Redis in tests that need neither Kafka
nor Redis (tests/integration runs the same path against a real Redis).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import pickle
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import embedded_processor
from riskstream.config import load_config
from riskstream.core.dedup import IDS_PREFIX
from riskstream.core.monitors import MonitorSpec, PartitionDetectors
from riskstream.core.specs import StreamSettings, ValueSpec
from riskstream.core.state_keys import COLD_MARK
from riskstream.core.timeutil import format_time
from riskstream.errors import StateStoreError
from riskstream.ports import PartitionState, TopicPartition
from riskstream.services.detection import Processor
from riskstream.services.forked_save import ForkedSave

TOPIC = "sensor-events"
SCOPE = "riskstream-processor"
NOW = 1.8e9
SENSORS = 4


class FileStore(InMemoryStateStore):
    """The in-memory store, kept in a file between calls (under a file lock)."""

    forkable = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.down = path.with_suffix(".down")  # while it exists, every save fails

    @contextmanager
    def _file(self) -> Iterator[None]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():
                self._slots = pickle.loads(self.path.read_bytes())
            yield
            self.path.with_suffix(".tmp").write_bytes(pickle.dumps(self._slots))
            os.replace(self.path.with_suffix(".tmp"), self.path)

    def claim(self, scope: str, partition: TopicPartition) -> PartitionState:
        with self._file():
            return super().claim(scope, partition)

    def peek(self, scope: str, partition: TopicPartition) -> PartitionState:
        with self._file():
            return super().peek(scope, partition)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.down.exists():
            raise StateStoreError("the test store is down")
        with self._file():
            super().save(*args, **kwargs)

    def saved_elsewhere(self, *args: Any, **kwargs: Any) -> None:
        pass


def _fill(bus: InMemoryBus, n: int) -> None:
    rng = random.Random(3)
    producer = bus.producer()
    for i in range(n):
        s = i % SENSORS
        shift = 4.0 if i > n // 2 + 300 * s else 0.0
        event = {"event_id": str(i), "time": format_time(NOW - n + i), "sensor_id": f"s{s}",
                 "value": rng.gauss(20.0 + s + shift, 1.0)}  # fmt: skip
        producer.produce(TOPIC, orjson.dumps(event), f"s{s}".encode())


def _processor(
    bus: InMemoryBus, store: Any, out: list[Any], writer: str, budget: float = 0.25, **kw: Any
) -> Processor:
    config = load_config(None)
    settings = replace(
        config.processor, batch_size=97, checkpoint_events=300, checkpoint_writer=writer,
        checkpoint_budget=budget,
    )  # fmt: skip
    processor = embedded_processor(
        replace(config, processor=settings), bus, store, on_incident=out.append,
        wall_clock=lambda: NOW, **kw,
    )  # fmt: skip
    processor.start()
    return processor


def _drain(processor: Processor, steps: int | None = None) -> None:
    for i in itertools.count():
        if (steps is not None and i >= steps) or not processor.step(0):
            break


def _detectors(state: PartitionState) -> dict[str, bytes]:
    return {k: v for k, v in state.snapshots.items() if not k.startswith(IDS_PREFIX)}


def _ids(found: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(i["incident_id"]) for i in found))


def _inline_run(n: int) -> tuple[list[str], PartitionState]:
    bus, store, found = InMemoryBus(), InMemoryStateStore(), []
    _fill(bus, n)
    processor = _processor(bus, store, found, "inline")
    _drain(processor)
    processor.close()
    return _ids(found), store.peek(SCOPE, (TOPIC, 0))


def test_forked_checkpoints_save_what_inline_ones_save(tmp_path: Path) -> None:
    want, want_state = _inline_run(6000)
    assert len(want) >= 2, "the shifts must raise incidents"
    bus, store, found = InMemoryBus(), FileStore(tmp_path / "state"), []
    _fill(bus, 6000)
    registry = CollectorRegistry()
    processor = _processor(bus, store, found, "fork", registry=registry)
    _drain(processor)
    processor.close()
    got = store.peek(SCOPE, (TOPIC, 0))
    assert _ids(found) == want
    assert (got.offset, got.counters, _detectors(got)) == (
        want_state.offset, want_state.counters, _detectors(want_state)
    )  # fmt: skip
    forked = registry.get_sample_value("riskstream_checkpoint_landed_seconds_count") or 0
    assert forked >= 1, "checkpoints ran forked (how many landed during the run is timing)"
    assert registry.get_sample_value(
        "riskstream_checkpoint_writer_seconds_total", {"phase": "save"}
    )


def test_a_crash_resumes_from_the_last_forked_checkpoint_that_landed(tmp_path: Path) -> None:
    want, want_state = _inline_run(6000)
    bus, store, found = InMemoryBus(), FileStore(tmp_path / "state"), []
    _fill(bus, 6000)
    first = _processor(bus, store, found, "fork")
    _drain(first, steps=35)  # then it dies: no close, a writer maybe still in flight
    landed = store.peek(SCOPE, (TOPIC, 0)).offset
    assert landed is not None and 0 < landed < 6000
    second = _processor(bus, store, found, "fork")
    _drain(second)
    second.close()
    got = store.peek(SCOPE, (TOPIC, 0))
    assert _ids(found) == want  # what the first life emitted after `landed`, again, same ids
    assert (got.offset, _detectors(got)) == (want_state.offset, _detectors(want_state))


def test_a_failed_forked_save_claims_again_and_loses_nothing(tmp_path: Path) -> None:
    want, want_state = _inline_run(6000)
    bus, store, found = InMemoryBus(), FileStore(tmp_path / "state"), []
    _fill(bus, 6000)
    registry = CollectorRegistry()
    processor = _processor(bus, store, found, "fork", registry=registry)
    _drain(processor, steps=20)
    store.down.touch()  # the writer's saves fail from now
    deadline = time.monotonic() + 20
    while processor.health()["status"] == "ok" and time.monotonic() < deadline:
        processor.step(0)  # (the writer in flight, if any, saves; the next one fails)
        time.sleep(0.001)
    assert processor.health()["status"] == "degraded"
    assert registry.get_sample_value("riskstream_state_store_up") == 0
    store.down.unlink()
    time.sleep(0.3)  # past the first retry's backoff
    _drain(processor)
    processor.close()
    got = store.peek(SCOPE, (TOPIC, 0))
    assert processor.health()["status"] == "ok"
    assert _ids(found) == want
    assert (got.offset, _detectors(got)) == (want_state.offset, _detectors(want_state))


def test_auto_forks_while_checkpoints_save_many_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto counts the snapshots a checkpoint saved (inline or forked alike): at
    FORK_AT_ENTRIES it forks, below half of it it saves inline again.  The threshold is
    scaled down to this test's few streams (each checkpoint here saves some 20)."""
    bus, store, found = InMemoryBus(), FileStore(tmp_path / "state"), []
    _fill(bus, 6000)
    registry = CollectorRegistry()
    processor = _processor(bus, store, found, "auto", budget=1.0, registry=registry)

    def forked() -> float:  # grows with each forked writer's report, and only then
        sample = "riskstream_checkpoint_writer_seconds_total"
        return registry.get_sample_value(sample, {"phase": "save"}) or 0.0

    checkpoint = processor.checkpoint  # (lands the writer in flight; itself inline)
    monkeypatch.setattr("riskstream.services.detection.FORK_AT_ENTRIES", 10_000)
    _drain(processor, steps=15)  # few snapshots per checkpoint: inline
    checkpoint()
    assert forked() == 0 and store.peek(SCOPE, (TOPIC, 0)).offset
    monkeypatch.setattr("riskstream.services.detection.FORK_AT_ENTRIES", 4)
    _drain(processor, steps=15)  # "many": forked
    checkpoint()
    assert forked() > 0
    monkeypatch.setattr("riskstream.services.detection.FORK_AT_ENTRIES", 10_000)
    _drain(processor, steps=15)  # few again: inline from the next checkpoint on
    checkpoint()
    settled = forked()
    _drain(processor, steps=15)
    checkpoint()
    assert forked() == settled
    _drain(processor)
    processor.close()
    assert store.peek(SCOPE, (TOPIC, 0)).offset == 6000


def test_when_it_cannot_fork_it_saves_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    bus, store, found = InMemoryBus(), FileStore(tmp_path / "state"), []
    _fill(bus, 1000)
    processor = _processor(bus, store, found, "fork")
    _drain(processor, steps=4)  # 388 events: past checkpoint_events (300), saved then
    assert store.peek(SCOPE, (TOPIC, 0)).offset == 4 * 97
    assert "cannot fork a checkpoint writer ([Errno 12] Cannot allocate memory)" in caplog.text


def test_a_writer_past_its_deadline_is_killed_and_says_so() -> None:
    save = ForkedSave(lambda: time.sleep(30), deadline_s=0.3)
    with pytest.raises(StateStoreError, match=r"did not finish within 0\.3 s and was killed"):
        save.wait()


def test_a_writer_that_dies_says_how() -> None:
    save = ForkedSave(lambda: os._exit(3), deadline_s=30)
    with pytest.raises(StateStoreError, match="ended without a report: exit status 3"):
        save.wait()


_ORPHANING_PARENT = """
import socket, sys, time
from riskstream.services.forked_save import ForkedSave
port = socket.create_server(("127.0.0.1", 0))  # as the metrics server holds its port
save = ForkedSave(lambda: time.sleep(60), deadline_s=60)
print(port.getsockname()[1], save.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # dead, not yet reaped


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_a_writer_dies_with_its_parent_and_frees_the_parents_port() -> None:
    """A processor killed with kill -9 mid-checkpoint leaves no writer behind: one would
    hold the metrics port, and a processor restarted at once could not bind it.  (While
    both live, the writer is the OOM killer's first choice.)"""
    with subprocess.Popen(
        [sys.executable, "-c", _ORPHANING_PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            port, child = (int(word) for word in parent.stdout.readline().split())
            assert not _gone(child)
            # ...and, short of memory, the kernel kills the writer before the processor
            score, waited = Path(f"/proc/{child}/oom_score_adj"), time.monotonic() + 5
            while score.read_text().strip() != "1000" and time.monotonic() < waited:
                time.sleep(0.01)  # (the child sets it as it starts)
            assert score.read_text().strip() == "1000"
        finally:
            parent.kill()
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(child), "the writer outlived its parent"
    socket.create_server(("127.0.0.1", port)).close()  # the port is free again


def _specs() -> list[MonitorSpec]:
    common: dict[str, Any] = {
        "reads": "sensor", "value": ValueSpec("value"), "key": ("sensor_id",),
        "subject": "sensor_id", "settings": StreamSettings(warmup=50),
    }  # fmt: skip
    return [
        MonitorSpec(name="ph", detector="page-hinkley", params={"threshold": 25}, **common),
        MonitorSpec(name="adwin", detector="adwin", params={"delta": 0.001}, **common),
    ]


def test_cold_parts_saved_by_a_fork_are_not_given_again_until_they_move() -> None:
    """The parent forgets the changes it forked off and takes back which cold parts the
    child saved: each checkpoint's bytes equal an inline checkpoint's, cold parts too."""
    rng = random.Random(8)
    inline, forked = PartitionDetectors(_specs(), "sensor"), PartitionDetectors(_specs(), "sensor")
    colds = checkpoints = 0
    for i in range(3000):
        if i % 7 == 0:  # about 2 samples per stream between checkpoints
            checkpoints += 1
            want = inline.take_changed(), inline.take_deleted()

            def write() -> Any:
                changed = forked.take_changed()
                return changed, forked.take_deleted(), forked.cold_tags(changed)

            save = ForkedSave(write, deadline_s=30)
            forked.forget_changes()
            assert forked.take_changed() == {} and forked.take_deleted() == []
            changed, deleted, tags = save.wait()
            forked.cold_saved(tags)
            assert (changed, deleted) == want
            colds += sum(COLD_MARK in k for k in changed)
        event = {"event_id": str(i), "time": "", "sensor_id": f"s{i % 3}",
                 "value": rng.gauss(5.0, 1.0)}  # fmt: skip
        inline.observe(event, NOW + i)
        forked.observe(event, NOW + i)
    # Cold parts move every 16 samples (the time index) and, for ADWIN, every 4 or so
    # (its third bucket row): saved at some checkpoints, not at all (6 streams).
    assert 0 < colds < 0.6 * 6 * checkpoints
