"""The factories of tests/support/factories.py write rows the database accepts, and its triggers still
fill in what they own (``has_stock`` from the variants, the keyword document)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from catalog.models import Product
from tests.support.factories import CategoryFactory, ProductFactory, ProductImageFactory, VariantFactory

pytestmark = pytest.mark.django_db


def test_products_get_fresh_skus_a_price_and_their_stock_flag():
    first, second = ProductFactory(), ProductFactory(stock={"S": 0, "M": 2})
    assert first.sku != second.sku and first.price == Decimal("10.00") and first.category is None
    assert not first.has_stock and second.has_stock
    assert [(v.size, v.stock) for v in second.variants.order_by("position")] == [("S", 0), ("M", 2)]
    VariantFactory(product=first, size="L", stock=3)
    assert Product.objects.get(pk=first.pk).has_stock


def test_categories_nest_like_the_import_makes_them_and_products_are_found_by_keyword():
    tops = CategoryFactory(name="Tops", parent=CategoryFactory(name="Women"))
    assert (tops.path, tops.full_name, tops.depth) == ("women/tops", "Women › Tops", 1)
    assert CategoryFactory(name="Women").pk == tops.parent_id  # an existing path is reused
    product = ProductFactory(title="Striped linen shirt", category=tops)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_document @@ plainto_tsquery('english', 'linen') FROM catalog_product WHERE id = %s",
            [product.pk],
        )
        assert cursor.fetchone()[0]


def test_product_images_are_stored_pending(media_root):
    image = ProductImageFactory()
    assert image.status == "pending" and Path(image.file.path).is_file()
    assert Path(image.file.path).is_relative_to(media_root)
    assert image.file.name.startswith(f"products/{image.product.sku}/")
