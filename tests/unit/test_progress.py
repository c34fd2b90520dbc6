"""The progress report of the long commands: a bar on a terminal, plain lines when piped."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from riskstream.cli import main
from riskstream.logs import EscapingWriter
from riskstream.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _clock(step: float) -> Iterator[float]:
    t = 0.0
    while True:
        yield t
        t += step


def test_on_a_terminal_one_line_redraws_with_count_rate_and_time_left() -> None:
    term = FakeTerminal()
    ticks = _clock(1.0)
    bar = Progress("replay", total=4000, stream=term, clock=lambda: next(ticks))
    bar.update(1000)
    bar.update(2000)
    bar.close(4000)
    text = term.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended once
    draws = text.rstrip("\n").split("\r")[1:]
    assert draws[0] == "replay: [#####...............] 1,000/4,000 events (1,000/s, 3 s left)\x1b[K"
    assert "2,000/4,000 events (1,000/s, 2 s left)" in draws[1]
    assert "[####################] 4,000/4,000 events" in draws[2] and "left" not in draws[2]


def test_piped_output_stays_plain_lines_at_most_once_per_interval() -> None:
    piped = io.StringIO()
    ticks = _clock(0.5)
    bar = Progress("simulate", total=10, stream=piped, clock=lambda: next(ticks), unit="records")
    for n in range(1, 11):
        bar.update(n)
    bar.close(10)
    lines = piped.getvalue().splitlines()
    assert "\r" not in piped.getvalue() and "\x1b" not in piped.getvalue()
    left = {n: (10 - n) // 2 for n in (2, 4, 6, 8)}
    assert lines[:4] == [f"simulate: {n}/10 records (2/s, {s} s left)" for n, s in left.items()]
    assert lines[4:] == ["simulate: 10/10 records (2/s)"]


def test_piped_output_ends_with_the_final_count_only_after_lines_were_written() -> None:
    piped = io.StringIO()
    ticks = _clock(2.0)
    bar = Progress("bench", total=8, stream=piped, clock=lambda: next(ticks), unit="jobs")
    bar.update(3)
    bar.close(8)
    assert piped.getvalue().splitlines() == [
        "bench: 3/8 jobs (1.5/s, 3 s left)",
        "bench: 8/8 jobs (2/s)",
    ]
    quick = io.StringIO()
    Progress("demo", total=8, stream=quick, clock=lambda: 0.0).close(8)
    assert quick.getvalue() == ""  # too quick for a line: none at the end either


def test_a_message_clears_the_bar_and_the_escaping_writer_is_written_past() -> None:
    term = FakeTerminal()
    ticks = _clock(1.0)
    bar = Progress("replay\x07", stream=EscapingWriter(term), clock=lambda: next(ticks))  # type: ignore[arg-type]
    bar.update(5, "1 incidents")
    bar.print("replay: line 3: skipped")
    text = term.getvalue()
    assert text.startswith("\rreplay\\x07: 5 events (5/s), 1 incidents\x1b[K")
    assert text.endswith("\r\x1b[Kreplay: line 3: skipped\n")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("restore_logging")
def test_demo_prints_no_log_lines_and_says_where_they_went(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--scenario", "chatbot"]) == 0
    out, err = capsys.readouterr()
    assert "WARNING" not in out and "WARNING" not in err
    assert "=== chatbot" in out and "contained" in out
    note = err.strip().splitlines()[-1]
    assert note.startswith("riskstream demo: log records of the run (")
    path = note.rsplit(" are in ", 1)[1]
    logged = Path(path)
    text = logged.read_text(encoding="utf-8")
    logged.unlink()
    assert "notify trust-and-safety" in text


@pytest.mark.usefixtures("restore_logging")
def test_demo_json_keeps_stdout_pure_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--scenario", "chatbot"]) == 0
    out, err = capsys.readouterr()
    assert [orjson.loads(line)["scenario"] for line in out.splitlines()] == ["chatbot"]
    Path(err.strip().splitlines()[-1].rsplit(" are in ", 1)[1]).unlink()
