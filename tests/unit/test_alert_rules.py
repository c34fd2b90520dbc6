"""deploy/prometheus's alerts: valid, tested, on real metrics.

promtool (Debian's ``prometheus`` package, installed by ``make system-packages``)
checks the rules and the config and runs the rules' unit tests in alerts.test.yml.
Every PromQL expression in the rules may name only metrics that
riskstream's processes export, so a renamed metric fails here, not at 3 a.m.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from riskstream.metrics import ContainmentMetrics, ProcessorMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"

# Series every Prometheus has for each target, besides what the process exports.
SCRAPE_SERIES = {"up"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan"}


def _exported_series() -> set[str]:
    """The series names riskstream's two processes expose (labelled or not)."""
    registry = CollectorRegistry()
    ProcessorMetrics(registry)
    ContainmentMetrics(registry)
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (and Grafana's $variables ignored).

    >>> sorted(metric_names('sum by (topic) (rate(a_total{x="b c", y=~"$v"}[$__rate_interval]))'))
    ['a_total']
    >>> sorted(metric_names("time() - (g > 0) > 3600 and on (job) h offset 10m"))
    ['g', 'h']
    >>> sorted(metric_names('histogram_quantile(0.99, sum by (le) (rate(b_bucket[5m])))'))
    ['b_bucket']
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'", '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    expr = re.sub(r"(?<![\w:])\d[\w.]*", " ", expr)  # numbers and durations
    words = re.findall(r"(?<![\w:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return {w for w in words if w.lower() not in _KEYWORDS}


def _alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _promtool(*args: str, cwd: Path = ROOT) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool not found on PATH: `make system-packages` installs it "
            "(Debian package `prometheus`)"
        )
    result = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} (in {cwd}) exited {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )


def test_promtool_accepts_the_alerting_rules() -> None:
    _promtool("check", "rules", "deploy/prometheus/alerts.yml")


def test_the_alerting_rules_pass_their_promtool_unit_tests() -> None:
    _promtool("test", "rules", "deploy/prometheus/alerts.test.yml")


def test_promtool_accepts_the_prometheus_config_and_its_rule_files() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    _promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS)


def test_every_alert_says_how_urgent_it_is_what_is_wrong_and_what_to_do() -> None:
    rules = _alert_rules()
    assert len(rules) >= 9
    tested = (PROMETHEUS / "alerts.test.yml").read_text()
    for rule in rules:
        name = rule["alert"]
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert f"alertname: {name}\n" in tested, f"{name} has no case in alerts.test.yml"


def test_the_metric_name_check_catches_a_name_no_process_exports() -> None:
    exported = _exported_series()
    assert "riskstream_events_consumed_total" in exported
    assert "riskstream_checkpoint_seconds_bucket" in exported
    assert "riskstream_containment_pending_actions" in exported
    typo = metric_names("rate(riskstream_event_consumed_total[5m])")
    assert typo == {"riskstream_event_consumed_total"}
    assert not typo <= exported


def test_alerts_read_only_metrics_riskstream_exports() -> None:
    exported = _exported_series() | SCRAPE_SERIES
    for rule in _alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        assert names <= exported, f"{rule['alert']}: unknown {sorted(names - exported)}"
