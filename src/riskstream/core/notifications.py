"""Incidents as the webhooks on-call tools already understand.

Three shapes, built from an incident's data and its CloudEvent type, no I/O:
Alertmanager's webhook payload (version 4, so anything that takes Alertmanager's
webhooks takes ours), a PagerDuty Events API v2 event, and a Slack-compatible
message (``text`` plus Block Kit ``blocks``; Mattermost and others read it too).

Which events notify: an opened incident and a resolved one, always; an update
(the same incident, more evidence) only for receivers that ask for updates —
whether an update escalated cannot be known without remembering the last one.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from riskstream.core.delivery import RetryPolicy
from riskstream.core.incident_text import details, headline
from riskstream.core.incidents import INCIDENT_OPENED, INCIDENT_UPDATED

__all__ = [
    "INCIDENT_OPENED",
    "INCIDENT_UPDATED",
    "RECEIVER_KINDS",
    "SEVERITIES",
    "NotificationSettings",
    "Receiver",
    "alertmanager_payload",
    "build_payload",
    "event_of",
    "incident_link",
    "pagerduty_event",
    "slack_message",
]

RECEIVER_KINDS = ("alertmanager", "pagerduty", "slack")
SEVERITIES = ("info", "warning", "critical")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
PAGERDUTY_SUMMARY_MAX = 1024
ALERTMANAGER_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000

Event = Literal["opened", "updated", "resolved"]


def event_of(ce_type: str | None, incident: Mapping[str, Any]) -> Event:
    """What happened to the incident: its status wins over the CloudEvent type.

    >>> event_of(INCIDENT_UPDATED, {"status": "resolved"}), event_of(None, {"status": "open"})
    ('resolved', 'opened')
    """
    if incident.get("status") == "resolved":
        return "resolved"
    return "updated" if ce_type == INCIDENT_UPDATED else "opened"


@dataclass(frozen=True, slots=True)
class Receiver:
    """One webhook destination and what it wants to hear about.

    The URL may itself be a secret (a Slack webhook URL is): it is kept out of
    ``repr`` and never logged; ``url_env`` names an environment variable to read it
    from instead.  A PagerDuty routing key is only ever read from the environment.
    """

    name: str
    kind: str
    url: str | None = field(default=None, repr=False)
    url_env: str | None = None
    routing_key_env: str | None = None
    min_severity: str = "info"
    types: frozenset[str] = frozenset()
    subjects: tuple[str, ...] = ()  # shell-style patterns
    updates: bool = False
    timeout_s: float = 10.0
    origin: str = field(default="", compare=False)  # "file:line", for errors at start

    def wants(self, incident: Mapping[str, Any], event: Event) -> bool:
        """Whether this receiver is told about ``event`` on ``incident``."""
        if event == "updated" and not self.updates:
            return False
        severity = str(incident.get("severity"))
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
        if rank < SEVERITIES.index(self.min_severity):
            return False
        if self.types and incident.get("type") not in self.types:
            return False
        subject = str(incident.get("subject"))
        return not self.subjects or any(fnmatch.fnmatchcase(subject, p) for p in self.subjects)


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    """The ``notifications:`` section of the config file."""

    receivers: tuple[Receiver, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter_topic: str = "riskstream.notifications.dead"
    console_url: str | None = None
    group_id: str = "riskstream-notifier"
    batch_size: int = 50


def incident_link(console_url: str | None, incident_id: str) -> str | None:
    """Where the console shows the incident (its route: ``/incidents/ID``), if configured.

    >>> incident_link("https://rs.example/", "a b")
    'https://rs.example/incidents/a%20b'
    """
    if not console_url:
        return None
    return f"{console_url.rstrip('/')}/incidents/{quote(incident_id, safe='')}"


def _fingerprint(incident_id: str) -> str:
    """Stable per incident, so Alertmanager-style receivers pair firing with resolved."""
    return hashlib.sha256(f"riskstream\x1f{incident_id}".encode()).hexdigest()[:16]


def alertmanager_payload(
    incident: Mapping[str, Any],
    event: Event,
    receiver: str,
    event_time: str,
    console_url: str | None = None,
) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4), one alert per incident."""
    incident_id = str(incident["incident_id"])
    status = "resolved" if event == "resolved" else "firing"
    labels = {
        "alertname": "RiskstreamIncident",
        "incident_id": incident_id,
        "severity": str(incident.get("severity")),
        "incident_type": str(incident.get("type")),
        "subject": str(incident.get("subject")),
        "monitor": str(incident.get("monitor")),
        "stream_key": str(incident.get("stream_key")),
    }
    annotations = {
        "summary": headline(incident, event),
        "description": "\n".join(details(incident, event)),
        "onset_at": str(incident.get("onset_at")),
        "detected_at": str(incident.get("detected_at")),
    }
    regulatory = incident.get("regulatory")
    if isinstance(regulatory, Mapping) and regulatory.get("report_deadline"):
        annotations["report_deadline"] = str(regulatory["report_deadline"])
    link = incident_link(console_url, incident_id)
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": str(incident.get("detected_at")),
        "endsAt": event_time if status == "resolved" else ALERTMANAGER_ZERO_TIME,
        "generatorURL": link or "",
        "fingerprint": _fingerprint(incident_id),
    }
    escaped = incident_id.replace("\\", "\\\\").replace('"', '\\"')
    return {
        "version": "4",
        "groupKey": f'{{}}/{{source="riskstream"}}:{{incident_id="{escaped}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"incident_id": incident_id},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": console_url or "",
        "alerts": [alert],
    }


