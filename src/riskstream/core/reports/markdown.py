"""The reports as Markdown, written from their data so the two forms cannot disagree.

Placeholders stand out (**[TO FILL]**) and are listed again as a checklist at
the end, because the person finishing a report at 3 a.m. should not have to
hunt for the gaps.

Every value from a record (a summary, a subject, a note, an id, a ticket's link) is
text, never Markdown: whoever wrote it (an incident's publisher, a person's note) must
not be able to add a section, a row, a link, a placeholder or HTML to a report a
compliance officer files.  :func:`_text` and :func:`_code` make it so: line breaks
become spaces, and what Markdown or HTML would read as markup is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from riskstream.core.reports.facts import is_to_fill, time_left, walk_placeholders
from riskstream.core.reports.settings import RACI_ROLES

__all__ = ["render_markdown"]

MARK = "**[TO FILL]**"

# Every way to end a line CommonMark or a browser knows, and the other control characters
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# Markup anywhere in a line: escapes, code, emphasis, links, HTML and autolinks, table
# cells, strikethrough; ``_`` only where it could open or close emphasis (not intraword).
_INLINE = re.compile(r"[\\`*\[\]<>|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# Markup at the start of a line: headings, quotes, bullets and rules, numbered lists
_LEADING = re.compile(r"^(?:[#>]|[-+](?=\s|-|$)|\d{1,9}(?=[.)](?:\s|$)))")


class _Md(str):
    """Text already made Markdown here (a code span): :func:`_v` leaves it as it is."""

    __slots__ = ()


def _text(value: object) -> str:
    r"""A value from a record as plain text in Markdown: one line, markup escaped.

    >>> print(_text("# ok\n1. <b>x</b> [a](b) `c` a_b _d_ |"))
    \# ok 1. \<b\>x\</b\> \[a\](b) \`c\` a_b \_d\_ \|
    >>> print(_text("2. a"), _text("- b"), _text("-1.5 c"), _text("18.5 h"))
    2\. a \- b -1.5 c 18.5 h
    """
    text = _BREAKS.sub(" ", str(value)).strip()
    text = _INLINE.sub(lambda m: "\\" + m.group(0), text)
    lead = _LEADING.match(text)
    if lead is None:
        return text
    if lead.group(0)[0].isdigit():  # "1. x": the dot (or parenthesis) is the list marker
        return f"{text[: lead.end()]}\\{text[lead.end() :]}"
    return "\\" + text


def _code(value: object, cell: bool = False) -> _Md:
    r"""A value from a record (an id) as a code span that no backtick in it can end
    early; ``cell``: inside a table, where a ``|`` would end the cell.

    >>> print(_code("a`b"), _code("x|y", cell=True))
    ``a`b`` `x\|y`
    """
    text = _BREAKS.sub(" ", str(value))
    if cell:
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _Md(f"{fence}{pad}{text}{pad}{fence}")


def _link(text: object, url: object) -> str:
    """A link to a web address given by a record (a ticket's), its text escaped; any
    other address is shown as text, not linked."""
    where = _BREAKS.sub("", str(url)).strip()
    if not re.match(r"https?://", where, re.IGNORECASE):
        return f"{_text(text)} ({_text(where)})" if where else _text(text)
    for char, code in (("<", "%3C"), (">", "%3E"), (" ", "%20"), ("(", "%28"), (")", "%29")):
        where = where.replace(char, code)
    return f"[{_text(text)}]({where})"


def render_markdown(report: Mapping[str, Any]) -> str:
    if report["kind"] == "art73":
        lines = _art73(report)
        lines += ["", "## Still to fill before filing", ""]
        lines += [
            f"- [ ] {_code(path)}: {_text(prompt)}" for path, prompt in walk_placeholders(report)
        ]
    else:
        lines = _postmortem(report)  # a template throughout: no checklist of its gaps
    return "\n".join(lines).rstrip() + "\n"


def _v(value: Any) -> str:
    """One value as table-safe text.

    >>> _v({"to_fill": "who"}), _v(None), _v(["a|b", "c"]), _v(True), _v(-1.5)
    ('**[TO FILL]** who', '—', 'a\\\\|b, c', 'yes', '-1.5')
    """
    if isinstance(value, _Md):
        return value
    if is_to_fill(value):
        return f"{MARK} {_text(value['to_fill'])}"
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_v(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{_text(k)}: {_v(v)}" for k, v in value.items())
    if isinstance(value, int | float):
        return str(value)
    return _text(value)


def _fields(rows: Iterable[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {label} | {_v(value)} |" for label, value in rows)]


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_v(c) for c in row) + " |" for row in rows]
    return out


def _deadline_line(deadline: Any) -> str:
    if is_to_fill(deadline):
        return f"> {MARK} {_text(deadline['to_fill'])}"
    days = deadline["report_within_days"]
    within = "" if days is None else f", {days:g} days after the provider became aware"
    return (
        f"> **Reporting deadline: {_text(deadline['report_deadline'])} ({_left(deadline)} as "
        f"of {_text(deadline['as_of'])})**{within} ({_text(deadline['framework'])}, Article "
        f"{_text(deadline['article'])})."
    )


def _left(deadline: Mapping[str, Any]) -> str:
    return time_left(deadline)


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
        f"# {_text(r['title'])}",
        "",
        f"**DRAFT** made by riskstream from incident {_code(r['incident_id'])} as of "
        f"{_text(r['as_of'])}. "
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
        _text(i["headline"]),
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
            f"Root cause first: {_v(root['what'])} (incident {_code(root['incident_id'])}, "
            f"estimated onset {_v(root['onset_estimated'])}): {_v(root['why_root'])}.",
            "",
        ]
        lines += [
            f"- root: {_v(x['summary'])} ({_code(x['event_id'])})"
            for x in root["suspected_changes"]
        ]
        lines += [""] if root["suspected_changes"] else []
    suspects = c["suspected_changes"]
    lines += [
        f"{n}. {_v(x['summary'])}: {_v(x.get('description'))} ({_code(x['event_id'])})"
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
        f"# {_text(r['title'])}",
        "",
        f"> {_text(r['blameless'])}",
        "",
        f"Incident {_code(r['incident_id'])}, skeleton made by riskstream as of "
        f"{_text(r['as_of'])}. "
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
        f"From {_code(roles['source'])} in the config."
        if roles["source"]
        else "No `raci:` in the config.",
        "",
        "## Five whys",
    ]
    for n, why in enumerate(r["five_whys"], 1):
        lines += [
            "",
            f"### {n}. {_text(why['why'])}",
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
    links = ", ".join(f"{_text(t['system'])} {_link(t['key'], t['url'])}" for t in tickets)
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
        f"Root: {_text(story['root_subject'])} ({_code(story['root_incident_id'])}): "
        f"{_v(story['why_root'])}.",
        "",
    ]
    lines += _table(
        ["Role", "Incident", "Subject", "What", "Onset (est.)", "Detected", "Because"],
        (
            [m["role"], _code(m["incident_id"][:12], cell=True), m["subject"], m["what"],
             m["onset_estimated"], m["detected"], "" if m["role"] == "root" else m["because"]]
            for m in story["members"]
        ),
    )  # fmt: skip
    if story["not_listed"]:
        lines += ["", f"{story['not_listed']} more effects are not listed."]
    return lines
