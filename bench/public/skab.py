"""SKAB through ``riskstream replay``, scored the way SKAB's change-point leaderboard is.

    python bench/public/skab.py --data DIR [--config FILE] [--jobs N]
                                [--onset] [--per-monitor] [--work DIR]

SKAB (Skoltech Anomaly Benchmark, v0.9) is a water-circulation testbed: 8 sensors
read at 1 Hz, 34 labelled experiments (``valve1/*.csv``, ``valve2/*.csv``,
``other/*.csv``) and one anomaly-free run, semicolon-separated CSV.  ``--data`` is
that ``data/`` folder with the ``SOURCE.md`` that names the published leaderboard
(the project's copy: ``../shared/data/skab``).  Nothing outside the arguments is
read: the config is ``--config`` or the package's own shipped default, the published
rows come from ``DIR/SOURCE.md``.

What it does:

1. Each experiment becomes riskstream sensor events, one per reading per column:
   ``sensor_id`` ``"valve1-0/Pressure"`` (experiment, then column; spaces dropped),
   ``asset_id`` the experiment, ``line_id`` ``"skab/<experiment>"``, ``time`` the
   ``datetime`` column as RFC 3339 with ``Z``, quality ``good``, the column's unit.
   Records are ``{"topic": <the config's sensor topic>, "key": sensor_id,
   "value": event}`` lines in time order (a row's 8 readings in column order).
2. Each experiment goes through its own ``python -m riskstream replay`` (the real
   CLI: decoding, validation, monitors, episodes; online, one pass, causal), so every
   experiment's streams start fresh and no experiment's clock reaches another's;
   ``--jobs`` of them run at once.  The anomaly-free run goes through too: its
   incidents are reported as false alarms on normal data, not scored.
3. Predicted change points are the *new* incidents (the first record of an
   incident id; later records of the same id are episode updates, ``evidence.episode
   .alarms`` > 1), at ``detected_at`` (when the online system knew), or at
   ``onset_at`` with ``--onset`` (for information).  A second row scores every
   finding (new incidents and their updates, each at its own time): the change
   points the detectors report, which is what the leaderboard's algorithms output
   (SKAB's notebooks turn each algorithm's 0/1 anomaly labels into change points
   at every rising *and* falling edge, ``abs(prediction.diff())``; riskstream's
   equivalent of a falling edge is a stream's alarm when it changes back, which
   updates the incident its first change opened).
   Per experiment they become a 0/1 series on the experiment's timestamps (an
   incident marks the first reading at or after its time; several incidents on one
   reading are one prediction).
4. Scoring is SKAB's "proposed leaderboard" (``README.md`` of waico/SKAB, the commit
   named in SOURCE.md): the test part of each experiment only (rows 400 and on: its
   ``core/utils.py`` splits ``train_test_split(..., train_size=400, shuffle=False)``;
   127 true change points), NAB with a 60 s window to the right of each true change
   point, with tsad's scorer (SKAB's ``core/metrics.py`` ``chp_score`` is a copy of
   it), called as its notebooks call it::

       evaluating(true_cp, predicted_cp, metric="nab",
                  window_width="60s", anomaly_window_destination="righter")
       evaluating(true_cp, predicted_cp, metric="average_time",
                  window_width="60s", anomaly_window_destination="righter")

   The second gives the missed change points and false positives of the leaderboard
   (a prediction outside every window is an FP; inside a window only the first one
   counts, later ones are neither TP nor FP).  Incidents during the first 400 rows
   (the leaderboard's training part; riskstream learns online there) are counted but
   not scored.
5. ``--per-monitor`` says which monitors (and sensors) made the TPs and the FPs, and
   prints a row per experiment.

Setup: the bench needs tsad's scorer, whose pinned dependencies (torch 1.11, pandas
1.5, ...) do not install on Python 3.11; the scorer itself imports only numpy, pandas
and matplotlib::

    .venv/bin/pip install -r bench/public/requirements.txt
    .venv/bin/pip install --no-deps -r bench/public/requirements-nodeps.txt
    .venv/bin/python bench/public/skab.py --data ../shared/data/skab --per-monitor

The setup and the tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

GROUPS = ("valve1", "valve2", "other")  # the labelled experiments, scored
ANOMALY_FREE = "anomaly-free"  # the normal run: replayed, reported, not scored
UNITS = {
    "Accelerometer1RMS": "g",
    "Accelerometer2RMS": "g",
    "Current": "A",
    "Pressure": "bar",
    "Temperature": "degC",
    "Thermocouple": "degC",
    "Voltage": "V",
    "Volume Flow RateRMS": "L/min",
}
LABELS = ("anomaly", "changepoint")
TRAIN_ROWS = 400  # SKAB core/utils.py: train_test_split(train_size=400, shuffle=False)
WINDOW = "60s"  # NAB window, to the right of each true change point
DESTINATION = "righter"
DEFAULT_TOPIC = "sensor-events"

# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class Experiment:
    """One SKAB CSV: its readings by row, and its labels (none for the normal run)."""

    name: str  # "valve1-0"
    path: Path
    times: list[str]  # the CSV's datetime column, as written
    columns: list[str]  # the sensor columns, in file order
    values: list[list[float]]  # per row, per sensor column
    changepoints: list[int] = field(default_factory=list)  # row numbers
    scored: bool = True

    @property
    def events(self) -> int:
        return len(self.values) * len(self.columns)


def experiment_name(path: Path) -> str:
    """``valve1/0.csv`` -> ``valve1-0``; the anomaly-free file keeps its stem."""
    return path.stem if path.parent.name == ANOMALY_FREE else f"{path.parent.name}-{path.stem}"


def read_experiment(path: Path, scored: bool = True) -> Experiment:
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if not rows or rows[0][0] != "datetime":
        raise ValueError(f"{path}: expected a 'datetime' column first, got {rows[:1]}")
    header = rows[0]
    columns = [c for c in header[1:] if c not in LABELS]
    unknown = [c for c in columns if c not in UNITS]
    if unknown:
        raise ValueError(f"{path}: unknown sensor columns {unknown}")
    sensor_at = [header.index(c) for c in columns]
    cp_at = header.index("changepoint") if "changepoint" in header else None
    if scored and cp_at is None:
        raise ValueError(f"{path}: no 'changepoint' column")
    times, values, changepoints = [], [], []
    for n, row in enumerate(rows[1:]):
        times.append(row[0])
        values.append([float(row[i]) for i in sensor_at])
        if cp_at is not None and float(row[cp_at]) == 1.0:
            changepoints.append(n)
    return Experiment(experiment_name(path), path, times, columns, values, changepoints, scored)


def _numeric(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)


def find_experiments(data: Path) -> tuple[list[Path], list[Path]]:
    """The labelled experiment files in SKAB's order, and the anomaly-free ones."""
    labelled = [p for g in GROUPS for p in sorted((data / g).glob("*.csv"), key=_numeric)]
    normal = sorted((data / ANOMALY_FREE).glob("*.csv"))
    return labelled, normal


