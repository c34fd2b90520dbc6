"""Situation 3, a diagnostic model misses one cancer subtype in one age band.

``diagnosis-v4`` (a high-risk AI system) reads imaging cases at several sites,
more by day than by night, and predicts ``benign`` or a cancer subtype
(``prediction.label``, with its confidence as ``prediction.score``).  Its segment
holds only what is known when it predicts: ``age_band``, ``sex`` and ``site``.
The true diagnosis arrives later as a label event keyed by the model id and
carrying the ``prediction_id``: days later (log-normal delay), in arrival order,
so out of prediction order; some never arrive.

The failure: from ``failure_start``, for cases whose true label is
``target_subtype`` in ``target_age_band``, the model's recall falls from ~``recall``
to ``failing_recall``: it calls most of them ``benign``.  ``dx-4.1`` of the model
was deployed ``deploy_lead_s`` before (the cause); ``dx-4.0`` weeks earlier is the
last known-good version.  A PACS export change at one site, a deploy of the
triage model and a schema change of the EHR feed are unrelated.
"""

from __future__ import annotations

import math
import random
import statistics
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

__all__ = ["AGE_BANDS", "LABELS", "simulate_medical"]

_DAY = 86_400.0
LABELS = ("benign", "subtype-a", "subtype-b", "subtype-c", "subtype-d")
_PREVALENCE = (0.55, 0.14, 0.12, 0.11, 0.08)
AGE_BANDS = ("<40", "40-54", "55-69", "70+")
_AGE_WEIGHTS = (0.12, 0.25, 0.35, 0.28)
_AGE_RANGE = {"<40": (25, 39), "40-54": (40, 54), "55-69": (55, 69), "70+": (70, 92)}
_SITES = ("site-01", "site-02", "site-03", "site-04", "site-05")
_SITE_WEIGHTS = (0.3, 0.25, 0.2, 0.15, 0.1)
_SOURCES = ("pathology", "audit", "follow-up")
_SOURCE_WEIGHTS = (0.85, 0.1, 0.05)
MODEL = "diagnosis-v4"


def _busy(at: float) -> float:
    """Relative case rate by hour of day (UTC): 1.7 from 07 to 19 h, 0.3 at night (mean 1)."""
    hour = (at % _DAY) / 3600.0
    return 1.7 if 7.0 <= hour < 19.0 else 0.3


