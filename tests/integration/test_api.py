"""REST API v1 through Django's test client against the real stack: PostgreSQL + pgvector with a tiny
catalog processed by the real pipeline (test models), the real Redis (throttle counts, broker). Every
endpoint: the happy path, anonymous / shopper / staff, validation errors, the one error body."""

from __future__ import annotations

import io
import mimetypes
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.image_checks import ImageRejected, image_check_upload
from catalog.models import Product
from tests.support import bad_images as bad
from tests.support.catalogs import SMALL_CATALOG as CATALOG
from tests.support.catalogs import module_catalog

pytestmark = pytest.mark.django_db

API = "/api/v1"


CATALOG_MEDIA: list[Path] = []


@pytest.fixture(scope="module")
def catalog(django_db_setup, django_db_blocker, tmp_path_factory, test_models):
    """SMALL_CATALOG imported and processed inline by the real pipeline; sku → product id. The
    Celery pipeline is on for the tests (uploads through the API enqueue their processing)."""
    folder = tmp_path_factory.mktemp("api-catalog")
    CATALOG_MEDIA.append(folder / "media")
    with module_catalog(django_db_blocker, folder, CATALOG, pipeline_off=False) as ids:
        yield ids


@pytest.fixture(autouse=True)
def api_settings(settings, catalog) -> Iterator[None]:
    """Generous rates (tests set low ones where they test throttling) and throttle counts under a
    key prefix of this test's own on the real Redis, removed afterwards."""
    prefix = f"test-api-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {**settings.CACHES, "api": {**settings.CACHES["api"], "KEY_PREFIX": prefix}}
    rates = {scope: "100000/minute" for scope in ("catalog", "search", "photo_search", "auth")}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    settings.MEDIA_ROOT = CATALOG_MEDIA[-1]  # the catalog's photos and cutouts
    yield
    client = caches["api"]._cache.get_client(write=True)  # the real Redis behind the cache
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def make_user(username: str, *, staff: bool) -> tuple[object, str]:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=staff)
    return user, Token.objects.create(user=user).key


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def shopper() -> APIClient:
    _, token = make_user("shopper", staff=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def staff() -> APIClient:
    _, token = make_user("staffer", staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def error_of(response, status: int, code: str) -> dict:
    """The one error body: {"error": {"code", "message", "fields", "request_id"}}."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields", "request_id"}, body
    assert body["error"]["request_id"] == response["X-Request-ID"], body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def skus_of(rows: list[dict]) -> list[str]:
    return [row["sku"] if "sku" in row else row["product"]["sku"] for row in rows]


# --- catalog reads ------------------------------------------------------------------------------


def test_categories_tree_with_counts_and_etag(anon):
    response = anon.get(f"{API}/categories")
    assert response.status_code == 200
    by_path = {c["path"]: c for c in response.json()}
    assert by_path["women"]["product_count"] == 6 and by_path["women/tops"]["product_count"] == 4
    assert by_path["men/jackets"]["parent_path"] == "men" and by_path["men"]["parent_path"] is None
    etag = response["ETag"]
    again = anon.get(f"{API}/categories", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""


def test_product_list_filters_facets_and_stable_pages(anon, catalog):
    response = anon.get(f"{API}/products", {"colour": "black", "in_stock": "true"})
    body = response.json()
    assert response.status_code == 200
    assert skus_of(body["results"]) == ["K1", "K2", "K3"]  # ordered by SKU
    assert body["count"] == 3
    assert {f["value"]: f["count"] for f in body["facets"]["pattern"]} == {"Solid": 2, "Striped": 1}
    assert body["results"][0]["cutout_url"].startswith("http://testserver/media/cutouts/")
    # price range and category with its descendants
    cheap_tops = anon.get(f"{API}/products", {"category": "women", "price_max": "16", "ordering": "-price"}).json()
    at_15 = sorted(["B2", "R1"], key=catalog.__getitem__)  # ties broken by product id
    assert skus_of(cheap_tops["results"]) == ["K3", *at_15]
    # pages: limit/offset walk the whole list once, in the same order as one big page
    everything = skus_of(anon.get(f"{API}/products", {"limit": 100}).json()["results"])
    assert len(everything) == len(catalog)
    walked, url = [], f"{API}/products?limit=3"
    while url:
        page = anon.get(url).json()
        walked += skus_of(page["results"])
        url = page["next"]
    assert walked == everything
    assert anon.get(f"{API}/products", {"limit": 3, "offset": 3}).json()["previous"].endswith("limit=3")


def test_product_list_validation_errors(anon):
    error = error_of(anon.get(f"{API}/products", {"price_min": "50", "price_max": "10"}), 400, "validation_error")
    assert "price_max" in error["fields"]
    error = error_of(anon.get(f"{API}/products", {"limit": "0", "ordering": "cheapest"}), 400, "validation_error")
    assert set(error["fields"]) == {"limit", "ordering"}
    error_of(anon.get(f"{API}/products", {"price_min": "abc"}), 400, "validation_error")


def test_product_detail_with_variants_images_cutouts_and_etag(anon, catalog):
    response = anon.get(f"{API}/products/R1")
    assert response.status_code == 200
    body = response.json()
    assert body["sku"] == "R1" and body["price"] == "15.00" and body["category"]["path"] == "women/tops"
    assert body["variants"] == [
        {"size": "S", "stock": 2, "in_stock": True},
        {"size": "M", "stock": 0, "in_stock": False},
    ]
    assert body["sizes_in_stock"] == ["S"] and body["total_stock"] == 2
    (image,) = body["images"]
    assert image["status"] == "ready" and image["cutout_url"].endswith(".png")
    assert anon.get(image["cutout_url"].replace("http://testserver", "")).status_code == 200
    etag = response["ETag"]
    assert anon.get(f"{API}/products/R1", HTTP_IF_NONE_MATCH=etag).status_code == 304
    # a stock change changes the ETag: the old one no longer gives 304
    Product.objects.get(sku="R1").variants.filter(size="M").update(stock=5)
    changed = anon.get(f"{API}/products/R1", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    error_of(anon.get(f"{API}/products/NOPE-1"), 404, "not_found")
    error_of(anon.get(f"{API}/products/bad%20sku"), 404, "not_found")


def test_inactive_products_are_visible_to_staff_only(anon, shopper, staff):
    Product.objects.filter(sku="G1").update(is_active=False)
    error_of(anon.get(f"{API}/products/G1"), 404, "not_found")
    error_of(shopper.get(f"{API}/products/G1"), 404, "not_found")
    assert staff.get(f"{API}/products/G1").json()["is_active"] is False
    assert "G1" not in skus_of(anon.get(f"{API}/products", {"limit": 100}).json()["results"])


# --- search -------------------------------------------------------------------------------------


def test_text_search_with_filters_facets_and_typos(anon, shopper):
    body = anon.get(f"{API}/search", {"q": "black t-shirt"}).json()
    assert {"K2", "K3"} <= set(skus_of(body["results"])[:4])
    assert body["count"] >= len(body["results"]) and body["facets"]["colour"]
    assert all(hit["signals"] for hit in body["results"])
    typo = shopper.get(f"{API}/search", {"q": "blak t-shrt", "colour": "black"}).json()
    assert typo["corrected_query"] == "black t-shirt"
    assert set(skus_of(typo["results"])) <= {"K1", "K2", "K3"}
    page = anon.get(f"{API}/search", {"q": "t-shirt", "limit": 2, "offset": 2}).json()
    assert len(page["results"]) <= 2 and page["previous"] is not None


def test_text_search_says_what_it_understood_and_lets_the_app_undo_it(anon):
    body = anon.get(f"{API}/search", {"q": "t-shirt under 16 euros"}).json()
    assert {"key": "price", "label": "up to 16.00 EUR", "phrase": "under 16 euros"} in body["understood"]
    assert "K2" not in skus_of(body["results"]) and body["ignored"] == []  # K2 costs 18
    assert body["ranking"].startswith("in-stock products first")
    undone = anon.get(f"{API}/search", {"q": "t-shirt under 16 euros", "ignore": "price"}).json()
    assert "K2" in skus_of(undone["results"]) and undone["ignored"] == ["price"]
    assert not any(part["key"] == "price" for part in undone["understood"])


def test_text_search_validation_errors(anon):
    assert "q" in error_of(anon.get(f"{API}/search"), 400, "validation_error")["fields"]
    error = error_of(anon.get(f"{API}/search", {"q": "dress", "ignore": "price,mood"}), 400, "validation_error")
    assert "mood" in error["fields"]["ignore"][0]
    error = error_of(anon.get(f"{API}/search", {"q": "dress", "signals": "image,smell"}), 400, "validation_error")
    assert "smell" in error["fields"]["signals"][0]
    error_of(anon.get(f"{API}/search", {"q": "x" * 201}), 400, "validation_error")
    error_of(anon.get(f"{API}/search", {"q": "dress\x00"}), 400, "validation_error")


@pytest.fixture
def scene_parser(tmp_path_factory, test_models, settings):
    """The test embedder with a tiny parser trained on synthetic person photos (tests/support/scenes.py), so
    the photo search finds garments."""
    from tests.support.checkpoints import parser_serve, reset_parser_cache
    from tests.support.scenes import train_scene_parser

    root = tmp_path_factory.mktemp("scene-models")
    (root / "embedder").symlink_to(Path(test_models) / "embedder")
    train_scene_parser(root)
    settings.MODELS_DIR = root
    reset_parser_cache()
    parser_serve(root)
    yield
    settings.MODELS_DIR = test_models
    reset_parser_cache()


def photo_upload(image: Image.Image | bytes, name: str = "me.jpg") -> io.BytesIO:
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=92)
        content = buf.getvalue()
    else:
        content = image
    upload = io.BytesIO(content)
    upload.name = name
    return upload


def test_photo_search_returns_each_garment_with_box_and_results(anon, scene_parser):
    from tests.support.scenes import scene_photo

    photo = scene_photo(200)
    response = anon.post(f"{API}/search/photo", {"photo": photo_upload(photo), "limit": 3}, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["width"], body["height"]) == photo.size
    labels = [g["label"] for g in body["garments"]]
    assert {"top", "bottom", "footwear"} <= set(labels), labels
    for n, garment in enumerate(body["garments"]):
        x0, y0, x1, y1 = garment["box"]
        assert garment["index"] == n and 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
        assert len(garment["results"]) <= 3
    assert any(g["results"] for g in body["garments"])
    bottom = labels.index("bottom")
    picked = anon.post(f"{API}/search/photo", {"photo": photo_upload(photo), "garment": bottom}, format="multipart")
    assert [(g["index"], g["label"]) for g in picked.json()["garments"]] == [(bottom, "bottom")]
    error = error_of(
        anon.post(f"{API}/search/photo", {"photo": photo_upload(photo), "garment": 40}, format="multipart"),
        400,
        "validation_error",
    )
    assert "pick one of" in error["fields"]["garment"][0]
    error = error_of(
        anon.post(f"{API}/search/photo", {"photo": photo_upload(photo), "crop": "0,0,5,5"}, format="multipart"),
        400,
        "validation_error",
    )
    assert "too small" in error["fields"]["crop"][0]
    error_of(
        anon.post(f"{API}/search/photo", {"photo": photo_upload(photo), "crop": "1,2,3"}, format="multipart"),
        400,
        "validation_error",
    )


BAD_UPLOADS = {
    "empty.jpg": b"",
    "invoice.jpg": b"%PDF-1.7\n" + b"0" * 500,
    "page.png": b"<!doctype html><html><body>hi</body></html>",
    "holiday.heic": bad.heic_header(),
    "photos.jpg": bad.zip_archive(),
    "bomb.png": bad.decompression_bomb(),
    "huge.jpg": bad.jpeg_declaring(20_000, 20_000),
    "tiny.jpg": bad.jpeg((8, 8)),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
def test_bad_photos_get_the_upload_checks_reasons(anon, name):
    content = BAD_UPLOADS[name]
    with pytest.raises(ImageRejected) as expected:  # what a staff upload of the same file is told
        image_check_upload(content, name, mimetypes.guess_type(name)[0] or "application/octet-stream")
    response = anon.post(f"{API}/search/photo", {"photo": photo_upload(content, name)}, format="multipart")
    error = error_of(response, 400, "image_rejected")
    assert error["fields"] == {"photo": [str(expected.value)]}


def test_truncated_and_damaged_photos_are_named_as_such(anon):
    truncated = anon.post(
        f"{API}/search/photo", {"photo": photo_upload(bad.truncated_jpeg(), "cut.jpg")}, format="multipart"
    )
    assert "cut short (truncated" in error_of(truncated, 400, "image_rejected")["fields"]["photo"][0]
    damaged = anon.post(f"{API}/search/photo", {"photo": photo_upload(bad.damaged_png(), "d.png")}, format="multipart")
    assert "damaged" in error_of(damaged, 400, "image_rejected")["fields"]["photo"][0]
    error_of(anon.post(f"{API}/search/photo", {}, format="multipart"), 400, "validation_error")
    error_of(anon.post(f"{API}/search/photo", {"q": 1}, format="json"), 415, "unsupported_media_type")


def test_photo_search_is_throttled_more_strictly(anon, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "photo_search": "2/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    for _ in range(2):
        error_of(
            anon.post(f"{API}/search/photo", {"photo": photo_upload(b"", "e.jpg")}, format="multipart"),
            400,
            "image_rejected",
        )
    third = anon.post(f"{API}/search/photo", {"photo": photo_upload(b"", "e.jpg")}, format="multipart")
    error_of(third, 429, "throttled")
    assert int(third["Retry-After"]) > 0
    assert anon.get(f"{API}/search", {"q": "dress"}).status_code == 200  # text search has its own budget


def test_similar_and_alternatives_with_reasons(anon, shopper):
    similar = anon.get(f"{API}/products/K3/similar", {"limit": 4}).json()
    assert similar["sku"] == "K3" and 0 < len(similar["results"]) <= 4
    assert "K3" not in skus_of(similar["results"]) and all(r["reason"] for r in similar["results"])
    # B2 (navy) is sold out: the same design in another colour, in stock, comes first, with why
    alternatives = shopper.get(f"{API}/products/B2/alternatives", {"size": "M"}).json()
    first = alternatives["results"][0]
    assert first["product"]["sku"] in {"R1", "K3"} and first["reason"].startswith("same design in ")
    assert all(r["product"]["in_stock"] for r in alternatives["results"])
    assert "B2" not in skus_of(alternatives["results"])
    error_of(anon.get(f"{API}/products/NOPE/alternatives"), 404, "not_found")
    error_of(anon.get(f"{API}/products/K3/similar", {"limit": 500}), 400, "validation_error")
    error_of(anon.get(f"{API}/products/K3/alternatives", {"limit": "x"}), 400, "validation_error")


# --- staff writes -------------------------------------------------------------------------------

NEW_PRODUCT = {
    "sku": "TEE-NEW-1",
    "title": "Navy linen shirt",
    "price": "29.90",
    "colour": "Navy",
    "category": "Women > Shirts",
    "attributes": {"material": "linen"},
    "variants": [{"size": "S", "stock": 3}, {"size": "M", "stock": 0}],
}


def test_product_create_permissions_and_validation(anon, shopper, staff):
    error_of(anon.post(f"{API}/products", NEW_PRODUCT, format="json"), 401, "not_authenticated")
    error_of(shopper.post(f"{API}/products", NEW_PRODUCT, format="json"), 403, "permission_denied")
    assert not Product.objects.filter(sku="TEE-NEW-1").exists()
    response = staff.post(f"{API}/products", NEW_PRODUCT, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["category"]["full_name"] == "Women › Shirts" and body["currency"] == "EUR"
    assert body["sizes_in_stock"] == ["S"] and body["attributes"] == {"material": "linen"}
    assert response["Location"].endswith("/api/v1/products/TEE-NEW-1")
    product = Product.objects.get(sku="TEE-NEW-1")
    assert product.price == Decimal("29.90") and product.search_document is not None
    error_of(staff.post(f"{API}/products", NEW_PRODUCT, format="json"), 409, "conflict")
    bad_body = {
        **NEW_PRODUCT,
        "sku": "bad sku!",
        "price": "-1",
        "currency": "eur",
        "variants": [{"size": "S", "stock": -2}],
    }
    error = error_of(staff.post(f"{API}/products", bad_body, format="json"), 400, "validation_error")
    assert {"sku", "price", "currency", "variants.0.stock"} <= set(error["fields"])
    error = error_of(staff.post(f"{API}/products", {"sku": "X-1"}, format="json"), 400, "validation_error")
    assert {"title", "price"} <= set(error["fields"])
    too_deep = {**NEW_PRODUCT, "sku": "X-2", "category": "A > B > C > D > E"}
    assert (
        "category"
        in error_of(staff.post(f"{API}/products", too_deep, format="json"), 400, "validation_error")["fields"]
    )
    error_of(staff.post(f"{API}/products", "sku=X", content_type="text/plain"), 415, "unsupported_media_type")
    # the path of an existing category, as every read writes it, names that category
    by_path = staff.post(
        f"{API}/products", {**NEW_PRODUCT, "sku": "TEE-NEW-2", "category": "women/shirts"}, format="json"
    )
    assert by_path.status_code == 201, by_path.content
    assert by_path.json()["category"]["path"] == body["category"]["path"] == "women/shirts"
    # a path that names no category is refused, never made into a new top-level "men/shirts"
    error = error_of(
        staff.post(f"{API}/products", {**NEW_PRODUCT, "sku": "X-3", "category": "men/shirts"}, format="json"),
        400,
        "validation_error",
    )
    assert "no category has the path" in error["fields"]["category"][0]
    assert not Product.objects.filter(sku__in=["X-1", "X-2", "X-3", "bad sku!"]).exists()


def test_product_update_and_variant_stock(anon, shopper, staff):
    error_of(anon.patch(f"{API}/products/R1", {"price": "9.99"}, format="json"), 401, "not_authenticated")
    error_of(shopper.patch(f"{API}/products/R1", {"price": "9.99"}, format="json"), 403, "permission_denied")
    response = staff.patch(
        f"{API}/products/R1", {"price": "9.99", "variants": [{"size": "M", "stock": 4}]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["price"] == "9.99" and body["title"] == "Red cotton t-shirt"  # untouched fields stay
    assert {v["size"]: v["stock"] for v in body["variants"]} == {"S": 0, "M": 4}  # sizes not named drop to 0
    error = error_of(
        staff.patch(f"{API}/products/R1", {"price": "abc", "title": ""}, format="json"), 400, "validation_error"
    )
    assert {"price", "title"} <= set(error["fields"])
    assert Product.objects.get(sku="R1").price == Decimal("9.99")
    error_of(staff.patch(f"{API}/products/NOPE", {"price": "1"}, format="json"), 404, "not_found")
    # one size
    error_of(shopper.put(f"{API}/products/R1/variants/XL", {"stock": 2}, format="json"), 403, "permission_denied")
    body = staff.put(f"{API}/products/R1/variants/XL", {"stock": 2}, format="json").json()
    assert [(v["size"], v["stock"]) for v in body["variants"]] == [("S", 0), ("M", 4), ("XL", 2)]
    error_of(staff.put(f"{API}/products/R1/variants/XL", {"stock": -1}, format="json"), 400, "validation_error")
    error_of(staff.put(f"{API}/products/R1/variants/{'x' * 31}", {"stock": 1}, format="json"), 400, "validation_error")
    error_of(staff.delete(f"{API}/products/R1"), 405, "method_not_allowed")
    error_of(anon.put(f"{API}/categories", {}, format="json"), 405, "method_not_allowed")


def test_image_upload_status_and_reprocess(anon, shopper, staff, redis_client, django_capture_on_commit_callbacks):
    from workers.services import image_pipeline_run

    def files(*items: tuple[str, bytes]) -> dict:
        return {"images": [photo_upload(content, name) for name, content in items]}

    url = f"{API}/products/K2/images"
    error_of(anon.post(url, files(("a.jpg", bad.jpeg())), format="multipart"), 401, "not_authenticated")
    error_of(shopper.post(url, files(("a.jpg", bad.jpeg())), format="multipart"), 403, "permission_denied")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff.post(
            url,
            files(("back.jpg", bad.jpeg((120, 180), (90, 90, 90))), ("scan.pdf", b"%PDF-1.4 x")),
            format="multipart",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["stored"], body["refused"]) == (1, 1)
    ok, refused = body["results"]
    assert ok["ok"] and ok["created"] and refused["error"].startswith("the file is a PDF document")
    assert callbacks, "processing is queued when the upload commits"
    # all refused: 400 with every reason, nothing stored
    before = Product.objects.get(sku="K2").images.count()
    error = error_of(
        staff.post(url, files(("x.heic", bad.heic_header()), ("e.jpg", b"")), format="multipart"), 400, "image_rejected"
    )
    assert len(error["fields"]["images"]) == 2 and "HEIC" in error["fields"]["images"][0]
    assert Product.objects.get(sku="K2").images.count() == before
    # status, then the real pipeline (inline here) makes it ready with a cutout
    status_url = ok["status_url"].replace("http://testserver", "")
    error_of(anon.get(status_url), 401, "not_authenticated")
    error_of(shopper.get(status_url), 403, "permission_denied")
    assert staff.get(status_url).json()["status"] == "pending"
    assert image_pipeline_run(ok["image_id"]) == "ready"
    ready = staff.get(status_url).json()
    assert ready["status"] == "ready" and ready["cutout_url"].endswith(".png") and ready["seconds"] > 0
    # run it again: back to pending, handed to the real broker
    redis_client.delete(django_settings.CELERY_TASK_DEFAULT_QUEUE)
    error_of(shopper.post(f"{status_url}/reprocess"), 403, "permission_denied")
    again = staff.post(f"{status_url}/reprocess")
    assert again.status_code == 202 and again.json()["queued"] is True
    assert staff.get(status_url).json()["status"] == "pending"
    assert redis_client.llen(django_settings.CELERY_TASK_DEFAULT_QUEUE) == 1
    redis_client.delete(django_settings.CELERY_TASK_DEFAULT_QUEUE)
    error_of(staff.get(f"{API}/images/999999999"), 404, "not_found")
    error_of(staff.get(f"{API}/images/99999999999999999999999"), 404, "not_found")
    error_of(staff.post(url, {"images": "not a file"}, format="multipart"), 400, "validation_error")


class ExplodingInput(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the 50 MB body was read")

    readline = read


def test_a_50_mb_body_is_refused_before_it_is_read(staff):
    response = staff.generic(
        "POST",
        f"{API}/products/K2/images",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(50 * 1024 * 1024),
        **{"wsgi.input": ExplodingInput()},
    )
    error = error_of(response, 413, "payload_too_large")
    assert "52.4 MB" in error["message"]
    json_body = staff.generic(
        "POST",
        f"{API}/products",
        content_type="application/json",
        CONTENT_LENGTH=str(6 * 1024 * 1024),
        **{"wsgi.input": ExplodingInput()},
    )
    error_of(json_body, 413, "payload_too_large")


# --- auth, errors, CORS, docs -------------------------------------------------------------------


def test_token_endpoint(anon, settings):
    make_user("ana", staff=True)
    response = anon.post(f"{API}/auth/token", {"username": "ana", "password": "pw-ana"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert response.json()["is_staff"] is True
    assert (
        anon.post(f"{API}/auth/token", {"username": "ana", "password": "pw-ana"}, format="json").json()["token"]
        == token
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(f"{API}/images/999999").status_code == 404  # staff: allowed, just no such image
    error_of(
        anon.post(f"{API}/auth/token", {"username": "ana", "password": "nope"}, format="json"),
        401,
        "authentication_failed",
    )
    assert (
        "password"
        in error_of(anon.post(f"{API}/auth/token", {"username": "ana"}, format="json"), 400, "validation_error")[
            "fields"
        ]
    )
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    error_of(wrong.get(f"{API}/products"), 401, "authentication_failed")
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    for _ in range(3):
        anon.post(f"{API}/auth/token", {"username": "ana", "password": "guess"}, format="json")
    error_of(anon.post(f"{API}/auth/token", {"username": "ana", "password": "pw-ana"}, format="json"), 429, "throttled")


def test_session_authentication_for_the_browser(staff):
    from django.contrib.auth import get_user_model

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(username="staffer"))
    assert browser.get(f"{API}/images/999999").status_code == 404  # signed in by session: allowed
    error_of(browser.post(f"{API}/products", NEW_PRODUCT, format="json"), 403, "permission_denied")  # no CSRF token


def test_unknown_endpoint_and_cors(anon, settings):
    error_of(anon.get(f"{API}/nothing/here"), 404, "not_found")
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = anon.options(
        f"{API}/search", HTTP_ORIGIN="https://app.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = anon.get(f"{API}/categories", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in other
    allowed = anon.get(f"{API}/categories", HTTP_ORIGIN="https://app.example.com")
    assert (
        allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
        and "ETag" in allowed["Access-Control-Expose-Headers"]
    )


def test_swagger_ui_is_served_without_a_cdn(anon):
    page = anon.get(f"{API}/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # Every script, stylesheet and image the page loads comes from this server: no CDN.
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert sources and all(not re.match(r"(?i)(https?:)?//", s) for s in sources), sources
    schema = anon.get(f"{API}/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and "/api/v1/search/photo" in schema.json()["paths"]