def rfc3339(stamp: str) -> str:
    """SKAB's ``2020-03-09 10:34:33`` (no zone; taken as UTC) -> ``2020-03-09T10:34:33Z``."""
    t = dt.datetime.fromisoformat(stamp.strip())
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t.isoformat() + "Z"


def sensor_id(experiment: str, column: str) -> str:
    return f"{experiment}/{column.replace(' ', '')}"


def records(exp: Experiment, topic: str = DEFAULT_TOPIC) -> Iterator[dict[str, Any]]:
    """The experiment as replay records, in time order (a row's readings in column order)."""
    ids = [sensor_id(exp.name, c) for c in exp.columns]
    units = [UNITS[c] for c in exp.columns]
    line = f"skab/{exp.name}"
    for n, (stamp, row) in enumerate(zip(exp.times, exp.values, strict=True)):
        time_ = rfc3339(stamp)
        for sid, unit, value in zip(ids, units, row, strict=True):
            yield {
                "topic": topic,
                "key": sid,
                "value": {
                    "event_id": f"{sid}/{n}",
                    "time": time_,
                    "line_id": line,
                    "asset_id": exp.name,
                    "sensor_id": sid,
                    "value": value,
                    "unit": unit,
                    "quality": "good",
                },
            }


def write_records(exp: Experiment, path: Path, topic: str) -> int:
    n = 0
    with path.open("wb") as f:
        for rec in records(exp, topic):
            f.write(orjson.dumps(rec) + b"\n")
            n += 1
    return n


