"""The catalog page in a real headless browser (Debian's chromium-headless-shell, driven by
Playwright), loaded from the local stack: rows by R version, architecture and region, the
filter, copying an ARN (mouse and keyboard), labels, expiry dates and tombstones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from chalicelib.models import Architecture, BuildRecord
from rlayer.local.stack import LocalStack, StackOptions
from tests.catalog_seed import proven, supersede, tombstone

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
EU, US = "eu-west-1", "us-east-1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(
        StackOptions(api_port=0, data_dir=tmp_path / "stack", run_schedules=False)
    ) as stack:
        yield stack


@pytest.fixture
def seeded(stack: LocalStack) -> dict[str, BuildRecord]:
    store = stack.store()
    pkgs = {"dplyr": "1.1.4"}
    arm = proven(store, "4.5.1", packages=pkgs, architecture=Architecture.ARM64, regions=(US, EU))
    old = proven(store, "4.4.1", packages=pkgs, regions=(US,), version=1)
    new = proven(store, "4.4.1", packages=pkgs, regions=(US,), version=2, build_id="b441new")
    expiring = proven(store, "4.3.3", regions=(US,), version=1)
    current = proven(store, "4.3.3", regions=(US,), version=2, build_id="b433new")
    supersede(store, expiring, current)
    return {
        "arm": arm,
        "old": tombstone(store, old, new),
        "new": new,
        "expiring": store.get_build(expiring.build_id),
    }


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.api_url)
    page = context.new_page()
    yield page
    context.close()


def test_the_page_lists_filters_and_copies(
    page: Page, stack: LocalStack, seeded: dict[str, BuildRecord], tmp_path: Path
) -> None:
    page.goto(f"{stack.api_url}/catalog")
    rows = page.locator("#catalog tbody tr")
    # One row per build and region: 4.5.1 arm64 in two regions, four builds in us-east-1.
    expect(rows).to_have_count(6)
    expect(page.locator("#count")).to_have_text("6 of 6 shown")
    # Newest R first.
    expect(rows.first.locator("td").first).to_have_text("4.5.1")

    # Expiry dates and tombstones.
    expiring = seeded["expiring"]
    assert expiring.expires_at is not None
    expect(page.get_by_text(f"Expires {expiring.expires_at[:10]}")).to_be_visible()
    tomb = rows.filter(has_text="Deleted")
    expect(tomb).to_have_count(1)
    replacement = seeded["new"].layers[1].arn
    expect(tomb).to_contain_text(f"packages replaced by {replacement}")
    expect(tomb.locator("button")).to_have_count(0)  # nothing to copy from a tombstone

    # The filter box: labelled, every word must match.
    search = page.get_by_label("Filter")
    search.fill("arm64 eu-west-1")
    expect(page.locator("#catalog tbody tr:visible")).to_have_count(1)
    expect(page.locator("#count")).to_have_text("1 of 6 shown")

    # Copy with the mouse: the clipboard holds the ARN, a status line says so.
    arm = seeded["arm"]
    runtime = arm.layers[0].regions[EU].arn
    button = page.get_by_role("button", name=f"Copy runtime layer ARN for R 4.5.1 arm64 in {EU}")
    button.click()
    assert page.evaluate("navigator.clipboard.readText()") == runtime
    expect(page.get_by_role("status").filter(has_text="Copied")).to_have_text(f"Copied {runtime}")

    # And with the keyboard alone: from the filter box, Tab reaches the copy buttons.
    packages = arm.layers[1].regions[EU].arn
    search.focus()
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_attribute("data-arn", runtime)
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_attribute("data-arn", packages)
    page.keyboard.press("Enter")
    assert page.evaluate("navigator.clipboard.readText()") == packages

    search.fill("")
    expect(page.locator("#catalog tbody tr:visible")).to_have_count(6)
    shot = tmp_path / "catalog.png"  # kept in the test's temporary directory
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_the_page_says_when_the_catalog_cannot_be_read(
    page: Page, stack: LocalStack, seeded: dict[str, BuildRecord]
) -> None:
    # The page reads the JSON route beside it; an API that refuses shows an alert.
    page.route("**/layers", lambda route: route.fulfill(status=403, json={"message": "denied"}))
    page.goto(f"{stack.api_url}/catalog")
    expect(page.get_by_role("alert")).to_have_text("The catalog could not be read: denied")
