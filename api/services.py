"""What the API's staff endpoints ask of the workers besides catalog writes (those go through
``catalog.services``): photo uploads queued for processing, images sent again, API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from catalog import services as catalog_services
from catalog.models import Product
from workers import services as workers_services


@dataclass(frozen=True)
class UploadedFile:
    name: str
    content: bytes
    content_type: str


def product_images_add(product: Product, files: Sequence[UploadedFile]) -> list[catalog_services.UploadResult]:
    """Store each file on the product (each alone: a refused file stops nothing else); processing is
    queued as each commits. Refusals carry the upload checks' reasons."""
    return workers_services.product_images_upload([(f.name, f.content, f.content_type) for f in files], product=product)


def image_reprocess(image_id: int) -> bool:
    """Run the whole pipeline again for one image. Returns whether the broker took the task (if not,
    the image stays pending and the sweep sends it)."""
    return bool(workers_services.images_reprocess_enqueue([image_id]))


def token_for(user: Any) -> str:
    """The user's API token (created on first use)."""
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    return token.key
