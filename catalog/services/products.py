"""Writes of products, categories, stock and the product's search text."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from catalog.models import (
    Category,
    Product,
    Variant,
)


def category_ensure_path(names: Sequence[str]) -> Category | None:
    """Return the category at ``names`` (root first), creating missing levels."""
    parent: Category | None = None
    path = ""
    for depth, name in enumerate(names):
        slug = slugify(name)[:120] or f"c{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        path = f"{path}/{slug}" if path else slug
        full_name = f"{parent.full_name} › {name}" if parent else name
        parent, _ = Category.objects.get_or_create(
            path=path,
            defaults={"name": name[:120], "slug": slug, "parent": parent, "depth": depth, "full_name": full_name[:600]},
        )
    return parent


@dataclass
class ProductInput:
    sku: str
    title: str
    price: Decimal
    description: str = ""
    currency: str = "EUR"
    colour: str = ""
    pattern: str = ""
    brand: str = ""
    category: Category | None = None
    design_group: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    is_active: bool = True


def product_upsert(data: ProductInput) -> tuple[Product, str]:
    """Create or update the product with ``data.sku``. Returns (product, "created"|"updated"|"unchanged")."""
    values = {
        "title": data.title,
        "description": data.description,
        "price": data.price,
        "currency": data.currency,
        "colour": data.colour,
        "pattern": data.pattern,
        "brand": data.brand,
        "category": data.category,
        "design_group": data.design_group,
        "attributes": data.attributes,
        "is_active": data.is_active,
    }
    product = Product.objects.select_for_update().filter(sku=data.sku).first()
    if product is None:
        product = Product.objects.create(sku=data.sku, **values)
        return product, "created"
    changed = [name for name, value in values.items() if getattr(product, name) != value]
    if not changed:
        return product, "unchanged"
    for name in changed:
        setattr(product, name, values[name])
    product.save(update_fields=[*changed, "updated_at"])
    return product, "updated"


def product_set_stock(product: Product, stock: dict[str, int]) -> bool:
    """Make the product's stock exactly ``stock`` (size → units). Sizes not named drop to 0
    (they are kept, not deleted). Returns whether anything changed."""
    changed = False
    existing = {v.size: v for v in product.variants.select_for_update()}
    for position, (size, units) in enumerate(stock.items()):
        variant = existing.pop(size, None)
        if variant is None:
            Variant.objects.create(product=product, size=size, stock=units, position=position)
            changed = True
        elif variant.stock != units or variant.position != position:
            variant.stock, variant.position = units, position
            variant.save(update_fields=["stock", "position"])
            changed = True
    for variant in existing.values():
        if variant.stock:
            variant.stock = 0
            variant.save(update_fields=["stock"])
            changed = True
    return changed


def product_text_for_embedding(product: Product) -> str:
    """The text a product's text vector is computed from (title, description, attributes)."""
    parts = [product.title, product.description]
    facts = [product.colour, product.pattern, product.category.name if product.category else ""]
    parts.append(" ".join(f for f in facts if f))
    parts.extend(str(v) for k, v in sorted(product.attributes.items()) if k not in {"split"})
    return ". ".join(p.strip() for p in parts if p and str(p).strip())


def product_text_hash(product: Product) -> str:
    return hashlib.sha256(product_text_for_embedding(product).encode()).hexdigest()


def product_mark_text_embedded(product_id: int, text_hash: str) -> None:
    Product.objects.filter(pk=product_id).update(text_hash=text_hash)


def products_search_claim(limit: int) -> list[Product]:
    """Take up to ``limit`` products whose search text changed (``search_dirty``, set by the database
    trigger of migration 0012) and clear their flag. Must run inside the caller's transaction: the
    rows stay locked until it commits, so an edit made meanwhile waits and marks the product again,
    and a caller that dies rolls the flags back. Rows another worker holds are skipped."""
    products = list(
        Product.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("category")
        .filter(search_dirty=True)
        .order_by("id")[:limit]
    )
    if products:
        Product.objects.filter(pk__in=[p.pk for p in products]).update(search_dirty=False)
    return products


class ProductExists(ValueError):
    """``product_create`` for a SKU the catalog already has."""


class ProductMissing(LookupError):
    """``product_update`` / ``variant_stock_set`` for a SKU the catalog does not have."""


PRODUCT_FIELDS = (
    "title", "description", "price", "currency", "colour", "pattern", "brand", "design_group", "attributes",
    "is_active",
)  # fmt: skip


def _category(names: Sequence[str] | None, current: Any) -> Any:
    if names is None:
        return current
    return category_ensure_path(list(names)) if names else None


def product_create(*, sku: str, values: dict[str, Any], variants: list[tuple[str, int]] | None) -> Product:
    """A new product (and its variants' stock) in one transaction; the database marks its text for
    the periodic text refresh. Raises :class:`ProductExists` when the SKU is taken."""
    try:
        with transaction.atomic():
            if Product.objects.filter(sku=sku).exists():
                raise ProductExists(sku)
            data = {name: values[name] for name in PRODUCT_FIELDS if name in values}
            data.setdefault("currency", settings.SHOP_DEFAULT_CURRENCY)
            category = _category(values.get("category"), None)
            product, _ = product_upsert(ProductInput(sku=sku, category=category, **data))
            if variants:
                product_set_stock(product, dict(variants))
    except IntegrityError:  # the same SKU created by a concurrent request
        raise ProductExists(sku) from None
    return product


def product_update(*, sku: str, values: dict[str, Any], variants: list[tuple[str, int]] | None) -> Product:
    """Change the named fields of a product (the rest keep their values); ``variants``, when given,
    becomes the product's whole stock (sizes not named drop to 0, see ``product_set_stock``)."""
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(sku=sku).first()
        if product is None:
            raise ProductMissing(sku)
        data = {name: values.get(name, getattr(product, name)) for name in PRODUCT_FIELDS}
        category = _category(values.get("category"), product.category)
        product, _ = product_upsert(ProductInput(sku=sku, category=category, **data))
        if variants is not None:
            product_set_stock(product, dict(variants))
    return product


def variant_stock_set(*, sku: str, size: str, stock: int) -> Product:
    """Set one size's stock (the size is added at the end when new); the other sizes keep theirs."""
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(sku=sku).first()
        if product is None:
            raise ProductMissing(sku)
        current = {v.size: v.stock for v in product.variants.all()}
        current[size] = stock
        product_set_stock(product, current)
    return product
