"""Situation 1, the biased chatbot: one group starts getting harmful answers.

Traffic: an LLM support bot (``support-bot``) and two background models
(``search-ranker``, ``summarizer``) serve users of four protected groups over
several channels and regions.  Every response carries safety scores in [0, 1]
(``harmful`` > 0.5 means a harmful answer); each group's harmful rate is 1-2 %.

The failure: from ``failure_start`` the harmful rate of ``target_group`` on
``support-bot`` only rises ``harm_multiplier`` times.  ``bot-1.5`` of the bot was
deployed ``deploy_lead_s`` before (the cause); ``bot-1.4`` days before that is the
last known-good version.  Unrelated changes land in the same hours: a deploy of the
ranker, a config change of the summarizer, a data-pipeline change elsewhere, and an
earlier, harmless prompt change of the bot itself.

With ``known_good_unhealthy`` (the variant for target checks), ``bot-1.4`` is
itself failing before it is replaced: from ``unhealthy_after_hours`` its refusal
rate rises (from ~3 % to ~25 %), so a monitor keyed per version opens an incident
on ``support-bot|bot-1.4`` that is still open when the harm starts; a rollback
to it would trade one failure for another.
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
    arrivals,
    change_event,
    change_summary,
    check_positive,
    cumulative,
    time_fields,
)
from riskstream.simulate._common import kumaraswamy as kuma

__all__ = ["GROUPS", "simulate_chatbot"]

GROUPS = ("group-a", "group-b", "group-c", "group-d")
_GROUP_WEIGHTS = (0.35, 0.30, 0.20, 0.15)
_CHANNELS = ("web", "app", "email")
_CHANNEL_WEIGHTS = (0.5, 0.35, 0.15)
_REGIONS = ("eu-west", "eu-central", "us-east", "apac")
_REGION_WEIGHTS = (0.35, 0.25, 0.25, 0.15)
_LANGUAGES = ("en", "de", "fr", "es", "pl")
_INTENTS = ("billing", "technical", "account", "shipping", "other")
_INTENT_WEIGHTS = (0.3, 0.3, 0.2, 0.12, 0.08)
_DAY = 86_400.0
_INTENT_CUM = cumulative(_INTENT_WEIGHTS)
_CHANNEL_CUM = cumulative(_CHANNEL_WEIGHTS)


def simulate_chatbot(
    seed: int = 7,
    *,
    scale: float = 1.0,
    start: float = START,
    hours: float = 8.0,
    failure_after_hours: float = 5.0,
    bot_rate: float = 1.0,
    ranker_rate: float = 0.5,
    summarizer_rate: float = 0.25,
    users: int = 6000,
    harmful_rate: float = 0.015,
    harm_multiplier: float = 4.0,
    target_group: str = "group-c",
    deploy_lead_s: float = 240.0,
    known_good_unhealthy: bool = False,
    unhealthy_after_hours: float = 1.5,
) -> Simulation:
    """The biased-chatbot scenario.

    :param seed: random seed; the same seed gives the same records.
    :param scale: multiplies traffic (events per second and the user population).
    :param start: epoch seconds of the first inference event.
    :param hours: length of the traffic.
    :param failure_after_hours: when, after ``start``, the target group's harm rate rises.
    :param bot_rate, ranker_rate, summarizer_rate: events per second of each model.
    :param users: distinct users (each has one group and region).
    :param harmful_rate: mean background harmful rate (each model x group varies
        around it by -25 %..+30 %, so every group sits at ~1-2 %).
    :param harm_multiplier: the target group's rate on ``support-bot`` after the start.
    :param target_group: the group that is harmed (one of :data:`GROUPS`).
    :param deploy_lead_s: how long before the failure ``bot-1.5`` is deployed.
    :param known_good_unhealthy: the variant where ``bot-1.4`` over-refuses from
        ``unhealthy_after_hours`` after ``start`` until it is replaced.
    """
    check_positive(
        scale=scale,
        hours=hours,
        failure_after_hours=failure_after_hours,
        bot_rate=bot_rate,
        ranker_rate=ranker_rate,
        summarizer_rate=summarizer_rate,
        users=users,
        harmful_rate=harmful_rate,
        harm_multiplier=harm_multiplier,
        deploy_lead_s=deploy_lead_s,
    )
    if target_group not in GROUPS:
        raise ValueError(f"target_group must be one of {', '.join(GROUPS)}, got {target_group!r}")
    if failure_after_hours >= hours:
        raise ValueError("failure_after_hours must be less than hours")
    if harmful_rate * harm_multiplier * 1.3 >= 1.0:
        raise ValueError("harmful_rate x harm_multiplier must stay well below 1")
    end = start + hours * 3600.0
    failure_at = start + failure_after_hours * 3600.0
    unhealthy_at = start + unhealthy_after_hours * 3600.0 if known_good_unhealthy else math.inf
    prefix = f"chatbot-s{seed}"
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

    bot_deploy_at = failure_at - deploy_lead_s
    ranker_deploy_at = failure_at - 18 * 60.0
    good = change(
        "deploy-bot-1.4",
        start - 3 * _DAY,
        "deploy",
        "support-bot",
        "bot-1.4",
        "ci-release",
        "Release bot-1.4: retrieval index 2026-10, safety preamble v7.",
    )
    baseline = [
        good,
        change(
            "deploy-ranker-3.2",
            start - 6 * _DAY,
            "deploy",
            "search-ranker",
            "ranker-3.2",
            "ci-release",
            "Release ranker-3.2.",
        ),
        change(
            "deploy-sum-2.0",
            start - 9 * _DAY,
            "deploy",
            "summarizer",
            "sum-2.0",
            "ci-release",
            "Release sum-2.0.",
        ),
    ]
    unrelated = [
        change(
            "prompt-bot-v13",
            start + 3600.0,
            "prompt",
            "support-bot",
            "system-prompt@v13",
            "dana@support.example",
            "Typo fixes in the greeting; no behaviour change.",
        ),
        change(
            "config-sum-12",
            failure_at - 2.5 * 3600.0,
            "config",
            "summarizer",
            "sum-2.0/cfg-12",
            "ops-bot",
            "Raised the maximum summary length to 400 tokens.",
        ),
        change(
            "pipeline-clickstream",
            failure_at - 50 * 60.0,
            "data-pipeline",
            "clickstream-etl",
            "etl-2026.11.26",
            "airflow",
            "Clickstream sessionisation window 30 -> 20 minutes.",
        ),
        change(
            "deploy-ranker-3.3",
            ranker_deploy_at,
            "deploy",
            "search-ranker",
            "ranker-3.3",
            "ci-release",
            "Release ranker-3.3: new learning-to-rank features.",
        ),
    ]
    cause = change(
        "deploy-bot-1.5",
        bot_deploy_at,
        "deploy",
        "support-bot",
        "bot-1.5",
        "ci-release",
        "Release bot-1.5: shorter system prompt (safety preamble v8), retrieval index 2026-11.",
    )

    # -- users --------------------------------------------------------------------------
    urng = random.Random(f"{prefix}/users")
    n_users = max(len(GROUPS), round(users * scale))
    user_group = urng.choices(GROUPS, _GROUP_WEIGHTS, k=n_users)
    user_region = urng.choices(_REGIONS, _REGION_WEIGHTS, k=n_users)
    user_lang = urng.choices(_LANGUAGES, (0.5, 0.2, 0.12, 0.1, 0.08), k=n_users)

    # -- inference ----------------------------------------------------------------------
    # per (model, group): harmful events / events before and after the failure start
    tally: dict[str, dict[str, list[int]]] = {}
    target_users_after: set[str] = set()
    harmed_users_after: set[str] = set()

    def serve(model: str, rate: float, versions: list[tuple[float, str]]) -> None:
        rng = random.Random(f"{prefix}/{model}")
        base = {g: harmful_rate * rng.uniform(0.75, 1.3) for g in GROUPS}
        counts = tally.setdefault(model, {g: [0, 0, 0, 0] for g in GROUPS})
        short = {"support-bot": "sb", "search-ranker": "sr", "summarizer": "su"}[model]
        for n, at in enumerate(arrivals(rng, rate * scale, start, end)):
            u = rng.randrange(n_users)
            group = user_group[u]
            user_id = f"user-{u:06d}"
            after = at >= failure_at
            p = base[group]
            if model == "support-bot" and after and group == target_group:
                p *= harm_multiplier
            harmful = rng.random() < p
            harm = rng.uniform(0.55, 0.99) if harmful else min(kuma(rng, 1.0, 22.0), 0.49)
            toxicity = kuma(rng, 2.0, 5.0) if harmful else kuma(rng, 1.0, 30.0)
            counts[group][2 * after] += 1
            counts[group][2 * after + 1] += harmful
            if model == "support-bot" and after and group == target_group:
                target_users_after.add(user_id)
                if harmful:
                    harmed_users_after.add(user_id)
            version = next(v for since, v in reversed(versions) if at >= since)
            safety: dict[str, Any] = {"toxicity": round(toxicity, 4), "harmful": round(harm, 4)}
            event: dict[str, Any] = {
                "event_id": f"{prefix}/{short}/{n:07d}",
                "time": format_time(at),
                "model_id": model,
                "model_version": version,
                "prediction_id": f"{prefix}-{short}-{n:07d}",
            }
            if model == "support-bot":
                refuses = 0.25 if version == "bot-1.4" and at >= unhealthy_at else 0.03
                refusal = rng.uniform(0.6, 0.99) if rng.random() < refuses else kuma(rng, 1.0, 40.0)
                safety["refusal"] = round(refusal, 4)
                safety["hallucination"] = round(kuma(rng, 1.3, 10.0), 4)
                event["prediction"] = {
                    "label": rng.choices(_INTENTS, cum_weights=_INTENT_CUM)[0],
                    "score": round(kuma(rng, 6.0, 1.5), 4),
                }
                event["features"] = {
                    "user_id": user_id,
                    "prompt_tokens": int(rng.lognormvariate(math.log(180), 0.5)),
                    "turn": 1 + int(rng.expovariate(0.6)),
                    "language": user_lang[u],
                    "returning_user": rng.random() < 0.6,
                }
                latency = rng.lognormvariate(math.log(850.0), 0.35)
            elif model == "search-ranker":
                event["prediction"] = {"score": round(kuma(rng, 1.5, 3.0), 4)}
                event["features"] = {
                    "user_id": user_id,
                    "query_tokens": 1 + int(rng.expovariate(0.25)),
                    "results": rng.choice((10, 20, 50)),
                    "language": user_lang[u],
                }
                latency = rng.lognormvariate(math.log(40.0), 0.3)
            else:
                safety["refusal"] = round(kuma(rng, 1.0, 60.0), 4)
                safety["hallucination"] = round(kuma(rng, 1.5, 9.0), 4)
                event["prediction"] = {"label": "summary", "score": round(kuma(rng, 3.0, 2.0), 4)}
                event["features"] = {
                    "user_id": user_id,
                    "input_tokens": int(rng.lognormvariate(math.log(1200), 0.6)),
                    "language": user_lang[u],
                }
                latency = rng.lognormvariate(math.log(1500.0), 0.4)
            event["segment"] = {
                "group": group,
                "channel": rng.choices(_CHANNELS, cum_weights=_CHANNEL_CUM)[0],
                "region": user_region[u],
            }
            event["safety"] = safety
            event["latency_ms"] = round(latency, 1)
            rec.add(at, "inference", model, event)

    serve("support-bot", bot_rate, [(start - 3 * _DAY, "bot-1.4"), (bot_deploy_at, "bot-1.5")])
    serve("search-ranker", ranker_rate, [(start, "ranker-3.2"), (ranker_deploy_at, "ranker-3.3")])
    serve("summarizer", summarizer_rate, [(start, "sum-2.0")])

    records = rec.records()
    sim = Simulation(records)
    first, last = rec.span()

    def rates(counts: list[int]) -> dict[str, Any]:
        before_n, before_h, after_n, after_h = counts
        return {
            "before": {
                "events": before_n,
                "harmful": before_h,
                "rate": round(before_h / before_n, 5) if before_n else None,
            },
            "after": {
                "events": after_n,
                "harmful": after_h,
                "rate": round(after_h / after_n, 5) if after_n else None,
            },
        }

    target = tally["support-bot"][target_group]
    sim.truth = {
        "scenario": "chatbot",
        "seed": seed,
        "scale": scale,
        **time_fields("data_start", first),
        **time_fields("data_end", last),
        **time_fields("traffic_start", start),
        **time_fields("failure_start", failure_at),
        "failing_subjects": ["support-bot"],
        "failure": f"harmful rate of {target_group} on support-bot x{harm_multiplier:g}",
        "metric": "safety.harmful > 0.5",
        "affected_segment": {"group": target_group},
        "causing_change_id": cause["event_id"],
        "causing_change": change_summary(cause),
        "unrelated_change_ids": [c["event_id"] for c in unrelated],
        "baseline_change_ids": [c["event_id"] for c in baseline],
        "last_known_good": {
            "model_id": "support-bot",
            "version": good["version"],
            "change_id": good["event_id"],
        },
        "expected_downstream": [],
        "counts": {
            "records": len(records),
            **sim.counts(),
            "target_events_after": target[2],
            "target_harmful_after": target[3],
            "affected_users": len(target_users_after),
            "harmed_users": len(harmed_users_after),
        },
        "harmful_rates": {
            model: {g: rates(c) for g, c in groups.items()} for model, groups in tally.items()
        },
        "options": {
            "hours": hours,
            "failure_after_hours": failure_after_hours,
            "bot_rate": bot_rate,
            "ranker_rate": ranker_rate,
            "summarizer_rate": summarizer_rate,
            "users": users,
            "harmful_rate": harmful_rate,
            "harm_multiplier": harm_multiplier,
            "target_group": target_group,
            "deploy_lead_s": deploy_lead_s,
            "start": start,
            "known_good_unhealthy": known_good_unhealthy,
        },
    }
    if known_good_unhealthy:
        sim.truth["known_good_unhealthy"] = {
            "model_id": "support-bot",
            "version": good["version"],
            **time_fields("since", unhealthy_at),
            "metric": "safety.refusal > 0.5",
            "stream_key": f"support-bot|{good['version']}",
        }
    return sim
