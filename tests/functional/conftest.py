"""Functional tests: a real browser. Playwright drives the Debian Chromium (``/usr/bin/chromium``, or
``SHOP_CHROMIUM``) against pytest-django's live server, which serves the test database.

* ``browser``: one headless Chromium for the session.
* ``page``: a fresh browser context + page at desktop width, closed after the test.
* ``screenshot(page, name)``: saves ``test-output/screenshots/<name>-desktop.png`` and
  ``…-phone.png`` (the viewport is switched to a phone width for the second one and back).
* ``shop_catalog``: tests.support.catalogs.STOREFRONT_CATALOG (8 products, two of them out of stock, one design in
  three colours) imported through the real import service and processed inline by the real pipeline with
  the test models; returns sku → product id.

Tests that use ``live_server`` run with a transactional database (flushed after each test), so the
catalog fixture is per test. The database, Redis and worker fixtures come from tests/support/services.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.catalogs import STOREFRONT_CATALOG, catalog_import_processed
from tests.support.services import (  # noqa: F401 - fixtures, registered for this folder
    celery_worker_process,
    redis_client,
    search_query_threads_closed_before_the_database_goes,
    worker_factory,
)

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are ordinary synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

REPO = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = os.environ.get("SHOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: bin/setup installs it (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def screenshot() -> Callable[[Any, str], list[Path]]:
    """``screenshot(page, name)`` → the two files written (desktop and phone width)."""

    def take(tab: Any, name: str) -> list[Path]:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        before = tab.viewport_size or DESKTOP
        written = []
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            tab.set_viewport_size(size)
            tab.wait_for_timeout(150)  # let the layout settle after the resize
            target = SCREENSHOTS / f"{name}-{label}.png"
            tab.screenshot(path=str(target), full_page=True)
            written.append(target)
        tab.set_viewport_size(before)
        return written

    return take


@pytest.fixture
def shop_catalog(transactional_db: None, media_root: Path, tmp_path: Path, test_models: Path) -> dict[str, int]:
    """STOREFRONT_CATALOG imported and processed inline by the real pipeline; sku → product id."""
    return catalog_import_processed(tmp_path, STOREFRONT_CATALOG, image_size=(240, 360))
