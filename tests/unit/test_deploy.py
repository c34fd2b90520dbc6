"""docker-compose.yml and deploy/ hold together (no Docker engine here to run them)."""

from __future__ import annotations

from pathlib import Path

import yaml

from riskstream.cli import build_parser

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
    for name in ("processor", "containment", "api"):
        command = services[name]["command"]
        assert command[0] == "riskstream"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command


def test_prometheus_scrapes_every_riskstream_process() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert {"processor:9400", "containment:9400", "api:9400"} <= targets


def test_every_compose_service_restarts_and_the_workers_report_health() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {n: s.get("restart") for n, s in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )
    for name in ("processor", "containment"):
        assert "http://localhost:9400/health" in " ".join(services[name]["healthcheck"]["test"])
