"""What the API's staff endpoints write and the photo it decodes; every catalog write goes through
``catalog.services`` (and processing through ``workers.services``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from catalog import services as catalog_services
from catalog.image_checks import ImageRejected, image_check_upload, image_decode
from catalog.models import Product
from workers.services import image_processing_enqueue, images_reprocess_enqueue


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
