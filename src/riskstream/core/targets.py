"""Target checks: is the version containment is about to route to healthy, by the
evidence riskstream holds?  Pure: the containment service gathers the evidence
(incident store, audit trail) and hands it here as data.

A rollback that routes to a version which is itself failing trades one incident
for another.  So before a route-to-version or fallback action applies, each of
its candidate targets is judged in order, and the first one that passes is taken:

- a target with an **open incident** that names it is refused — an incident whose
  subject is the target, or whose subject is the model and whose stream key names
  the target (a monitor keyed per version, ``key: [model_id, model_version]``), or
  one for which containment already moved traffic away from the target;
- a target with **no evidence** is refused only where the action says
  ``require_evidence: true``.  Evidence of health is the audit trail showing the
  target served the model and was left for a reason other than an incident
  (a deploy, a person); riskstream invents none where it has none.

The words of each verdict go into the flag's reason, the incident's timeline and
the audit trail, so they are written for the person paged at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from riskstream.core.fields import split_key

__all__ = [
    "Evidence",
    "OpenIncident",
    "Served",
    "Verdict",
    "choose",
    "explain",
    "judge",
    "names_target",
]


@dataclass(frozen=True, slots=True)
class OpenIncident:
    incident_id: str
    headline: str  # what it is about, in a few words


@dataclass(frozen=True, slots=True)
class Served:
    """One stretch of the audit trail in which the target served the model."""

    until_reason: str  # why it stopped serving ('' if it still serves)
    left_for_incident: str | None = None  # the incident containment left it for, if any


@dataclass(frozen=True, slots=True)
class Evidence:
    """What riskstream holds about one candidate target of one model."""

    model_id: str
    target: str  # a version name (or the fallback's)
    label: str  # how the playbook named it: last-known-good, fallback or the version
    open_incidents: tuple[OpenIncident, ...] = ()
    served: tuple[Served, ...] = ()  # oldest first, from the audit trail
    problem: str = ""  # the candidate could not even be named (no fallback configured…)


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    label: str
    ok: bool
    why: str

    def to_data(self) -> dict[str, Any]:
        return {"target": self.target, "label": self.label, "ok": self.ok, "why": self.why}


def names_target(incident: Mapping[str, Any], model_id: str, target: str) -> bool:
    """Is the incident about ``target`` (a version or fallback of ``model_id``)?

    >>> names_target({"subject": "bot", "stream_key": "bot|bot-1.4"}, "bot", "bot-1.4")
    True
    >>> names_target({"subject": "bot", "stream_key": "bot|group-c"}, "bot", "bot-1.4")
    False
    >>> names_target({"subject": "canned-v1", "stream_key": "canned-v1"}, "bot", "canned-v1")
    True
    """
    subject = str(incident.get("subject", ""))
    if subject == target:
        return True
    return subject == model_id and target in split_key(str(incident.get("stream_key", "")))


def judge(evidence: Evidence, require_evidence: bool) -> Verdict:
    """One candidate's verdict, with the reason in plain words.

    >>> ok = Evidence("bot", "bot-1.4", "last-known-good", served=(Served("deploy bot-1.5"),))
    >>> judge(ok, require_evidence=True).why
    'bot-1.4 (last-known-good): no open incident names it; it served bot until deploy bot-1.5'
    >>> sick = Evidence("bot", "bot-1.4", "last-known-good", (OpenIncident("ab12", "refusal up"),))
    >>> judge(sick, require_evidence=False).why
    'bot-1.4 (last-known-good) is not healthy: open incident ab12 (refusal up)'
    >>> print(judge(Evidence("bot", "canned-v1", "fallback"), require_evidence=True).why)
    canned-v1 (fallback): no evidence it is healthy (it never served bot in the audit trail), \
and the playbook requires some
    """
    name = evidence.target if evidence.label == evidence.target else (
        f"{evidence.target} ({evidence.label})"
    )  # fmt: skip
    if evidence.problem:
        return Verdict(
            evidence.target, evidence.label, False, f"{evidence.label}: {evidence.problem}"
        )
    if evidence.open_incidents:
        listed = "; ".join(f"{i.incident_id} ({i.headline})" for i in evidence.open_incidents[:3])
        more = len(evidence.open_incidents) - 3
        plural = "s" if len(evidence.open_incidents) > 1 else ""
        tail = f" and {more} more" if more > 0 else ""
        return Verdict(
            evidence.target, evidence.label, False,
            f"{name} is not healthy: open incident{plural} {listed}{tail}",
        )  # fmt: skip
    healthy = [s for s in evidence.served if s.left_for_incident is None]
    if healthy:
        last = healthy[-1]
        until = f"until {last.until_reason}" if last.until_reason else "and still does"
        return Verdict(
            evidence.target, evidence.label, True,
            f"{name}: no open incident names it; it served {evidence.model_id} {until}",
        )  # fmt: skip
    if evidence.served:
        seen = f"it served {evidence.model_id} only until containment left it for incident " + (
            f"{evidence.served[-1].left_for_incident} (now resolved)"
        )
    else:
        seen = f"it never served {evidence.model_id} in the audit trail"
    if require_evidence:
        return Verdict(
            evidence.target, evidence.label, False,
            f"{name}: no evidence it is healthy ({seen}), and the playbook requires some",
        )  # fmt: skip
    return Verdict(
        evidence.target, evidence.label, True,
        f"{name}: no open incident names it ({seen}; the playbook does not require more)",
    )  # fmt: skip


def choose(
    candidates: Sequence[Evidence], require_evidence: bool
) -> tuple[int | None, list[Verdict]]:
    """The index of the first candidate that passes (None: none does), and the
    verdicts up to and including it."""
    verdicts = []
    for index, evidence in enumerate(candidates):
        verdict = judge(evidence, require_evidence)
        verdicts.append(verdict)
        if verdict.ok:
            return index, verdicts
    return None, verdicts


def explain(verdicts: Sequence[Verdict], chosen: int | None) -> str:
    """One sentence for the record: what was chosen and why the others were not.

    >>> v = [Verdict("bot-1.4", "last-known-good", False, "bot-1.4 is not healthy: incident ab"),
    ...      Verdict("canned", "fallback", True, "canned: no open incident names it")]
    >>> print(explain(v, 1))
    bot-1.4 is not healthy: incident ab; so the next candidate instead: canned: no open \
incident names it
    >>> explain(v[:1], None)
    'no healthy target, so a person decides: bot-1.4 is not healthy: incident ab'
    """
    refused = "; ".join(v.why for v in verdicts if not v.ok)
    if chosen is None:
        return f"no healthy target, so a person decides: {refused}"
    pick = verdicts[chosen]
    if not refused:
        return f"target checked: {pick.why}"
    return f"{refused}; so the next candidate instead: {pick.why}"
