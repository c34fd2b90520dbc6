"""The web console in a real headless Chromium, on the real broker, Redis and worker.

Debian's chromium is used (Playwright's own browser download needs the internet);
its absence fails the test with what to install, it never skips it.  Set
``RISKSTREAM_SCREENSHOT_DIR=docs`` to save the incident page as
``docs/console-incident.png``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from api_support import ApiProcess, clinical_situation, matches_past_a_window, write_tokens
from support import make_setup

CHROMIUM = Path(os.environ.get("RISKSTREAM_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags, chromium's own connections (updates,
# safe browsing...) are refused by a closed network and disturb the page.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TOKENS = {
    "val": ("viewer", "rs_console_viewer_token_0001"),
    "dr.okafor": ("approver", "rs_console_approver_token_0002"),
}


def require_browser() -> None:
    """Fail (never skip) at once, saying what to install."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"no chromium at {CHROMIUM}: the console's browser test needs it. Install Debian's "
            "chromium (`make system-packages`) or point RISKSTREAM_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'", pytrace=False)


@contextmanager
def chromium_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    require_browser()
    with sync_playwright() as playwright:
        playwright.selectors.set_test_id_attribute("data-test")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def test_an_approver_sees_the_evidence_approves_the_rollback_and_the_flag_changes(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    require_browser()
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    tokens = write_tokens(tmp_path / "tokens.yaml", TOKENS)
    with clinical_situation(tmp_path, unique("console"), kafka_bootstrap, redis_url) as world:
        api = ApiProcess(
            world.setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", world.namespace
        )
        try:
            with chromium_page() as page:
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                page.on(
                    "console",
                    lambda m: (
                        problems.append(m.text)
                        if m.type == "error" and "403" not in m.text  # the refusal we provoke
                        else None
                    ),
                )
                page.goto(api.url + f"/#/incidents/{world.incident_id}")

                # A viewer may look, but the API refuses their approval, and the page says why.
                _log_in(page, TOKENS["val"][1])
                page.get_by_test_id("approve").click()
                expect(page.get_by_test_id("notice-error")).to_contain_text(
                    "403 forbidden): approving an action needs the approver role; val is a viewer"
                )
                page.get_by_role("button", name="Log out").click()

                # The approver: the incident, its evidence and timeline, the held rollback.
                page.goto(api.url + "/#/incidents")
                _log_in(page, TOKENS["dr.okafor"][1])
                expect(page.get_by_test_id("who")).to_have_text("dr.okafor · approver")
                row = page.locator(f"[data-test=incident-row][data-id='{world.incident_id}']")
                expect(row).to_contain_text("critical")
                row.get_by_role("link").click()
                expect(page.get_by_test_id("headline")).to_have_text(
                    "critical error-rate on diagnosis|melanoma|age-70+: missed 0.08 → 0.31"
                )
                chart = page.get_by_test_id("evidence-chart")
                expect(chart).to_be_visible()
                for part in ("band-before", "mean-before", "mean-after", "marker-onset",
                             "marker-alarm"):  # fmt: skip
                    expect(chart.locator(f"[data-test={part}]")).to_have_count(1)
                expect(chart).to_contain_text("estimated onset, sample 3,801")
                expect(chart).to_contain_text("alarm, sample 4,040")
                expect(page.locator("figcaption")).to_contain_text("Window statistics")
                timeline = page.get_by_test_id("timeline")
                expect(timeline.locator("li[data-kind=detected]")).to_have_count(1)
                expect(timeline).to_contain_text("human-review: applied")
                expect(page.get_by_test_id("regulatory")).to_contain_text("Article 73")
                expect(page.get_by_test_id("suspects")).to_contain_text("dx-2.1")
                expect(page.get_by_test_id("blast-radius")).to_contain_text("212")
                expect(page.get_by_test_id("flag-version")).to_have_text("dx-2.1")
                expect(page.get_by_test_id("flag-mode")).to_have_text("human-review")
                if shots := os.environ.get("RISKSTREAM_SCREENSHOT_DIR"):
                    Path(shots).mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(Path(shots) / "console-incident.png"), full_page=True)

                page.get_by_test_id("decision-note").fill("recall drop confirmed on the ward")
                page.get_by_test_id("approve").click()
                expect(page.get_by_test_id("notice-ok")).to_contain_text("applied by dr.okafor")
                expect(page.get_by_test_id("flag-version")).to_have_text("dx-2.0")
                expect(page.get_by_test_id("flag-actor")).to_have_text("dr.okafor")
                expect(timeline.locator("li[data-kind=approved]")).to_contain_text("dr.okafor")
                expect(page.locator("[data-test=action][data-status=applied]")).to_have_count(1)

                with page.expect_download() as downloaded:  # the report, drafted from the record
                    page.get_by_test_id("report-art73").click()
                report = Path(downloaded.value.path()).read_text(encoding="utf-8")
                assert report.startswith("# Serious incident report (EU AI Act, Article 73)")
                assert "route-to-version: applied" in report and "dr.okafor" in report

                page.get_by_role("link", name="Routing flags").click()
                expect(page.locator("tr[data-model=diagnosis]")).to_contain_text("dx-2.0")
                assert problems == []
            audit = api.call("GET", "/api/v1/audit?limit=1000", TOKENS["val"][1]).body["entries"]
        finally:
            api.stop()
    approvals = [e for e in audit if e["after"].get("event") == "action.approved"]
    assert [(e["actor"], e["after"]["note"]) for e in approvals] == [
        ("dr.okafor", "recall drop confirmed on the ward")
    ]
    rollback = [e for e in audit if e["after"].get("active_version") == "dx-2.0" and e["seq"] > 2]
    assert [e["actor"] for e in rollback] == ["dr.okafor"]


