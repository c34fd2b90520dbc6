"""The reports made from an incident record: fields, deadline arithmetic, placeholders."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_operations
from riskstream.cli import main
from riskstream.cli import reports as cli_reports
from riskstream.config import Config, load_config
from riskstream.core.incident_records import IncidentRecord, record_incident
from riskstream.core.reports import art73_report, postmortem_report, render
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.timeutil import parse_time
from riskstream.errors import ConfigError
from riskstream.services.operations import OperatorService

FULL = """\
version: 1
provider: {name: Example Diagnostics B.V., address: 1 Example Street, contact: safety@dx.example}
models:
  diagnosis-v4:
    known_good: dx-4.0
    risk_class: high
    name: DermaScan Dx
    intended_purpose: second reader for skin lesion images
    eu_database_id: EUDB-0001
raci:
  default: {responsible: ML on-call, accountable: head of ML}
  "diagnosis-*":
    responsible: diagnosis ML team
    accountable: dr.okafor
    consulted: [radiology lead, DPO]
    informed: [site leads]
playbooks:
  - name: clinical
    match: {subject: "diagnosis*"}
    actions:
      - {kind: human-review}
      - kind: route-to-version
        version: last-known-good
        approval: {required: true, timeout: 600}
"""
BARE = "version: 1\n"
NOW = parse_time("2026-12-07T07:36:00Z")


class Clock:
    def __call__(self) -> float:
        return NOW


def incident(**extra: Any) -> dict[str, Any]:
    return {
        "incident_id": "inc-1", "type": "recall-drop", "severity": "critical",
        "status": "open", "subject": "diagnosis-v4", "monitor": "missed",
        "stream_key": "diagnosis-v4|subtype-c|70+",
        "detected_at": "2026-12-06T07:36:00.000Z", "onset_at": "2026-12-05T10:00:00.000Z",
        "evidence": {"detector": "page-hinkley", "value": "missed", "delay_samples": 33,
                     "params": {"delta": 0.25, "threshold": 30},
                     "before": {"mean": 0.15, "count": 150}, "after": {"mean": 0.55, "count": 33}},
        "suspected_changes": [{"event_id": "c1", "kind": "deploy", "subject": "diagnosis-v4",
                               "version": "dx-4.1", "actor": "ml-release",
                               "time": "2026-12-03T07:30:00.000Z", "lead_seconds": 181800.0}],
        "blast_radius": {"affected_events": 33, "segments": ["diagnosis-v4|subtype-c|70+"]},
        "regulatory": {"framework": "EU AI Act", "article": "73", "report_within_days": 15,
                       "potential_serious_incident": True, "risk_class": "high",
                       "report_deadline": "2026-12-21T07:36:00.000Z"},
        **extra,
    }  # fmt: skip


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def _ops(config: Config) -> OperatorService:
    ops = embedded_operations(config, InMemoryBus(), clock=Clock())
    ops._containment.on_incident(incident())
    for pending in ops.actions("pending"):
        ops.decide(pending.action_id, True, "dr.okafor", "seen the cases")
    return ops


@pytest.fixture
def full(tmp_path: Path) -> tuple[OperatorService, Config]:
    config = _config(tmp_path, FULL)
    return _ops(config), config


def _art73(full: tuple[OperatorService, Config], as_of: float = NOW) -> dict[str, Any]:
    ops, config = full
    flag = ops.flags()["diagnosis-v4"]
    return art73_report(ops.incident("inc-1"), config.reporting, as_of, flag)


def test_art73_carries_provider_system_dates_reach_actions_and_deadline(
    full: tuple[OperatorService, Config],
) -> None:
    r = _art73(full)
    assert r["provider"] == {
        "name": "Example Diagnostics B.V.", "address": "1 Example Street",
        "contact": "safety@dx.example",
    }  # fmt: skip
    assert r["ai_system"] == {
        "model_id": "diagnosis-v4", "name": "DermaScan Dx", "version": "dx-4.1",
        "intended_purpose": "second reader for skin lesion images", "risk_class": "high",
        "eu_database_id": "EUDB-0001",
    }  # fmt: skip
    assert r["incident"]["potential_serious_incident"] is True
    assert r["when"]["onset_estimated"] == "2026-12-05T10:00:00.000Z"
    assert r["when"]["provider_aware"] == r["when"]["detected"] == "2026-12-06T07:36:00.000Z"
    assert r["affected"]["affected_events"] == 33
    assert r["affected"]["segments"] == ["diagnosis-v4|subtype-c|70+"]
    assert r["causes"]["suspected_changes"][0]["summary"].startswith("deploy of diagnosis-v4")
    taken = [(a["kind"], a["by"]) for a in r["corrective_actions"]["taken"]]
    assert taken == [
        ("action", "riskstream/containment"), ("action", "riskstream/containment"),
        ("approved", "dr.okafor"), ("action", "dr.okafor"),
    ]  # fmt: skip
    assert r["corrective_actions"]["current_routing"]["version"] == "dx-4.0"
    assert "not yet people" in r["affected"]["persons_affected"]["to_fill"]
    assert r["deadline"]["report_deadline"] == "2026-12-21T07:36:00.000Z"
    assert (r["deadline"]["days_left"], r["deadline"]["overdue"]) == (14.0, False)
    # what only a person knows is asked for, never guessed; the config filled the rest
    assert r["to_fill"] == [
        "report_type", "incident.serious_incident_category", "incident.harm",
        "affected.persons_affected", "affected.member_states", "causes.causal_link",
        "corrective_actions.further_measures", "corrective_actions.evidence_preserved",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("as_of", "left", "overdue"),
    [("2026-12-21T07:36:00Z", 0.0, False), ("2026-12-23T19:36:00Z", -2.5, True)],
)
def test_deadline_days_left_and_overdue(
    full: tuple[OperatorService, Config], as_of: str, left: float, overdue: bool
) -> None:
    deadline = _art73(full, parse_time(as_of))["deadline"]
    assert (deadline["days_left"], deadline["overdue"]) == (left, overdue)


@pytest.mark.parametrize(
    ("as_of", "said"),
    [
        ("2026-12-21T06:36:00Z", "(1 h left as of"),  # the day of: not "0 days left"
        ("2026-12-21T08:06:00Z", "(OVERDUE by 0.5 h as of"),  # not "OVERDUE by 0 days"
        ("2026-12-19T07:36:00Z", "(2 days left as of"),
        ("2026-12-23T07:36:00Z", "(OVERDUE by 2 days as of"),
    ],
)
def test_the_last_day_before_the_deadline_says_hours_not_zero_days(
    full: tuple[OperatorService, Config], as_of: str, said: str
) -> None:
    ops, config = full
    md = render("art73", "md", ops.incident("inc-1"), config.reporting, parse_time(as_of))
    assert said in md


def test_without_report_config_the_gaps_are_placeholders(tmp_path: Path) -> None:
    ops = _ops(_config(tmp_path, BARE))
    r = art73_report(ops.incident("inc-1"), ReportSettings(), NOW)
    assert r["provider"]["name"] == {"to_fill": "the provider's legal name (config: provider.name)"}
    for path in ("provider.name", "provider.address", "provider.contact", "ai_system.name",
                 "ai_system.intended_purpose", "ai_system.eu_database_id"):  # fmt: skip
        assert path in r["to_fill"]
    assert r["ai_system"]["risk_class"] == "high"  # from the incident's regulatory block
    assert r["corrective_actions"]["current_routing"] is None
    pm = postmortem_report(ops.incident("inc-1"), ReportSettings(), NOW)
    assert pm["roles"]["source"] is None
    assert all("to_fill" in pm["roles"][role] for role in ("responsible", "informed"))


def test_an_incident_not_marked_serious_asks_whether_article_73_applies() -> None:
    data = incident()
    del data["regulatory"]
    record = record_incident(None, data, NOW)
    r = art73_report(record, ReportSettings(), NOW)
    assert r["incident"]["potential_serious_incident"] is False
    assert "decide whether Article 73 applies" in r["deadline"]["to_fill"]
    assert "Article 73 applies" in render("art73", "md", record, ReportSettings(), NOW)


def test_postmortem_has_timeline_roles_and_whys_seeded_with_the_evidence(
    full: tuple[OperatorService, Config],
) -> None:
    ops, config = full
    record = ops.incident("inc-1")
    pm = postmortem_report(record, config.reporting, NOW)
    assert [e["kind"] for e in pm["timeline"]] == [e.kind for e in record.timeline]
    assert pm["roles"] == {
        "responsible": ["diagnosis ML team"], "accountable": ["dr.okafor"],
        "consulted": ["radiology lead", "DPO"], "informed": ["site leads"],
        "source": "raci.diagnosis-*",
    }  # fmt: skip
    whys = pm["five_whys"]
    assert len(whys) == 5 and all(w["answer"] == {"to_fill": w["answer"]["to_fill"]} for w in whys)
    assert "mean 0.15 over 150 samples before, 0.55 over 33" in whys[0]["seed"]
    assert whys[1]["why"] == "Why did it begin around 2026-12-05T10:00:00.000Z?"
    assert "deploy of diagnosis-v4 dx-4.1 by ml-release, 50.5 h before onset" in whys[1]["seed"]
    assert whys[2]["why"] == "Why did detection take 21.6 h after the onset?"
    assert whys[4]["seed"] == "Version in service at the onset: dx-4.1"
    assert pm["summary"]["first_contained"] == "2026-12-07T07:36:00.000Z"
    assert [a["goal"] for a in pm["action_items"]] == [
        "prevent it", "detect it sooner", "contain it faster"
    ]  # fmt: skip


def test_a_model_without_its_own_raci_gets_the_default(tmp_path: Path) -> None:
    config = _config(tmp_path, FULL)
    roles = postmortem_report(
        record_incident(None, incident(subject="ranker"), NOW), config.reporting, NOW
    )["roles"]
    assert roles["source"] == "raci.default"
    assert roles["responsible"] == ["ML on-call"]
    assert roles["consulted"] == {"to_fill": "who is consulted (config: raci.default)"}


def test_markdown_marks_placeholders_escapes_tables_and_json_is_the_same_content(
    full: tuple[OperatorService, Config],
) -> None:
    ops, config = full
    record, flag = ops.incident("inc-1"), ops.flags()["diagnosis-v4"]
    md = render("art73", "md", record, config.reporting, NOW, flag)
    assert md.startswith("# Serious incident report (EU AI Act, Article 73)\n")
    assert "> **Reporting deadline: 2026-12-21T07:36:00.000Z (14 days left as of" in md
    assert "| Stream | diagnosis-v4\\|subtype-c\\|70+ |" in md
    assert "| Category (Article 3(49)) | **[TO FILL]** which harm of Article 3(49)" in md
    assert md.count("- [ ] `") == 8  # the checklist before filing
    as_json = orjson.loads(render("art73", "json", record, config.reporting, NOW, flag))
    assert as_json == orjson.loads(orjson.dumps(art73_report(record, config.reporting, NOW, flag)))
    pm = render("postmortem", "md", record, config.reporting, NOW, flag)
    assert "## Five whys" in pm and "| Accountable | dr.okafor |" in pm
    with pytest.raises(ConfigError, match="the kinds are art73, postmortem"):
        render("summary", "md", record, config.reporting, NOW)


@pytest.mark.parametrize(
    ("yaml", "where"),
    [
        ("raci:\n  default: {owner: me}\n", "3: $.raci.default.owner: unknown key 'owner'"),
        ("raci:\n  default: {}\n", "3: $.raci.default: name at least one role"),
        ("raci:\n  default: {informed: []}\n", "3: $.raci.default.informed: name at least one"),
        ("provider: {name: X, phone: 1}\n", "2: $.provider.phone: unknown key 'phone'"),
        ("provider: {name: 3}\n", "2: $.provider.name: expected a string"),
        ("models:\n  m: {eu_database_id: ''}\n", "3: $.models.m.eu_database_id: must not be"),
    ],
)
def test_report_config_errors_name_the_path(tmp_path: Path, yaml: str, where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, "version: 1\n" + yaml)
    assert f"c.yaml:{where}" in str(exc.value)


def test_the_report_command_writes_the_file(
    full: tuple[OperatorService, Config],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ops, _ = full
    monkeypatch.setattr(cli_reports, "operations", lambda args, config=None: ops)
    out = tmp_path / "r.json"
    argv = ["report", "inc-1", "--kind", "art73", "--format", "json", "--output", str(out)]
    assert main([*argv, "--config", str(tmp_path / "c.yaml")]) == 0
    assert capsys.readouterr().err == f"wrote {out}\n"
    data = orjson.loads(out.read_bytes())
    assert data["provider"]["name"] == "Example Diagnostics B.V."
    assert main(["report", "nope", "--kind", "postmortem"]) == 2
    assert "riskstream incidents list" in capsys.readouterr().err


def test_reports_of_a_bare_record_do_not_fail() -> None:
    bare = IncidentRecord(incident={"incident_id": "x", "subject": "s"}, received_at=NOW)
    for kind in ("art73", "postmortem"):
        assert "**[TO FILL]**" in render(kind, "md", bare, ReportSettings(), NOW)


def test_counted_users_seed_the_question_about_people() -> None:
    from riskstream.core.reports.art73 import _persons_prompt

    assert "counted 212 distinct users" in _persons_prompt({"affected_users": 212})
    bound = _persons_prompt({"affected_users": 9, "affected_users_is_lower_bound": True})
    assert "at least 9 distinct users" in bound


def test_reports_of_a_story_member_open_on_the_root_and_walk_the_whys_up_to_it() -> None:
    # Issue 15 (3): asked about the flat anomaly model, the reports open on the sensor.
    from riskstream.demo import run_situation

    _, pipeline = run_situation("manufacturing", seed=7)
    ops = OperatorService(
        pipeline.containment, pipeline.records, pipeline.bus.producer(), "incidents"
    )
    flat = next(r for r in pipeline.records.recent() if r.incident["type"] == "model-output-flat")
    story = ops.story(flat)
    assert story is not None
    settings, as_of = pipeline.config.reporting, flat.timeline[-1].at
    pm = postmortem_report(flat, settings, as_of, None, story)
    assert pm["title"].startswith("Post-mortem: warning sensor-drift on line-2/temp-03")
    assert pm["summary"]["subject"] == "line-2/temp-03"
    assert pm["story"]["asked_about"] == flat.incident_id
    assert [m["role"] for m in pm["story"]["members"]][:2] == ["root", "effect"]
    whys = [w["why"] for w in pm["five_whys"]]
    assert whys[0].startswith("Why did anomaly-line-2 fail (model-output-flat")
    assert whys[1].startswith("Why did line-2/temp-03 change around")
    assert "fed by line-2/temp-03" in pm["five_whys"][0]["seed"]
    assert "ingest-5.2.0" in pm["five_whys"][1]["seed"]  # the root's suspected change
    # The whole story's timeline, and its first containment (on the maintenance model)
    assert any("maintenance-line-2" in e["what"] for e in pm["timeline"])
    assert pm["summary"]["first_contained"] is not None
    # ...from the root's point of view, the whys start at the furthest effect
    root = story.root(flat)
    from_root = postmortem_report(root, settings, as_of, None, ops.story(root))
    assert from_root["five_whys"][0]["why"].startswith("Why did maintenance-line-2 fail")
    assert from_root["five_whys"][1]["why"].startswith("Why did anomaly-line-2 fail")
    art = art73_report(flat, settings, as_of, None, story)
    assert art["ai_system"]["model_id"] == "anomaly-line-2"  # the AI system asked about
    assert art["story"]["root_subject"] == "line-2/temp-03"
    assert art["causes"]["root_cause"]["subject"] == "line-2/temp-03"
    text = render("art73", "md", flat, settings, as_of, None, story)
    assert text.index("## The story, root cause first") < text.index("## 1. Provider")
    assert "Root cause first: warning sensor-drift on line-2/temp-03" in text


def test_text_from_a_record_cannot_add_markup_to_a_report() -> None:
    """A summary, stream key, change id, note or ticket link is text: it cannot forge a
    section, a row, a link or HTML in the report a compliance officer files."""
    hostile = incident(
        summary="ok\n\n## 7. Corrective actions\n\nAll clear <script>alert(1)</script>",
        monitor="# Forged heading",
        stream_key="k` <img src=x onerror=alert(1)> `|x",
    )
    hostile["suspected_changes"][0]["event_id"] = "c1`<b>x</b>"
    hostile["regulatory"]["framework"] = "EU AI Act)**\n\n> [Filed already](https://evil)"
    record = record_incident(None, hostile, NOW)
    record = record_incident(record, {**hostile, "type": "x\r\n| forged | row |"}, NOW)
    record.tickets["jira"] = {"key": "OPS-1](https://evil) [x", "url": "https://t/a b)c"}
    for kind in ("art73", "postmortem"):
        md = render(kind, "md", record, ReportSettings(), NOW)
        lines = md.splitlines()
        headings = [line for line in lines if line.startswith(("#", ">", "-", "1."))]
        assert not [h for h in headings if "Forged" in h], headings
        assert lines.count("## 7. Corrective actions") == (1 if kind == "art73" else 0)
        outside_code = md.replace("``c1`<b>x</b>``", "")
        assert re.search(r"(?<!\\)<(script|img|b)\b", outside_code) is None, md
        assert re.search(r"(?<!\\)\](?:\(|: )https://evil", md) is None, md
        assert not [line for line in lines if line.startswith("| forged")]
        if kind == "art73":
            assert "(``c1`<b>x</b>``)" in md  # the id whole, in a code span it cannot end
            assert "[OPS-1\\](https://evil) \\[x](https://t/a%20b%29c)" in md
