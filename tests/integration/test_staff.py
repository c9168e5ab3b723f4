"""Staff pages (issue 6): permissions, multi-file upload, live status JSON, re-run through the real
worker, bulk import jobs (bad rows reported, unsafe ZIPs refused), catalog health and style clusters.
Real PostgreSQL, Redis and Celery worker; nothing mocked."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from catalog import services
from catalog.models import EmbeddingSpace, ImportJob, Product, ProductImage, ProductVector, Variant
from search.styles import catalog_style_clusters
from tests.support import bad_images as bad
from tests.support.archives import zip_bytes
from tests.support.factories import ProductFactory
from workers.services import image_processing_enqueue

pytestmark = pytest.mark.django_db(transaction=True)

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"


@pytest.fixture
def quiet_queue(redis_client, settings):
    """Tests without a worker: whatever they send to the broker is dropped afterwards."""
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    yield
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("clerk", password="x", is_staff=True))
    return client


def make_product(sku: str, *, stock: int = 3, title: str = "", colour: str = "") -> Product:
    with transaction.atomic():
        return ProductFactory(
            sku=sku, title=title or f"Product {sku}", price=Decimal("10"), colour=colour, stock={"M": stock}
        )


def add_image(product: Product, content: bytes, name: str = "p.jpg") -> ProductImage:
    with services.atomic_with_files():
        image, created = services.product_image_add(product, content, source_name=name)
        if created:
            image_processing_enqueue([image.pk])
    return image


def wait_for(predicate, timeout: float = 180, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


CSV_WITH_BAD_ROW = (
    "sku,title,category,colour,price,stock,images\n"
    "IMP-1,Imported tee,Women > Tops,Red,12.50,M:2,tee/red.jpg\n"
    "IMP-2,Imported dress,Women > Dresses,Green,not-a-price,M:1,dress.jpg\n"
    "IMP-3,Imported coat,Men > Coats,Black,80,L:0,missing.jpg\n"
    "IMP-4,Imported skirt,Women > Skirts,Blue,20,S:1,\n"
)


# --- permissions ---------------------------------------------------------------------------------


STAFF_URLS = [
    ("get", "/staff/upload/"),
    ("get", "/staff/images/status/?ids=1"),
    ("post", "/staff/images/1/rerun/"),
    ("get", "/staff/import/"),
    ("get", "/staff/import/1/"),
    ("get", "/staff/import/1/status/"),
    ("get", "/staff/import/1/report.csv"),
    ("post", "/staff/import/1/start/"),
    ("get", "/staff/health/"),
]


@pytest.mark.parametrize(("method", "url"), STAFF_URLS)
def test_anonymous_and_non_staff_are_sent_to_the_admin_login(client, django_user_model, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")
    client.force_login(django_user_model.objects.create_user("shopper", password="x"))
    response = getattr(client, method)(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")


def test_rerun_refuses_get_and_needs_csrf(django_user_model, quiet_queue):
    from django.test import Client

    product = make_product("CSRF-1")
    image = add_image(product, bad.jpeg())
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(django_user_model.objects.create_user("boss", password="x", is_staff=True))
    assert csrf_client.get(f"/staff/images/{image.pk}/rerun/").status_code == 405
    ProductImage.objects.filter(pk=image.pk).update(status="failed", error="x")
    assert csrf_client.post(f"/staff/images/{image.pk}/rerun/").status_code == 403
    assert ProductImage.objects.get(pk=image.pk).status == "failed"  # nothing changed without the token


def test_admin_index_links_the_staff_pages(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    page = client.get("/admin/").content.decode()
    for name in ("image_upload", "import_start", "health"):
        assert f'href="{reverse("staff:" + name)}"' in page


# --- multi-file upload ---------------------------------------------------------------------------


def test_upload_many_as_new_products_with_one_bad_file(staff_client, media_root, quiet_queue):
    files = [
        SimpleUploadedFile("Red summer-dress.jpg", bad.jpeg(colour=(200, 20, 20)), content_type="image/jpeg"),
        SimpleUploadedFile("lookbook.jpg", PDF, content_type="image/jpeg"),
        SimpleUploadedFile("blue_jeans.png", bad.webp(), content_type="image/png"),
    ]
    response = staff_client.post("/staff/upload/", {"files": files}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    data = response.json()
    by_name = {r["name"]: r for r in data["results"]}
    assert (data["stored"], data["refused"]) == (2, 1)
    assert not by_name["lookbook.jpg"]["ok"] and "PDF" in by_name["lookbook.jpg"]["error"]
    assert by_name["Red summer-dress.jpg"]["sku"] == "Red-summer-dress"
    products = {p.sku: p for p in Product.objects.all()}
    assert set(products) == {"Red-summer-dress", "blue_jeans"}  # no product for the refused file
    assert products["Red-summer-dress"].title == "Red summer dress" and not products["Red-summer-dress"].is_active
    assert products["blue_jeans"].images.get().file.name.endswith(".webp")  # stored by its real type
    stored = sorted(p.name for p in (media_root / "products").rglob("*") if p.is_file())
    assert len(stored) == 2
    # the same file name again gets a fresh SKU rather than touching the first product
    again = staff_client.post(
        "/staff/upload/",
        {"files": [SimpleUploadedFile("blue_jeans.png", bad.jpeg(colour=(1, 2, 200)), content_type="image/png")]},
        HTTP_ACCEPT="application/json",
    ).json()
    assert again["results"][0]["sku"] == "blue_jeans-2"


def test_upload_onto_an_existing_product_and_plain_form_fallback(staff_client, quiet_queue):
    product = make_product("ONTO-1")
    files = [
        SimpleUploadedFile("front.jpg", bad.jpeg(colour=(10, 200, 10)), content_type="image/jpeg"),
        SimpleUploadedFile("empty.jpg", b"", content_type="image/jpeg"),
        SimpleUploadedFile("back.jpg", bad.jpeg(colour=(10, 10, 200)), content_type="image/jpeg"),
    ]
    response = staff_client.post(f"/staff/upload/?product={product.pk}", {"files": files, "product": product.pk})
    assert response.status_code == 200  # no JSON asked: the page lists each file's outcome
    page = response.content.decode()
    assert "front.jpg" in page and "back.jpg" in page and "empty.jpg" in page
    assert "<strong>empty.jpg</strong>:\n      the file is empty (0 bytes)" in page
    assert list(product.images.values_list("source_name", flat=True)) == ["front.jpg", "back.jpg"]
    assert Product.objects.count() == 1
    assert staff_client.get("/staff/upload/?product=999999").status_code == 404


# --- live status and re-run ----------------------------------------------------------------------


def test_status_json_shows_stage_reason_and_duplicates(staff_client, django_user_model, quiet_queue):
    first, second = make_product("DUP-A"), make_product("DUP-B")
    original = add_image(first, bad.jpeg(colour=(120, 10, 10)))
    copy = add_image(second, bad.jpeg(colour=(121, 10, 10)))
    broken = add_image(second, bad.jpeg(colour=(5, 5, 5)), name="broken.jpg")
    services.image_set_duplicate(copy.pk, original.pk)
    services.image_mark_failed(broken.pk, stage="validate", reason="the JPEG file is cut short")
    data = staff_client.get(f"/staff/images/status/?product={second.pk}").json()
    rows = {row["id"]: row for row in data["images"]}
    assert set(rows) == {copy.pk, broken.pk} and data["busy"] is True  # copy is still pending
    assert rows[broken.pk]["status"] == "failed" and rows[broken.pk]["error"] == "the JPEG file is cut short"
    assert rows[broken.pk]["stage"] == "validate"
    assert rows[broken.pk]["rerun_url"] == f"/staff/images/{broken.pk}/rerun/"
    duplicate = rows[copy.pk]["duplicate_of"]
    assert duplicate["sku"] == "DUP-A" and duplicate["product_url"] == f"/admin/catalog/product/{first.pk}/change/"
    assert not duplicate["same_product"]
    by_ids = staff_client.get(f"/staff/images/status/?ids={broken.pk}").json()
    assert [r["id"] for r in by_ids["images"]] == [broken.pk] and by_ids["busy"] is False
    assert staff_client.get("/staff/images/status/?ids=1,x").status_code == 400
    # the product's admin page carries the drop zone and the live panel for it
    staff_client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    page = staff_client.get(f"/admin/catalog/product/{second.pk}/change/").content.decode()
    assert "data-dropzone" in page and f'data-product="{second.pk}"' in page


def test_rerun_sends_a_failed_image_through_the_real_worker_again(staff_client, celery_worker_process):
    product = make_product("RERUN-1")
    image = add_image(product, bad.jpeg(colour=(180, 40, 50)))
    wait_for(lambda: ProductImage.objects.get(pk=image.pk).status == "ready", what="first processing")
    services.image_mark_failed(image.pk, stage="parse", reason="a stage crashed")  # as if it had failed
    response = staff_client.post(f"/staff/images/{image.pk}/rerun/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["queued"] is True
    row = wait_for(
        lambda: (r := ProductImage.objects.get(pk=image.pk)).status in ("ready", "failed") and r, what="re-run"
    )
    assert row.status == "ready" and row.error == "" and row.cutout and row.mask
    status = staff_client.get(f"/staff/images/status/?ids={image.pk}").json()["images"][0]
    assert status["cutout_url"].startswith("/media/cutouts/") and status["mask_url"].startswith("/media/masks/")


# --- bulk import ---------------------------------------------------------------------------------


def test_bulk_import_reports_the_bad_row_and_imports_the_good_ones(staff_client, settings, quiet_queue):
    from workers.services import import_job_run

    settings.SHOP_PIPELINE = "off"  # the photos stay pending; this test is about the import itself
    archive = zip_bytes({"tee/red.jpg": bad.jpeg(colour=(200, 0, 0)), "dress.jpg": bad.jpeg(colour=(0, 200, 0))})
    response = staff_client.post(
        "/staff/import/",
        {
            "csv_file": SimpleUploadedFile("spring.csv", CSV_WITH_BAD_ROW.encode(), content_type="text/csv"),
            "images_zip": SimpleUploadedFile("spring.zip", archive, content_type="application/zip"),
        },
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/staff/import/{job.pk}/"
    assert job.status == "pending" and job.csv_name == "spring.csv" and job.created_by == "clerk"
    assert import_job_run(job.pk) == "done"
    assert import_job_run(job.pk) == "done"  # a duplicate message does nothing
    status = staff_client.get(f"/staff/import/{job.pk}/status/").json()
    assert status["finished"] and status["percent"] == 100
    assert (status["created"], status["failed"], status["done"], status["total"]) == (2, 2, 2, 2)
    assert set(Product.objects.values_list("sku", flat=True)) == {"IMP-1", "IMP-4"}
    assert Product.objects.get(sku="IMP-1").images.get().source_name == "red.jpg"
    report = staff_client.get(f"/staff/import/{job.pk}/report.csv")
    assert report["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert rows[0] == ["row", "sku", "problem"]
    assert [r[:2] for r in rows[1:]] == [["3", "IMP-2"], ["4", "IMP-3"]]
    assert "not-a-price" in rows[1][2] and "missing.jpg" in rows[2][2] and "/tmp" not in rows[2][2]
    page = staff_client.get(f"/staff/import/{job.pk}/").content.decode()
    assert "not-a-price" in page and "data-import-job" in page


def test_bulk_import_runs_in_the_real_worker(staff_client, celery_worker_process, settings):
    settings.SHOP_PIPELINE = "off"
    archive = zip_bytes({"tee/red.jpg": bad.jpeg(colour=(200, 0, 0))})
    staff_client.post(
        "/staff/import/",
        {
            "csv_file": SimpleUploadedFile("w.csv", CSV_WITH_BAD_ROW.encode(), content_type="text/csv"),
            "images_zip": SimpleUploadedFile("w.zip", archive, content_type="application/zip"),
        },
    )
    job = ImportJob.objects.get()
    done = wait_for(lambda: staff_client.get(f"/staff/import/{job.pk}/status/").json()["finished"], what="import")
    job.refresh_from_db()
    assert done and job.status == "done" and job.created == 2 and job.failed == 2
    assert [p["sku"] for p in job.problems] == ["IMP-2", "IMP-3"]


@pytest.mark.parametrize(
    ("archive", "words"),
    [
        (lambda: zip_bytes({"../evil.jpg": bad.jpeg()}), "points outside the archive"),
        (lambda: zip_bytes({"ok/../../evil.jpg": bad.jpeg()}), "points outside the archive"),
        (lambda: zip_bytes({"/etc/evil.jpg": bad.jpeg()}), "absolute path"),
        (lambda: zip_bytes({"a.jpg": bad.jpeg()}, symlinks={"link.jpg": "/etc/passwd"}), "symbolic link"),
        (lambda: zip_bytes({"bomb.jpg": b"\0" * (8 * 1024**2)}), "zip bomb"),
        (lambda: b"PK\x03\x04 this is not really a zip", "not a ZIP archive"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "ratio-bomb", "not-a-zip"],
)
def test_unsafe_zip_is_refused_with_a_clear_message_and_nothing_stored(staff_client, media_root, archive, words):
    response = staff_client.post(
        "/staff/import/",
        {
            "csv_file": SimpleUploadedFile("c.csv", CSV_WITH_BAD_ROW.encode(), content_type="text/csv"),
            "images_zip": SimpleUploadedFile("photos.zip", archive(), content_type="application/zip"),
        },
    )
    assert response.status_code == 200 and words in response.content.decode()
    assert not ImportJob.objects.exists() and not (media_root / "imports").exists()


def test_csv_without_the_required_header_is_refused_before_anything_is_stored(staff_client, media_root):
    response = staff_client.post(
        "/staff/import/", {"csv_file": SimpleUploadedFile("c.csv", b"name,cost\nx,1\n", content_type="text/csv")}
    )
    assert response.status_code == 200 and "the header lacks column(s) sku, title, price" in response.content.decode()
    assert not ImportJob.objects.exists()


# --- catalog health and style clusters -----------------------------------------------------------


def test_health_page_counts_and_lists(staff_client, quiet_queue):
    ready_a, ready_b = make_product("H-READY-A"), make_product("H-READY-B")
    sold_out = make_product("H-SOLD-OUT", stock=0)
    make_product("H-NO-PHOTO")
    failing = make_product("H-FAILING")
    a = add_image(ready_a, bad.jpeg(colour=(1, 100, 1)))
    b = add_image(ready_b, bad.jpeg(colour=(2, 100, 1)))
    broken = add_image(failing, bad.jpeg(colour=(9, 9, 9)))
    add_image(sold_out, bad.jpeg(colour=(90, 9, 9)))  # stays pending
    for image in (a, b):
        services.image_mark_ready(image.pk, timings={"validate": 0.1})
    services.image_mark_failed(broken.pk, stage="validate", reason="the JPEG file is cut short")
    services.image_set_duplicate(b.pk, a.pk)
    response = staff_client.get("/staff/health/")
    assert response.status_code == 200
    health = response.context["health"]
    assert health.products == 5 and health.images == 4
    assert health.status_counts == {"pending": 1, "processing": 0, "ready": 2, "failed": 1}
    assert health.failed_reasons == [("the JPEG file is cut short", 1)]
    assert [p.sku for p in health.products_without_images] == ["H-NO-PHOTO"] and health.without_images_count == 1
    assert [i.pk for i in health.duplicate_images] == [b.pk] and health.duplicates_count == 1
    assert [p.sku for p in health.out_of_stock] == ["H-SOLD-OUT"]
    page = response.content.decode()
    assert "the JPEG file is cut short" in page and "H-NO-PHOTO" in page
    assert f"/admin/catalog/product/{ready_a.pk}/change/" in page  # the duplicate links the other product
    assert "cached under the catalog" in page


def _space(dim: int = 8) -> EmbeddingSpace:
    return services.embedding_space_ensure(
        name="staff-test-space", model_name="t", dim=dim, modality=EmbeddingSpace.Modality.IMAGE_TEXT, activate=True
    )


def test_style_clusters_split_the_catalog_by_look_and_are_cached(staff_client):
    from django.core.cache import cache

    cache.clear()
    space = _space()
    rng = __import__("numpy").random.default_rng(3)
    looks = {"red": 0, "denim": 3, "knit": 6}
    for look, axis in looks.items():
        for i in range(4):
            product = make_product(f"{look.upper()}-{i}", colour=look)
            vector = rng.normal(0, 0.05, 8)
            vector[axis] += 1.0
            services.product_vector_upsert(product.pk, space, ProductVector.Kind.IMAGE, vector.tolist())
    result = catalog_style_clusters(k=3)
    assert result.products == 12 and not result.cached and len(result.clusters) == 3
    groups = sorted(sorted(p["sku"].split("-")[0] for p in c.products) for c in result.clusters)
    assert groups == [["DENIM"] * 4, ["KNIT"] * 4, ["RED"] * 4]  # each cluster is one look, nothing mixed
    assert all(c.size == 4 and c.label.endswith("(4)") for c in result.clusters)
    again = catalog_style_clusters(k=3)
    assert again.cached and again.key == result.key
    # a catalog change makes a new key, so the clusters are computed afresh
    extra = make_product("RED-9", colour="red")
    services.product_vector_upsert(extra.pk, space, ProductVector.Kind.IMAGE, [1.0, 0, 0, 0, 0, 0, 0, 0])
    fresh = catalog_style_clusters(k=3)
    assert not fresh.cached and fresh.key != result.key and fresh.products == 13
    page = staff_client.get("/staff/health/").content.decode()
    assert page.count("data-cluster=") >= 2 and "RED-0" in page


def test_health_out_of_stock_lists_in_stock_alternatives(staff_client):
    space = _space()
    sold_out = make_product("ALT-SOLD", stock=0, colour="red")
    near = make_product("ALT-NEAR", stock=4, colour="red")
    empty = make_product("ALT-EMPTY", stock=0, colour="red")
    for product, vec in ((sold_out, [1, 0.1]), (near, [1, 0.12]), (empty, [1, 0.11])):
        services.product_vector_upsert(product.pk, space, ProductVector.Kind.IMAGE, [*vec, 0, 0, 0, 0, 0, 0])
    assert Variant.objects.filter(product=near, stock__gt=0).exists()
    response = staff_client.get("/staff/health/")
    rows = {p.sku: [brief.sku for _, brief in alts if brief] for p, alts in response.context["out_of_stock_rows"]}
    assert rows["ALT-SOLD"] == ["ALT-NEAR"] and rows["ALT-EMPTY"] == ["ALT-NEAR"]
