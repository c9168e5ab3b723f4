"""The browser fixtures themselves: Chromium reaches the live server, which serves the catalog the
real pipeline processed, and screenshots land in test-output/screenshots at two widths."""

from __future__ import annotations


def test_live_server_serves_the_processed_catalog_to_chromium(live_server, page, shop_catalog, screenshot):
    page.goto(live_server.url + "/")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert "Navy cotton t-shirt" in body and "Black leather jacket" in body
    images = page.locator("img")
    assert images.count() >= len(shop_catalog)
    assert all(page.evaluate("(img) => img.naturalWidth", images.nth(i).element_handle()) > 0 for i in range(3))
    shots = screenshot(page, "fixtures-home")
    assert [p.name for p in shots] == ["fixtures-home-desktop.png", "fixtures-home-phone.png"]
    assert all(p.stat().st_size > 1000 for p in shots)
