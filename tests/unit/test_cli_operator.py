"""The operator commands' wording and argument handling, on the in-memory service.

The commands are adapters over OperatorService; here the service runs on the
in-memory stores (the Redis path is tests/integration/test_cli_operator.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_operations
from riskstream.cli import containment as cli_containment
from riskstream.cli import incidents as cli_incidents
from riskstream.cli import main
from riskstream.cli.common import table
from riskstream.config import load_config
from riskstream.core.timeutil import parse_time
from riskstream.errors import InputError
from riskstream.services.operations import OperatorService

CONFIG = """\
version: 1
models:
  diagnosis-v4: {known_good: dx-4.0, risk_class: high}
playbooks:
  - name: clinical
    match: {subject: "diagnosis*"}
    actions:
      - {kind: human-review, fraction: 1.0}
      - kind: route-to-version
        version: last-known-good
        approval: {required: true, timeout: 600}
"""
NOW = parse_time("2026-12-07T07:36:00Z")


def incident(incident_id: str = "inc-1", **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": incident_id, "type": "recall-drop", "severity": "critical",
        "status": "open", "subject": "diagnosis-v4", "monitor": "missed",
        "stream_key": "diagnosis-v4|subtype-c|70+",
        "detected_at": "2026-12-06T07:36:00.000Z", "onset_at": "2026-12-05T10:00:00.000Z",
        "evidence": {"detector": "page-hinkley", "value": "missed", "delay_samples": 33,
                     "before": {"mean": 0.15, "count": 150}, "after": {"mean": 0.55, "count": 33}},
        "suspected_changes": [{"event_id": "c1", "kind": "deploy", "subject": "diagnosis-v4",
                               "version": "dx-4.1", "actor": "ml-release",
                               "time": "2026-12-03T07:30:00.000Z", "lead_seconds": 181800.0}],
        "blast_radius": {"affected_events": 33, "segments": ["diagnosis-v4|subtype-c|70+"]},
        "regulatory": {"framework": "EU AI Act", "article": "73", "report_within_days": 15,
                       "potential_serious_incident": True,
                       "report_deadline": "2026-12-21T07:36:00.000Z"},
        **extra,
    }  # fmt: skip


@pytest.fixture(autouse=True)
def os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operating-system user the CLI records beside --by (getpass reads LOGNAME)."""
    monkeypatch.setenv("LOGNAME", "ops1")


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OperatorService:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    service = embedded_operations(load_config(path), InMemoryBus(), clock=Clock())
    service._containment.on_incident(incident())
    later = {"detected_at": "2026-12-06T09:00:00.000Z", "severity": "warning"}
    service._containment.on_incident(incident("inc-2", subject="ranker", **later))
    for module in (cli_incidents, cli_containment):
        monkeypatch.setattr(module, "operations", lambda args, publishes=False: service)
    return service


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_aligns_columns_and_cuts_long_cells() -> None:
    text = table(["A", "B"], [["x" * 70, None], ["y", "z"]])
    first, second, third = text.splitlines()
    assert first.index("B") == second.index("-") == third.index("z") == 62
    assert second.startswith("x" * 59 + "…")


def test_list_is_a_table_filters_apply_and_json_is_one_object_per_line(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "incidents", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATUS", "SEVERITY", "DETECTED", "SUBJECT", "ACK", "WHAT"]
    assert [r.split()[:3] for r in rows] == [
        ["inc-2", "open", "warning"], ["inc-1", "contained", "critical"]
    ]  # fmt: skip
    _, out, _ = run(capsys, "incidents", "list", "--severity", "critical", "--json")
    (line,) = out.splitlines()
    data = orjson.loads(line)
    assert data["incident"]["incident_id"] == "inc-1" and data["status"] == "contained"
    assert data["headline"].endswith("diagnosis-v4|subtype-c|70+: missed 0.15 → 0.55")
    _, out, _ = run(capsys, "incidents", "list", "--subject", "nobody")
    assert out == "no incidents match these filters\n"


def test_list_refuses_an_unknown_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["incidents", "list", "--status", "closed"])
    assert exc.value.code == 2
    assert "invalid choice: 'closed'" in capsys.readouterr().err


