"""Bad and awkward uploads, each kind on its own: refused at upload with a clear reason and nothing
stored, or stored and then settled by the real worker (decoded and normalised, or failed with its
reason) — never a row without its file or a file without its row."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from catalog.image_checks import ImageRejected
from catalog.models import ImageVector, Product, ProductImage
from catalog.services import atomic_with_files, product_image_add
from tests.support import bad_images as bad
from tests.support.bad_images import ACCEPTED, FAILING
from tests.support.factories import ProductFactory
from workers.services import image_processing_enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def media_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def product() -> Product:
    return ProductFactory(sku="BAD-1", title="Test product", price=10)


def upload(product: Product, content: bytes, name: str, content_type: str = "") -> tuple[ProductImage, bool]:
    with atomic_with_files():
        image, created = product_image_add(product, content, source_name=name, content_type=content_type)
        if created:
            image_processing_enqueue([image.pk])
    return image, created


# --- refused at upload: a reason, and nothing stored -------------------------------------------

REFUSED: dict[str, tuple[Callable[[], bytes], str, str, str]] = {
    # kind: (bytes, file name, declared content type, words the reason must contain)
    "zero bytes": (lambda: b"", "empty.jpg", "", "empty"),
    "text file named .jpg": (lambda: b"size,colour\nM,red\n", "notes.jpg", "", "a text file"),
    "HTML disguised as an image": (
        lambda: b"<!DOCTYPE html><html><body><img src=x></body></html>",
        "photo.png",
        "image/png",
        "an HTML page",
    ),
    "SVG disguised as an image": (
        lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "photo.jpg",
        "",
        "SVG",
    ),
    "PDF": (lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", "lookbook.jpg", "", "a PDF document"),
    "decompression bomb": (bad.decompression_bomb, "bomb.png", "", "decompression bomb"),
    "20,000 × 20,000 pixels": (lambda: bad.jpeg_declaring(20_000, 20_000), "huge.jpg", "", "400 megapixels"),
    "over the pixel limit": (lambda: bad.jpeg_declaring(9_000, 8_000), "big.jpg", "", "9000 × 8000"),
    "1 × 1 pixel": (lambda: bad.jpeg((1, 1)), "dot.jpg", "", "too small"),
    "a strip, not a photo": (lambda: bad.jpeg((40, 1000)), "strip.jpg", "", "strip"),
    "HEIC (unsupported)": (bad.heic_header, "IMG_0001.HEIC", "image/heic", "HEIC"),
    "non-image with an image MIME type": (bad.zip_archive, "photo.jpg", "image/jpeg", "ZIP archive"),
    "a program named .png": (lambda: b"\x7fELF\x02\x01\x01" + b"\0" * 64, "x.png", "", "a program"),
    "header only": (lambda: bad.jpeg()[:40], "cut.jpg", "", "damaged"),
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_refused_at_upload_with_a_reason_and_nothing_stored(kind, product, media_root):
    make, name, content_type, words = REFUSED[kind]
    with pytest.raises(ImageRejected) as refused:
        upload(product, make(), name, content_type)
    assert words in str(refused.value), str(refused.value)
    assert name in str(refused.value)  # says which file
    assert not ProductImage.objects.exists()
    assert media_files(media_root) == []


def test_image_over_the_size_limit_is_refused(product, media_root, settings):
    settings.SHOP_MAX_IMAGE_BYTES = 2_000
    content = bad.jpeg((400, 600)) + b"\0" * 2_000
    with pytest.raises(ImageRejected, match=r"MB is over the 0\.0 MB limit"):
        upload(product, content, "large.jpg")
    assert not ProductImage.objects.exists() and media_files(media_root) == []


def test_refused_upload_inside_a_bigger_transaction_leaves_the_earlier_file_unstored(product, media_root):
    with pytest.raises(ImageRejected), atomic_with_files():
        product_image_add(product, bad.jpeg(), source_name="good.jpg")
        product_image_add(product, b"%PDF-1.4", source_name="bad.jpg")
    assert not ProductImage.objects.exists() and media_files(media_root) == []


def test_duplicate_upload_of_the_same_file_stores_it_once(product, media_root):
    content = bad.jpeg()
    first, created = upload(product, content, "a.jpg")
    again, created_again = upload(product, content, "a-copy.jpg")
    assert created and not created_again and again.pk == first.pk
    assert ProductImage.objects.count() == 1 and len(media_files(media_root)) == 1


def test_stored_name_follows_the_real_type_not_the_uploaded_name(product):
    image, _ = upload(product, bad.webp(), "photo.jpg", "image/jpeg")
    assert image.file.name.endswith(".webp")
    assert (image.width, image.height) == (120, 180)


# --- stored, then decoded by the worker's validate stage ----------------------------------------


def wait_settled(ids: list[int], timeout: float = 240) -> dict[int, ProductImage]:
    deadline = time.monotonic() + timeout
    while True:
        rows = {i.pk: i for i in ProductImage.objects.filter(pk__in=ids)}
        if all(r.status in ("ready", "failed") for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"unsettled after {timeout}s: {[(r.pk, r.status, r.stage) for r in rows.values()]}")
        time.sleep(0.3)


def test_real_worker_settles_every_awkward_upload(product, celery_worker_process, media_root):
    """Each accepted kind ends ``ready`` with its cutout and vectors; each broken one ``failed`` at
    ``validate`` with its reason and no outputs — all in one run of the real worker."""
    ids: dict[str, int] = {}
    for kind, (make, _) in {**ACCEPTED, **FAILING}.items():
        image, created = upload(product, make(), f"{kind}.img")
        assert created
        ids[kind] = image.pk
    rows = wait_settled(list(ids.values()))
    problems = []
    for kind, (_, size) in ACCEPTED.items():
        row = rows[ids[kind]]
        if row.status != "ready" or (row.width, row.height) != size or not Path(row.cutout.path).is_file():
            problems.append(f"{kind}: {row.status} {row.error!r} {(row.width, row.height)}")
        elif Image.open(row.cutout.path).mode != "RGBA" or ImageVector.objects.filter(image=row).count() != 2:
            problems.append(f"{kind}: outputs incomplete")
    for kind, (_, words) in FAILING.items():
        row = rows[ids[kind]]
        if row.status != "failed" or row.stage != "validate" or words not in row.error:
            problems.append(f"{kind}: {row.status} at {row.stage}: {row.error!r}")
        elif row.cutout or ImageVector.objects.filter(image=row).exists():
            problems.append(f"{kind}: failed but has outputs")
    assert problems == []
    # every row has its file and every stored upload has its row
    uploads = {Path(r.file.path) for r in rows.values()}
    assert all(p.is_file() for p in uploads)
    assert {p for p in media_files(media_root) if "products" in p.parts} == uploads


# --- the staff upload in the admin goes through the same checks --------------------------------


@pytest.fixture
def staff_client(client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("staff", password="x"))
    return client


def test_admin_upload_stores_a_good_photo_pending_and_queues_it(
    staff_client, product, media_root, redis_client, settings
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    photo = SimpleUploadedFile("shot.jpg", bad.jpeg(), content_type="image/jpeg")
    response = staff_client.post(
        "/admin/catalog/productimage/add/", {"product": product.pk, "role": "product", "position": 0, "upload": photo}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    image = ProductImage.objects.get()
    assert image.status == "pending" and image.source_name == "shot.jpg" and Path(image.file.path).is_file()
    assert image.enqueued_at is not None and redis_client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) == 1
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    page = staff_client.get("/admin/catalog/productimage/").content.decode()
    assert "pending" in page and "BAD-1" in page


def test_admin_upload_of_a_disguised_file_is_a_form_error(staff_client, product, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("shot.jpg", b"%PDF-1.5 not a photo", content_type="image/jpeg")
    response = staff_client.post(
        "/admin/catalog/productimage/add/", {"product": product.pk, "role": "product", "position": 0, "upload": fake}
    )
    assert response.status_code == 200
    assert "a PDF document, not a photo although it was sent as image/jpeg" in response.content.decode()
    assert not ProductImage.objects.exists() and media_files(media_root) == []
