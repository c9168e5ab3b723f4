"""Imported images go through the whole pipeline in a real Celery worker on the real Redis broker,
with real (small) models: parse → cutout → vectors → attributes → product vectors."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image

from catalog.models import ImageVector, ProductImage, ProductVector
from catalog.services import catalog_import_csv
from tests.support.factories import ProductFactory
from tests.support.images import jpeg_bytes
from workers.services import image_processing_enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_settled(ids: list[int], timeout: float = 180) -> dict[int, ProductImage]:
    deadline = time.monotonic() + timeout
    images: dict[int, ProductImage] = {}
    while time.monotonic() < deadline:
        images = {i.pk: i for i in ProductImage.objects.filter(pk__in=ids)}
        if all(i.status in {"ready", "failed"} for i in images.values()):
            return images
        time.sleep(0.25)
    raise AssertionError(f"images still unsettled after {timeout}s: {[(i.pk, i.status) for i in images.values()]}")


def test_import_hands_each_new_image_to_the_worker_pipeline(make_catalog, celery_worker_process):
    images = {
        "a.jpg": jpeg_bytes((10, 120, 10), (60, 90)),
        "b.jpg": jpeg_bytes((10, 10, 120), (40, 60)),
        "fake.jpg": b"this is a text file, not a photo",
    }
    rows = [
        {"sku": "W1", "title": "Green top", "price": "9", "images": "a.jpg|b.jpg"},
        {"sku": "W2", "title": "Broken photo", "price": "9", "images": "fake.jpg"},
    ]
    path = make_catalog(rows, images)
    report = catalog_import_csv(path, path.parent, on_images=image_processing_enqueue)
    assert report.images_added == 2
    # the text file is refused at import, before anything is stored or queued
    assert [p.sku for p in report.problems] == ["W2"] and "text file" in report.problems[0].reason
    ids = list(ProductImage.objects.values_list("pk", flat=True))
    settled = wait_until_settled(ids)
    by_name = {i.source_name: i for i in settled.values()}

    good = by_name["a.jpg"]
    assert good.status == "ready", good.error
    assert (good.width, good.height) == (60, 90)
    assert set(good.stage_timings) >= {"validate", "parse", "embed", "attributes", "duplicates", "product"}
    assert good.signature["phash"] and good.attempts == 1 and not good.claim_token
    cutout = Image.open(good.cutout.path)
    assert cutout.mode == "RGBA" and cutout.width <= 60 and cutout.height <= 90
    assert Image.open(good.mask.path).size == (60, 90)
    assert set(good.predicted) == {"category", "colour", "pattern"}
    assert all(0 < p["confidence"] <= 1 for p in good.predicted.values())
    assert set(ImageVector.objects.filter(image=good).values_list("kind", flat=True)) == {"cutout", "full"}
    assert by_name["b.jpg"].status == "ready"
    assert set(ProductVector.objects.filter(product__sku="W1").values_list("kind", flat=True)) == {"image", "text"}

    assert "fake.jpg" not in by_name
    assert "workers.tasks.image_process" in celery_worker_process.log_path.read_text()


def test_rerunning_the_pipeline_replaces_rather_than_adds(make_catalog, test_models, media_root):
    from catalog.services import images_reset_for_reprocess
    from workers.services import image_pipeline_run

    path = make_catalog(
        [{"sku": "R1", "title": "Red dress", "price": "9", "images": "r.jpg"}],
        {"r.jpg": jpeg_bytes((200, 10, 10), (48, 72))},
    )
    catalog_import_csv(path, path.parent)
    image = ProductImage.objects.get(product__sku="R1")
    assert image_pipeline_run(image.pk) == "ready"
    first = ProductImage.objects.get(pk=image.pk)
    files_before = sorted(p.relative_to(media_root) for p in Path(media_root).rglob("*") if p.is_file())
    assert image_pipeline_run(image.pk) == "done"  # a second message for a ready image does nothing
    images_reset_for_reprocess([image.pk])
    assert image_pipeline_run(image.pk) == "ready"
    again = ProductImage.objects.get(pk=image.pk)
    assert again.cutout.name == first.cutout.name and again.mask.name == first.mask.name
    assert ImageVector.objects.filter(image=image).count() == 2
    assert ProductVector.objects.filter(product=image.product).count() == 2
    assert sorted(p.relative_to(media_root) for p in Path(media_root).rglob("*") if p.is_file()) == files_before


def test_product_text_is_embedded_again_when_it_changes(make_catalog, worker_factory):
    # The text vectors come from the periodic refresh of products the database marked dirty.
    celery_worker_process = worker_factory(beat=True, env={"SHOP_TEXT_REFRESH_INTERVAL": "1"})

    def text_vector() -> list[float] | None:
        row = ProductVector.objects.filter(product__sku="T1", kind="text").values_list("vector", flat=True).first()
        return None if row is None else [float(x) for x in row]

    def wait_for_vector(different_from: list[float] | None) -> list[float]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            vector = text_vector()
            if vector is not None and vector != different_from:
                return vector
            time.sleep(0.25)
        raise AssertionError("the worker did not (re)embed the product text")

    row = {"sku": "T1", "title": "Black striped t-shirt", "description": "Cotton jersey.", "price": "9"}
    catalog_import_csv(make_catalog([row]))
    first = wait_for_vector(None)  # a product without images gets its text vector too
    catalog_import_csv(make_catalog([{**row, "price": "11"}]))  # price only: the text is unchanged
    time.sleep(1.0)
    assert text_vector() == first
    catalog_import_csv(make_catalog([{**row, "title": "Red floral summer dress"}]))
    second = wait_for_vector(first)
    assert second != first
    assert "workers.tasks.products_text_refresh" in celery_worker_process.log()


def test_the_duplicate_stage_links_an_edited_copy_to_the_original_and_not_a_recolour(test_models, settings):
    from catalog.services import atomic_with_files, product_image_add
    from tests.unit.test_duplicates import hue_rotated, product_photo
    from workers.services import image_pipeline_run

    settings.SHOP_PIPELINE = "off"
    original = product_photo(seed=5)
    w, h = original.size
    photos = {
        "D-ORIG": original,
        "D-COPY": original.crop((int(0.08 * w), int(0.06 * h), int(0.94 * w), int(0.95 * h))).resize((300, 450)),
        "D-RECOLOUR": hue_rotated(original),
    }
    ids = {}
    for sku, photo in photos.items():
        product = ProductFactory(sku=sku, title=sku, price=10)
        buf = io.BytesIO()
        photo.save(buf, "JPEG", quality=85)
        with atomic_with_files():
            image, _ = product_image_add(product, buf.getvalue(), source_name=f"{sku}.jpg")
        ids[sku] = image.pk
    for sku in photos:  # in upload order, as the workers would
        assert image_pipeline_run(ids[sku]) == "ready"
    rows = {sku: ProductImage.objects.get(pk=pk) for sku, pk in ids.items()}
    assert rows["D-ORIG"].duplicate_of_id is None
    assert rows["D-COPY"].duplicate_of_id == ids["D-ORIG"]
    assert rows["D-RECOLOUR"].duplicate_of_id is None
    assert rows["D-COPY"].signature["phash"] and rows["D-RECOLOUR"].signature["colour"]
