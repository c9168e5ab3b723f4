"""The storefront pages and the alternatives widget through Django's test client: a small catalog
processed by the real pipeline (test models), real PostgreSQL + pgvector, real search services."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from catalog.models import Product, ProductImage
from tests.support import bad_images as bad
from tests.support.catalogs import STOREFRONT_CATALOG as CATALOG
from tests.support.catalogs import module_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def shop(django_db_setup, django_db_blocker, tmp_path_factory, test_models):
    """The catalog above, imported and processed inline by the real pipeline; sku → id."""
    with module_catalog(django_db_blocker, tmp_path_factory.mktemp("storefront-catalog"), CATALOG) as ids:
        yield ids


def text(response) -> str:
    return response.content.decode()


def titles(html: str) -> list[str]:
    return re.findall(r'<span class="card-title">([^<]+)</span>', html)


# --- home and categories ----------------------------------------------------------------------------


def test_home_lists_products_with_cutouts_prices_and_stock(client, shop):
    response = client.get("/")
    assert response.status_code == 200
    html = text(response)
    assert sorted(titles(html)) == sorted(row[1] for row in CATALOG)
    assert html.count('src="/media/cutouts/') == len(CATALOG)  # the garment cutout, not the original
    # out-of-stock products are marked on their card: TEE-RED and JACKET-BLACK
    cards = re.findall(r'<li class="card( is-oos)?">.*?<span class="card-title">([^<]+)</span>', html, re.S)
    assert sorted(t for oos, t in cards if oos) == ["Black leather jacket", "Red cotton t-shirt"]
    assert "Out of stock" in html
    # landmarks, language, one search box taking words and photos (file + camera)
    assert '<html lang="en">' in html and 'role="search"' in html and "<main" in html
    assert 'name="q"' in html and 'type="file"' in html and 'capture="environment"' in html
    assert 'href="/c/men/"' in html and 'href="/c/women/"' in html  # category navigation


def test_home_pagination_keeps_pages_apart(client, shop, monkeypatch):
    from search import views

    monkeypatch.setattr(views, "GRID_PAGE_SIZE", 3)
    first, second, last = (titles(text(client.get(f"/?page={n}"))) for n in (1, 2, 3))
    assert len(first) == len(second) == 3 and len(last) == 2
    assert not set(first) & set(second) and not set(second) & set(last)
    html = text(client.get("/?page=2"))
    assert 'href="/?page=3"' in html and 'rel="prev"' in html and 'aria-current="page">2<' in html
    assert titles(text(client.get("/?page=99"))) == last  # past the end: the last page


def test_category_page_includes_subcategories_and_404s_unknown(client, shop):
    tops = text(client.get("/c/women/tops/"))
    assert sorted(titles(tops)) == sorted(r[1] for r in CATALOG if r[2] == "Women > Tops")
    women = client.get("/c/women/")
    assert women.status_code == 200
    assert sorted(titles(text(women))) == sorted(r[1] for r in CATALOG if r[2].startswith("Women"))
    assert 'href="/c/women/dresses/"' in text(women)  # its subcategories
    assert 'aria-label="Breadcrumb"' in tops and 'href="/c/women/"' in tops
    missing = client.get("/c/nowhere/")
    assert missing.status_code == 404 and "no category" in text(missing)


# --- text search ----------------------------------------------------------------------------------


def test_search_shows_results_facets_and_keeps_filters_in_the_url(client, shop):
    response = client.get("/search", {"q": "t-shirt"})
    assert response.status_code == 200
    html = text(response)
    found = titles(html)
    assert "Black striped t-shirt" in found and "Navy cotton t-shirt" in found
    # facet links with counts; the colour one adds colour=Black to the URL and keeps the query
    colour_link = re.search(r'href="(/search\?[^"]*colour=Black[^"]*)"', html)
    assert colour_link, "no colour facet link"
    assert 'data-facet="colour"' in html and 'class="facet-count"' in html
    narrowed = client.get(colour_link.group(1).replace("&amp;", "&"))
    narrowed_titles = titles(text(narrowed))
    assert narrowed_titles and all("Black" in t for t in narrowed_titles)
    assert len(narrowed_titles) < len(found)
    # the active filter is shown and removable (its link drops colour and keeps q)
    chip_re = r'<a class="chip chip-active" href="([^"]+)" aria-label="Remove filter Colour: Black"'
    chip = re.search(chip_re, text(narrowed))
    assert chip and "colour" not in chip.group(1) and "q=t-shirt" in chip.group(1)


def test_search_filters_combine_and_empty_results_suggest_removing_filters(client, shop):
    html = text(client.get("/search", {"q": "t-shirt", "in_stock": "1", "size": "M"}))
    found = titles(html)
    assert found and "Red cotton t-shirt" not in found and "Navy cotton t-shirt" not in found  # no M in stock
    assert "In stock only" in html and "Size: M" in html
    priced = titles(text(client.get("/search", {"q": "dress", "price_min": "40", "price_max": "50"})))
    assert priced and all(t == "Red floral dress" for t in priced)
    empty = client.get("/search", {"q": "t-shirt", "colour": "Green", "pattern": "Denim"})
    assert empty.status_code == 200
    page = text(empty)
    assert "No products match" in page and "Try removing a filter" in page and titles(page) == []


def test_search_shows_understood_parts_as_chips_that_undo_them_and_stay_in_the_url(client, shop):
    html = text(client.get("/search", {"q": "t-shirt under 16 euros"}))
    assert "Black striped t-shirt" not in titles(html) and "Black cotton t-shirt" in titles(html)  # 18 vs 16
    chip = re.search(r'<a class="chip chip-active" href="([^"]+)" data-part="up to 16.00 EUR"', html)
    assert chip and "ignore=price" in chip.group(1) and "q=t-shirt" in chip.group(1)
    undone = text(client.get(chip.group(1).replace("&amp;", "&")))
    assert "Black striped t-shirt" in titles(undone)
    again = re.search(r'<a class="chip chip-undone" href="([^"]+)" data-undone="price"', undone)
    assert again and "ignore" not in again.group(1)
    assert "in stock first" in html


def test_search_reports_bad_values_and_typos_instead_of_failing(client, shop):
    bad_price = client.get("/search", {"q": "dress", "price_min": "cheap", "page": "0"})
    assert bad_price.status_code == 200
    html = text(bad_price)
    assert "could not be used" in html and "lowest price" in html and titles(html)
    corrected = text(client.get("/search", {"q": "cottn shirt"}))
    assert "did you mean" in corrected and "cotton" in corrected
    assert "What are you looking for?" in text(client.get("/search"))


# --- product page ---------------------------------------------------------------------------------


def test_out_of_stock_product_offers_alternatives_with_reasons(client, shop):
    response = client.get("/p/TEE-RED/")
    assert response.status_code == 200
    html = text(response)
    assert "Out of stock" in html and "Try these instead" in html
    instead = html.split("Try these instead", 1)[1].split("Similar items", 1)[0]
    assert "Navy cotton t-shirt" in instead and "Black cotton t-shirt" in instead
    assert "Same design in blue" in instead and "Same design in black" in instead
    assert "Red cotton t-shirt" not in instead and "Black leather jacket" not in instead  # in stock only
    assert "Similar items" in html
    assert 'data-view="cutout"' in html and 'aria-pressed="true"' in html  # original / cutout toggle


def test_sold_out_size_offers_alternatives_in_that_size(client, shop):
    in_stock = text(client.get("/p/TEE-NAVY/", {"size": "S"}))
    assert "Try these instead" not in in_stock and 'aria-current="true"' in in_stock
    sold_out = text(client.get("/p/TEE-NAVY/", {"size": "M"}))
    assert "Size M is out of stock" in sold_out and "Try these instead" in sold_out
    instead = sold_out.split("Try these instead", 1)[1].split("Similar items", 1)[0]
    first = titles(instead)[0]
    assert first == "Black cotton t-shirt"  # same design, and in M
    assert "sold out" in sold_out  # the size button says so
    unknown_size = text(client.get("/p/TEE-NAVY/", {"size": "XXL"}))
    assert "There is no size" in unknown_size


def test_unknown_and_inactive_products_are_404(client, shop):
    response = client.get("/p/NOPE-1/")
    assert response.status_code == 404 and "NOPE-1" in text(response)
    Product.objects.filter(sku="DRESS-GREEN").update(is_active=False)
    assert client.get("/p/DRESS-GREEN/").status_code == 404


# --- photo search ---------------------------------------------------------------------------------


def test_bad_photos_get_clear_errors_and_leave_nothing(client, shop, media_root: Path):
    images = ProductImage.objects.count()
    cases = [
        (b"%PDF-1.4 not a photo", "shirt.jpg", "not a photo"),
        (b"", "empty.jpg", "empty"),
        (bad.truncated_jpeg(), "cut.jpg", "cut short"),
        (bad.heic_header(), "IMG_0001.HEIC", "export the photo as JPEG"),
    ]
    from django.core.files.uploadedfile import SimpleUploadedFile

    for content, name, message in cases:
        response = client.post("/search/photo", {"photo": SimpleUploadedFile(name, content, "image/jpeg")})
        assert response.status_code == 400, name
        assert message in text(response), (name, text(response))
        assert 'role="alert"' in text(response)
    missing = client.post("/search/photo", {})
    assert missing.status_code == 400 and "choose a photo" in text(missing)
    queries = media_root / "queries"
    assert not queries.exists() or not any(queries.iterdir())
    assert ProductImage.objects.count() == images


def test_photo_is_kept_as_a_file_and_redirects_to_a_shareable_page(client, shop, media_root: Path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    images = ProductImage.objects.count()
    upload = SimpleUploadedFile("me.jpg", bad.jpeg((240, 360), (200, 30, 30)), "image/jpeg")
    response = client.post("/search/photo", {"photo": upload, "in_stock": "1"})
    assert response.status_code == 302
    match = re.fullmatch(r"/search/photo/([0-9a-f]{32})\?in_stock=1", response["Location"])
    assert match, response["Location"]
    token = match.group(1)
    assert (media_root / "queries" / f"{token}.jpg").is_file()
    assert ProductImage.objects.count() == images  # nothing stored in the database
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = text(page)
    assert f"/media/queries/{token}.jpg" in html and "Your photo" in html
    # with the test parser the photo shows garments or not; the page says which
    assert "garment-box" in html or "couldn’t spot a garment" in html
    assert client.get("/search/photo/" + "0" * 32).status_code == 404
    assert client.get("/search/photo/not-a-token").status_code == 404
    out_of_range = client.get(f"/search/photo/{token}?garment=40")
    assert out_of_range.status_code == 200


# --- widget ---------------------------------------------------------------------------------------


def test_widget_json_headers_caching_and_content(client, shop):
    response = client.get("/widget/alternatives/TEE-RED.json", {"limit": "5"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=300"
    etag = response["ETag"]
    data = response.json()
    assert data["sku"] == "TEE-RED" and data["in_stock"] is False
    skus = [a["sku"] for a in data["alternatives"]]
    assert skus[:2] and set(skus[:2]) == {"TEE-NAVY", "TEE-BLACK"}  # same design first
    assert "TEE-RED" not in skus and "JACKET-BLACK" not in skus  # only in-stock alternatives
    first = data["alternatives"][0]
    assert first["url"] == f"http://testserver/p/{first['sku']}/"
    assert first["image"].startswith("http://testserver/media/")
    assert first["reason"].startswith("same design in") and first["currency"] == "EUR"
    assert re.fullmatch(r"\d+\.\d\d", first["price"])
    again = client.get("/widget/alternatives/TEE-RED.json", {"limit": "5"}, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag and again.content == b""
    assert again["Access-Control-Allow-Origin"] == "*"
    limited = client.get("/widget/alternatives/TEE-RED.json", {"limit": "1"})
    assert len(limited.json()["alternatives"]) == 1 and limited["ETag"] != etag
    sized = client.get("/widget/alternatives/TEE-RED.json", {"size": "M"}).json()
    assert sized["alternatives"][0]["sku"] == "TEE-BLACK"  # same design and in M


def test_widget_errors_are_json(client, shop):
    missing = client.get("/widget/alternatives/NOPE.json")
    assert missing.status_code == 404
    assert "NOPE" in missing.json()["error"] and missing["Access-Control-Allow-Origin"] == "*"
    bad_limit = client.get("/widget/alternatives/TEE-RED.json", {"limit": "500"})
    assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["error"]


def test_widget_script_is_served_for_other_origins(client, shop):
    response = client.get("/widget/alternatives.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    body = response.content.decode()
    assert "attachShadow" in body and "dataset.sku" in body
    assert client.get("/widget/alternatives.js", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_unknown_pages_get_the_shops_404_page(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = text(response)
    assert "couldn’t find that page" in page and 'role="search"' in page  # the shop's layout, with its search box
