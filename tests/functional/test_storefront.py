"""The storefront in a real Chromium against the live server: text search with facets and the back
button, photo search through the file input with garment boxes (a tiny parser really trained on
synthetic person photos), and "Try these instead" on an out-of-stock product."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings


@pytest.fixture(scope="module")
def scene_models(tmp_path_factory, test_models):
    """A models folder with the test embedder and a tiny parser trained on synthetic person photos
    (as in tests/integration/test_search.py)."""
    from tests.support.scenes import train_scene_parser

    root = tmp_path_factory.mktemp("scene-models")
    (root / "embedder").symlink_to(Path(test_models) / "embedder")
    train_scene_parser(root)
    return root


@pytest.fixture
def scene_parser(shop_catalog, scene_models, settings, django_db_blocker):
    """The scene parser for shoppers' photos, switched in after the catalog was processed (the
    registry serves it; the parser that served before is served again afterwards)."""
    from lifecycle import selectors as lifecycle_selectors
    from lifecycle.services import version_promote
    from tests.support.checkpoints import parser_serve, reset_parser_cache

    settings.MODELS_DIR = scene_models
    reset_parser_cache()
    with django_db_blocker.unblock():
        before = lifecycle_selectors.version_active("parser")
        parser_serve(scene_models)
    yield
    settings.MODELS_DIR = django_settings.MODELS_DIR
    reset_parser_cache()
    with django_db_blocker.unblock():
        if before is not None and before.version != "scene-parser":
            before.refresh_from_db()
            version_promote(before)


def upload(page, name: str, content: bytes) -> None:
    """Choose a file in the header's photo picker, as a shopper does (the page submits it)."""
    page.set_input_files("#photo-file", files=[{"name": name, "mimeType": "image/jpeg", "buffer": content}])


def card_titles(page) -> list[str]:
    return page.locator(".results .card-title").all_inner_texts()


def test_text_search_facet_narrows_and_back_restores(live_server, page, shop_catalog, screenshot):
    page.goto(live_server.url + "/")
    page.fill("#q", "t-shirt")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"/search\?q=t-shirt$"))
    before = card_titles(page)
    assert "Navy cotton t-shirt" in before and "Black striped t-shirt" in before
    black = page.locator('[data-facet="colour"] a', has_text="Black")
    count = int(black.locator(".facet-count").inner_text())
    black.click()
    page.wait_for_url(re.compile(r"colour=Black"))
    after = card_titles(page)
    assert after and len(after) == count < len(before)
    assert all("Black" in t for t in after)
    assert page.locator(".chips .chip-active", has_text="Colour: Black").is_visible()
    assert page.locator('[data-facet="colour"] a[aria-checked="true"]').count() == 1
    screenshot(page, "storefront-search-filtered")
    page.go_back()
    page.wait_for_url(re.compile(r"/search\?q=t-shirt$"))
    assert card_titles(page) == before
    # the active filter chip removes the filter again
    page.go_forward()
    page.locator(".chips .chip-active", has_text="Colour: Black").click()
    page.wait_for_url(re.compile(r"/search\?q=t-shirt$"))
    assert card_titles(page) == before


def test_understood_price_is_a_chip_the_shopper_can_undo_and_redo(live_server, page, shop_catalog, screenshot):
    page.goto(live_server.url + "/")
    page.fill("#q", "t-shirt under 16 euros")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"/search\?q=t-shirt"))
    chip = page.locator("[data-understood] .chip-active", has_text="up to 16.00 EUR")
    assert chip.is_visible()
    assert "Black striped t-shirt" not in card_titles(page)  # 18 EUR
    screenshot(page, "storefront-search-understood")
    chip.click()
    page.wait_for_url(re.compile(r"ignore=price"))
    assert "Black striped t-shirt" in card_titles(page)
    page.locator("[data-understood] .chip-undone").click()  # read the price again
    page.wait_for_url(re.compile(r"^(?!.*ignore=).*$"))
    assert "Black striped t-shirt" not in card_titles(page)


