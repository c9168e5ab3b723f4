"""Staff pages in a real Chromium against the live server, with a real Celery worker processing the
photos: admin login, drag-and-drop upload of several photos with their status updating live until
ready, the picker path on a product's page (with a refused file), a bulk import through the admin
with its progress bar and the report of bad rows, and the catalog health page."""

from __future__ import annotations

import base64
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from catalog.models import ImportJob, Product, ProductImage
from tests.support import bad_images as bad

PASSWORD = "staff-pass-123"

DROP_JS = """
([selector, files]) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: f.type }));
  }
  const zone = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
  return dt.files.length;
}
"""


@pytest.fixture
def staff_page(live_server: Any, page: Any, django_user_model: Any) -> Any:
    """A page logged in as staff through the admin's own login form."""
    django_user_model.objects.create_superuser("manager", email="m@example.com", password=PASSWORD)
    page.goto(live_server.url + "/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", "manager")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "/admin/login/" not in page.url
    return page


def test_drop_three_photos_as_new_products_and_watch_them_become_ready(
    live_server, staff_page, celery_worker_process, screenshot
):
    page = staff_page
    page.click("text=Upload photos as new products")
    page.wait_for_selector("[data-dropzone].staff-dropzone-js")
    photos = [
        {"name": f"{name}.jpg", "type": "image/jpeg", "b64": base64.b64encode(bad.jpeg((240, 360), rgb)).decode()}
        for name, rgb in (("red-dress", (200, 30, 40)), ("navy-tee", (30, 40, 120)), ("green-skirt", (40, 160, 60)))
    ]
    assert page.evaluate(DROP_JS, ["[data-dropzone]", photos]) == 3
    page.wait_for_selector("[data-results] li.ok >> nth=2")
    assert page.locator("[data-results] li.ok").count() == 3
    # the cards show each photo's status live: pending/processing first, then ready with cutout and mask
    page.wait_for_function(
        "() => document.querySelectorAll('[data-cards] [data-status=ready]').length === 3", timeout=180_000
    )
    assert page.locator("[data-cards] .staff-card").count() == 3
    assert page.locator("[data-live]").is_hidden()
    cutouts = page.locator(".staff-card .staff-checker img")
    assert cutouts.count() == 3
    page.wait_for_function(
        "() => [...document.querySelectorAll('.staff-card img')].every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert set(Product.objects.values_list("sku", flat=True)) == {"red-dress", "navy-tee", "green-skirt"}
    assert set(ProductImage.objects.values_list("status", flat=True)) == {"ready"}
    screenshot(page, "staff-upload-dropped")


def test_picker_upload_on_a_product_page_with_a_refused_file_and_rerun(
    live_server, staff_page, celery_worker_process, screenshot, tmp_path
):
    from django.db import transaction

    from catalog.services import ProductInput, product_upsert

    with transaction.atomic():
        product, _ = product_upsert(ProductInput(sku="COAT-1", title="Wool coat", price=90))
    (tmp_path / "front.jpg").write_bytes(bad.jpeg((240, 360), (90, 60, 40)))
    (tmp_path / "notes.jpg").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n")
    page = staff_page
    page.goto(f"{live_server.url}/admin/catalog/product/{product.pk}/change/")
    page.wait_for_selector("[data-dropzone].staff-dropzone-js")
    page.set_input_files("[data-picker]", [str(tmp_path / "front.jpg"), str(tmp_path / "notes.jpg")])
    page.wait_for_selector("[data-results] li.bad")
    assert "PDF" in page.inner_text("[data-results] li.bad")
    page.wait_for_selector("[data-cards] [data-status=ready]", timeout=180_000)
    assert product.images.count() == 1
    # re-run: the card goes back through the pipeline and ends ready again
    before = product.images.get().processed_at
    page.click(".staff-rerun")
    deadline = time.monotonic() + 180
    while (image := product.images.get()).processed_at == before or image.status != "ready":
        assert time.monotonic() < deadline, f"re-run did not finish: {image.status} {image.stage}"
        time.sleep(0.3)
    # the page follows: polling resumed after the click and settles on ready with nothing busy
    page.wait_for_function(
        "() => document.querySelector('[data-image-panel]').dataset.busy === '0'"
        " && document.querySelector('[data-cards] [data-status]').dataset.status === 'ready'"
        " && !document.querySelector('.staff-rerun').disabled"
    )
    assert page.locator("[data-cards] .staff-card").count() == 1
    screenshot(page, "staff-product-photos")


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buf.getvalue()


def test_bulk_import_through_the_admin_with_a_bad_row(
    live_server, staff_page, celery_worker_process, screenshot, tmp_path
):
    csv_path: Path = tmp_path / "autumn.csv"
    csv_path.write_text(
        "sku,title,category,colour,price,stock,images\n"
        "AUT-1,Autumn scarf,Women > Accessories,Orange,19.90,M:3,scarf.jpg\n"
        "AUT-2,Autumn boots,Women > Shoes,Brown,twelve,38:1,boots.jpg\n"
        "AUT-3,Autumn hat,Women > Accessories,Grey,15,M:2,photos/hat.jpg\n",
        encoding="utf-8",
    )
    zip_path = tmp_path / "autumn.zip"
    scarf, hat = bad.jpeg((240, 360), (220, 120, 30)), bad.jpeg((240, 360), (120, 120, 120))
    zip_path.write_bytes(_zip({"scarf.jpg": scarf, "photos/hat.jpg": hat}))
    page = staff_page
    page.click("text=Bulk import")
    page.set_input_files("#id_csv_file", str(csv_path))
    page.set_input_files("#id_images_zip", str(zip_path))
    screenshot(page, "staff-import-form")
    page.click("text=Start import")
    page.wait_for_selector("[data-import-job][data-finished=done]", timeout=120_000)
    assert page.get_attribute("[data-job-bar]", "aria-valuenow") == "100"
    assert "2 of 2 rows" in page.inner_text("[data-job-counts]")
    problems = page.inner_text("[data-job-problems]")
    assert "AUT-2" in problems and "twelve" in problems
    assert page.inner_text("[data-count=created]") == "2" and page.inner_text("[data-count=failed]") == "1"
    with page.expect_download() as download:
        page.click("[data-job-report]")
    report = Path(download.value.path()).read_text(encoding="utf-8")
    assert report.splitlines()[0] == "row,sku,problem" and report.splitlines()[1].startswith("3,AUT-2,")
    job = ImportJob.objects.get()
    assert job.status == "done" and set(Product.objects.values_list("sku", flat=True)) == {"AUT-1", "AUT-3"}
    screenshot(page, "staff-import-done")


def test_catalog_health_page_shows_counts_alternatives_and_clusters(live_server, staff_page, shop_catalog, screenshot):
    page = staff_page
    page.goto(live_server.url + "/admin/")
    page.click("text=Catalog health")
    page.wait_for_selector(".staff-clusters")
    assert page.inner_text("[data-stat=products]") == str(len(shop_catalog))
    assert page.inner_text("[data-stat=ready]") == str(len(shop_catalog))
    out_of_stock = page.inner_text("#out-of-stock")
    assert "TEE-RED" in out_of_stock and "JACKET-BLACK" in out_of_stock
    assert "TEE-NAVY" in out_of_stock  # the same design in stock is offered for the red tee
    clusters = page.locator(".staff-cluster")
    assert clusters.count() >= 2
    pictures = page.locator(".staff-cluster-grid img")
    assert pictures.count() == len(shop_catalog)
    assert all(
        page.evaluate("(img) => img.naturalWidth > 0", pictures.nth(i).element_handle())
        for i in range(pictures.count())
    )
    screenshot(page, "staff-health")