# --------------------------------------------------------------------------- incidents


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    monitor: str
    subject: str
    stream_key: str
    detected_at: dt.datetime  # naive UTC
    onset_at: dt.datetime
    new: bool  # False: a later record of an incident already opened (an update)


def _naive_utc(stamp: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(stamp)
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def parse_incidents(lines: Iterable[bytes]) -> tuple[list[Incident], int]:
    """Replay's output lines as incidents, new or update; and how many were child copies.

    Replay writes each incident's data as a JSON line (a CloudEvent envelope, if a
    future version writes one, is read by its ``type``: ``...opened`` is new).  An
    incident id seen before, or ``evidence.episode.alarms`` > 1, is an update.  A
    child incident (``parent_id`` set: a downstream model of a lineage) repeats its
    parent's alarm and is left out.
    """
    seen: set[str] = set()
    out: list[Incident] = []
    children = 0
    for raw in lines:
        if not raw.strip():
            continue
        rec = orjson.loads(raw)
        kind = None
        if isinstance(rec, dict) and "specversion" in rec and "data" in rec:
            kind, rec = str(rec.get("type", "")), rec["data"]
        if rec.get("parent_id"):
            children += 1
            continue
        iid = str(rec["incident_id"])
        alarms = (rec.get("evidence") or {}).get("episode", {}).get("alarms", 1)
        opened = kind.endswith(".opened") if kind is not None else int(alarms) <= 1
        new = opened and iid not in seen
        seen.add(iid)
        out.append(
            Incident(
                iid,
                str(rec["monitor"]),
                str(rec["subject"]),
                str(rec.get("stream_key", rec["subject"])),
                _naive_utc(str(rec["detected_at"])),
                _naive_utc(str(rec["onset_at"])),
                new,
            )
        )
    return out, children


# --------------------------------------------------------------------------- replay


@dataclass(slots=True)
class Run:
    exp: Experiment
    incidents: list[Incident]
    children: int
    seconds: float


def replay(exp: Experiment, work: Path, topic: str, config: str | None) -> Run:
    source = work / f"{exp.name}.records.jsonl"
    out = work / f"{exp.name}.incidents.jsonl"
    write_records(exp, source, topic)
    cmd = [sys.executable, "-m", "riskstream", "replay", "--input", str(source)]
    cmd += ["--output", str(out)]
    if config is not None:
        cmd += ["--config", config]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"riskstream replay failed on {exp.name} (exit {proc.returncode}):\n"
            + proc.stderr[-3000:]
        )
    done = [ln for ln in proc.stderr.splitlines() if ln.startswith("replay: done")]
    if done and ", 0 dead-lettered" not in done[-1]:
        print(f"  {exp.name}: {done[-1]}", file=sys.stderr)
    with out.open("rb") as f:
        incidents, children = parse_incidents(f)
    return Run(exp, incidents, children, seconds)


# --------------------------------------------------------------------------- scoring


@dataclass(slots=True)
class Scored:
    """One experiment's test part: the series tsad reads, and which incidents made each 1."""

    true: Any  # pd.Series of 0/1 on the test timestamps
    pred: Any  # pd.Series of 0/1
    by_row: dict[Any, list[Incident]]  # prediction timestamp -> the new incidents on it
    in_train: list[Incident]  # new incidents before the test part (not scored)
    after_end: int