def simulate_medical(
    seed: int = 7,
    *,
    scale: float = 1.0,
    start: float = START,
    days: float = 14.0,
    failure_after_days: float = 7.0,
    cases_per_day: float = 1500.0,
    recall: float = 0.88,
    failing_recall: float = 0.3,
    specificity: float = 0.92,
    target_subtype: str = "subtype-c",
    target_age_band: str = "70+",
    label_fraction: float = 0.9,
    label_delay_days: float = 2.5,
    label_delay_sigma: float = 0.5,
    min_label_delay_days: float = 0.5,
    max_label_delay_days: float = 10.0,
    deploy_lead_s: float = 1800.0,
) -> Simulation:
    """The regulated subgroup-miss scenario.

    :param seed: random seed; the same seed gives the same records.
    :param scale: multiplies traffic (cases per day).
    :param start: epoch seconds of the first prediction.
    :param days: how long predictions are made; labels keep arriving after that.
    :param failure_after_days: when, after ``start``, the subgroup's recall falls.
    :param cases_per_day: predictions per day (by day 1.7x, by night 0.3x this rate).
    :param recall: the chance a cancer is called with its own subtype (else mostly benign).
    :param failing_recall: that chance in the failing subgroup after the start.
    :param specificity: the chance a benign case is called benign.
    :param target_subtype: the true label whose recall falls (one of :data:`LABELS`).
    :param target_age_band: the age band where it falls (one of :data:`AGE_BANDS`).
    :param label_fraction: share of predictions whose true label ever arrives.
    :param label_delay_days: median delay of a label after its prediction.
    :param label_delay_sigma: spread of the (log-normal) delay.
    :param min_label_delay_days: no label arrives sooner...
    :param max_label_delay_days: ...and one that would arrive later never does.
    :param deploy_lead_s: how long before the failure ``dx-4.1`` is deployed.
    """
    check_positive(
        scale=scale,
        days=days,
        failure_after_days=failure_after_days,
        cases_per_day=cases_per_day,
        recall=recall,
        failing_recall=failing_recall,
        specificity=specificity,
        label_fraction=label_fraction,
        label_delay_days=label_delay_days,
        label_delay_sigma=label_delay_sigma,
        min_label_delay_days=min_label_delay_days,
        max_label_delay_days=max_label_delay_days,
        deploy_lead_s=deploy_lead_s,
    )
    if min_label_delay_days > max_label_delay_days:
        raise ValueError("min_label_delay_days must not exceed max_label_delay_days")
    if target_subtype not in LABELS[1:]:
        raise ValueError(f"target_subtype must be one of {', '.join(LABELS[1:])}")
    if target_age_band not in AGE_BANDS:
        raise ValueError(f"target_age_band must be one of {', '.join(AGE_BANDS)}")
    if failure_after_days >= days:
        raise ValueError("failure_after_days must be less than days")
    if max(recall, failing_recall, specificity, label_fraction) > 1.0:
        raise ValueError("recall, failing_recall, specificity and label_fraction are <= 1")
    end = start + days * _DAY
    failure_at = start + failure_after_days * _DAY
    deploy_at = failure_at - deploy_lead_s
    prefix = f"medical-s{seed}"
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

    good = change(
        "deploy-dx-4.0",
        start - 45 * _DAY,
        "deploy",
        MODEL,
        "dx-4.0",
        "ml-release",
        "Release dx-4.0 (validated, CE-marked configuration).",
    )
    unrelated = [
        change(
            "pipeline-pacs-site-04",
            failure_at - 26 * 3600.0,
            "data-pipeline",
            "pacs-export/site-04",
            "pacs-export-3.4",
            "site-04-it",
            "PACS export 3.4 at site-04: DICOM tag mapping for the new scanner.",
        ),
        change(
            "deploy-triage-2.3",
            failure_at - 3 * 3600.0,
            "deploy",
            "triage-v2",
            "triage-2.3",
            "ml-release",
            "Release triage-2.3 of the referral triage model.",
        ),
        change(
            "schema-ehr-feed",
            failure_at - 50 * 60.0,
            "schema",
            "ehr-feed",
            "ehr-feed@v9",
            "integration-team",
            "EHR feed v9: adds an optional referral_reason field.",
        ),
    ]
    cause = change(
        "deploy-dx-4.1",
        deploy_at,
        "deploy",
        MODEL,
        "dx-4.1",
        "ml-release",
        "Release dx-4.1: retrained on 2026-Q3 cases; new intensity normalisation in preprocessing.",
    )

    # -- predictions and their labels ---------------------------------------------------
    rng = random.Random(f"{prefix}/{MODEL}")
    lrng = random.Random(f"{prefix}/labels")
    others = {true: [lb for lb in LABELS[1:] if lb != true] for true in LABELS}
    # (subtype, age_band) -> [before_n, before_hit, after_n, after_hit] over all predictions
    recall_tally: dict[tuple[str, str], list[int]] = {}
    delays: list[float] = []
    stats = {"labels_never": 0, "labels_after_traffic": 0, "target_predicted_benign_after": 0}
    rate = cases_per_day * scale / _DAY
    peak = rate * 1.7
    t, n = start, 0
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            break
        if rng.random() * 1.7 >= _busy(t):  # thinning: a day/night rhythm
            continue
        at = ms(t)
        true = rng.choices(LABELS, _PREVALENCE)[0]
        age_band = rng.choices(AGE_BANDS, _AGE_WEIGHTS)[0]
        after = at >= failure_at
        failing = after and true == target_subtype and age_band == target_age_band
        u = rng.random()
        if true == "benign":
            label = "benign" if u < specificity else rng.choice(others[true])
        else:
            hit = failing_recall if failing else recall
            if u < hit:
                label = true
            elif u < hit + (1.0 - hit) * (0.93 if failing else 0.65):
                label = "benign"
            else:
                label = rng.choice(others[true])
        correct = label == true
        score = rng.betavariate(9.0, 2.0) if correct else rng.betavariate(5.0, 4.0)
        if true != "benign":
            tally = recall_tally.setdefault((true, age_band), [0, 0, 0, 0])
            tally[2 * after] += 1
            tally[2 * after + 1] += correct
            if failing and label == "benign":
                stats["target_predicted_benign_after"] += 1
        lo, hi = _AGE_RANGE[age_band]
        prediction_id = f"{prefix}-dx-{n:07d}"
        rec.add(
            at,
            "inference",
            MODEL,
            {
                "event_id": f"{prefix}/dx/{n:07d}",
                "time": format_time(at),
                "model_id": MODEL,
                "model_version": "dx-4.1" if at >= deploy_at else "dx-4.0",
                "prediction_id": prediction_id,
                "prediction": {"label": label, "score": round(score, 4)},
                "features": {
                    "age": rng.randint(lo, hi),
                    "modality": rng.choices(("mri", "ct", "mammography"), (0.3, 0.2, 0.5))[0],
                    "lesion_mm": round(rng.lognormvariate(math.log(14.0), 0.5), 1),
                    "density": rng.choice("ABCD"),
                    "prior_screenings": int(rng.expovariate(0.5)),
                },
                "segment": {
                    "age_band": age_band,
                    "sex": "F" if rng.random() < 0.7 else "M",
                    "site": rng.choices(_SITES, _SITE_WEIGHTS)[0],
                },
                "latency_ms": round(rng.lognormvariate(math.log(2400.0), 0.3), 1),
            },
        )
        delay = max(
            min_label_delay_days,
            lrng.lognormvariate(math.log(label_delay_days), label_delay_sigma),
        )
        if lrng.random() < label_fraction and delay <= max_label_delay_days:
            arrives = ms(at + delay * _DAY)
            delays.append(delay)
            stats["labels_after_traffic"] += arrives >= end
            rec.add(
                arrives,
                "label",
                MODEL,
                {
                    "event_id": f"{prefix}/label/{n:07d}",
                    "time": format_time(arrives),
                    "prediction_id": prediction_id,
                    "model_id": MODEL,
                    "label": true,
                    "source": lrng.choices(_SOURCES, _SOURCE_WEIGHTS)[0],
                },
            )
        else:
            stats["labels_never"] += 1
        n += 1

    records = rec.records()
    sim = Simulation(records)
    first, last = rec.span()

    def recall_of(counts: list[int]) -> dict[str, Any]:
        before_n, before_hit, after_n, after_hit = counts
        return {
            "before": {
                "cases": before_n,
                "recall": round(before_hit / before_n, 4) if before_n else None,
            },
            "after": {
                "cases": after_n,
                "recall": round(after_hit / after_n, 4) if after_n else None,
            },
        }

    target = recall_tally.get((target_subtype, target_age_band), [0, 0, 0, 0])
    sim.truth = {
        "scenario": "medical",
        "seed": seed,
        "scale": scale,
        **time_fields("data_start", first),
        **time_fields("data_end", last),
        **time_fields("traffic_start", start),
        **time_fields("traffic_end", end),
        **time_fields("failure_start", failure_at),
        "failing_subjects": [MODEL],
        "failure": f"recall for {target_subtype} at age {target_age_band} falls "
        f"{recall:g} -> {failing_recall:g} (called benign)",
        "high_risk": True,
        "affected_segment": {"true_label": target_subtype, "age_band": target_age_band},
        "causing_change_id": cause["event_id"],
        "causing_change": change_summary(cause),
        "unrelated_change_ids": [c["event_id"] for c in unrelated],
        "baseline_change_ids": [good["event_id"]],
        "last_known_good": {"model_id": MODEL, "version": "dx-4.0", "change_id": good["event_id"]},
        "expected_downstream": [],
        "counts": {
            "records": len(records),
            **sim.counts(),
            "target_cases_before": target[0],
            "target_cases_after": target[2],
            **stats,
        },
        "label_delay_days": {
            "min": round(min(delays), 3) if delays else None,
            "median": round(statistics.median(delays), 3) if delays else None,
            "max": round(max(delays), 3) if delays else None,
        },
        "recall": {
            f"{subtype}|{band}": recall_of(c) for (subtype, band), c in sorted(recall_tally.items())
        },
        "options": {
            "days": days,
            "failure_after_days": failure_after_days,
            "cases_per_day": cases_per_day,
            "recall": recall,
            "failing_recall": failing_recall,
            "specificity": specificity,
            "target_subtype": target_subtype,
            "target_age_band": target_age_band,
            "label_fraction": label_fraction,
            "label_delay_days": label_delay_days,
            "label_delay_sigma": label_delay_sigma,
            "min_label_delay_days": min_label_delay_days,
            "max_label_delay_days": max_label_delay_days,
            "deploy_lead_s": deploy_lead_s,
            "start": start,
        },
    }
    return sim
