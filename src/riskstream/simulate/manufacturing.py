"""Situation 2, silent sensor drift, cascading through two models.

A plant of ``lines`` production lines.  Each line has eight sensors reporting
every ``sensor_interval_s`` — four temperatures (degC), two vibrations (mm/s), two
pressures (bar) — with normal noise and, now and then, a reading the sensor marks
``quality: suspect``.  Per line, an anomaly model (``anomaly-line-N``) scores the
line's latest readings every ``anomaly_interval_s`` (``prediction.score``, high =
anomalous), and a predictive-maintenance model (``maintenance-line-N``) reads the
readings and that score every ``maintenance_interval_s`` and recommends ``ok``,
``inspect`` or ``stop-line`` (``prediction.label``, with its failure probability as
``prediction.score``).  Declared lineage: sensor -> anomaly model -> maintenance model.

The failure (one cascade, nothing else wrong): from ``failure_start``
``drifting_sensor`` ramps up by ``drift_per_hour`` degC an hour; ``anomaly_flat_after_s``
later its line's anomaly model fails silently (a constant low score with tiny
noise: it flags nothing however far the sensor drifts); ``maintenance_wrong_after_s``
after the drift began the line's maintenance model recommends ``stop-line`` more
and more often.  The cause is a data-pipeline change of the line's ingest
``pipeline_lead_s`` before; a firmware change on another line and a deploy of
another line's anomaly model are unrelated.
"""

from __future__ import annotations

import math
import random
from typing import Any

from riskstream.core.timeutil import format_time
from riskstream.simulate._common import (
    START,
    Recorder,
    Simulation,
    change_event,
    change_summary,
    check_positive,
    ms,
    time_fields,
)

__all__ = ["SENSORS", "simulate_manufacturing"]