def series(run: Run, use_onset: bool, every_finding: bool = False) -> Scored:
    import pandas as pd

    exp = run.exp
    index = pd.DatetimeIndex([dt.datetime.fromisoformat(t) for t in exp.times], name="datetime")
    true_all = pd.Series(0.0, index=index, name="changepoint")
    true_all.iloc[exp.changepoints] = 1.0
    true = true_all.iloc[TRAIN_ROWS:]
    test = true.index
    pred = pd.Series(0, index=test, name="prediction")
    by_row: dict[Any, list[Incident]] = defaultdict(list)
    in_train: list[Incident] = []
    after_end = 0
    for inc in run.incidents:
        if not (inc.new or every_finding):
            continue
        t = inc.onset_at if use_onset else inc.detected_at
        pos = int(index.searchsorted(pd.Timestamp(t), side="left"))
        if pos < TRAIN_ROWS:
            in_train.append(inc)
            continue
        if pos >= len(index):
            after_end += 1
            continue
        stamp = index[pos]
        pred.loc[stamp] = 1
        by_row[stamp].append(inc)
    return Scored(true, pred, dict(by_row), in_train, after_end)


def tsad_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tsad")
    except PackageNotFoundError:
        return "not installed"


def evaluating() -> Any:
    """tsad's ``evaluating`` (tsad 0.19: ``tsad.utils.evaluating``; older: ``tsad.evaluating``)."""
    try:
        from tsad.utils.evaluating.evaluating import evaluating as fn
    except ImportError:
        try:
            from tsad.evaluating.evaluating import evaluating as fn
        except ImportError as exc:
            sys.exit(
                f"skab: tsad's scorer is not importable ({exc}); install it with\n"
                "  .venv/bin/pip install -r bench/public/requirements.txt\n"
                "  .venv/bin/pip install --no-deps -r bench/public/requirements-nodeps.txt"
            )
    return fn


@dataclass(slots=True)
class Score:
    standard: float
    low_fp: float
    low_fn: float
    missed: int
    fps: int
    true_cps: int
    delay: Any  # pd.Timedelta (mean over detected change points) or NaN


