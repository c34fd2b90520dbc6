"""Tickets without a network: the config section, what a ticket and its comments say,
what is still owed, and the ticket carried by records and reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskstream.config import load_config
from riskstream.config.tickets import ticket_secrets
from riskstream.core.incident_records import record_incident, resolve, with_entry
from riskstream.core.reports import art73_report, postmortem_report, render_markdown
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.tickets import (
    TicketRef,
    TicketSettings,
    draft,
    markers_in,
    owed_comments,
    wanted,
    with_posted,
    with_ticket,
)
from riskstream.errors import ConfigError
from support import incident

GOOD = """\
version: 1
tickets:
  min_severity: critical
  console_url: https://rs.example
  systems:
    - {name: jira, kind: jira, url: https://acme.atlassian.net, project: OPS,
       user_env: J_USER, token_env: J_TOKEN}
    - {name: gh, kind: github, repo: acme/models, token_env: GH_TOKEN, labels: [incident]}
    - {name: snow, kind: servicenow, url: https://acme.service-now.com,
       user_env: SN_USER, token_env: SN_PASSWORD, close_code: Workaround provided}
"""


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_the_tickets_section_loads(tmp_path: Path) -> None:
    t = load_config(_config(tmp_path, GOOD)).tickets
    assert [s.kind for s in t.systems] == ["jira", "github", "servicenow"]
    assert t.systems[1].url == "https://api.github.com" and t.systems[1].labels == ("incident",)
    assert t.systems[2].close_code == "Workaround provided" and t.min_severity == "critical"
    assert t.systems[0].origin.endswith("tickets.systems[0]") and ":6:" in t.systems[0].origin


@pytest.mark.parametrize(
    ("system", "message"),
    [
        ("{name: j, kind: jira, url: https://x}", "needs 'project', 'user_env', 'token_env'"),
        ("{name: g, kind: gitlab}", "kind must be one of jira, github, servicenow"),
        ("{name: g, kind: github, repo: models, token_env: T}", "repo is owner/name"),
        ("{name: g, kind: github, repo: a/b, token_env: T, labels: [a b]}", "cannot hold spaces"),
        ("{name: s, kind: servicenow, user_env: U, token_env: P}", "needs 'url'"),
    ],
)
def test_a_bad_system_is_refused_with_its_line(tmp_path: Path, system: str, message: str) -> None:
    text = f"version: 1\ntickets:\n  systems:\n    - {system}\n"
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(_config(tmp_path, text))
    assert ":4:" in str(caught.value)


def test_resolve_on_close_is_off_unless_configured(tmp_path: Path) -> None:
    t = load_config(_config(tmp_path, GOOD)).tickets
    assert (t.resolve_on_close, t.close_check_interval_s) == (False, 60.0)
    on = GOOD.replace("  min_severity: critical\n", "  resolve_on_close: true\n"
                      "  close_check_interval_s: 30\n")  # fmt: skip
    t = load_config(_config(tmp_path, on)).tickets
    assert (t.resolve_on_close, t.close_check_interval_s) == (True, 30.0)
    bad = GOOD.replace("  min_severity: critical\n", "  close_check_interval_s: 0\n")
    with pytest.raises(ConfigError, match=r":3:.*close_check_interval_s must be above 0"):
        load_config(_config(tmp_path, bad))


def test_secrets_come_from_the_environment_and_a_missing_one_is_named(tmp_path: Path) -> None:
    jira = load_config(_config(tmp_path, GOOD)).tickets.systems[0]
    assert ticket_secrets(jira, {"J_USER": "bot@x", "J_TOKEN": "t"}) == ("bot@x", "t")
    with pytest.raises(ConfigError, match="J_TOKEN is not set") as caught:
        ticket_secrets(jira, {"J_USER": "bot@x"})
    assert "bot@x" not in str(caught.value)


def test_a_draft_names_the_incident_the_console_and_the_group() -> None:
    lead = record_incident(None, incident("inc-1", "bot"), 10.0)
    d = draft(lead, TicketSettings(console_url="https://rs.example"), ("riskstream",))
    assert d.external_id == "riskstream-inc-1" and d.labels == ("riskstream", "riskstream-inc-1")
    assert "https://rs.example/incidents/inc-1" in d.body and "safety" in d.title
    assert wanted([lead], TicketSettings(min_severity="critical"))
    info = record_incident(None, incident("inc-2", "bot", severity="info"), 10.0)
    assert not wanted([info], TicketSettings(min_severity="warning"))


def test_owed_comments_skip_what_the_description_says_and_what_was_posted() -> None:
    r = record_incident(None, incident("inc-1", "bot"), 10.0)
    assert owed_comments(r, "jira") == []  # onset and detection are in the description
    r = with_entry(r, 20.0, "acknowledged", "sam", "on it", "acknowledged")
    r = resolve(r, "sam", 30.0, "")
    assert [e.kind for e in owed_comments(r, "jira")] == ["acknowledged", "resolved"]
    r = with_posted(r, "jira", ["acknowledged"])
    assert [e.kind for e in owed_comments(r, "jira")] == ["resolved"]
    assert [e.kind for e in owed_comments(r, "github")] == ["acknowledged", "resolved"]


def test_markers_survive_what_systems_do_to_text() -> None:
    journal = "2026-12-02 10:00:00 - bot (Work notes)\nresolved …\nriskstream-ref: inc-1/resolved\n"
    assert markers_in([journal]) == {"riskstream-ref: inc-1/resolved"}


def test_the_record_and_both_reports_carry_the_ticket() -> None:
    r = record_incident(None, incident("inc-1", "bot"), 10.0)
    r = with_ticket(
        r, "jira", TicketRef("OPS-7", "https://acme.atlassian.net/browse/OPS-7", "OPS-7")
    )
    again = type(r).from_data(r.to_data())
    assert again.tickets["jira"]["key"] == "OPS-7" and again == r
    for report in (
        art73_report(r, ReportSettings(), 20.0),
        postmortem_report(r, ReportSettings(), 20.0),
    ):
        assert report["tickets"] == [
            {"system": "jira", "key": "OPS-7", "url": "https://acme.atlassian.net/browse/OPS-7"}
        ]
        link = "Tracked in: jira [OPS-7](https://acme.atlassian.net/browse/OPS-7)"
        assert link in render_markdown(report)
