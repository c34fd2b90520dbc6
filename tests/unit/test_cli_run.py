"""``riskstream run``: one sub-parser per process, and old scripts still accepted."""

from __future__ import annotations

import pytest

from riskstream.cli import build_parser
from riskstream.cli.run import move_process_first, warn_ignored


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_each_process_lists_only_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    processor = _help(capsys, "run", "processor")
    assert "--tokens" not in processor and "--app-id" not in processor
    assert "--max-poll-interval-ms" in processor
    api = _help(capsys, "run", "api")
    assert "--tokens" in api and "RISKSTREAM_API_TOKENS" in api and "--app-id" not in api
    containment = _help(capsys, "run", "containment")
    assert "--app-id" in containment and "--tokens" not in containment
    for text in (processor, api, containment):
        assert "env RISKSTREAM_KAFKA_BOOTSTRAP" in text
    assert "env RISKSTREAM_REDIS_URL" in processor


def test_options_before_the_process_name_still_parse() -> None:
    argv = ["--log-level", "DEBUG", "run", "--config", "c.yaml", "--bootstrap=b:9092", "processor"]
    moved = move_process_first(argv)
    assert moved == [
        "--log-level", "DEBUG", "run", "processor", "--config", "c.yaml", "--bootstrap=b:9092"
    ]  # fmt: skip
    args = build_parser().parse_args(moved)
    assert (args.process, args.config, args.bootstrap) == ("processor", "c.yaml", "b:9092")
    assert move_process_first(["incidents", "list", "--subject", "run"])[0] == "incidents"


def test_another_process_option_is_accepted_and_said_to_be_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["run", "processor", "--tokens", "t.yaml", "--port", "1"])
    assert args.tokens == "t.yaml"
    warn_ignored("processor", args)
    err = capsys.readouterr().err
    assert "--tokens does not apply to `run processor`; ignored" in err
    assert "--port does not apply" in err
    warn_ignored("processor", build_parser().parse_args(["run", "processor"]))
    assert capsys.readouterr().err == ""


def test_tune_gc_freezes_what_start_up_made_and_raises_the_young_threshold() -> None:
    import gc

    from riskstream.cli.run import GC_GEN0_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert gc.isenabled()  # cycles are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_record_built_the_fast_way_equals_one_built_by_name() -> None:
    from riskstream.ports import Record

    fast = tuple.__new__(Record, ("t", 1, 2, b"k", b"v", ()))
    assert fast == Record("t", 1, 2, b"k", b"v")
    assert (fast.topic, fast.partition, fast.offset, fast.key, fast.value) == (
        "t",
        1,
        2,
        b"k",
        b"v",
    )


def test_the_command_line_loads_the_operator_service_only_for_commands_that_use_it() -> None:
    """Every command (``run processor`` too) starts with the parser; the operator service
    and the containment worker behind it cost ~0.15 s to import, paid on each restart."""
    import subprocess
    import sys

    probe = (
        "import sys; from riskstream.cli import build_parser; build_parser(); "
        "print(sorted(n for n in sys.modules if n.startswith('riskstream.services')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "riskstream.services.operations" not in out
    assert "riskstream.services.containment" not in out
