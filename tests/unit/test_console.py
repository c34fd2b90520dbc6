"""The console's files: served by the app, complete, and fetching nothing from elsewhere."""

from __future__ import annotations

import asyncio
import re

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.api import TokenTable, build_app
from riskstream.api.app import console_dir
from riskstream.bootstrap import embedded_operations
from riskstream.config import load_config
from riskstream.metrics import ApiMetrics

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an identifier, never fetched


def test_every_module_and_stylesheet_referenced_is_shipped_and_nothing_is_remote() -> None:
    folder = console_dir()
    texts = {p.name: p.read_text() for p in folder.iterdir()}
    assert {"index.html", "app.js", "console.css"} <= set(texts)
    for name, text in texts.items():
        assert not re.findall(r"https?://", text.replace(SVG_NAMESPACE, "")), name
        for ref in re.findall(r"""(?:from |src=|href=)["'](?:\./|/static/)([\w.-]+)["']""", text):
            assert ref in texts, f"{name} refers to {ref}, which is not shipped"
        assert "innerHTML" not in text, f"{name}: data reaches the page as text only"


def test_the_app_serves_the_console_with_a_strict_content_security_policy() -> None:
    config = load_config(None)
    app = build_app(
        embedded_operations(config, InMemoryBus()), config, TokenTable({}),
        ApiMetrics(CollectorRegistry()),
    )  # fmt: skip

    async def fetch() -> None:
        async with TestClient(TestServer(app)) as client:
            index = await client.get("/")
            assert index.status == 200 and "text/html" in index.headers["Content-Type"]
            assert "script-src" not in index.headers["Content-Security-Policy"]  # default: self
            assert "default-src 'self'" in index.headers["Content-Security-Policy"]
            assert '<script type="module" src="/static/app.js">' in await index.text()
            script = await client.get("/static/chart.js")
            assert script.status == 200 and "javascript" in script.headers["Content-Type"]
            assert (await client.get("/static/../api/auth.py")).status in (403, 404)
            assert (await client.get("/static/")).status in (403, 404)  # no listing

    asyncio.run(fetch())


def test_the_window_the_incidents_page_says_it_looked_through_is_the_one_used() -> None:
    """The page says "none in the latest 2,000 looked through" from its own constant."""
    from riskstream.api.routes import MAX_LIMIT
    from riskstream.services.operations import SCANNED, filtered_window

    pages = (console_dir() / "pages.js").read_text()
    assert f"\nconst SCANNED = {SCANNED};\n" in pages
    assert filtered_window(MAX_LIMIT) == SCANNED  # whatever limit the page asks for
