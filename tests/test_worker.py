"""Imported images reach a real Celery worker through the real Redis broker."""

from __future__ import annotations

import time

import pytest

from catalog.models import ProductImage
from catalog.services import catalog_import_csv
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_settled(ids: list[int], timeout: float = 60) -> dict[int, ProductImage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        images = {i.pk: i for i in ProductImage.objects.filter(pk__in=ids)}
        if all(i.status in {"ready", "failed"} for i in images.values()):
            return images
        time.sleep(0.25)
    raise AssertionError(f"images still unsettled after {timeout}s: {[(i.pk, i.status) for i in images.values()]}")


def test_import_hands_each_new_image_to_the_worker(make_catalog, celery_worker_process):
    images = {
        "a.jpg": jpeg_bytes((10, 120, 10), (60, 90)),
        "b.jpg": jpeg_bytes((10, 10, 120), (30, 45)),
        "fake.jpg": b"this is a text file, not a photo",
    }
    rows = [
        {"sku": "W1", "title": "Green top", "price": "9", "images": "a.jpg|b.jpg"},
        {"sku": "W2", "title": "Broken photo", "price": "9", "images": "fake.jpg"},
    ]
    path = make_catalog(rows, images)
    report = catalog_import_csv(path, path.parent)
    assert report.images_added == 3
    ids = list(ProductImage.objects.values_list("pk", flat=True))
    settled = wait_until_settled(ids)
    by_name = {i.source_name: i for i in settled.values()}
    assert by_name["a.jpg"].status == "ready" and (by_name["a.jpg"].width, by_name["a.jpg"].height) == (60, 90)
    assert by_name["b.jpg"].status == "ready" and "validate" in by_name["b.jpg"].stage_timings
    broken = by_name["fake.jpg"]
    assert broken.status == "failed" and broken.stage == "validate"
    assert "not a readable image" in broken.error
    log = celery_worker_process.log_path.read_text()
    assert "workers.tasks.image_process" in log
