"""Writes of product images: storing uploads (file and row together), the pipeline's claims and results."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

from catalog.image_checks import image_check_upload
from catalog.models import (
    Product,
    ProductImage,
    Variant,
)

logger = logging.getLogger(__name__)


# The stored file's extension follows the sniffed type, never the uploaded name.
EXTENSION_OF_TYPE = {
    "jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "avif": ".avif",
}  # fmt: skip


@contextmanager
def atomic_with_files() -> Iterator[None]:
    """``transaction.atomic()`` that also deletes the files stored inside it when it rolls back,
    so there is never a file without its row. Image writes must run inside it."""
    stored: list[str] = []
    token = _stored_files.set(stored)
    try:
        with transaction.atomic():
            yield
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    finally:
        _stored_files.reset(token)


_stored_files: ContextVar[list[str] | None] = ContextVar("stored_files", default=None)


def product_image_add(
    product: Product,
    content: bytes,
    *,
    source_name: str,
    role: str = ProductImage.Role.PRODUCT,
    position: int | None = None,
    content_type: str = "",
) -> tuple[ProductImage, bool]:
    """Store an image for ``product`` unless the same bytes are already there.

    The bytes are checked first (:func:`catalog.image_checks.image_check_upload`: real type, size,
    pixel limits); a refused file raises :class:`ImageRejected` and nothing is stored.
    Runs inside :func:`atomic_with_files`: the file is written first and removed again if the
    transaction rolls back, so there is never a file without a row or a row without its file.
    The caller queues its processing (``workers.services.image_processing_enqueue``, which sends
    when the transaction commits). Returns (image, created); ``created`` is
    False when this product already has these exact bytes (a duplicate upload).
    """
    stored_files = _stored_files.get()
    if stored_files is None:
        raise RuntimeError("product_image_add must run inside catalog.services.atomic_with_files()")
    info = image_check_upload(content, source_name, content_type)
    digest = hashlib.sha256(content).hexdigest()
    existing = ProductImage.objects.filter(product=product, content_hash=digest).first()
    if existing is not None:
        if position is not None and existing.position != position:
            existing.position = position
            existing.save(update_fields=["position", "updated_at"])
        return existing, False
    if position is None:
        position = product.images.count()
    name = f"products/{product.sku}/{digest[:16]}{EXTENSION_OF_TYPE[info.kind]}"
    stored = default_storage.save(name, ContentFile(content))
    stored_files.append(stored)
    image = ProductImage.objects.create(
        product=product,
        file=stored,
        position=position,
        role=role,
        content_hash=digest,
        source_name=source_name[:300],
        width=info.width,
        height=info.height,
    )
    return image, True


@dataclass(frozen=True)
class Claim:
    outcome: str  # "claimed", "missing", "done" (ready or failed already), "busy" (another live worker has it)
    attempts: int = 0


def image_claim(image_id: int, *, token: str, lease_seconds: int) -> Claim:
    """Take an image for processing, atomically. A pending image is taken; a processing one only
    by the same task (a redelivered or retried message) or when its holder's lease ran out (a
    worker that died). Ready and failed images are left alone, so a duplicate message does nothing."""
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds)
    taken = (
        ProductImage.objects.filter(pk=image_id)
        .filter(
            models.Q(status=ProductImage.Status.PENDING)
            | models.Q(status=ProductImage.Status.PROCESSING, claim_token=token)
            | models.Q(status=ProductImage.Status.PROCESSING, claimed_at__lt=stale)
            | models.Q(status=ProductImage.Status.PROCESSING, claimed_at__isnull=True)
        )
        .update(
            status=ProductImage.Status.PROCESSING,
            stage="validate",
            error="",
            claim_token=token[:64],
            claimed_at=now,
            attempts=models.F("attempts") + 1,
            updated_at=now,
        )
    )
    row = ProductImage.objects.filter(pk=image_id).values("status", "attempts").first()
    if row is None:
        return Claim("missing")
    if taken:
        return Claim("claimed", row["attempts"])
    if row["status"] == ProductImage.Status.PROCESSING:
        return Claim("busy", row["attempts"])
    return Claim("done", row["attempts"])


def image_set_stage(image_id: int, stage: str) -> None:
    """Record the stage a processing image is in (what staff see while it runs)."""
    ProductImage.objects.filter(pk=image_id, status=ProductImage.Status.PROCESSING).update(
        stage=stage, updated_at=timezone.now()
    )


def images_mark_enqueued(image_ids: Sequence[int]) -> None:
    ProductImage.objects.filter(pk__in=list(image_ids)).update(enqueued_at=timezone.now())


def images_reset_for_reprocess(image_ids: Sequence[int]) -> int:
    """Back to ``pending`` so the pipeline runs every stage again (their current cutouts and
    vectors stay in place until the new ones replace them)."""
    return ProductImage.objects.filter(pk__in=list(image_ids)).update(
        status=ProductImage.Status.PENDING,
        stage="queued again",
        error="",
        attempts=0,
        claim_token="",
        claimed_at=None,
        enqueued_at=None,
        updated_at=timezone.now(),
    )


def image_set_duplicate(image_id: int, duplicate_of: int | None) -> None:
    ProductImage.objects.filter(pk=image_id).update(duplicate_of_id=duplicate_of)


def image_mark_ready(
    image_id: int, *, timings: dict[str, float], width: int | None = None, height: int | None = None
) -> None:
    fields: dict[str, object] = {
        "status": ProductImage.Status.READY,
        "stage": "done",
        "error": "",
        "stage_timings": timings,
        "processed_at": timezone.now(),
        "updated_at": timezone.now(),
    }
    if width and height:
        fields.update(width=width, height=height)
    fields.update(claim_token="", claimed_at=None)
    ProductImage.objects.filter(pk=image_id).update(**fields)


def image_mark_failed(image_id: int, *, stage: str, reason: str, timings: dict[str, float] | None = None) -> None:
    ProductImage.objects.filter(pk=image_id).update(
        status=ProductImage.Status.FAILED,
        stage=stage,
        error=reason[:2000],
        stage_timings=timings or {},
        claim_token="",
        claimed_at=None,
        processed_at=timezone.now(),
        updated_at=timezone.now(),
    )


def image_store_outputs(
    image_id: int,
    *,
    cutout_png: bytes | None,
    mask_png: bytes | None,
    garments: list[dict[str, object]],
    predicted: dict[str, dict[str, object]],
    signature: dict[str, object] | None = None,
    parser_version: str = "",
    predicted_next: dict[str, dict[str, object]] | None = None,
) -> None:
    """Store what the pipeline computed for one image. Re-running replaces the same files (one
    cutout and one mask per image, named by the image id), never adds a second one."""
    image = ProductImage.objects.select_related("product").get(pk=image_id)
    updates: dict[str, object] = {
        "garments": garments,
        "predicted": predicted,
        "parser_version": parser_version,
        "predicted_next": predicted_next or {},
    }
    if signature is not None:
        updates["signature"] = signature
    for field_name, content, folder in (("cutout", cutout_png, "cutouts"), ("mask", mask_png, "masks")):
        if content is None:
            continue
        name = f"{folder}/{image.product.sku}/{image.pk}.png"
        if default_storage.exists(name):
            default_storage.delete(name)
        updates[field_name] = default_storage.save(name, ContentFile(content))
    ProductImage.objects.filter(pk=image_id).update(**updates, updated_at=timezone.now())


class StorageUnavailable(RuntimeError):
    """The media storage cannot be written (full, gone, read-only): nothing was stored; try later."""


@dataclass
class UploadResult:
    """What happened to one file of a staff multi-file upload."""

    name: str
    ok: bool
    error: str = ""
    image_id: int | None = None
    product_id: int | None = None
    sku: str = ""
    created: bool = False  # False when the product already had exactly these bytes


SKU_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def product_sku_from_file_name(file_name: str) -> str:
    """A SKU from an image's file name ("Red Dress (2).jpg" → "Red-Dress-2"), made unique with a
    numeric suffix when the catalog already has it."""
    stem = Path(file_name.replace("\\", "/")).stem
    base = SKU_UNSAFE_RE.sub("-", stem).strip("-._")[:56] or "photo"
    if not base[0].isalnum():
        base = f"p{base}"[:56]
    sku, n = base, 1
    while Product.objects.filter(sku=sku).exists():
        n += 1
        sku = f"{base}-{n}"
    return sku


def product_title_from_file_name(file_name: str) -> str:
    stem = Path(file_name.replace("\\", "/")).stem
    words = re.sub(r"[_\-.]+", " ", stem).split()
    title = " ".join(words)[:300]
    return title[:1].upper() + title[1:] if title else "New product"


def product_images_upload(
    files: Sequence[tuple[str, bytes, str]],
    *,
    product: Product | None = None,
) -> list[UploadResult]:
    """Store each of ``files`` (name, bytes, declared content type) on ``product``, or, when
    ``product`` is None, each as a new inactive product (SKU and title from the file name, price 0;
    staff complete and activate it later). Every file commits alone: a refused file (the reason
    from :func:`catalog.image_checks.image_check_upload`) leaves neither a product nor a file, and
    never stops the others. Processing is queued when each file's transaction commits. A storage that
    cannot be written stops the upload with :class:`StorageUnavailable` (the files before it stay
    stored, the one that failed left nothing behind)."""
    from catalog.image_checks import ImageRejected

    results: list[UploadResult] = []
    for name, content, content_type in files:
        try:
            image_check_upload(content, name, content_type)  # refuse before creating a product for it
            with atomic_with_files():
                target = product
                if target is None:
                    target = Product.objects.create(
                        sku=product_sku_from_file_name(name),
                        title=product_title_from_file_name(name),
                        price=Decimal("0"),
                        currency=settings.SHOP_DEFAULT_CURRENCY,
                        is_active=False,
                    )
                    Variant.objects.create(product=target, size=Variant.ONE_SIZE, stock=0)
                image, created = product_image_add(target, content, source_name=name, content_type=content_type)
        except ImageRejected as exc:
            reason = str(exc)
            reason = reason[len(name) + 2 :] if reason.startswith(f"{name}: ") else reason  # name shown beside
            results.append(UploadResult(name=name, ok=False, error=reason))
            continue
        except OSError as exc:  # the file could not be written: its row was rolled back with it
            logger.error("upload of %s: the media storage cannot be written (%s)", name, exc)
            raise StorageUnavailable(f"the media storage cannot be written ({exc.strerror or exc})") from exc
        results.append(
            UploadResult(name=name, ok=True, image_id=image.pk, product_id=target.pk, sku=target.sku, created=created)
        )
    return results
