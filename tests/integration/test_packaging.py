"""The package as a user gets it: ``python -m build`` makes a wheel and an sdist; each
installs into a fresh virtualenv (dependencies from the package index, as a user's
pip does) and runs the README's quick start away from the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import riskstream

# Building and two installs with their dependencies take minutes on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
SHOW = os.environ.get("RISKSTREAM_SHOW_WHEEL")  # print the wheel's file list (issue #14)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    return out


def test_the_wheel_ships_what_runs_and_nothing_from_tests(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.startswith(f"riskstream-{riskstream.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    if SHOW:
        print("\n" + "\n".join(names))
    for shipped in (
        "riskstream/cli/main.py",
        "riskstream/default-config.yaml",
        "riskstream/scenarios/chatbot.yaml",
        "riskstream/console/index.html",
        "riskstream/_schemas/inference-event.schema.json",
        "riskstream/_schemas/openapi.yaml",
        "riskstream/py.typed",
    ):
        assert shipped in names, shipped
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/", "docs/"))]
    assert not [n for n in names if "conftest" in n or "/test_" in n]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "riskstream = riskstream.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_it_installs_into_a_fresh_venv_and_the_quick_start_runs(
    dist: Path, kind: str, tmp_path: Path
) -> None:
    (artifact,) = dist.glob(f"*.{kind}")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RISKSTREAM_", "PYTHON"))}
    subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", str(artifact)],
        capture_output=True, text=True, timeout=1200, check=True, env=clean,
    )  # fmt: skip
    away = tmp_path / "elsewhere"  # not the repository: nothing found by accident
    away.mkdir()

    def riskstream_cli(*args: str) -> str:
        done = subprocess.run(
            [str(bin_dir / "riskstream"), *args], cwd=away, env=clean,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"riskstream {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    assert riskstream_cli("--version").strip() == f"riskstream {riskstream.__version__}"
    summary = json.loads(riskstream_cli("demo", "--scenario", "chatbot", "--json"))
    assert summary["incidents"], summary
    print(f"\n{kind}: demo --scenario chatbot --json -> {json.dumps(summary)[:400]}")
    riskstream_cli("config", "check")  # the shipped default config loads from the package
    riskstream_cli(
        "schemas", "validate", str(ROOT / "schemas/examples/inference-event.1.json")
    )  # the packaged contracts validate events