def test_an_empty_filtered_page_says_how_far_it_looked_and_offers_to_look_further(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """A filtered page looks through 2,000 incidents after its cursor; the page said "No
    incidents match." when none of them did, and ignored ``next``: the three older
    matches were out of the console's reach."""
    require_browser()
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    namespace = unique("console-window")
    older, _ = matches_past_a_window(redis_url, namespace)
    address = "/#/incidents?subject=ward-7&limit=2"
    with _viewer_at(address, kafka_bootstrap, redis_url, tmp_path, namespace) as page:
        expect(page.get_by_test_id("no-incidents")).to_have_text(
            "None in the latest 2,000 incidents looked through; older ones were not "
            "looked through yet."
        )
        rows = page.get_by_test_id("incident-row")
        for shown in ([older[2], older[1]], [older[0]]):
            page.get_by_test_id("older").click()
            expect(rows).to_have_count(len(shown))
            assert [r.get_attribute("data-id") for r in rows.all()] == shown
        expect(page.get_by_test_id("older")).to_have_count(0)  # the oldest was looked at
        assert "null" not in page.locator("#main").inner_text()  # no link, nor "null"


def test_the_flags_page_follows_next_past_its_first_hundred_flags(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The API answers 100 flags a page (by model id); the page showed the first 100 and
    ignored ``next``: the flags of models after them were out of the console's reach."""
    require_browser()
    from playwright.sync_api import expect

    from riskstream.adapters.redis.flags import RedisFlagStore
    from riskstream.core.routing import FlagChange, RoutingFlag

    expect.set_options(timeout=30_000)
    namespace = unique("console-flags")
    models = [f"model-{n:03d}" for n in range(130)]
    store = RedisFlagStore.from_url(redis_url, namespace=namespace)
    try:
        for model in models:
            flag = RoutingFlag(model, "v1", revision=1, updated_at=1.0)
            assert store.apply(FlagChange(f"c-{model}", 0, flag), 1.0).outcome == "applied"
    finally:
        store.close()
    with _viewer_at("/#/flags", kafka_bootstrap, redis_url, tmp_path, namespace) as page:
        rows = page.locator("[data-test=flags] tbody tr")
        expect(rows).to_have_count(100)
        assert [r.get_attribute("data-model") for r in rows.all()] == models[:100]
        page.get_by_test_id("more-flags").click()
        expect(rows).to_have_count(30)
        assert [r.get_attribute("data-model") for r in rows.all()] == models[100:]
        expect(page.get_by_test_id("more-flags")).to_have_count(0)  # the last page
        assert "null" not in page.locator("#main").inner_text()


@contextmanager
def _viewer_at(
    address: str, kafka_bootstrap: str, redis_url: str, tmp_path: Path, namespace: str
) -> Iterator[Any]:
    """The console of an API over ``namespace`` at ``address`` (/#/...), logged in as a
    viewer; the page raised no error by the end."""
    setup = make_setup(tmp_path, namespace)
    tokens = write_tokens(tmp_path / "tokens.yaml", TOKENS)
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", namespace)
    try:
        with chromium_page() as page:
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(api.url + address)
            _log_in(page, TOKENS["val"][1])
            yield page
            assert problems == []
    finally:
        api.stop()


def _log_in(page: Any, token: str) -> None:
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("login").click()