def pagerduty_event(
    incident: Mapping[str, Any],
    event: Event,
    routing_key: str,
    console_url: str | None = None,
) -> dict[str, Any]:
    """A PagerDuty Events API v2 event; the incident id is the dedup key.

    An update is a ``trigger`` with the same dedup key (PagerDuty folds it into
    the open alert); a resolution needs nothing but the key.
    """
    incident_id = str(incident["incident_id"])
    if event == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": incident_id}
    summary = headline(incident, event)
    if len(summary) > PAGERDUTY_SUMMARY_MAX:
        summary = summary[: PAGERDUTY_SUMMARY_MAX - 1] + "…"
    custom = {
        "details": details(incident, event),
        **{
            k: incident[k]
            for k in ("monitor", "stream_key", "onset_at", "detected_at", "status", "evidence",
                      "blast_radius", "suspected_changes", "regulatory", "actions", "parent_id")
            if incident.get(k) is not None
        },
    }  # fmt: skip
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": incident_id,
        "payload": {
            "summary": summary,
            "source": str(incident.get("subject")),
            "severity": PAGERDUTY_SEVERITY.get(str(incident.get("severity")), "error"),
            "timestamp": str(incident.get("detected_at")),
            "component": str(incident.get("stream_key")),
            "group": str(incident.get("monitor")),
            "class": str(incident.get("type")),
            "custom_details": custom,
        },
        "client": "riskstream",
    }
    if link := incident_link(console_url, incident_id):
        body["client_url"] = link
        body["links"] = [{"href": link, "text": "The incident in the riskstream console"}]
    return body


_SLACK_ICON = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}


def _mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(
    incident: Mapping[str, Any], event: Event, console_url: str | None = None
) -> dict[str, Any]:
    """``text`` (what a phone's notification shows) plus Block Kit blocks."""
    title = headline(incident, event)
    icon = (
        ":white_check_mark:"
        if event == "resolved"
        else _SLACK_ICON.get(str(incident.get("severity")), ":grey_question:")
    )
    body = "\n".join(_mrkdwn(line) for line in details(incident, event))
    footer = f"riskstream incident `{_mrkdwn(str(incident['incident_id']))}`"
    if link := incident_link(console_url, str(incident["incident_id"])):
        footer += f" · <{link}|open in the console>"
    return {
        "text": f"{icon} {_mrkdwn(title)}",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _clip(f"{icon} {title}", SLACK_HEADER_MAX),
                    "emoji": True,
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, SLACK_SECTION_MAX)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
        ],
    }


def build_payload(
    receiver: Receiver,
    incident: Mapping[str, Any],
    event: Event,
    event_time: str,
    console_url: str | None = None,
    routing_key: str = "",
) -> dict[str, Any]:
    """The JSON body ``receiver`` gets for ``event`` on ``incident``."""
    if receiver.kind == "alertmanager":
        return alertmanager_payload(incident, event, receiver.name, event_time, console_url)
    if receiver.kind == "pagerduty":
        return pagerduty_event(incident, event, routing_key, console_url)
    if receiver.kind == "slack":
        return slack_message(incident, event, console_url)
    raise ValueError(f"unknown receiver kind {receiver.kind!r}; known: {RECEIVER_KINDS}")
