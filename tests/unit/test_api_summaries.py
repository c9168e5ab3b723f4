"""The API's product summaries are built without DRF's field machinery (``ProductSummarySerializer.rows``);
the documented shape is the serializer's. Here the two are held equal on products built in memory the way
``catalog.selectors.products_by_ids`` annotates them: with and without a category, photo, cutout or size
in stock, prices with fewer and more decimals, dots, dashes and underscores in SKUs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import RequestFactory

from api.serializers import ProductSummarySerializer
from catalog.models import Category, Product


def summary(sku: str, price: str, *, category: Category | None, sizes: list[str] | None, photo: str, cutout: str):
    product = Product(
        id=abs(hash(sku)) % 10_000,
        sku=sku,
        title=f"Title of {sku}",
        price=Decimal(price),
        currency="EUR",
        colour="Black",
        pattern="",
        brand="Acme",
        category=category,
    )
    product.in_stock = bool(sizes)  # type: ignore[attr-defined]
    product.summary_sizes_in_stock = sizes  # type: ignore[attr-defined]
    product.summary_file = photo  # type: ignore[attr-defined]
    product.summary_cutout = cutout  # type: ignore[attr-defined]
    return product


@pytest.mark.parametrize("host", ["testserver", "shop.example.com:8443"])
def test_summary_rows_equal_the_serializers(host: str, settings):
    settings.ALLOWED_HOSTS = ["testserver", "shop.example.com"]
    tops = Category(id=7, name="Tops", path="women/tops", full_name="Women › Tops")
    products = [
        summary("A1", "19.9", category=tops, sizes=["S", "M"], photo="products/a1.jpg", cutout="cutouts/a1.png"),
        summary("B-2.x_y", "5", category=None, sizes=None, photo="", cutout=""),
        summary("C3", "120.00", category=tops, sizes=[], photo="products/c3.jpg", cutout=""),
        summary("D4", "0.01", category=tops, sizes=["XL"], photo="products/d 4.jpg", cutout="cutouts/d4.png"),
    ]
    request = RequestFactory().get("/api/v1/search", HTTP_HOST=host)
    context = {"request": request}
    expected = ProductSummarySerializer(products, many=True, context=context).data
    rows = ProductSummarySerializer.rows(products, context)
    assert rows == [dict(row) for row in expected]
    assert [list(row) for row in rows] == [list(row) for row in expected]  # the same keys in the same order
    assert rows[0]["price"] == "19.90" and rows[1]["category"] is None and rows[1]["image_url"] is None
    assert rows[0]["url"].startswith(f"http://{host}/api/v1/products/")
