"""A report of one incident of a grouped story opens on the story's root.

The incident someone opens a report from is often an effect (the model that went
flat), not the cause (the sensor feeding it).  So a report of any member of a
story (:mod:`riskstream.core.stories`) opens on the root, lists the effects with
what explains each, and walks the five whys from an effect up to the root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from riskstream.core.incident_records import IncidentRecord, headline
from riskstream.core.reports.facts import evidence_summary, suspect_summary

__all__ = ["Story"]

MAX_CHAIN = 10  # links walked from an effect to the root (a story is shallow)


@dataclass(frozen=True, slots=True)
class Story:
    """A group's story (the ``story`` of its first record) and the records of its
    members that could be read (a member missing here is reported from the story)."""

    data: Mapping[str, Any]
    records: Mapping[str, IncidentRecord] = field(default_factory=dict)

    @property
    def root_id(self) -> str:
        return str(self.data["root"])

    @property
    def members(self) -> list[Mapping[str, Any]]:
        return list(self.data.get("members") or ())

    def root(self, fallback: IncidentRecord) -> IncidentRecord:
        """The root's record (``fallback`` when it could not be read)."""
        return self.records.get(self.root_id, fallback)

    def outline(self, asked: str) -> dict[str, Any]:
        """The story for a report: root first, then the effects and what explains each."""
        rows = []
        for m in self.members:
            record = self.records.get(str(m["incident_id"]))
            rows.append(
                {
                    "incident_id": m["incident_id"],
                    "role": m["role"],
                    "subject": m["subject"],
                    "type": m["type"],
                    "onset_estimated": m["onset_at"],
                    "detected": m["detected_at"],
                    "what": headline(record.incident) if record else m["type"],
                    "because": m.get("because") or self.data.get("why"),
                }
            )
        return {
            "root_incident_id": self.root_id,
            "root_subject": self.data.get("root_subject"),
            "why_root": self.data.get("why"),
            "asked_about": asked,
            "members": rows,
            "not_listed": int(self.data.get("more") or 0),
        }

    def first_effect(self, asked: str) -> Mapping[str, Any] | None:
        """Where the whys start: the incident asked about if it is an effect with evidence
        of its own, else the last such effect (the furthest downstream)."""
        effects = [m for m in self.members if m["role"] == "effect"]
        own = [m for m in effects if not m.get("parent_id")] or effects
        return next((m for m in own if m["incident_id"] == asked), own[-1] if own else None)

    def chain(self, start: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """From ``start`` up to the root: each member, then the one that explains it."""
        by_id = {str(m["incident_id"]): m for m in self.members}
        chain, seen = [start], {str(start["incident_id"])}
        while len(chain) < MAX_CHAIN and chain[-1]["role"] != "root":
            up = by_id.get(str(chain[-1].get("explained_by") or self.root_id))
            if up is None or str(up["incident_id"]) in seen:
                up = by_id.get(self.root_id)
                if up is None or str(up["incident_id"]) in seen:
                    break
            chain.append(up)
            seen.add(str(up["incident_id"]))
        return chain

    def whys(self, asked: str) -> list[tuple[str, str]]:
        """(why, seed) from an effect up to the root, one per link."""
        start = self.first_effect(asked)
        if start is None:
            return []
        chain = self.chain(start)
        out = []
        for effect, cause in pairwise(chain):
            record = self.records.get(str(effect["incident_id"]))
            ev = evidence_summary(record.incident) if record else effect["type"]
            up = self.records.get(str(cause["incident_id"]))
            what = headline(up.incident) if up else cause["type"]
            link = (
                f"{effect['subject']} is fed by {cause['subject']} (declared lineage)"
                if effect.get("explained_by") == cause["incident_id"]
                else f"no declared lineage links {effect['subject']} to {cause['subject']}, "
                f"whose change began earlier: check whether one feeds the other"
            )
            out.append(
                (
                    f"Why did {effect['subject']} fail ({effect['type']}, estimated onset "
                    f"{effect['onset_at']})?",
                    f"{ev}. Because {link}, which changed first: {what}, estimated onset "
                    f"{cause['onset_at']}",
                )
            )
        return out


def root_change_seed(root: IncidentRecord) -> str:
    """What the record knows of why the root changed: the changes nearest its onset."""
    suspects = [suspect_summary(c) for c in root.incident.get("suspected_changes") or ()]
    if suspects:
        return "Changes nearest the onset: " + "; ".join(suspects)
    return (
        "No change events on it or upstream near the onset: was there a change "
        "riskstream does not hear of (data, upstream, traffic mix)?"
    )