def test_show_has_what_a_person_needs_on_one_screen(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    text = cli_incidents.show_text(ops.incident("inc-1"), NOW)
    assert text.splitlines()[:2] == [
        "inc-1  CONTAINED",
        "critical recall-drop on diagnosis-v4|subtype-c|70+: missed 0.15 → 0.55",
    ]
    for expected in (
        "onset         2026-12-05 10:00Z (estimated)",
        "evidence      page-hinkley on missed: mean 0.15 over 150 samples before, "
        "0.55 over 33 since onset; 33 samples from onset to detection",
        "suspect       1. deploy of diagnosis-v4 dx-4.1 by ml-release, 50.5 h before onset",
        "reach         33 events since onset; segments diagnosis-v4|subtype-c|70+",
        "report due 2026-12-21 07:36Z, 14 days left",
        "route-to-version: pending: approval required",
        "next: riskstream incidents ack inc-1 --by NAME",
    ):
        assert expected in text
    late = cli_incidents.show_text(ops.incident("inc-1"), NOW + 16 * 86_400)
    assert "OVERDUE by 2 days" in late
    code, out, _ = run(capsys, "incidents", "show", "inc-1", "--json")
    assert code == 0 and orjson.loads(out)["timeline"][0]["kind"] == "onset"


def test_an_unknown_id_says_how_to_list(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "incidents", "show", "nope")
    assert code == 2 and "list them with `riskstream incidents list`" in err
    code, _, err = run(capsys, "actions", "approve", "nope", "--by", "ana")
    assert code == 2 and "riskstream actions list --status all" in err


def test_ack_and_resolve_name_who_and_say_when_someone_was_first(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "incidents", "ack", "inc-1", "--by", "ana")[1] == (
        "inc-1: acknowledged by ana (os user ops1)\n"
    )
    assert run(capsys, "incidents", "ack", "inc-1", "--by", "ben")[1] == (
        "inc-1: already acknowledged by ana (os user ops1); nothing changed\n"
    )
    code, _, err = run(capsys, "incidents", "ack", "inc-2", "--by", " ")
    assert code == 2 and "say who you are" in err
    code, _, err = run(capsys, "incidents", "ack", "inc-2", "--by", "ana", "--note", "  ")
    assert code == 2 and "note '  ' is only spaces and says nothing" in err  # as the API says
    resolved = run(capsys, "incidents", "resolve", "inc-1", "--by", "ana", "--note", "retrained")
    assert resolved[1] == "inc-1: resolved by ana (os user ops1)\n"
    assert ops.incident("inc-1").status == "resolved"


def test_approvals_and_flags_go_through_the_operator_service(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    (pending,) = ops.actions("pending")
    code, out, _ = run(capsys, "actions", "list")
    assert code == 0 and pending.action_id in out and "route-to-version" in out
    code, out, _ = run(capsys, "actions", "approve", pending.action_id, "--by", "dr.okafor")
    assert out == f"{pending.action_id}: approved by dr.okafor (os user ops1)\n"
    assert ops.flags()["diagnosis-v4"].active_version == "dx-4.0"
    code, out, _ = run(
        capsys, "flags", "set", "diagnosis-v4", "--by", "ana", "--reason", "ward confirmed",
        "--mode", "shadow", "--traffic", "0.25",
    )  # fmt: skip
    assert out.startswith("diagnosis-v4: set to dx-4.0 mode=shadow traffic=25% rev=")
    _, out, _ = run(capsys, "flags", "get")
    header, row = out.splitlines()
    assert header.split()[:4] == ["MODEL", "VERSION", "MODE", "TRAFFIC"]
    assert row.split()[:4] == ["diagnosis-v4", "dx-4.0", "shadow", "25%"]
    _, out, _ = run(capsys, "flags", "get", "ranker")
    assert out == "ranker: no flag (the serving layer uses its default)\n"
    _, out, _ = run(capsys, "flags", "get", "diagnosis-v4", "--json")
    assert orjson.loads(out)["actor"] == "ana (os user ops1)"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--traffic", "1.5"], "1.5 is not between 0 and 1"),
        (["--traffic", "most"], "'most' is not a number"),
        (["--mode", "off"], "invalid choice: 'off'"),
        ([], "required: --by, --reason"),
    ],
)
def test_flags_set_checks_its_arguments(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["--by", "ana", "--reason", "r"] if argv else []
    with pytest.raises(SystemExit):
        main(["flags", "set", "m", *names, *argv])
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize(
    ("paging", "named", "verb"),
    [(["--limit", "3"], "--limit", "pages"), (["--after", "m-a"], "--after", "pages"),
     (["--limit", "3", "--after", "m-a"], "--limit and --after", "page")],
)  # fmt: skip
def test_flags_get_of_one_model_refuses_the_paging_of_the_list(
    paging: list[str], named: str, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``flags get MODEL`` took ``--limit`` and ``--after`` and ignored them; they page the
    list of all flags.  It refuses them now, before it connects (Redis is not there)."""
    unreachable = ["--redis-url", "redis://127.0.0.1:1/0"]
    code, out, err = run(capsys, "flags", "get", "ranker", *paging, *unreachable)
    assert (code, out) == (2, "")
    assert err == (
        f"riskstream: error: {named} {verb} the list of all flags (`riskstream flags get`); "
        f"`flags get ranker` shows one flag: leave {named} out\n"
    )


def test_redis_unreachable_gives_the_usual_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "incidents", "list", "--redis-url", "redis://127.0.0.1:1/0")
    assert code == 2 and "Is Redis up and reachable at 127.0.0.1:1" in err


def test_acts_that_publish_need_kafka_and_change_nothing_without_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RISKSTREAM_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("RISKSTREAM_REDIS_URL", "redis://127.0.0.1:1/0")
    code, _, err = run(capsys, "incidents", "resolve", "inc-1", "--by", "ana")
    assert code == 2 and "pass --bootstrap or set RISKSTREAM_KAFKA_BOOTSTRAP" in err


def test_reserved_names_are_refused_and_the_os_user_is_recorded(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    (pending,) = ops.actions("pending")
    for name in ("riskstream/containment", "RiskStream", "riskstream/timeout"):
        code, _, err = run(capsys, "actions", "approve", pending.action_id, "--by", name)
        assert code == 2 and "reserved for riskstream's own processes" in err
    assert ops.action(pending.action_id).status == "pending"
    code, _, err = run(capsys, "incidents", "ack", "inc-1", "--by", "ana\nINFO approved")
    assert code == 2 and "control character" in err
    run(capsys, "actions", "approve", pending.action_id, "--by", "dr.okafor")
    assert ops.action(pending.action_id).decided_by == "dr.okafor (os user ops1)"
    (entry,) = [e for e in ops.audit() if e.change_id == f"{pending.action_id}:decision"]
    assert entry.actor == "dr.okafor (os user ops1)"


LOOKALIKES = (
    "\uff52\uff49\uff53\uff4b\uff53\uff54\uff52\uff45\uff41\uff4d/containment",  # fullwidth
    "r\u0456skstream/containment",  # Cyrillic i
    "riskstream\uff0fcontainment",  # fullwidth solidus
    "riskstream\u2215timeout",  # division slash
    "riskstream /containment",
    "\U0001d42b\U0001d422\U0001d42c\U0001d424\U0001d42c\U0001d42d\U0001d42b\U0001d41e\U0001d41a\U0001d426",
)


def test_look_alikes_of_riskstreams_own_names_are_refused_too(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name a reader of the audit trail cannot tell from riskstream/containment would
    make a person's decision read as riskstream's own."""
    (pending,) = ops.actions("pending")
    for name in LOOKALIKES:
        code, _, err = run(capsys, "actions", "approve", pending.action_id, "--by", name)
        assert code == 2 and "reserved for riskstream's own processes" in err, name
        with pytest.raises(InputError, match="reserved"):
            ops.acknowledge("inc-1", name)
    assert ops.action(pending.action_id).status == "pending"
    assert ops.incident("inc-1").acknowledged_by is None


def test_human_output_escapes_terminal_control_characters(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "\x1b]0;pwned\x07\x1b[2J\u202eevil"
    ops._containment.on_incident(incident("inc-3", subject=f"ranker{hostile}", type=hostile))
    for argv in (["incidents", "list"], ["incidents", "show", "inc-3"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil" in out
        assert not any(c in out for c in "\x1b\x07\u202e"), argv
    code, _, err = run(capsys, "incidents", "show", f"nope{hostile}")
    assert code == 2 and "\x1b" not in err and "\\x1b" in err
    _, out, _ = run(capsys, "incidents", "show", "inc-3", "--json")  # JSON escapes by itself
    assert orjson.loads(out)["incident"]["subject"] == f"ranker{hostile}"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--version", "v1\x00"], "control character (U+0000)"),
        (["--version", "v1\nmode=normal"], "control character (U+000A)"),
        (["--traffic", "-0.0"], "-0.0 is not between 0 and 1"),
        (["--traffic", "-0"], "-0 is not between 0 and 1"),
        (["--traffic", "nan"], "nan is not between 0 and 1"),
    ],
)
def test_flag_values_a_serving_layer_would_misread_are_refused(
    ops: OperatorService, argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ops.flags()
    try:
        code, _, err = run(capsys, "flags", "set", "m", "--by", "ana", "--reason", "r", *argv)
    except SystemExit:
        code, err = 2, capsys.readouterr().err
    assert code == 2 and complaint in err
    assert ops.flags() == before


def test_list_commands_page(ops: OperatorService, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        ops._containment.on_incident(incident(f"p-{i}", detected_at=f"2026-12-06T08:0{i}:00Z"))
    ids = [a.action_id for a in ops.actions(None)]
    assert len(ids) == 6
    _, out, err = run(capsys, "actions", "list", "--status", "all", "--limit", "4")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ids[:4]
    assert err == f"(more: riskstream actions list --status all --limit 4 --after {ids[3]})\n"
    _, out, err = run(capsys, "actions", "list", "--status", "all", "--after", ids[3])
    assert [line.split()[0] for line in out.splitlines()[1:]] == ids[4:] and "more" not in err
    _, out, err = run(capsys, "incidents", "list", "--limit", "2")
    first = [line.split()[0] for line in out.splitlines()[1:]]
    _, out, _ = run(capsys, "incidents", "list", "--limit", "2", "--after", first[-1])
    assert len(first) == 2 and not set(first) & {line.split()[0] for line in out.splitlines()[1:]}


STORMY = """\
version: 1
limits: {storm_incidents: 2, storm_window: 600}
playbooks:
  - name: review
    match: {type: drift}
    actions:
      - {kind: human-review}
"""


def test_a_list_follows_next_and_says_the_command_that_continues(
    ops: OperatorService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``actions list``, ``actions members`` and ``flags get`` took a full page for one
    with more after it: a last page that was exactly full said "(more: --after ID)",
    and the command it led to listed nothing.  They follow the page's ``next`` now, and
    say the whole command that shows the next page."""
    for n in range(3):
        ops._containment.on_incident(incident(f"p-{n}", detected_at=f"2026-12-06T08:0{n}:00Z"))
    actions = [a.action_id for a in ops.actions()]  # pending: one per incident
    assert len(actions) == 4

    def ids(out: str) -> list[str]:
        return [orjson.loads(line)["action_id"] for line in out.splitlines()]

    command = f"riskstream actions list --limit 2 --json --after {actions[1]}"
    _two_pages(capsys, "actions list --limit 2 --json", command, actions, ids)
    _, out, err = run(capsys, "actions", "list", "--incident", "inc-1", "--limit", "1")
    assert (len(out.splitlines()), err) == (2, "")  # inc-1 has one pending action

    for model in ("m-a", "m-b", "m-c"):
        ops.set_flag(model, "ana", "hand-set", version="v1")
    models = sorted(ops.flags())  # diagnosis-v4 too, which containment set
    assert len(models) == 4
    command = f"riskstream flags get --limit 2 --namespace 'ward'\"'\"'s' --after {models[1]}"
    _two_pages(capsys, "flags get --limit 2 --namespace ward's", command, models)
    _, out, err = run(capsys, "flags", "get")  # all of them, on one page
    assert (len(out.splitlines()), err) == (5, "")

    path = tmp_path / "stormy.yaml"
    path.write_text(STORMY)
    stormy = embedded_operations(load_config(path), InMemoryBus(), clock=Clock())
    for n in range(6):  # two are contained at once; then a storm: one action holds the rest
        event = incident(f"s-{n}", subject=f"m-{n}", type="drift", monitor="feature-drift")
        stormy._containment.on_incident(event)
    (group,) = stormy.actions()
    members = [m.incident_id for m in stormy.member_page(group.action_id).items]
    assert members == ["s-2", "s-3", "s-4", "s-5"]
    monkeypatch.setattr(cli_containment, "operations", lambda args, publishes=False: stormy)
    command = f"riskstream actions members {group.action_id} --limit 2 --after {members[1]}"
    _two_pages(capsys, f"actions members {group.action_id} --limit 2", command, members)


def _two_pages(
    capsys: pytest.CaptureFixture[str],
    argv: str,
    command: str,
    ids: list[str],
    listed: Callable[[str], list[str]] | None = None,
) -> None:
    """``argv`` lists ``ids[:2]`` and says that ``command`` shows the next page; that
    lists the rest, a page exactly full and the last, and says nothing more (``listed``
    reads the ids from the output; default: its table's first column)."""
    listed = listed or (lambda out: [line.split()[0] for line in out.splitlines()[1:]])
    code, out, err = run(capsys, *argv.split(" "))
    assert (code, listed(out), err) == (0, ids[:2], f"(more: {command})\n")
    code, out, err = run(capsys, *shlex.split(command)[1:])
    assert (code, listed(out), err) == (0, ids[2:], "")


def test_list_follows_a_filtered_page_that_is_empty_but_not_the_last(
    ops: OperatorService, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filtered page looks through SCANNED incidents after its cursor, so it may be
    short, or empty, while older ones match.  The list printed "no incidents match these
    filters" and no hint, as if the list had ended, whenever the page was not full."""
    from riskstream.core.incident_records import record_incident
    from riskstream.services.operations import SCANNED

    older = [f"old-{n}" for n in range(3)]  # the matches, older than all the others
    newer = [f"new-{n:04d}" for n in range(SCANNED + 100)]
    for n, incident_id in enumerate(older):
        event = incident(incident_id, subject="ward-7", detected_at=f"2026-01-01T00:00:0{n}Z")
        ops._incidents.update(incident_id, lambda r, e=event: record_incident(r, e, 0.0))
    for n, incident_id in enumerate(newer):  # one a second, oldest first
        at = f"2027-01-01T00:{n // 60:02d}:{n % 60:02d}.000Z"
        event = incident(incident_id, subject="ranker", detected_at=at)
        ops._incidents.update(incident_id, lambda r, e=event: record_incident(r, e, 0.0))

    code, out, err = run(capsys, "incidents", "list", "--subject", "ward-7")
    assert code == 0
    assert out == f"none of the latest {SCANNED} incidents match these filters\n"
    hint = "(older incidents were not looked through yet; look on with: "
    command = f"riskstream incidents list --subject ward-7 --after {newer[-SCANNED]}"
    assert err == f"{hint}{command})\n"
    code, out, err = run(capsys, *shlex.split(command)[1:])
    assert [line.split()[0] for line in out.splitlines()[1:]] == older[::-1]
    assert (code, err) == (0, "")  # the oldest was looked at: the list ends

    code, out, err = run(capsys, "incidents", "list", "--subject", "ward-7", "--json",
                         "--limit", "2", "--namespace", "ward's")  # fmt: skip
    assert (code, out) == (0, "")
    assert err == (
        f"{hint}riskstream incidents list --subject ward-7 --limit 2 --namespace 'ward'\"'\"'s'"
        f" --json --after {newer[-SCANNED]})\n"
    )
    command = f"incidents list --subject ward-7 --limit 2 --after {newer[-SCANNED]}"
    code, out, err = run(capsys, *command.split())
    assert [line.split()[0] for line in out.splitlines()[1:]] == older[:0:-1]
    following = f"riskstream incidents list --subject ward-7 --limit 2 --after {older[1]}"
    assert err == f"(more: {following})\n"  # a full page: the command of the next
    code, out, err = run(capsys, *command.split()[:-1], older[1])
    assert [line.split()[0] for line in out.splitlines()[1:]] == older[:1] and err == ""


@pytest.mark.parametrize("argv", [
    ["incidents", "list"], ["actions", "list"], ["actions", "members", "a-1"], ["flags", "get"],
])  # fmt: skip
def test_a_page_of_none_is_refused_not_read_as_one(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """``--limit 0`` was quietly read as 1; the services refuse a page below 1 too."""
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--limit", "0", "--redis-url", "redis://127.0.0.1:1/0"])
    assert exit_.value.code == 2
    assert "--limit: a page holds at least 1, got 0" in capsys.readouterr().err