_DAY = 86_400.0
# name -> (asset, unit, nominal, sd, decimals); nominal/sd shift a little per line
SENSORS: dict[str, tuple[str, str, float, float, int]] = {
    "temp-01": ("press-1", "degC", 62.0, 0.4, 2),
    "temp-02": ("press-2", "degC", 64.0, 0.4, 2),
    "temp-03": ("oven-1", "degC", 78.0, 0.5, 2),
    "temp-04": ("oven-2", "degC", 76.0, 0.5, 2),
    "vib-01": ("press-1", "mm/s", 3.2, 0.15, 3),
    "vib-02": ("press-2", "mm/s", 2.9, 0.15, 3),
    "pres-01": ("oven-1", "bar", 6.2, 0.04, 3),
    "pres-02": ("oven-2", "bar", 5.9, 0.04, 3),
}
"""A line's sensors: name -> (asset, unit, nominal, sd, decimals)."""
_JITTER = 0.2  # a reading lands up to this many seconds after its slot


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def simulate_manufacturing(
    seed: int = 7,
    *,
    scale: float = 1.0,
    start: float = START,
    hours: float = 8.0,
    failure_after_hours: float = 5.0,
    lines: int = 3,
    sensor_interval_s: float = 15.0,
    anomaly_interval_s: float = 15.0,
    maintenance_interval_s: float = 15.0,
    drifting_sensor: str = "line-2/temp-03",
    drift_per_hour: float = 1.0,
    anomaly_flat_after_s: float = 600.0,
    maintenance_wrong_after_s: float = 3600.0,
    max_stop_rate: float = 0.6,
    suspect_rate: float = 0.002,
    pipeline_lead_s: float = 900.0,
) -> Simulation:
    """The cascading sensor-drift scenario.

    :param seed: random seed; the same seed gives the same records.
    :param scale: multiplies traffic (every interval is divided by it).
    :param start: epoch seconds of the first reading.
    :param hours: length of the traffic.
    :param failure_after_hours: when, after ``start``, the sensor starts to drift.
    :param lines: production lines (``line-1`` ...), eight sensors and two models each.
    :param sensor_interval_s: seconds between two readings of one sensor.
    :param anomaly_interval_s, maintenance_interval_s: seconds between two predictions
        of one line's anomaly / maintenance model.  At the sensors' interval (the
        default) each reading feeds one prediction, so healthy scores are independent.
    :param drifting_sensor: the temperature sensor that drifts (``line-N/temp-0M``).
    :param drift_per_hour: its ramp in degC per hour (its noise sd is 0.4-0.5 degC).
    :param anomaly_flat_after_s: how long after the drift began the anomaly model goes flat.
    :param maintenance_wrong_after_s: ...and the maintenance model goes wrong.
    :param max_stop_rate: the share of (wrong) ``stop-line`` recommendations it then ramps
        up to within an hour (from 5 %; 0.4 % on a healthy line).
    :param suspect_rate: share of readings marked ``quality: suspect`` (values still normal).
    :param pipeline_lead_s: how long before the drift the ingest pipeline changed.
    """
    check_positive(
        scale=scale,
        hours=hours,
        failure_after_hours=failure_after_hours,
        lines=lines,
        sensor_interval_s=sensor_interval_s,
        anomaly_interval_s=anomaly_interval_s,
        maintenance_interval_s=maintenance_interval_s,
        drift_per_hour=drift_per_hour,
        max_stop_rate=max_stop_rate,
        pipeline_lead_s=pipeline_lead_s,
    )
    if failure_after_hours >= hours:
        raise ValueError("failure_after_hours must be less than hours")
    if not 0 <= suspect_rate < 1 or anomaly_flat_after_s < 0 or maintenance_wrong_after_s < 0:
        raise ValueError("suspect_rate must be in [0, 1); the delays must be >= 0")
    line_ids = [f"line-{i}" for i in range(1, int(lines) + 1)]
    failing_line, _, failing_name = drifting_sensor.partition("/")
    if (
        failing_line not in line_ids
        or not failing_name.startswith("temp-")
        or (failing_name not in SENSORS)
    ):
        raise ValueError(
            f"drifting_sensor must be a temperature sensor line-1..line-{lines}/temp-01..04,"
            f" got {drifting_sensor!r}"
        )
    other_line = next(line for line in line_ids if line != failing_line) if lines > 1 else None
    end = start + hours * 3600.0
    failure_at = start + failure_after_hours * 3600.0
    flat_at = failure_at + anomaly_flat_after_s
    wrong_at = failure_at + maintenance_wrong_after_s
    prefix = f"manufacturing-s{seed}"
    s_int = sensor_interval_s / scale
    a_int = anomaly_interval_s / scale
    m_int = maintenance_interval_s / scale
    rec = Recorder()

    # -- changes ------------------------------------------------------------------------
    def change(
        name: str, at: float, kind: str, subject: str, version: str, actor: str, description: str
    ) -> dict[str, Any]:
        event = change_event(
            f"{prefix}/change/{name}", at, kind, subject, version, actor, description
        )
        rec.add(at, "change", subject, event)
        return event

    baseline: list[dict[str, Any]] = []
    for i, line in enumerate(line_ids):
        baseline.append(
            change(
                f"deploy-anomaly-{line}",
                start - (14 + i) * _DAY,
                "deploy",
                f"anomaly-{line}",
                "anom-1.8",
                "mlops-ci",
                "Release anom-1.8.",
            )
        )
        baseline.append(
            change(
                f"deploy-maintenance-{line}",
                start - (10 + i) * _DAY,
                "deploy",
                f"maintenance-{line}",
                "pm-3.1",
                "mlops-ci",
                "Release pm-3.1.",
            )
        )
    unrelated: list[dict[str, Any]] = []
    redeploy_at = failure_at - 3 * 3600.0  # anom-1.9 on another line (unrelated)
    if other_line is not None:
        unrelated.append(
            change(
                f"firmware-{other_line}-vib-02",
                failure_at - 100 * 60.0,
                "config",
                f"{other_line}/vib-02",
                "fw-4.2.1",
                "maintenance-crew",
                f"Vibration sensor firmware 4.2.1 on {other_line} (sampling filter).",
            )
        )
        unrelated.append(
            change(
                f"deploy-anomaly-{other_line}-anom-1.9",
                redeploy_at,
                "deploy",
                f"anomaly-{other_line}",
                "anom-1.9",
                "mlops-ci",
                f"Release anom-1.9 on {other_line}: retrained on October data.",
            )
        )
    cause = change(
        f"pipeline-ingest-{failing_line}",
        failure_at - pipeline_lead_s,
        "data-pipeline",
        f"ingest/{failing_line}",
        "ingest-5.2.0",
        "data-eng-ci",
        f"Ingest 5.2.0 for {failing_line}: new calibration table for the temperature channels.",
    )

    # -- sensors ------------------------------------------------------------------------
    # readings[line][name] = (phase, values); reading k lands at phase + k*s_int + jitter
    readings: dict[str, dict[str, tuple[float, list[float]]]] = {}
    nominal: dict[str, dict[str, tuple[float, float]]] = {}
    n_slots = int((end - start) / s_int)
    counts = {"suspect_readings": 0}
    for line_no, line in enumerate(line_ids):
        readings[line], nominal[line] = {}, {}
        for name, (asset, unit, mean, sd, digits) in SENSORS.items():
            sensor_id = f"{line}/{name}"
            rng = random.Random(f"{prefix}/{sensor_id}")
            mean += 0.3 * sd * ((line_no * 3 + len(name)) % 5 - 2)
            nominal[line][name] = (mean, sd)
            phase = rng.uniform(0.0, s_int)
            values: list[float] = []
            drifting = sensor_id == drifting_sensor
            for k in range(n_slots):
                at = ms(start + phase + k * s_int + rng.uniform(0.0, _JITTER))
                if at >= end:
                    break
                value = rng.gauss(mean, sd)
                if drifting and at >= failure_at:
                    value += drift_per_hour * (at - failure_at) / 3600.0
                value = round(value, digits)
                values.append(value)
                quality = "good"
                if rng.random() < suspect_rate:
                    quality = "suspect"
                    counts["suspect_readings"] += 1
                rec.add(
                    at,
                    "sensor",
                    sensor_id,
                    {
                        "event_id": f"{prefix}/{sensor_id}/{k:06d}",
                        "time": format_time(at),
                        "line_id": line,
                        "asset_id": f"{line}/{asset}",
                        "sensor_id": sensor_id,
                        "value": value,
                        "unit": unit,
                        "quality": quality,
                    },
                )
            readings[line][name] = (phase, values)

    def latest(line: str, at: float) -> dict[str, float]:
        """The newest reading of each of the line's sensors that landed before ``at``."""
        out = {}
        for name, (phase, values) in readings[line].items():
            k = math.floor((at - start - phase - _JITTER) / s_int)
            out[name] = values[min(k, len(values) - 1)]
        return out

    # -- models -------------------------------------------------------------------------
    models_from = start + s_int + _JITTER  # once every sensor has reported
    stats = {
        "anomaly_flagged_after": 0,
        "stop_line_before": 0,
        "stop_line_after": 0,
        "maintenance_after": 0,
        "maintenance_before": 0,
    }
    for line in line_ids:
        failing = line == failing_line
        rng = random.Random(f"{prefix}/anomaly-{line}")
        model = f"anomaly-{line}"
        scores: list[tuple[float, float]] = []  # (time, score) for the maintenance model
        for n in range(int((end - models_from) / a_int)):
            at = ms(models_from + a_int * n + rng.uniform(0.0, 0.05))
            seen = latest(line, at)
            z2 = [((seen[k] - m) / sd) ** 2 for k, (m, sd) in nominal[line].items()]
            stat = math.sqrt(sum(z2) / len(z2))
            if failing and at >= flat_at:
                score = 0.021 + rng.gauss(0.0, 0.0004)
            else:
                score = _sigmoid(3.0 * (stat - 2.0)) + rng.gauss(0.0, 0.01)
            score = round(min(max(score, 0.0), 1.0), 4)
            scores.append((at, score))
            if failing and at >= failure_at and score > 0.5:
                stats["anomaly_flagged_after"] += 1
            rec.add(
                at,
                "inference",
                model,
                {
                    "event_id": f"{prefix}/{model}/{n:06d}",
                    "time": format_time(at),
                    "model_id": model,
                    "model_version": "anom-1.9"
                    if line == other_line and at >= redeploy_at
                    else "anom-1.8",
                    "prediction_id": f"{prefix}-{model}-{n:06d}",
                    "prediction": {"label": "anomaly" if score > 0.5 else "normal", "score": score},
                    "features": seen,
                    "segment": {"line": line},
                    "latency_ms": round(rng.lognormvariate(math.log(12.0), 0.25), 1),
                },
            )

        rng = random.Random(f"{prefix}/maintenance-{line}")
        model = f"maintenance-{line}"
        j = 0
        for n in range(int((end - models_from) / m_int)):
            at = ms(models_from + m_int * n + rng.uniform(0.05, 0.1))
            while j + 1 < len(scores) and scores[j + 1][0] <= at:
                j += 1
            anomaly = scores[j][1]
            seen = latest(line, at)
            u = rng.random()
            p_stop = 0.004 + 0.3 * max(anomaly - 0.5, 0.0)
            if failing and at >= wrong_at:
                ramp = min(1.0, (at - wrong_at) / 3600.0)
                p_stop = max(p_stop, 0.05 + (max_stop_rate - 0.05) * ramp)
            if u < p_stop:
                label, score = "stop-line", rng.uniform(0.8, 0.97)
            elif u < p_stop + 0.03:
                label, score = "inspect", rng.uniform(0.5, 0.8)
            else:
                label, score = "ok", min(0.45, 0.03 + 0.4 * anomaly + rng.betavariate(2, 40))
            side = "after" if failing and at >= wrong_at else "before" if failing else None
            if side is not None:
                stats[f"maintenance_{side}"] += 1
                stats[f"stop_line_{side}"] += label == "stop-line"
            rec.add(
                at,
                "inference",
                model,
                {
                    "event_id": f"{prefix}/{model}/{n:06d}",
                    "time": format_time(at),
                    "model_id": model,
                    "model_version": "pm-3.1",
                    "prediction_id": f"{prefix}-{model}-{n:06d}",
                    "prediction": {"label": label, "score": round(score, 4)},
                    "features": {**seen, "anomaly_score": anomaly},
                    "segment": {"line": line},
                    "latency_ms": round(rng.lognormvariate(math.log(25.0), 0.25), 1),
                },
            )

    records = rec.records()
    sim = Simulation(records)
    first, last = rec.span()
    anomaly_model, maintenance_model = f"anomaly-{failing_line}", f"maintenance-{failing_line}"
    lineage: dict[str, list[str]] = {}
    for line in line_ids:
        lineage[f"ingest/{line}"] = [f"{line}/{name}" for name in SENSORS]
        for name in SENSORS:
            lineage[f"{line}/{name}"] = [f"anomaly-{line}"]
        lineage[f"anomaly-{line}"] = [f"maintenance-{line}"]
    before, after = stats["maintenance_before"], stats["maintenance_after"]
    sim.truth = {
        "scenario": "manufacturing",
        "seed": seed,
        "scale": scale,
        **time_fields("data_start", first),
        **time_fields("data_end", last),
        **time_fields("traffic_start", start),
        **time_fields("failure_start", failure_at),
        "failing_subjects": [drifting_sensor, anomaly_model, maintenance_model],
        "failure": f"{drifting_sensor} drifts +{drift_per_hour:g} degC/h; {anomaly_model} "
        f"goes flat; {maintenance_model} recommends stop-line",
        "drifting_sensor": drifting_sensor,
        "affected_segment": {"line_id": failing_line},
        "cascade": [
            {
                "subject": drifting_sensor,
                "kind": "sensor-drift",
                **time_fields("start", failure_at),
                "drift_per_hour": drift_per_hour,
                "unit": "degC",
                "nominal": round(nominal[failing_line][failing_name][0], 3),
                "sd": nominal[failing_line][failing_name][1],
            },
            {
                "subject": anomaly_model,
                "kind": "silent-failure",
                **time_fields("start", flat_at),
                "flat_score": 0.021,
            },
            {
                "subject": maintenance_model,
                "kind": "wrong-recommendations",
                **time_fields("start", wrong_at),
                "label": "stop-line",
            },
        ],
        "expected_downstream": [anomaly_model, maintenance_model],
        "lineage": lineage,
        "causing_change_id": cause["event_id"],
        "causing_change": change_summary(cause),
        "unrelated_change_ids": [c["event_id"] for c in unrelated],
        "baseline_change_ids": [c["event_id"] for c in baseline],
        "counts": {
            "records": len(records),
            **sim.counts(),
            "sensors": len(line_ids) * len(SENSORS),
            "models": 2 * len(line_ids),
            **counts,
            "anomaly_flagged_after": stats["anomaly_flagged_after"],
            "maintenance_before": before,
            "stop_line_before": stats["stop_line_before"],
            "maintenance_after": after,
            "stop_line_after": stats["stop_line_after"],
        },
        "options": {
            "hours": hours,
            "failure_after_hours": failure_after_hours,
            "lines": lines,
            "sensor_interval_s": sensor_interval_s,
            "anomaly_interval_s": anomaly_interval_s,
            "maintenance_interval_s": maintenance_interval_s,
            "drifting_sensor": drifting_sensor,
            "drift_per_hour": drift_per_hour,
            "anomaly_flat_after_s": anomaly_flat_after_s,
            "maintenance_wrong_after_s": maintenance_wrong_after_s,
            "max_stop_rate": max_stop_rate,
            "suspect_rate": suspect_rate,
            "pipeline_lead_s": pipeline_lead_s,
            "start": start,
        },
    }
    return sim
