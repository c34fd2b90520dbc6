"""The reports as Markdown, written from their data so the two forms cannot disagree.

Placeholders stand out (**[TO FILL]**) and are listed again as a checklist at
the end, because the person finishing a report at 3 a.m. should not have to
hunt for the gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from riskstream.core.reports.facts import is_to_fill, walk_placeholders
from riskstream.core.reports.settings import RACI_ROLES

__all__ = ["render_markdown"]

MARK = "**[TO FILL]**"


def render_markdown(report: Mapping[str, Any]) -> str:
    if report["kind"] == "art73":
        lines = _art73(report)
        lines += ["", "## Still to fill before filing", ""]
        lines += [f"- [ ] `{path}`: {prompt}" for path, prompt in walk_placeholders(report)]
    else:
        lines = _postmortem(report)  # a template throughout: no checklist of its gaps
    return "\n".join(lines).rstrip() + "\n"


def _v(value: Any) -> str:
    """One value as table-safe text.

    >>> _v({"to_fill": "who"}), _v(None), _v(["a|b", "c"]), _v(True)
    ('**[TO FILL]** who', '—', 'a\\\\|b, c', 'yes')
    """
    if is_to_fill(value):
        return f"{MARK} {value['to_fill']}"
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_v(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_v(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fields(rows: Iterable[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {label} | {_v(value)} |" for label, value in rows)]


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_v(c) for c in row) + " |" for row in rows]
    return out


def _deadline_line(deadline: Any) -> str:
    if is_to_fill(deadline):
        return f"> {MARK} {deadline['to_fill']}"
    days = deadline["report_within_days"]
    within = "" if days is None else f", {days:g} days after the provider became aware"
    return (
        f"> **Reporting deadline: {deadline['report_deadline']} ({_left(deadline)} as of "
        f"{deadline['as_of']})**{within} ({deadline['framework']}, Article "
        f"{deadline['article']})."
    )


def _left(deadline: Mapping[str, Any]) -> str:
    left = deadline["days_left"]
    return f"OVERDUE by {-left:g} days" if deadline["overdue"] else f"{left:g} days left"


def _serving(routing: Mapping[str, Any] | None) -> str:
    if routing is None:
        return "—"
    return (
        f"{routing['version']}, mode {routing['mode']}, {routing['traffic_fraction']:.0%} of "
        f"traffic, set by {routing['set_by']} at {routing['since']} ({routing['reason']})"
    )


def _due(deadline: Mapping[str, Any] | None) -> str:
    if deadline is None:
        return "not marked as a potential serious incident"
    return (
        f"potential serious incident, report due {deadline['report_deadline']} ({_left(deadline)})"
    )


def _art73(r: Mapping[str, Any]) -> list[str]:
    p, s, i, w = r["provider"], r["ai_system"], r["incident"], r["when"]
    a, c, fix = r["affected"], r["causes"], r["corrective_actions"]
    lines = [
        f"# {r['title']}",
        "",
        f"**DRAFT** made by riskstream from incident `{r['incident_id']}` as of {r['as_of']}. "
        f"Every field marked {MARK} needs a person's answer before this is filed; "
        "they are listed at the end.",
        *_tickets_lines(r),
        "",
        _deadline_line(r["deadline"]),
        "",
        f"Report type: {_v(r['report_type'])}",
        *_story_lines(r),
        "",
        "## 1. Provider",
        "",
        *_fields([("Name", p["name"]), ("Address", p["address"]), ("Contact", p["contact"])]),
        "",
        "## 2. AI system",
        "",
        *_fields(
            [
                ("Model id", s["model_id"]),
                ("Name", s["name"]),
                ("Version in service at onset", s["version"]),
                ("Intended purpose", s["intended_purpose"]),
                ("Risk class", s["risk_class"]),
                ("EU database registration", s["eu_database_id"]),
            ]
        ),
        "",
        "## 3. What happened",
        "",
        i["headline"],
        "",
        *_fields(
            [
                ("Type", f"{i['type']} ({i['severity']})"),
                ("Potential serious incident", i["potential_serious_incident"]),
                ("Category (Article 3(49))", i["serious_incident_category"]),
                ("Evidence", i["evidence"]),
                ("Monitor", i["monitor"]),
                ("Stream", i["stream_key"]),
                ("Status", i["status"]),
                ("Harm", i["harm"]),
            ]
        ),
        "",
        "## 4. When",
        "",
        *_fields(
            [
                ("Onset (estimated)", w["onset_estimated"]),
                ("Detected", w["detected"]),
                ("Provider aware (the deadline counts from here)", w["provider_aware"]),
                ("Recorded by riskstream", w["recorded"]),
                ("Acknowledged", w["acknowledged"]),
            ]
        ),
        "",
        "## 5. Who may be affected",
        "",
        *_fields(
            [
                ("Reach", a["summary"]),
                ("Segments", a["segments"]),
                ("Affected events since onset", a["affected_events"]),
                ("Downstream systems", a["downstream"]),
                ("Estimated cost", a["estimated_cost"]),
                ("Persons affected", a["persons_affected"]),
                ("Member State(s)", a["member_states"]),
            ]
        ),
        "",
        "## 6. Suspected causes",
        "",
    ]
    if root := c.get("root_cause"):
        lines += [
            f"Root cause first: {_v(root['what'])} (incident `{root['incident_id']}`, estimated "
            f"onset {root['onset_estimated']}): {_v(root['why_root'])}.",
            "",
        ]
        lines += [
            f"- root: {_v(x['summary'])} (`{x['event_id']}`)" for x in root["suspected_changes"]
        ]
        lines += [""] if root["suspected_changes"] else []
    suspects = c["suspected_changes"]
    lines += [
        f"{n}. {_v(x['summary'])}: {_v(x.get('description'))} (`{x['event_id']}`)"
        for n, x in enumerate(suspects, 1)
    ] or ["No change events on the system or upstream near the onset."]
    lines += ["", f"Causal link: {_v(c['causal_link'])}", "", "## 7. Corrective actions", ""]
    lines += _table(
        ["When", "What", "By", "Detail"],
        ([x["at"], x["kind"], x["by"], x["what"]] for x in fix["taken"]),
    )
    lines += [
        "",
        *_fields(
            [
                ("Serving now", _serving(fix["current_routing"])),
                ("Further measures", fix["further_measures"]),
                ("Evidence preserved", fix["evidence_preserved"]),
            ]
        ),
    ]
    return lines


def _postmortem(r: Mapping[str, Any]) -> list[str]:
    s, imp, roles = r["summary"], r["impact"], r["roles"]
    lines = [
        f"# {r['title']}",
        "",
        f"> {r['blameless']}",
        "",
        f"Incident `{r['incident_id']}`, skeleton made by riskstream as of {r['as_of']}. "
        f"Fields marked {MARK} are for the post-mortem meeting.",
        *_tickets_lines(r),
        *_story_lines(r),
        "",
        "## Summary",
        "",
        *_fields(
            [
                ("What", s["what"]),
                ("Subject", s["subject"]),
                ("Type", f"{s['type']} ({s['severity']})"),
                ("Status", s["status"]),
                ("Onset (estimated)", s["onset_estimated"]),
                ("Detected", s["detected"]),
                ("Onset to detection", f"{_v(s['hours_onset_to_detection'])} h"),
                ("First contained", s["first_contained"]),
                ("Resolved", s["resolved"]),
            ]
        ),
        "",
        f"Narrative: {_v(s['narrative'])}",
        "",
        "## Impact",
        "",
        *_fields(
            [
                ("Reach", imp["reach"]),
                ("Regulatory", _due(imp["regulatory"])),
                ("On people", imp["on_people"]),
            ]
        ),
        "",
        "## Timeline",
        "",
        *_table(
            ["When (UTC)", "What", "Who", "Detail"],
            ([e["at"], e["kind"], e["by"], e["what"]] for e in r["timeline"]),
        ),
        "",
        f"Serving now: {_v(_serving(r['current_routing']))}",
        "",
        "## Roles (RACI)",
        "",
        *_fields((role.capitalize(), roles[role]) for role in RACI_ROLES),
        "",
        f"From `{roles['source']}` in the config."
        if roles["source"]
        else "No `raci:` in the config.",
        "",
        "## Five whys",
    ]
    for n, why in enumerate(r["five_whys"], 1):
        lines += [
            "",
            f"### {n}. {why['why']}",
            "",
            f"From the record: {_v(why['seed'])}",
            "",
            f"Answer: {_v(why['answer'])}",
        ]
    lines += ["", "## What went well, what went wrong, where we got lucky", ""]
    lines += _fields(
        [("Went well", r["went_well"]), ("Went wrong", r["went_wrong"]), ("Lucky", r["lucky"])]
    )
    lines += ["", "## Action items", ""]
    lines += _table(
        ["Goal", "Action", "Owner", "Due", "Ticket"],
        ([x["goal"], x["action"], x["owner"], x["due"], x["ticket"]] for x in r["action_items"]),
    )
    return lines


def _tickets_lines(r: Mapping[str, Any]) -> list[str]:
    """``Tracked in: jira [OPS-1](url), …`` when the group has tickets."""
    tickets = r.get("tickets") or []
    if not tickets:
        return []
    links = ", ".join(f"{t['system']} [{t['key']}]({t['url']})" for t in tickets)
    return ["", f"Tracked in: {links}"]


def _story_lines(r: Mapping[str, Any]) -> list[str]:
    """The story the incident belongs to, root first, when it belongs to one."""
    story = r.get("story")
    if not story:
        return []
    lines = [
        "",
        "## The story, root cause first",
        "",
        f"Root: {story['root_subject']} (`{story['root_incident_id']}`): {_v(story['why_root'])}.",
        "",
    ]
    lines += _table(
        ["Role", "Incident", "Subject", "What", "Onset (est.)", "Detected", "Because"],
        (
            [m["role"], f"`{m['incident_id'][:12]}`", m["subject"], m["what"],
             m["onset_estimated"], m["detected"], "" if m["role"] == "root" else m["because"]]
            for m in story["members"]
        ),
    )  # fmt: skip
    if story["not_listed"]:
        lines += ["", f"{story['not_listed']} more effects are not listed."]
    return lines
