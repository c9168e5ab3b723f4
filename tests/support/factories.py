"""factory_boy factories for the catalog's rows, written through the ORM (the database's triggers still
fill in the keyword document, ``search_dirty`` and ``has_stock``). Integration tests only: creating a
row needs the test database.

    ProductFactory()                                  # a product with a fresh SKU, EUR 10.00, no category
    ProductFactory(sku="BAD-1", title="Red top")      # the fields a test asserts on, given
    ProductFactory(stock={"S": 0, "M": 2})            # with one variant per size (has_stock read back)
    ProductFactory(category=CategoryFactory(name="Tops", parent=CategoryFactory(name="Women")))
    VariantFactory(product=p, size="L", stock=3)
    ProductImageFactory(product=p)                    # a small JPEG stored under MEDIA_ROOT, pending
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import factory
from django.utils.text import slugify
from factory.django import DjangoModelFactory

from catalog.models import Category, Product, ProductImage, Variant


class CategoryFactory(DjangoModelFactory):
    """A node of the category tree, its path, full name and depth derived from its parent as
    ``catalog.services.category_ensure_path`` derives them; an existing path is reused."""

    class Meta:
        model = Category
        django_get_or_create = ("path",)

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.LazyAttribute(lambda o: slugify(o.name)[:120])
    parent = None
    path = factory.LazyAttribute(lambda o: f"{o.parent.path}/{o.slug}" if o.parent else o.slug)
    full_name = factory.LazyAttribute(lambda o: f"{o.parent.full_name} › {o.name}" if o.parent else o.name)
    depth = factory.LazyAttribute(lambda o: o.parent.depth + 1 if o.parent else 0)


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.Sequence(lambda n: f"Test product {n}")
    price = Decimal("10.00")
    currency = "EUR"
    category = None

    @factory.post_generation
    def stock(obj: Product, create: bool, extracted: dict[str, int] | None, **kwargs: Any) -> None:
        """``stock={"S": 0, "M": 2}``: one variant per size, in that order."""
        if not extracted:
            return
        for position, (size, count) in enumerate(extracted.items()):
            VariantFactory(product=obj, size=size, stock=count, position=position)
        if create:
            obj.refresh_from_db(fields=["has_stock"])


class VariantFactory(DjangoModelFactory):
    class Meta:
        model = Variant

    product = factory.SubFactory(ProductFactory)
    size = "M"
    stock = 1
    position = 0


class ProductImageFactory(DjangoModelFactory):
    """A stored product photo, not processed (``pending``); the pipeline is not run."""

    class Meta:
        model = ProductImage

    product = factory.SubFactory(ProductFactory)
    file = factory.django.ImageField(width=36, height=54, color="red", format="JPEG", filename="photo.jpg")
    width = 36
    height = 54
    content_hash = factory.Sequence(lambda n: hashlib.sha256(f"image {n}".encode()).hexdigest())
    source_name = "photo.jpg"
