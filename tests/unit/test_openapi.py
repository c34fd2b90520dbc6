"""schemas/openapi.yaml is a valid OpenAPI 3.1 document describing exactly the app's routes.

(Every answer of tests/unit/test_api.py is also checked against it, status and body.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry

from api_support import spec_document
from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.api import TokenTable, build_app
from riskstream.api.routes import ROUTES
from riskstream.bootstrap import embedded_operations
from riskstream.config import load_config
from riskstream.metrics import ApiMetrics

SPEC = spec_document()
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1.")


def test_its_paths_and_methods_are_the_apps_routes() -> None:
    documented = {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == {(r.method, r.path) for r in ROUTES}


def test_open_routes_need_no_token_and_the_others_name_their_role() -> None:
    for route in ROUTES:
        operation = SPEC["paths"][route.path][route.method.lower()]
        if route.role is None:
            assert operation["security"] == [], route.path
            continue
        assert "security" not in operation, route.path  # the document's default: bearer
        assert f"({route.role})" in operation["summary"], route.path
        assert "401" in operation["responses"], route.path
        if route.role != "viewer":
            assert "403" in operation["responses"], route.path


def test_the_app_serves_the_document_without_a_token(tmp_path: Path) -> None:
    config = load_config(None)
    app = build_app(
        embedded_operations(config, InMemoryBus()), config, TokenTable({}),
        ApiMetrics(CollectorRegistry()),
    )  # fmt: skip

    async def fetch() -> object:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/v1/openapi.json")
            assert response.status == 200
            return orjson.loads(await response.read())

    assert asyncio.run(fetch()) == SPEC


def test_the_model_id_pattern_is_the_one_the_flag_override_applies() -> None:
    from riskstream.core.routing import MODEL_ID_PATTERN

    (param,) = SPEC["paths"]["/api/v1/flags/{model_id}"]["put"]["parameters"]
    assert (param["name"], param["schema"]["pattern"]) == ("model_id", MODEL_ID_PATTERN)


def test_the_text_and_cursor_patterns_are_the_ones_the_api_applies() -> None:
    from riskstream.api.routes import CURSOR_PATTERN
    from riskstream.services.operations import LINE_PATTERN, SAID_PATTERN, TEXT_PATTERN

    schemas = SPEC["components"]["schemas"]
    assert schemas["Note"]["properties"]["note"]["pattern"] == TEXT_PATTERN
    assert schemas["FlagOverride"]["properties"]["reason"]["pattern"] == SAID_PATTERN
    assert schemas["FlagOverride"]["properties"]["version"]["pattern"] == LINE_PATTERN
    assert SPEC["components"]["parameters"]["After"]["schema"]["pattern"] == CURSOR_PATTERN


def test_the_refused_characters_are_this_pythons_control_and_format_characters() -> None:
    """The list is fixed (so that the rule and the document agree on every Python); a
    newer Unicode's new format characters show up here, to be added to it."""
    import re
    import sys
    import unicodedata

    from riskstream.services.operations import TEXT_PATTERN

    allowed = re.compile(TEXT_PATTERN)
    wanted = [
        f"U+{c:04X}" for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp")
        and chr(c) not in "\t\n\u200d" and allowed.fullmatch(chr(c))
    ]  # fmt: skip
    assert wanted == [], f"Unicode {unicodedata.unidata_version}: add {wanted} to _REFUSED"


def test_the_spaces_a_reason_or_a_note_may_not_be_made_of_are_this_pythons() -> None:
    """Blank is what ``str.strip`` empties: every such character that a reason or a note
    may hold is in the list (_SPACES, or tab and newline), and the pattern takes no other
    for one.  (A note may be empty, a reason not; neither may be blank.)"""
    import re
    import sys

    from riskstream.services.operations import SAID_PATTERN, TEXT_PATTERN

    text, said = re.compile(TEXT_PATTERN), re.compile(SAID_PATTERN)
    held = [chr(c) for c in range(sys.maxunicode + 1) if said.fullmatch(f"x{chr(c)}")]
    blank = [c for c in held if not said.fullmatch(c)]
    assert blank == [c for c in held if c.isspace()], "add this Python's spaces to _SPACES"
    assert [c for c in held if text.fullmatch(c)] == [c for c in held if said.fullmatch(c)]
    assert text.fullmatch("") and not said.fullmatch("")


def test_the_window_a_filtered_incident_page_looks_through_is_the_one_it_uses() -> None:
    from riskstream.services.operations import SCANNED

    description = SPEC["paths"]["/api/v1/incidents"]["get"]["description"]
    assert f"looks through at most {SCANNED} incidents" in description
