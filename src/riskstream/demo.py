"""``riskstream demo``: the three situations riskstream exists for, end to end, no servers.

Each situation's seeded simulator produces its traffic (with a recorded ground
truth); the records flow through the embedded pipeline — the same processor and
containment service the Kafka deployment runs — configured by that situation's
config file in ``riskstream/scenarios/``.  The demo then tells each story as a
timeline: the failure starting, its detection and delay, the incident's evidence,
the containment applied or waiting for approval, the approval, the final flags.
Nothing here knows a scenario by name: it reads the truth and the incidents.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TextIO

from riskstream.config import load_config
from riskstream.core.incident_text import no_reference
from riskstream.core.timeutil import format_time, parse_time
from riskstream.embedded import EmbeddedPipeline, EmittedIncident
from riskstream.errors import ContainmentError
from riskstream.progress import Progress
from riskstream.simulate import SCENARIOS

__all__ = ["APPROVER", "SituationResult", "run_demo", "run_situation"]

APPROVER = "dr.a.okafor (clinical safety officer)"
"""Who approves pending actions in the demo: a named person, as the record requires."""


@dataclass(slots=True)
class SituationResult:
    scenario: str
    truth: dict[str, Any]
    incidents: list[dict[str, Any]] = field(default_factory=list)
    false_incidents: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    approved: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # first incident -> related
    # first incident -> its group's story, root first (riskstream.core.stories)
    stories: dict[str, dict[str, Any]] = field(default_factory=dict)
    shifts: list[dict[str, Any]] = field(default_factory=list)  # containment's flag changes

    @property
    def detection_delay_s(self) -> float | None:
        true = [
            i for i in self.incidents if i not in self.false_incidents and not i.get("parent_id")
        ]
        if not true:
            return None
        first = min(parse_time(i["detected_at"]) for i in true)
        return first - float(self.truth["failure_start_epoch"])

    def summary(self) -> dict[str, Any]:
        """One machine-readable summary (``--json``)."""
        keep = ("incident_id", "type", "severity", "subject", "stream_key", "detected_at",
                "onset_at", "parent_id", "children", "regulatory")  # fmt: skip
        return {
            "scenario": self.scenario,
            "ground_truth": self.truth,
            "detection_delay_s": self.detection_delay_s,
            "incidents": [{k: i[k] for k in keep if k in i} for i in self.incidents],
            "false_incidents": len(self.false_incidents),
            "actions_applied": self.applied,
            "actions_pending": self.pending,
            "approvals": self.approved,
            "final_flags": self.flags,
            "incident_groups": self.groups,
            "stories": self.stories,
            "routing_changes": self.shifts,
        }


def _is_true(incident: dict[str, Any], truth: dict[str, Any]) -> bool:
    """Does an incident point at the recorded failure (subject, time, segment)?"""
    if parse_time(incident["detected_at"]) < truth["failure_start_epoch"]:
        return False
    if incident["subject"] not in truth["failing_subjects"]:
        return False
    if incident.get("parent_id"):
        return True
    return all(str(v) in incident["stream_key"] for k, v in truth["affected_segment"].items()
               if k != "line_id")  # fmt: skip


def run_situation(
    scenario: str, seed: int = 7, approve: bool = True, progress: TextIO | None = None
) -> tuple[SituationResult, EmbeddedPipeline]:
    sim = SCENARIOS[scenario](seed)
    config = load_config(str(resources.files("riskstream").joinpath(f"scenarios/{scenario}.yaml")))
    total = len(sim.records)

    bar = None if progress is None else Progress(f"  [{scenario}]", total, progress)

    def tick(n: int) -> None:
        if bar is not None:
            bar.update(n)

    result = SituationResult(scenario, sim.truth)

    def review(pipeline: EmbeddedPipeline) -> None:
        """A person looks at what waits for them (in the demo, as soon as it appears)."""
        for pending in pipeline.containment.pending():
            result.pending.append(
                {"action_id": pending.action_id, "model_id": pending.model_id,
                 "action": pending.action["kind"], "incident_id": pending.incident_id,
                 "requested_at": format_time(pending.requested_at),
                 "expires_at": None if pending.expires_at is None
                 else format_time(pending.expires_at)}
            )  # fmt: skip
            if not approve:
                continue
            try:
                decided = pipeline.containment.decide(
                    pending.action_id, "approved", APPROVER, "reviewed the evidence in the demo"
                )
                result.approved.append(
                    {"action_id": decided.action_id, "by": decided.decided_by,
                     "at": format_time(decided.decided_at or 0.0)}
                )  # fmt: skip
            except ContainmentError as exc:
                result.approved.append({"action_id": pending.action_id, "error": str(exc)})

    pipeline = EmbeddedPipeline(config, progress=tick, on_chunk=review)
    pipeline.feed(sim.records)
    if bar is not None:
        bar.close(total)
    latest: dict[str, dict[str, Any]] = {}  # an incident is updated as its episode grows
    for record in pipeline.incidents:
        latest[record.data["incident_id"]] = record.data
        result.applied.extend(_applied(record))
    for incident in latest.values():
        result.incidents.append(incident)
        if not _is_true(incident, sim.truth):
            result.false_incidents.append(incident)
    result.flags = {m: f.to_data() for m, f in sorted(pipeline.flags().items())}
    result.shifts = [
        {"model_id": e.model_id, "at": format_time(e.at), "version": e.after["active_version"],
         "mode": e.after["mode"], "traffic_fraction": e.after.get("traffic_fraction", 1.0),
         "previous_version": e.after.get("previous_version"), "reason": e.after["reason"]}
        for e in pipeline.containment.audit()
        if "active_version" in e.after and e.after.get("incident_id")
    ]  # fmt: skip
    for stored in sorted(pipeline.records.recent(10_000), key=lambda r: r.detected_at):
        if stored.group != stored.incident_id:
            result.groups.setdefault(stored.group, []).append(stored.incident_id)
        if stored.story:
            result.stories[stored.incident_id] = dict(stored.story)
    pipeline.close()
    return result, pipeline


def _applied(record: EmittedIncident) -> list[dict[str, Any]]:
    return [
        {"incident_id": record.data["incident_id"], "subject": record.data["subject"],
         "outcome": outcome}
        for outcome in record.outcomes
        if outcome == "applied"
    ]  # fmt: skip


def run_demo(
    scenarios: list[str] | None = None, seed: int = 7, out: TextIO | None = None,
    progress: TextIO | None = None,
) -> list[SituationResult]:  # fmt: skip
    out = out or sys.stdout
    results = []
    for scenario in scenarios or list(SCENARIOS):
        result, _ = run_situation(scenario, seed, progress=progress)
        results.append(result)
        _tell(result, out)
    return results


def _clock(epoch: float) -> str:
    return format_time(epoch)[:-5].replace("T", " ") + "Z"


def _tell(r: SituationResult, out: TextIO) -> None:
    t = r.truth

    def p(text: str) -> None:
        print(text, file=out)

    p(f"\n=== {r.scenario}: {t['failure']} (seed {t['seed']}) ===")
    counts = t["counts"]
    p(f"  traffic       {counts['records']:,} events from {_clock(t['traffic_start_epoch'])}"
      f" to {_clock(t['data_end_epoch'])}")  # fmt: skip
    cause = t.get("causing_change") or {}
    p(f"  ground truth  the failure starts {_clock(t['failure_start_epoch'])} on "
      f"{', '.join(t['failing_subjects'])}; caused by {cause.get('kind')} "
      f"{cause.get('subject')} {cause.get('version', '')}")  # fmt: skip
    # A story opens on its root: incidents in story order (root first), then the rest.
    rank = {m["incident_id"]: (n, k) for n, story in enumerate(r.stories.values())
            for k, m in enumerate(story["members"])}  # fmt: skip
    parents = sorted(
        (i for i in r.incidents if not i.get("parent_id")),
        key=lambda i: (*rank.get(i["incident_id"], (len(rank), 0)), i["detected_at"]),
    )
    if not parents:
        p("  detection     nothing detected")
    for story in r.stories.values():
        root = story["members"][0]
        p(f"  root cause    {root['type']} on {root['subject']} (onset "
          f"~{_clock(parse_time(root['onset_at']))}, incident {story['root'][:12]}): "
          f"{story['why']}")  # fmt: skip
    for inc in parents:
        delay = (parse_time(inc["detected_at"]) - t["failure_start_epoch"]) / 60
        flag = "" if inc not in r.false_incidents else "   <- FALSE incident"
        p(f"  detected      {_clock(parse_time(inc['detected_at']))} ({delay:+.0f} min): "
          f"{inc['severity']} {inc['type']} on {inc['stream_key']}{flag}")  # fmt: skip
        ev = inc["evidence"]
        before = ("no reference before" if no_reference(ev) else
                  f"mean {ev['before']['mean']:.4g} before (sd {ev['before']['std']:.3g}, "
                  f"{ev['before']['count']} samples)")  # fmt: skip
        p(f"    onset       estimated {_clock(parse_time(inc['onset_at']))}; {ev['value']} "
          f"{before}, {ev['after']['mean']:.4g} since onset "
          f"({ev['after']['count']} samples)")  # fmt: skip
        if (episode := ev.get("episode")) and episode["alarms"] > 1:
            p(f"    episode     {episode['alarms']} alarms since {episode['first_detected_at']} "
              f"on {', '.join(episode['streams'])}, one incident")  # fmt: skip
        if gap := ev.get("group_gap"):
            p(f"    group gap   {gap['group']}: {gap['rate']:.2%} vs {gap['rest_rate']:.2%} for "
              f"the rest (x{gap['ratio']:.1f})")  # fmt: skip
        for n, c in enumerate(inc.get("suspected_changes", [])[:3], 1):
            p(f"    suspect {n}   {c['kind']} of {c['subject']} {c.get('version', '')} by "
              f"{c.get('actor', '?')}, {c['lead_seconds'] / 60:.0f} min before onset")  # fmt: skip
        radius = inc.get("blast_radius", {})
        if "affected_users" in radius:
            bound = "at least " if radius.get("affected_users_is_lower_bound") else ""
            p(f"    reach       {bound}{radius['affected_users']:,} users in "
              f"{radius['affected_events']:,} events since onset")  # fmt: skip
        if radius.get("downstream"):
            p(f"    cascade     child incidents for {', '.join(radius['downstream'])}")
        if cost := radius.get("estimated_cost"):
            p(f"    impact      {cost['amount']:,.0f} {cost['currency']} ({cost['basis']})")
        if reg := inc.get("regulatory"):
            due = _clock(parse_time(reg["report_deadline"]))
            p(f"    regulatory  potential serious incident, {reg['framework']} Article "
              f"{reg['article']}: report due {due}")  # fmt: skip
    by_id = {i["incident_id"]: i for i in r.incidents}
    for first, related in r.groups.items():
        told = r.stories.get(first)
        root_id = told["root"] if told else first
        lead = by_id.get(root_id, {})
        members = [first, *related]
        others = sorted({by_id[i]["subject"] for i in members if i in by_id and i != root_id})
        others = [s for s in others if s != lead.get("subject")]
        p(f"  grouped       {len(related) + 1} incidents as one story, root "
          f"{lead.get('type', '?')} on {lead.get('subject', '?')} ({root_id[:12]}); "
          f"effects on {', '.join(others) or 'the same subject'}")  # fmt: skip
    for a in r.applied:
        p(f"  contained     {a['subject']}: {a['outcome']} (incident {a['incident_id'][:12]})")
    for s in r.shifts:
        reason = str(s["reason"])
        if ". " in reason and s["traffic_fraction"] == r.shifts[0]["traffic_fraction"]:
            p(f"    checked     {reason.split('. ', 1)[1]}")  # the target check's words
        rest = f", the rest on {s['previous_version']}" if s["previous_version"] else ""
        share = f"{s['traffic_fraction']:.0%} of users on {s['version']} ({s['mode']}){rest}"
        p(f"    routed      {_clock(parse_time(s['at']))} {s['model_id']}: {share}")
    for pend in r.pending:
        p(f"  pending       {pend['action']} of {pend['model_id']} waits for a person "
          f"since {_clock(parse_time(pend['requested_at']))}")  # fmt: skip
    for ap in r.approved:
        at = _clock(parse_time(ap["at"])) if "at" in ap else "?"
        p(f"  approved      by {ap.get('by', '?')} at {at}"
          + (f" - {ap['error']}" if "error" in ap else ""))  # fmt: skip
    for model, flag in r.flags.items():
        if flag["incident_id"]:
            p(f"  final flag    {model}: version {flag['active_version']}, mode {flag['mode']}, "
              f"{flag['traffic_fraction']:.0%} of traffic, by {flag['actor']}")  # fmt: skip
    delay = r.detection_delay_s
    p(f"  result        detection delay {'n/a' if delay is None else f'{delay / 60:.0f} min'}"
      f", false incidents {len(r.false_incidents)}")  # fmt: skip
