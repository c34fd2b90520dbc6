"""The Go tools the tests judge deploy files with, built once and cached like the Kafka jars.

- ``compose-check`` (``.ci/compose-check``): compose-go, the loader Docker Compose v2's
  ``docker compose config`` is built on, at the version pinned in its ``go.mod``;
  Debian's ``docker-compose`` 1.29 is too old to judge a Compose Specification file.
- ``promtool`` (``.ci/promtool``): built from the Prometheus source release that
  ``docker-compose.yml`` runs (its ``go.mod`` pins it), so the rules are tested by the
  same Prometheus that loads them.

Both come through the Go module proxy with the machine's Go toolchain
(``GOTOOLCHAIN=local``: no toolchain download), into ``$RISKSTREAM_CACHE/tools`` under
a name that hashes their sources, so a changed pin builds anew and an unchanged one
costs nothing.  Importable (tests put this directory on ``sys.path``) and runnable::

    python deploy/local/gotools.py build    # build what is missing, print the paths
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from services import cache_dir

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_CHECK = ROOT / ".ci" / "compose-check"
PROMTOOL = ROOT / ".ci" / "promtool"
PROMTOOL_PACKAGE = "github.com/prometheus/prometheus/cmd/promtool"


def _key(source: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(source.glob("*")):
        if path.suffix in {".go", ".mod", ".sum"}:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise RuntimeError(
            "the Go toolchain (go 1.26) is not on PATH: it builds compose-check and promtool "
            "for the deploy tests; install Go, or put /usr/local/go/bin on PATH"
        )
    return go


def _build(source: Path, name: str, target: str, progress: bool, ldflags: str = "") -> Path:
    out = cache_dir() / "tools" / f"{name}-{_key(source, ldflags)}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        print(f"building {name} in {source.relative_to(ROOT)} (once; cached at {out})",
              file=sys.stderr)  # fmt: skip
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    tmp = out.with_suffix(".tmp")
    result = subprocess.run(
        [_go(), "build", *(["-ldflags", ldflags] if ldflags else []), "-o", str(tmp), target],
        cwd=source, env=env, capture_output=True, text=True, timeout=3000, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"building {name} failed:\n{result.stdout}\n{result.stderr}")
    tmp.replace(out)
    return out


def compose_check(progress: bool = False) -> Path:
    """compose-check, built if missing."""
    return _build(COMPOSE_CHECK, "compose-check", ".", progress)


def promtool(progress: bool = False) -> Path:
    """promtool of the pinned Prometheus release, built if missing."""
    # what a release build stamps in, so `promtool --version` names the release
    version = f"-X github.com/prometheus/common/version.Version={prometheus_release()}"
    return _build(PROMTOOL, "promtool", PROMTOOL_PACKAGE, progress, version)


def prometheus_release() -> str:
    """The Prometheus release ``.ci/promtool`` pins: module v0.301.0 is Prometheus 3.1.0.

    Prometheus 3 tags its Go module ``v0.3MM.P`` for release ``3.MM.P``.
    """
    text = (PROMTOOL / "go.mod").read_text()
    m = re.search(r"github\.com/prometheus/prometheus v0\.3(\d\d)\.(\d+)", text)
    if m is None:
        raise RuntimeError(f"{PROMTOOL / 'go.mod'} does not pin github.com/prometheus/prometheus")
    return f"3.{int(m[1])}.{m[2]}"


def main(argv: list[str]) -> int:
    if argv[1:] != ["build"]:
        print("usage: gotools.py build", file=sys.stderr)
        return 2
    print(compose_check(progress=True))
    print(promtool(progress=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
