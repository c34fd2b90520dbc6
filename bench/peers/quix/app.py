"""The processor's job written idiomatically with Quix Streams: the bench's peer.

Per sensor key, River's ADWIN and PageHinkley (the parameters of bench/throughput.py's
MONITORS_YAML: ADWIN delta 1e-5; Page-Hinkley delta 0.5, threshold 25, min_instances 1;
warm-up 20 readings) live in Quix's RocksDB state store (pickled, through
``RocksDBOptions(dumps=..., loads=...)``; its changelog topic on, as by default), offsets
are committed every second, and each drift becomes a JSON alert on an output topic.

It runs in its own venv (``requirements.txt`` beside it), started by bench/end_to_end.py:

    python app.py --bootstrap HOST:PORT --topic T --group G --state-dir DIR
"""

from __future__ import annotations

import argparse
import pickle

from quixstreams import Application, State
from quixstreams.state.rocksdb import RocksDBOptions
from river.drift import ADWIN, PageHinkley

WARMUP = 20


def detect(value: dict, state: State) -> dict | None:
    """Update the key's detectors with one reading; an alert when either one drifts."""
    detectors = state.get("detectors")
    if detectors is None:
        detectors = {
            "n": 0,
            "adwin": ADWIN(delta=0.00001),
            "ph": PageHinkley(min_instances=1, delta=0.5, threshold=25),
        }
    x = float(value["value"])
    detectors["n"] += 1
    alerts = []
    for name in ("adwin", "ph"):
        detector = detectors[name]
        detector.update(x)
        if detector.drift_detected and detectors["n"] > WARMUP:
            alerts.append(name)
    state.set("detectors", detectors)
    if not alerts:
        return None
    return {"sensor_id": value["sensor_id"], "time": value["time"], "detectors": alerts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=args.state_dir,
        rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
    )
    readings = app.topic(args.topic, value_deserializer="json", key_deserializer="str")
    alerts = app.topic(f"{args.topic}-quix-alerts", value_serializer="json")
    sdf = app.dataframe(readings)
    sdf = sdf.apply(detect, stateful=True).filter(lambda alert: alert is not None)
    sdf.to_topic(alerts)
    app.run()


if __name__ == "__main__":
    main()