def test_photo_search_draws_garment_boxes_and_narrows_to_one(live_server, page, scene_parser, screenshot):
    from tests.support.scenes import scene_photo

    buffer = io.BytesIO()
    scene_photo(200).save(buffer, "JPEG", quality=92)
    page.goto(live_server.url + "/")
    upload(page, "outfit.jpg", buffer.getvalue())
    page.wait_for_url(re.compile(r"/search/photo/[0-9a-f]{32}$"))
    boxes = page.locator(".garment-box")
    labels = [t.strip() for t in page.locator(".garment-box .garment-label").all_text_contents()]
    assert {"top", "bottom", "footwear"} <= set(labels), labels
    assert page.locator(".garment-row").count() == boxes.count()
    # boxes sit inside the photo, in % of its size, top above bottom
    frame = page.locator(".photo-frame").bounding_box()
    top_box = boxes.nth(labels.index("top")).bounding_box()
    bottom_box = boxes.nth(labels.index("bottom")).bounding_box()
    for box in (top_box, bottom_box):
        assert frame["x"] - 1 <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
        assert frame["y"] - 1 <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"] + 1
    assert top_box["y"] < bottom_box["y"]
    assert labels.index("top") < labels.index("bottom")  # shown head to toe
    assert page.locator(".garment-row .card").count() > 0
    screenshot(page, "storefront-photo-search")
    # keyboard: the boxes are links that take focus; Enter on one narrows to that garment
    box = boxes.nth(labels.index("bottom"))
    index = int(box.get_attribute("data-garment"))
    box.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"garment={index}"))
    rows = page.locator(".garment-row")
    assert rows.count() == 1 and "bottom" in rows.first.locator("h2").text_content()
    assert page.locator(f'.garment-box[data-garment="{index}"][aria-current="true"]').count() == 1
    screenshot(page, "storefront-photo-garment")
    page.go_back()
    page.wait_for_url(re.compile(r"/search/photo/[0-9a-f]{32}$"))
    assert page.locator(".garment-row").count() == len(labels)


def test_photo_without_garment_and_bad_file(live_server, page, scene_parser, screenshot):
    from tests.support.scenes import scene_photo

    buffer = io.BytesIO()
    scene_photo(300, garments=False).save(buffer, "JPEG", quality=92)
    page.goto(live_server.url + "/")
    upload(page, "wall.jpg", buffer.getvalue())
    page.wait_for_url(re.compile(r"/search/photo/"))
    assert page.get_by_text("couldn’t spot a garment").is_visible()
    assert page.locator("#q-photo").is_visible()  # the words search, right there
    screenshot(page, "storefront-photo-no-garment")
    upload(page, "notes.pdf", b"%PDF-1.4 hello")
    page.wait_for_url(re.compile(r"/search/photo$"))
    alert = page.locator('[role="alert"]')
    assert "not a photo" in alert.inner_text()
    screenshot(page, "storefront-photo-error")


def test_out_of_stock_product_shows_try_these_instead(live_server, page, shop_catalog, screenshot):
    page.goto(live_server.url + "/p/TEE-RED/")
    assert page.locator(".stock-line.oos").is_visible()
    instead = page.locator("[data-instead]")
    assert instead.locator("h2").inner_text() == "Try these instead"
    titles = instead.locator(".card-title").all_inner_texts()
    assert titles[:2] and set(titles[:2]) == {"Navy cotton t-shirt", "Black cotton t-shirt"}
    reasons = instead.locator(".reason").all_inner_texts()
    assert "Same design in blue" in reasons and "Same design in black" in reasons
    assert "Red cotton t-shirt" not in titles
    # the gallery's toggle switches to the garment cutout and says so
    main = page.locator("[data-gallery-main]")
    assert "/media/products/" in main.get_attribute("src")
    page.get_by_role("button", name="Garment only").click()
    assert page.get_by_role("button", name="Garment only").get_attribute("aria-pressed") == "true"
    assert "/media/cutouts/" in main.get_attribute("src")
    screenshot(page, "storefront-product-out-of-stock")
    instead.locator(".card-link").first.click()
    page.wait_for_url(re.compile(r"/p/TEE-(NAVY|BLACK)/$"))
    assert page.locator("[data-instead]").count() == 0  # in stock: nothing to replace


def test_home_and_category_pages(live_server, page, shop_catalog, screenshot):
    page.goto(live_server.url + "/")
    assert page.locator(".card").count() == len(shop_catalog)
    assert page.locator(".card.is-oos .badge-oos").count() == 2
    screenshot(page, "storefront-home")
    page.get_by_role("navigation", name="Categories").get_by_role("link", name="Women").click()
    page.wait_for_url(re.compile(r"/c/women/$"))
    assert page.locator("h1").inner_text() == "Women"
    page.locator(".subcats a", has_text="Tops").click()
    page.wait_for_url(re.compile(r"/c/women/tops/$"))
    assert page.locator(".card").count() == 4
    screenshot(page, "storefront-category")
    page.goto(live_server.url + "/p/NOPE/")
    assert "couldn’t find" in page.locator("h1").inner_text()
