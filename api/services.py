"""What the API's staff endpoints write and the photo it decodes; every catalog write goes through
``catalog.services`` (and processing through ``workers.services``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from PIL import Image

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.image_checks import ImageRejected, image_check_upload, image_decode
from catalog.models import Product
from workers.services import image_processing_enqueue, images_reprocess_enqueue


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
    return catalog_services.category_ensure_path(list(names)) if names else None


def product_create(*, sku: str, values: dict[str, Any], variants: list[tuple[str, int]] | None) -> Product:
    """A new product (and its variants' stock) in one transaction; its text is queued for embedding
    when it commits. Raises :class:`ProductExists` when the SKU is taken."""
    try:
        with transaction.atomic():
            if catalog_selectors.product_skus_existing([sku]):
                raise ProductExists(sku)
            data = {name: values[name] for name in PRODUCT_FIELDS if name in values}
            data.setdefault("currency", settings.SHOP_DEFAULT_CURRENCY)
            category = _category(values.get("category"), None)
            product, _ = catalog_services.product_upsert(
                catalog_services.ProductInput(sku=sku, category=category, **data)
            )
            if variants:
                catalog_services.product_set_stock(product, dict(variants))
    except IntegrityError:  # the same SKU created by a concurrent request
        raise ProductExists(sku) from None
    return product


def product_update(*, sku: str, values: dict[str, Any], variants: list[tuple[str, int]] | None) -> Product:
    """Change the named fields of a product (the rest keep their values); ``variants``, when given,
    becomes the product's whole stock (sizes not named drop to 0, see ``product_set_stock``)."""
    with transaction.atomic():
        product = catalog_selectors.product_get_detailed(sku)
        if product is None:
            raise ProductMissing(sku)
        data = {name: values.get(name, getattr(product, name)) for name in PRODUCT_FIELDS}
        category = _category(values.get("category"), product.category)
        product, _ = catalog_services.product_upsert(catalog_services.ProductInput(sku=sku, category=category, **data))
        if variants is not None:
            catalog_services.product_set_stock(product, dict(variants))
    return product


def variant_stock_set(*, sku: str, size: str, stock: int) -> Product:
    """Set one size's stock (the size is added at the end when new); the other sizes keep theirs."""
    with transaction.atomic():
        product = catalog_selectors.product_get_detailed(sku)
        if product is None:
            raise ProductMissing(sku)
        current = {v.size: v.stock for v in product.variants.all()}
        current[size] = stock
        catalog_services.product_set_stock(product, current)
    return product


@dataclass(frozen=True)
class UploadedFile:
    name: str
    content: bytes
    content_type: str


def product_images_add(product: Product, files: Sequence[UploadedFile]) -> list[catalog_services.UploadResult]:
    """Store each file on the product (each alone: a refused file stops nothing else); processing is
    queued as each commits. Refusals carry the upload checks' reasons."""
    results = catalog_services.product_images_upload(
        [(f.name, f.content, f.content_type) for f in files], product=product
    )
    image_processing_enqueue([r.image_id for r in results if r.created and r.image_id])
    return results


def image_reprocess(image_id: int) -> bool:
    """Run the whole pipeline again for one image. Returns whether the broker took the task (if not,
    the image stays pending and the sweep sends it)."""
    return bool(images_reprocess_enqueue([image_id]))


def photo_open(content: bytes, name: str, content_type: str = "") -> Image.Image:
    """A shopper's photo, checked exactly like a staff upload (``image_check_upload``: type, size,
    pixels) and decoded like the workers' validate stage (``image_decode``: truncation, EXIF
    orientation, colour modes). Raises ``ImageRejected`` with the same reasons."""
    image_check_upload(content, name, content_type)
    handle, path = tempfile.mkstemp(prefix="shop-photo-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        return image_decode(path)
    except ImageRejected as exc:
        raise ImageRejected(f"{name}: {exc}") from None
    finally:
        os.unlink(path)


def token_for(user: Any) -> str:
    """The user's API token (created on first use)."""
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    return token.key
