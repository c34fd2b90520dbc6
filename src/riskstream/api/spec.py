"""The OpenAPI document: kept as YAML in ``schemas/`` beside the event contracts, served as JSON.

``schemas/openapi.yaml`` is the API's contract; ``tests/unit/test_openapi.py``
holds it to the routes the app really serves.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from riskstream.config import environment
from riskstream.errors import ConfigError
from riskstream.validation import SCHEMA_DIR

__all__ = ["SPEC_FILE", "load_spec"]

SPEC_FILE = "openapi.yaml"


def load_spec(schema_dir: str | Path | None = None) -> bytes:
    """The OpenAPI document as JSON bytes, read once at start."""
    path = Path(schema_dir or environment.schema_dir(SCHEMA_DIR)) / SPEC_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the API description: {exc.strerror}; set "
            "RISKSTREAM_SCHEMA_DIR to riskstream's schemas/ folder"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return orjson.dumps(document)
