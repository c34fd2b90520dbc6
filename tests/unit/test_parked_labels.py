"""Labels read before their predictions (a backlog, a backfill) wait for them, then join."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.predictions import InMemoryPredictionStore
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import build_decoder, change_retention_s, embedded_processor
from riskstream.config import load_config
from riskstream.core.labels import prediction_record
from riskstream.core.parked_labels import ParkedLabels
from riskstream.core.timeutil import format_time
from riskstream.metrics import ProcessorMetrics
from riskstream.services.detection import PARKED_SWEEP_S, Processor

CONFIG = """\
version: 1
labels: {ttl_days: 30, positive: [malignant]}
monitors:
  - name: missed
    reads: label
    key: [model_id, segment.label]
    subject: model_id
    value: missed
    detector: {kind: page-hinkley, threshold: 50}
"""
T0 = 1.8e9
N = 300


def _produce(bus: InMemoryBus, topic: str, events: list[dict[str, object]]) -> None:
    producer = bus.producer()
    for event in events:
        producer.produce(topic, orjson.dumps(event), b"dx")


def _prediction(i: int) -> dict[str, object]:
    return {"event_id": f"p{i}", "time": format_time(T0 + i), "model_id": "dx",
            "prediction_id": f"pred-{i}", "prediction": {"label": "malignant"}}  # fmt: skip


def _label(i: int) -> dict[str, object]:
    return {"event_id": f"l{i}", "time": format_time(T0 + 86_400 + i), "model_id": "dx",
            "prediction_id": f"pred-{i}", "label": "malignant"}  # fmt: skip


def _labels_total(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("riskstream_labels_total", {"outcome": outcome}) or 0.0


def test_labels_read_first_join_when_their_predictions_come(tmp_path: Path) -> None:
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG)
    config = load_config(config_path)
    bus, store = InMemoryBus(), InMemoryStateStore()
    _produce(bus, "label-events", [_label(i) for i in range(N)])  # the label topic is read first

    registry = CollectorRegistry()
    first = embedded_processor(config, bus, store, registry, wall_clock=lambda: T0 + 2 * 86_400)
    first.start()
    while first.step(0):
        pass
    first.close()  # a restart in between: the parked labels are in the checkpoint
    assert _labels_total(registry, "parked") == N and _labels_total(registry, "joined") == 0

    _produce(bus, "inference-events", [_prediction(i) for i in range(N)])
    registry = CollectorRegistry()
    second = embedded_processor(config, bus, store, registry, wall_clock=lambda: T0 + 2 * 86_400)
    second.start()
    while second.step(0):
        pass
    assert _labels_total(registry, "joined") == N
    streams = [k for state in second.state().values() for k in state if k.startswith("missed")]
    assert streams == ["missed\x1fdx|malignant"]
    second.close()


def test_labels_wait_no_longer_than_the_horizon_or_the_limit() -> None:
    parked = ParkedLabels(horizon_s=100.0)
    assert parked.park(_label(0)) == [] and parked.park(_label(50)) == []
    assert [x["event_id"] for x in parked.park(_label(150))] == ["l0"]  # 150 s behind l150
    full = ParkedLabels(horizon_s=1000.0, max_size=3)
    for i in (1, 2, 3):
        assert full.park(_label(i)) == []
    assert [x["event_id"] for x in full.park(_label(4))] == ["l1"]  # the longest waiting
    assert [x["event_id"] for x in full.take(["pred-3", "pred-9"])] == ["l3"]
    restored = ParkedLabels(horizon_s=1000.0)
    restored.load(full.snapshot())
    assert sorted(restored.ids()) == ["pred-2", "pred-4"] and len(restored) == 2


class _CountingPredictions(InMemoryPredictionStore):
    """Counts the ids each look-up of many asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(prediction_ids)
        self.asked += len(ids)
        return super().get_many(ids)


