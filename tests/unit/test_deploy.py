"""docker-compose.yml and deploy/ hold together (no Docker engine here to run them)."""

from __future__ import annotations

import json
import py_compile
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

import gotools  # deploy/local/gotools.py (tests/conftest.py)
from riskstream.cli import build_parser
from riskstream.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_use_existing_files_and_real_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "prometheus", "processor", "containment", "api"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            assert (ROOT / volume.split(":")[0]).exists(), volume
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).exists()
    parser = build_parser()
    for name in ("processor", "containment", "api", "notifier"):
        command = services[name]["command"]
        assert command[0] == "riskstream"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command


def test_prometheus_scrapes_every_riskstream_process() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert {"processor:9400", "containment:9400", "api:9400", "notifier:9400"} <= targets


def test_every_compose_service_restarts_and_the_workers_report_health() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {n: s.get("restart") for n, s in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )
    for name in ("processor", "containment"):
        assert "http://localhost:9400/health" in " ".join(services[name]["healthcheck"]["test"])


# -- docker-compose.yml as Docker Compose v2 reads it (compose-go's loader) ---------------

IMAGE_PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+(\.\d+)?([-.][\w.-]+)?$")


def compose_config(path: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess[str]:
    """``docker compose config --format json`` with every profile, by compose-go."""
    return subprocess.run(
        [str(gotools.compose_check(progress=True)), str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_docker_compose_v2s_loader_accepts_the_file_and_every_command_parses() -> None:
    result = compose_config()
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"notifier", "sample-receiver", "grafana", "api"} <= set(services)
    parser = build_parser()
    for name, service in services.items():
        if "build" not in service:
            assert IMAGE_PINNED.match(service["image"]), f"{name}: pin {service['image']}"
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']}"
        command = service.get("command") or []
        if command[:1] == ["riskstream"]:
            args = parser.parse_args(command[1:])  # exits (fails the test) on a bad command
            if getattr(args, "config", None):
                mounted = {v["target"]: v["source"] for v in service["volumes"]}
                load_config(mounted[args.config])  # the file it names loads
        elif command[:1] == ["python"]:
            mounted = {v["target"]: v["source"] for v in service["volumes"]}
            py_compile.compile(mounted[command[1]], doraise=True)


def test_the_loader_refuses_what_docker_compose_would(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  a:\n    image: x:1.0\n    depends_on: [nowhere]\n")
    result = compose_config(bad)
    assert result.returncode == 1 and "nowhere" in result.stderr
    bad.write_text("services:\n  a:\n    image: x:1.0\n    comand: [a]\n")  # a typo
    result = compose_config(bad)
    assert result.returncode == 1 and "comand" in result.stderr


def test_the_notifier_in_compose_posts_to_the_sample_receiver() -> None:
    services = json.loads(compose_config().stdout)["services"]
    receivers = load_config(ROOT / "deploy" / "notifier.yaml").notifications.receivers
    assert receivers
    for receiver in receivers:
        host = urlsplit(str(receiver.url)).hostname
        assert host in services, f"{receiver.name} posts to {host}, not a compose service"
    assert "sample-receiver" in services["notifier"]["depends_on"]


def test_grafana_provisioning_points_at_what_compose_mounts_and_runs() -> None:
    services = json.loads(compose_config().stdout)["services"]
    mounts = {v["target"]: v["source"] for v in services["grafana"]["volumes"]}
    providers = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/riskstream.yml").read_text()
    )
    folder = providers["providers"][0]["options"]["path"]
    dashboards = [t for t in mounts if t.startswith(folder + "/") and t.endswith(".json")]
    assert dashboards, f"nothing mounted under {folder}"
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    prometheus = next(d for d in datasources if d["type"] == "prometheus")
    url = urlsplit(prometheus["url"])
    assert url.hostname in services and url.port == 9090
    dashboard = json.loads(Path(mounts[dashboards[0]]).read_text())
    assert dashboard["uid"] and dashboard["title"]
