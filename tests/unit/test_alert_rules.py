"""deploy/prometheus's alerts and deploy/grafana's dashboard: valid, tested, on real metrics.

promtool of the Prometheus release docker-compose.yml runs (built from that release's
source by ``deploy/local/gotools.py``, cached) checks the rules and the config and runs
the rules' unit tests in alerts.test.yml.
Every PromQL expression in the rules and the dashboard may name only metrics that
riskstream's processes export, so a renamed metric fails here, not at 3 a.m.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

import gotools  # deploy/local/gotools.py (tests/conftest.py)
from riskstream.metrics import (
    ApiMetrics,
    ContainmentMetrics,
    NotifierMetrics,
    ProcessorMetrics,
    TicketerMetrics,
)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "riskstream-dashboard.json"

# Series every Prometheus has for each target, besides what the process exports.
SCRAPE_SERIES = {"up"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan"}


def _exported_series() -> set[str]:
    """The series names riskstream's processes expose (labelled or not)."""
    registry = CollectorRegistry()
    for metrics in (ProcessorMetrics, ContainmentMetrics, NotifierMetrics, ApiMetrics,
                    TicketerMetrics):  # fmt: skip
        metrics(registry)
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
    result = subprocess.run(
        [str(gotools.promtool(progress=True)), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} (in {cwd}) exited {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )


def test_promtool_is_the_release_compose_runs() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["prometheus"]["image"]
    release = gotools.prometheus_release()
    assert image == f"prom/prometheus:v{release}", "pin .ci/promtool/go.mod to compose's release"
    result = subprocess.run(
        [str(gotools.promtool(progress=True)), "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert f"version {release}" in result.stdout + result.stderr


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


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside collapsed rows


def test_the_dashboard_reads_only_metrics_riskstream_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported_series() | SCRAPE_SERIES
    exprs = list(_exprs(dashboard["panels"]))
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= exported, f"unknown {sorted(names - exported)} in {expr!r}"
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query or "")
            assert inner, f"variable {variable['name']}: expected label_values(...), got {query}"
            assert metric_names(inner.group(1)) <= exported, variable["name"]


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel's PromQL, with Grafana's variables filled in, as a recording rule."""
    exprs = list(_exprs(json.loads(DASHBOARD.read_text())["panels"]))
    grafana = {"$__rate_interval": "5m", "$instance": ".*"}
    rules = []
    for n, expr in enumerate(exprs):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", str(path))


def test_the_dashboard_takes_its_prometheus_from_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    graphs = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert graphs
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in graphs:
        for holder in (panel, *panel["targets"]):
            assert holder["datasource"] == expected, panel["title"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