def score(scored: Sequence[Scored]) -> Score:
    fn = evaluating()
    true = [s.true for s in scored]
    pred = [s.pred for s in scored]
    kw = {"window_width": WINDOW, "anomaly_window_destination": DESTINATION, "verbose": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean delay of no detection: NaN
        nab = fn(true, pred, metric="nab", **kw)
        delay, missed, fps, cps = fn(true, pred, metric="average_time", **kw)
    return Score(
        float(nab["Standard"]),
        float(nab["LowFP"]),
        float(nab["LowFN"]),
        int(missed),
        int(fps),
        int(cps),
        delay,
    )


@dataclass(slots=True)
class Attribution:
    """tsad's own window split of one experiment: TP / extra-in-window / FP timestamps."""

    tp: list[Any]
    extra: list[Any]
    fp: list[Any]
    missed: int


def attribute(s: Scored) -> Attribution:
    from tsad.utils.evaluating.src import (
        extract_cp_confusion_matrix,
        filter_detecting_boundaries,
        single_detecting_boundaries,
    )

    bounds = single_detecting_boundaries(
        true_series=s.true,
        true_list_ts=None,
        prediction=s.pred,
        portion=0.1,
        window_width=WINDOW,
        anomaly_window_destination=DESTINATION,
        intersection_mode="cut right window",
    )
    bounds = filter_detecting_boundaries(bounds)
    cm = extract_cp_confusion_matrix(bounds, s.pred, point=0)
    tp = [v[1] for v in cm["TPs"].values()]
    fp = list(cm["FPs"])
    predicted = list(s.pred[s.pred == 1].index)
    counted = set(tp) | {_ts(t) for t in fp}
    extra = [t for t in predicted if t not in counted]
    return Attribution(tp, extra, [_ts(t) for t in fp], len(cm["FNs"]))


def _ts(t: Any) -> Any:
    import pandas as pd

    return pd.Timestamp(t)


# --------------------------------------------------------------------------- published


@dataclass(frozen=True, slots=True)
class Published:
    name: str
    standard: float
    low_fp: float | None = None
    low_fn: float | None = None
    missed: int | None = None
    fps: int | None = None


_ENTRY = re.compile(
    r"^(?P<name>.+?)\s+(?P<std>-?\d+(?:\.\d+)?)"
    r"(?:\s*/\s*(?P<lfp>-?\d+(?:\.\d+)?)\s*/\s*(?P<lfn>-?\d+(?:\.\d+)?))?"
    r"(?:\s*,\s*(?P<missed>\d+)\s*,\s*(?P<fps>\d+))?$"
)


_HEAD = re.compile(r"published\b.*\bleaderboard", re.IGNORECASE)


def published_rows(source_md: str) -> list[Published]:
    """The leaderboard bullet of the data folder's SOURCE.md, entry by entry.

    >>> rows = published_rows('''- Evaluation used by its leaderboard: tsad.
    ... - Published change-point leaderboard (NAB ...):
    ...   MSCRED 32.42 / 16.53 / 40.28, 55, 342; T-squared 19.54;
    ...   null 0; perfect 100.
    ... - Read it''')
    >>> [(r.name, r.standard, r.missed) for r in rows][:2]
    [('MSCRED', 32.42, 55), ('T-squared', 19.54, None)]
    >>> [(r.name, r.standard) for r in rows][2:]
    [('null', 0.0), ('perfect', 100.0)]
    """
    lines = source_md.splitlines()
    start = next((i for i, ln in enumerate(lines) if _HEAD.search(ln)), None)
    if start is None:
        return []
    text = lines[start].split(":", 1)[1] if ":" in lines[start] else ""
    for ln in lines[start + 1 :]:
        if ln.lstrip().startswith("- ") or not ln.strip():
            break
        text += " " + ln.strip()
    rows = []
    for entry in text.strip().rstrip(".").split(";"):
        m = _ENTRY.match(entry.strip())
        if m is None:
            continue
        rows.append(
            Published(
                m["name"],
                float(m["std"]),
                float(m["lfp"]) if m["lfp"] else None,
                float(m["lfn"]) if m["lfn"] else None,
                int(m["missed"]) if m["missed"] else None,
                int(m["fps"]) if m["fps"] else None,
            )
        )
    return rows


# --------------------------------------------------------------------------- report


def _fmt(x: float | int | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if isinstance(x, float) else str(x)


def table(
    ours: Published, published: Sequence[Published], also: Sequence[Published] = ()
) -> list[str]:
    rows = sorted([ours, *also, *published], key=lambda r: -r.standard)
    out = [
        "| algorithm | NAB standard | NAB low FP | NAB low FN | missed CPs | FPs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r.name}**" if r is ours or r in also else r.name
        cells = [_fmt(r.standard), _fmt(r.low_fp), _fmt(r.low_fn), _fmt(r.missed), _fmt(r.fps)]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def column_of(inc: Incident) -> str:
    return inc.stream_key.split("/", 1)[1] if "/" in inc.stream_key else inc.stream_key


def per_monitor(runs: Sequence[Run], scored: Sequence[Scored]) -> list[str]:
    """Which monitors (and sensors) made the TPs, the FPs and the rest."""
    by_monitor: dict[str, Counter[str]] = defaultdict(Counter)
    fp_sensor: dict[str, Counter[str]] = defaultdict(Counter)
    tp_sensor: dict[str, Counter[str]] = defaultdict(Counter)
    updates: Counter[str] = Counter()
    exp_rows = []
    for run, s in zip(runs, scored, strict=True):
        for inc in run.incidents:
            if inc.new:
                by_monitor[inc.monitor]["new"] += 1
            else:
                updates[inc.monitor] += 1
        for inc in s.in_train:
            by_monitor[inc.monitor]["in_train"] += 1
        a = attribute(s)
        for kind, stamps in (("tp", a.tp), ("extra", a.extra), ("fp", a.fp)):
            for stamp in stamps:
                incs = s.by_row.get(_ts(stamp), [])
                for monitor in {i.monitor for i in incs}:
                    by_monitor[monitor][kind] += 1
                for inc in incs:
                    if kind == "fp":
                        fp_sensor[inc.monitor][column_of(inc)] += 1
                    elif kind == "tp":
                        tp_sensor[inc.monitor][column_of(inc)] += 1
        fired = Counter(i.monitor for i in run.incidents if i.new)
        exp_rows.append(
            f"| {run.exp.name} | {sum(1 for c in run.exp.changepoints if c >= TRAIN_ROWS)} "
            f"| {len(a.tp)} | {a.missed} | {len(a.fp)} | {len(a.extra)} | {len(s.in_train)} | "
            + (", ".join(f"{m} {n}" for m, n in sorted(fired.items())) or "-")
            + " |"
        )
    out = [
        "",
        "Per monitor (a prediction is one reading; when incidents of several monitors fall on",
        "one reading it counts once for each of them, so the columns can sum to more than the",
        "totals; 'extra' = a later prediction inside a window already hit, neither TP nor FP):",
        "",
        "| monitor | new incidents | updates | before row 400 | TP | extra | FP |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in sorted(set(by_monitor) | set(updates)):
        c = by_monitor[m]
        out.append(
            f"| {m} | {c['new']} | {updates[m]} | {c['in_train']} | {c['tp']} | {c['extra']} "
            f"| {c['fp']} |"
        )
    for title, counts in (("FP", fp_sensor), ("TP", tp_sensor)):
        if not counts:
            continue
        cols = sorted({c for v in counts.values() for c in v})
        out += ["", f"{title} incidents by monitor and sensor column:", ""]
        out.append("| monitor | " + " | ".join(cols) + " |")
        out.append("|---|" + "---:|" * len(cols))
        for m in sorted(counts):
            out.append(f"| {m} | " + " | ".join(str(counts[m][c]) for c in cols) + " |")
    out += [
        "",
        "Per experiment (test part):",
        "",
        "| experiment | true CPs | TP | missed | FP | extra | new before row 400 | new incidents |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *exp_rows,
    ]
    return out


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def config_path(arg: str | None) -> str:
    if arg is not None:
        return str(Path(arg).resolve())
    from importlib.resources import files

    return f"shipped default ({files('riskstream') / 'default-config.yaml'})"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="SKAB's data folder (+ SOURCE.md)")
    p.add_argument("--config", help="monitor config (YAML); default: the shipped default")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="replays at once")
    p.add_argument("--onset", action="store_true", help="score onset_at instead of detected_at")
    p.add_argument("--per-monitor", action="store_true", help="TPs and FPs by monitor")
    p.add_argument("--work", type=Path, help="keep the records and incidents here")
    args = p.parse_args(argv)

    from riskstream import __version__
    from riskstream.config import load_config
    from riskstream.progress import Progress

    config = load_config(args.config)
    topic = config.topics.sensor or DEFAULT_TOPIC
    labelled, normal = find_experiments(args.data)
    if not labelled:
        sys.exit(f"skab: no experiments under {args.data}/{{{','.join(GROUPS)}}}/*.csv")
    source_md = args.data / "SOURCE.md"
    published = published_rows(source_md.read_text()) if source_md.exists() else []

    started = time.monotonic()
    exps = [read_experiment(p) for p in labelled] + [read_experiment(p, False) for p in normal]
    scored_exps = [e for e in exps if e.scored]
    test_cps = sum(1 for e in scored_exps for c in e.changepoints if c >= TRAIN_ROWS)
    print("SKAB through riskstream replay")
    print(f"  data        {args.data.resolve()}")
    print(f"  config      {config_path(args.config)}")
    print(f"  riskstream  {__version__} ({sys.executable} -m riskstream replay)")
    print(
        f"  experiments {len(scored_exps)} scored "
        f"({sum(e.events for e in scored_exps):,} events, {len(exps[0].columns)} sensors each)"
        + "".join(f" + {e.name} ({e.events:,} events, not scored)" for e in exps if not e.scored)
    )
    print(
        f"  scoring     tsad {tsad_version()} evaluating(metric='nab', window_width={WINDOW!r}, "
        f"anomaly_window_destination={DESTINATION!r}); test part = rows {TRAIN_ROWS}+ "
        f"({test_cps} true change points); predicted CP = new incident's (or, second "
        "row, every finding's) " + ("onset_at" if args.onset else "detected_at")
    )
    print(f"  jobs        {args.jobs}; {load()}")
    sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="skab-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs: list[Run] = []
        bar = Progress("skab: replayed", sum(e.events for e in exps))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(replay, e, work, topic, args.config) for e in exps]
            for n, fut in enumerate(futures, 1):
                run = fut.result()
                runs.append(run)
                new = sum(i.new for i in run.incidents)
                bar.update(
                    sum(r.exp.events for r in runs),
                    f"{n}/{len(exps)} experiments; {run.exp.name}: {new} new incidents, "
                    f"{len(run.incidents) - new} updates",
                )
            bar.close(sum(r.exp.events for r in runs))
    replay_s = time.monotonic() - started

    scored_runs = [r for r in runs if r.exp.scored]
    normal_runs = [r for r in runs if not r.exp.scored]
    scored = [series(r, args.onset) for r in scored_runs]
    result = score(scored)
    new = sum(i.new for r in scored_runs for i in r.incidents)
    updates = sum(not i.new for r in scored_runs for i in r.incidents)
    in_train = sum(len(s.in_train) for s in scored)
    after_end = sum(s.after_end for s in scored)
    children = sum(r.children for r in runs)

    at = "onset_at" if args.onset else "detected_at"
    ours = Published(
        f"riskstream (new incidents, {at})",
        result.standard,
        result.low_fp,
        result.low_fn,
        result.missed,
        result.fps,
    )
    # Every finding: an incident's later findings (an episode's updates) are alarms of
    # the detectors too, each at its own detected_at: the change points a detector
    # reports, which is what the leaderboard's algorithms are scored on.
    every = score([series(r, args.onset, every_finding=True) for r in scored_runs])
    ours_every = Published(
        f"riskstream (every finding, {at})",
        every.standard,
        every.low_fp,
        every.low_fn,
        every.missed,
        every.fps,
    )
    print()
    print(
        f"Change-point leaderboard (test part, NAB window {WINDOW} to the right; "
        f"published rows from {source_md.name}):"
    )
    print()
    for line in table(ours, published, also=[ours_every]):
        print(line)
    print()
    delay = result.delay
    delay_s = "n/a" if delay != delay else f"{delay.total_seconds():.1f} s"
    print(
        f"riskstream: {new} new incidents on the labelled experiments ({updates} updates not "
        f"counted), {in_train} of them before row {TRAIN_ROWS} (not scored)"
        + (f", {after_end} after the last reading" if after_end else "")
        + f"; {result.true_cps} true change points, {result.true_cps - result.missed} detected, "
        f"mean delay {delay_s}"
        + (f"; {children} child incidents left out" if children else "")
        + "."
    )
    every_delay = every.delay
    print(
        f"riskstream, every finding: {new + updates} findings, {every.true_cps - every.missed} "
        f"of {every.true_cps} true change points detected, mean delay "
        + ("n/a" if every_delay != every_delay else f"{every_delay.total_seconds():.1f} s")
        + "."
    )
    perfect = score([replace(s, pred=s.true.astype(int)) for s in scored])
    print(
        f"(The true change points themselves, scored the same way: {perfect.standard:.2f} / "
        f"{perfect.low_fp:.2f} / {perfect.low_fn:.2f}, {perfect.missed} missed: windows of "
        f"change points under {WINDOW} apart are cut, tsad's 'cut right window'.)"
    )
    for r in normal_runs:
        hours = r.exp.events / len(r.exp.columns) / 3600.0
        new_n = sum(i.new for i in r.incidents)
        by = Counter(i.monitor for i in r.incidents if i.new)
        print(
            f"{r.exp.name} run (normal, not scored): {new_n} new incidents and "
            f"{len(r.incidents) - new_n} updates in {hours:.1f} h of readings"
            + (" (" + ", ".join(f"{m} {n}" for m, n in sorted(by.items())) + ")" if by else "")
            + "."
        )
    if args.per_monitor:
        for line in per_monitor(scored_runs, scored):
            print(line)
    print()
    print(f"Run time {time.monotonic() - started:.0f} s (replays {replay_s:.0f} s); {load()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
