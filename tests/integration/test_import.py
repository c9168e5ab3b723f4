"""import_catalog against the real PostgreSQL: idempotency, bad rows, stock changes, files."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog import selectors
from catalog.models import Category, Product, ProductImage, Variant
from catalog.services import catalog_import_csv
from tests.support.images import jpeg_bytes
from workers.services import image_processing_enqueue

pytestmark = pytest.mark.django_db

IMAGES = {"img/red.jpg": jpeg_bytes((200, 20, 20)), "img/blue.jpg": jpeg_bytes((20, 20, 200))}


def good_rows() -> list[dict[str, str]]:
    return [
        {
            "sku": "TS-1",
            "title": "Striped tee",
            "description": "Cotton, relaxed",
            "category": "Women > Tops > T-shirts",
            "colour": "red",
            "pattern": "striped",
            "price": "19.99",
            "currency": "EUR",
            "stock": "S:2|M:0|L:4",
            "group": "tee",
            "images": "img/red.jpg",
            "material": "cotton",
        },
        {
            "sku": "TS-2",
            "title": "Striped tee",
            "category": "Women > Tops > T-shirts",
            "colour": "blue",
            "pattern": "striped",
            "price": "19.99",
            "stock": "0",
            "group": "tee",
            "images": "img/blue.jpg|img/red.jpg",
        },
    ]


def run_import(path: Path, django_capture_on_commit_callbacks) -> tuple:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = catalog_import_csv(path, path.parent, on_images=image_processing_enqueue)
    return report, callbacks


def test_import_creates_products_variants_images_and_categories(make_catalog, django_capture_on_commit_callbacks):
    path = make_catalog(good_rows(), IMAGES)
    report, callbacks = run_import(path, django_capture_on_commit_callbacks)
    assert (report.created, report.updated, report.images_added, report.problems) == (2, 0, 3, [])
    assert len(callbacks) >= 2  # processing is enqueued only when each row's transaction commits

    tee = selectors.product_get("TS-1")
    assert tee is not None
    assert tee.price == Decimal("19.99") and tee.currency == "EUR"
    assert tee.attributes == {"material": "cotton"}
    assert tee.design_group == "tee"
    assert str(tee.category) == "Women › Tops › T-shirts"
    assert Category.objects.filter(path__in=["women", "women/tops", "women/tops/t-shirts"]).count() == 3
    assert {v.size: v.stock for v in tee.variants.all()} == {"S": 2, "M": 0, "L": 4}
    assert tee.in_stock and tee.total_stock == 6
    blue = selectors.product_get("TS-2")
    assert blue is not None and not blue.in_stock
    images = list(blue.images.order_by("position"))
    assert [i.status for i in images] == ["pending", "pending"]
    assert all(Path(i.file.path).is_file() for i in images)
    # The same bytes under two products are two rows (one per product), never one shared row.
    assert ProductImage.objects.filter(content_hash=images[1].content_hash).count() == 2


def test_reimport_is_idempotent(make_catalog, django_capture_on_commit_callbacks, media_root):
    path = make_catalog(good_rows(), IMAGES)
    run_import(path, django_capture_on_commit_callbacks)
    files_before = sorted(p.name for p in media_root.rglob("*") if p.is_file())
    report, callbacks = run_import(path, django_capture_on_commit_callbacks)
    assert (report.created, report.updated, report.unchanged, report.images_added) == (0, 0, 2, 0)
    assert callbacks == []  # nothing new to process
    assert Product.objects.count() == 2
    assert ProductImage.objects.count() == 3
    assert Variant.objects.count() == 4
    assert sorted(p.name for p in media_root.rglob("*") if p.is_file()) == files_before


def test_reimport_changes_stock_and_fields(make_catalog, django_capture_on_commit_callbacks):
    run_import(make_catalog(good_rows(), IMAGES), django_capture_on_commit_callbacks)
    rows = good_rows()
    rows[0]["stock"] = "S:0|M:7"  # L is not named any more: it drops to 0, and is kept
    rows[1]["stock"] = "3"
    rows[1]["price"] = "15.00"
    report, _ = run_import(make_catalog(rows, name="second.csv"), django_capture_on_commit_callbacks)
    assert (report.created, report.updated, report.unchanged) == (0, 2, 0)
    tee = selectors.product_get("TS-1")
    assert {v.size: v.stock for v in tee.variants.all()} == {"S": 0, "M": 7, "L": 0}
    blue = selectors.product_get("TS-2")
    assert blue.in_stock and blue.total_stock == 3 and blue.price == Decimal("15.00")
    assert Product.objects.count() == 2


def test_bad_rows_are_reported_and_good_rows_still_import(make_catalog, django_capture_on_commit_callbacks):
    rows = [
        *good_rows(),
        {"sku": "", "title": "No sku", "price": "5"},
        {"sku": "BAD-PRICE", "title": "Bad price", "price": "five euros"},
        {"sku": "NO-IMG", "title": "Missing image", "price": "5", "images": "img/missing.jpg"},
        {"sku": "TS-1", "title": "Duplicate in the file", "price": "5"},
    ]
    report, _ = run_import(make_catalog(rows, IMAGES), django_capture_on_commit_callbacks)
    assert report.created == 2
    reasons = {p.line: p.reason for p in report.problems}
    assert sorted(reasons) == [4, 5, 6, 7]
    assert "sku is missing" in reasons[4]
    assert "not a number" in reasons[5]
    assert "img/missing.jpg" in reasons[6] and "not found" in reasons[6]
    assert "already appears on line 2" in reasons[7]
    assert set(Product.objects.values_list("sku", flat=True)) == {"TS-1", "TS-2"}
    assert Product.objects.get(sku="TS-1").title == "Striped tee"  # the first occurrence won


def test_non_utf8_file_imports_its_good_rows(tmp_path, django_capture_on_commit_callbacks):
    path = tmp_path / "latin1.csv"
    path.write_bytes("sku,title,price\nU1,Plain,5\nU2,Pull\xe8 rouge,7\nU3,Other,9\n".encode("latin-1"))
    report, _ = run_import(path, django_capture_on_commit_callbacks)
    assert report.created == 2
    assert [(p.line, p.sku) for p in report.problems] == [(3, "U2")]
    assert "UTF-8" in report.problems[0].reason
    assert not Product.objects.filter(sku="U2").exists()


def test_row_failing_midway_leaves_no_row_and_no_file(
    make_catalog, settings, media_root, django_capture_on_commit_callbacks
):
    settings.SHOP_MAX_IMAGE_BYTES = 2000
    images = {"img/small.jpg": jpeg_bytes(size=(40, 40)), "img/big.jpg": jpeg_bytes(size=(400, 400)) + b"\0" * 3000}
    rows = [{"sku": "BIG", "title": "Too big second image", "price": "5", "images": "img/small.jpg|img/big.jpg"}]
    report, callbacks = run_import(make_catalog(rows, images), django_capture_on_commit_callbacks)
    assert report.created == 0
    assert "limit" in report.problems[0].reason
    assert not Product.objects.filter(sku="BIG").exists()
    assert not ProductImage.objects.exists()
    assert callbacks == []
    assert [p for p in media_root.rglob("*") if p.is_file()] == []  # the first image's file was removed too


def test_command_prints_summary_and_bad_rows(make_catalog):
    rows = [*good_rows(), {"sku": "X", "title": "", "price": "1"}]
    path = make_catalog(rows, IMAGES)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 bad row") as exc_info:
        call_command("import_catalog", str(path), "--no-progress", stdout=out, stderr=err)
    assert exc_info.value.returncode == 2
    assert "2 good rows: 2 created" in out.getvalue()
    assert "line 4 (sku X): title is missing" in err.getvalue()


def test_command_refuses_unusable_files(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_catalog", str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,cost\n")
    with pytest.raises(CommandError, match="lacks column"):
        call_command("import_catalog", str(bad))
    assert not Product.objects.exists()