def test_labels_of_predictions_that_never_come_do_not_slow_each_batch(tmp_path: Path) -> None:
    """Each batch that stored a prediction looked up the prediction of every parked label:
    with 100,000 labels of predictions that never come (a flood, or a label topic of
    another system), an MGET of 100,000 keys per batch, and inference events went 6x
    slower.  Now a batch looks up only what it stored, and every parked label's
    prediction at most every PARKED_SWEEP_S (one stored by another processor)."""
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG + "processor: {batch_size: 100}\n")
    config = load_config(config_path)
    bus, predictions = InMemoryBus(), _CountingPredictions()
    now = [0.0]
    processor = Processor(
        config, bus.consumer(config.processor.group_id), bus.producer(), InMemoryStateStore(),
        build_decoder(config), ProcessorMetrics(CollectorRegistry()),
        InMemoryChangeLog(change_retention_s(config)), clock=lambda: now[0],
        predictions=predictions, wall_clock=lambda: T0 + 2 * 86_400,
    )  # fmt: skip
    orphans = 2000
    never = [{**_label(i), "prediction_id": f"never-{i}"} for i in range(orphans)]
    _produce(bus, "label-events", never)
    _produce(bus, "label-events", [_label(i) for i in range(3)])
    processor.start()
    while processor.step(0):
        pass
    _produce(bus, "inference-events", [_prediction(i) for i in range(2000)])  # 20 batches
    while processor.step(0):
        pass
    # Each label's look-up as it is read (one call a batch), one sweep, then the 3 stored;
    # was 20 x 2003 more.
    assert predictions.asked < 3 * orphans
    owned = next(o for o in processor._owned.values() if len(o.parked))
    assert len(owned.parked) == orphans  # the 3 labels of stored predictions joined

    # A prediction another processor stored is found at the next sweep.
    stored = prediction_record({**_prediction(7), "prediction_id": "never-7"})
    predictions.put_many([("never-7", stored)], 1e6)
    _produce(bus, "inference-events", [_prediction(5000)])
    processor.step(0)
    assert len(owned.parked) == orphans
    now[0] += PARKED_SWEEP_S
    _produce(bus, "inference-events", [_prediction(5001)])
    processor.step(0)
    assert len(owned.parked) == orphans - 1
    processor.close()


def test_a_parked_label_keeps_only_what_joining_it_reads() -> None:
    """Labels were parked whole, with any field a producer added (64 KiB an event): 100,000
    of them were 6 GB, and a snapshot no Redis takes (512 MB at most)."""
    parked = ParkedLabels(horizon_s=1000.0)
    parked.park({**_label(1), "source": "biopsy", "padding": "x" * 60_000})
    assert len(parked.snapshot()) < 1000
    assert parked.take(["pred-1"]) == [{**_label(1), "source": "biopsy"}]


class _CountingLookups(InMemoryPredictionStore):
    """Counts round trips: each get, each get_many."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = self.get_manys = 0

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        self.gets += 1
        return super().get(prediction_id)

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        self.get_manys += 1
        return super().get_many(prediction_ids)


def test_a_batch_of_labels_reads_its_predictions_with_one_call(tmp_path: Path) -> None:
    """Each label read its prediction with a GET of its own: a flood of labels went
    through at ~4-5k labels/s.  Now one look-up per batch; a prediction stored later in
    the same batch is still found (or, read after its label, joins at the batch's end)."""
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG + "processor: {batch_size: 100}\n")
    config = load_config(config_path)
    bus, predictions = InMemoryBus(), _CountingLookups()
    registry = CollectorRegistry()
    processor = Processor(
        config, bus.consumer(config.processor.group_id), bus.producer(), InMemoryStateStore(),
        build_decoder(config), ProcessorMetrics(registry),
        InMemoryChangeLog(change_retention_s(config)), predictions=predictions,
        wall_clock=lambda: T0 + 2 * 86_400,
    )  # fmt: skip
    processor.start()
    _produce(bus, "inference-events", [_prediction(i) for i in range(N)])
    while processor.step(0):
        pass
    _produce(bus, "label-events", [_label(i) for i in range(N)])
    while processor.step(0):
        pass
    assert _labels_total(registry, "joined") == N
    assert (predictions.gets, predictions.get_manys) == (0, N // 100)  # was (N, 0)

    # Labels and their predictions in one batch, in either order: all join.
    _produce(bus, "inference-events", [_prediction(i) for i in range(1000, 1010)])
    _produce(bus, "label-events", [_label(i) for i in range(1000, 1010)])
    while processor.step(0):
        pass
    assert _labels_total(registry, "joined") == N + 10
    assert not any(len(owned.parked) for owned in processor._owned.values())
    processor.close()


def test_a_stored_prediction_keeps_only_the_segment_label_monitors_read(tmp_path: Path) -> None:
    """Every segment attribute (sex, age band, region: personal data) was kept for the
    labels' 30 days, whether a monitor read it or not; 340 B per prediction in Redis."""
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG.replace("segment.label]", "segment.label, segment.age_band]"))
    config = load_config(config_path)
    bus, predictions = InMemoryBus(), InMemoryPredictionStore()
    processor = Processor(
        config, bus.consumer(config.processor.group_id), bus.producer(), InMemoryStateStore(),
        build_decoder(config), ProcessorMetrics(CollectorRegistry()),
        InMemoryChangeLog(change_retention_s(config)), predictions=predictions,
        wall_clock=lambda: T0 + 2 * 86_400,
    )  # fmt: skip
    processor.start()
    segment = {"sex": "f", "age_band": "65+", "region": "eu-west"}
    _produce(bus, "inference-events", [{**_prediction(1), "segment": segment}])
    _produce(bus, "label-events", [_label(1)])
    while processor.step(0):
        pass
    stored = predictions.get("pred-1")
    assert stored is not None and stored["segment"] == {"age_band": "65+"}
    (stream,) = [k for state in processor.state().values() for k in state if k.startswith("missed")]
    assert stream == "missed\x1fdx|malignant|65+"  # the monitor still sees what it reads
    processor.close()
