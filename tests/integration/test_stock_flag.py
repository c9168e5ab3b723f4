"""``Product.has_stock`` (what the "in stock" filter reads) follows the variants whichever way they
are written: the catalog services, plain ORM updates, deletes, and a product saved from a stale copy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog import selectors
from catalog.models import Product, Variant
from catalog.selectors import ProductFilters
from catalog.services import ProductInput, product_set_stock, product_upsert

pytestmark = pytest.mark.django_db


def flag(sku: str) -> bool:
    return Product.objects.values_list("has_stock", flat=True).get(sku=sku)


def in_stock_filter_ids() -> set[int]:
    match = selectors.product_filter_match(ProductFilters(in_stock=True))
    assert match.ids is not None
    return set(match.ids)


def test_the_stock_flag_follows_every_write():
    product, _ = product_upsert(ProductInput(sku="F1", title="Flag tee", price=Decimal("10")))
    other, _ = product_upsert(ProductInput(sku="F2", title="Other tee", price=Decimal("10")))
    assert not flag("F1")
    product_set_stock(product, {"S": 0, "M": 2})
    assert flag("F1") and in_stock_filter_ids() == {product.pk}
    product_set_stock(product, {"S": 0, "M": 0})
    assert not flag("F1") and in_stock_filter_ids() == set()
    Variant.objects.filter(product=product, size="S").update(stock=4)  # plain SQL update, as the admin may
    assert flag("F1")
    stale = Product.objects.get(sku="F1")
    Variant.objects.filter(product=product).update(stock=0)
    stale.title = "Flag tee, renamed"
    stale.save()  # writes has_stock=True from the stale copy: the product trigger puts it right
    assert not flag("F1")
    Variant.objects.filter(product=product, size="M").update(stock=1)
    assert flag("F1")
    Variant.objects.filter(product=product, size="M").update(product=other)  # moved to another product
    assert not flag("F1") and flag("F2")
    Variant.objects.filter(product=other).delete()
    assert not flag("F2") and in_stock_filter_ids() == set()
