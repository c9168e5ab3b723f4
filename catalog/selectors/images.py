"""Reads of product images: processing state, what the sweep must send again, staff status rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db.models import (
    Case,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from catalog.models import (
    EmbeddingSpace,
    ImageVector,
    Product,
    ProductImage,
)


def image_get(image_id: int) -> ProductImage | None:
    return ProductImage.objects.select_related("product").filter(pk=image_id).first()


def images_with_status(*statuses: str) -> QuerySet[ProductImage]:
    return ProductImage.objects.filter(status__in=statuses).order_by("id")


def images_to_sweep(*, resend_after_s: int, lease_s: int) -> tuple[list[int], list[int]]:
    """(pending images never handed to the broker, or handed over longer ago than ``resend_after_s``;
    processing images whose claim is older than ``lease_s`` — their worker died)."""
    now = timezone.now()
    pending = ProductImage.objects.filter(status=ProductImage.Status.PENDING).filter(
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - timedelta(seconds=resend_after_s))
    )
    stuck = ProductImage.objects.filter(status=ProductImage.Status.PROCESSING).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=lease_s))
    )
    return (
        list(pending.order_by("id").values_list("id", flat=True)),
        list(stuck.order_by("id").values_list("id", flat=True)),
    )


def image_signatures(image_ids: Sequence[int]) -> dict[int, tuple[dict, str]]:
    """Near-duplicate signatures and file paths of these images (ready ones only), by id."""
    rows = ProductImage.objects.filter(pk__in=list(image_ids), status=ProductImage.Status.READY)
    return {
        pk: (signature, default_storage.path(name))
        for pk, signature, name in rows.values_list("id", "signature", "file")
    }


def images_for_reprocess(
    *,
    everything: bool = False,
    failed: bool = False,
    skus: Sequence[str] = (),
    missing_space: EmbeddingSpace | None = None,
) -> QuerySet[ProductImage]:
    """The images a ``reprocess`` run selects (criteria combine with OR)."""
    if everything:
        return ProductImage.objects.order_by("id")
    query = Q(pk__in=[])
    if failed:
        query |= Q(status=ProductImage.Status.FAILED)
    if skus:
        query |= Q(product__sku__in=list(skus))
    if missing_space is not None:
        has = ImageVector.objects.filter(image=OuterRef("pk"), space=missing_space, kind=ImageVector.Kind.CUTOUT)
        query |= ~Q(Exists(has))
    return ProductImage.objects.filter(query).order_by("id")


def image_status_counts(image_ids: Sequence[int], *, since: datetime | None = None) -> dict[str, int]:
    """How many of these images are in each status (finished ones only count when processed after
    ``since``)."""
    rows = ProductImage.objects.filter(pk__in=list(image_ids))
    counts: dict[str, int] = {}
    for status, processed_at in rows.values_list("status", "processed_at"):
        finished = status in (ProductImage.Status.READY, ProductImage.Status.FAILED)
        if finished and since is not None and (processed_at is None or processed_at < since):
            status = "stale"
        counts[status] = counts.get(status, 0) + 1
    return counts


def images_missing_space(space: EmbeddingSpace, limit: int = 200) -> list[int]:
    """Ready images without both vectors in ``space`` (what filling a new space still has to do)."""
    rows = ProductImage.objects.filter(status=ProductImage.Status.READY).exclude(
        Exists(ImageVector.objects.filter(image=OuterRef("pk"), space=space, kind="cutout"))
        & Exists(ImageVector.objects.filter(image=OuterRef("pk"), space=space, kind="full"))
    )
    return list(rows.order_by("id").values_list("id", flat=True)[:limit])


def images_made_by_other_parser(parser_version: str, limit: int = 200) -> list[int]:
    """Ready images whose cutout another parser made, the fallback's first (what a new parser redoes)."""
    rows = ProductImage.objects.filter(status=ProductImage.Status.READY).exclude(parser_version=parser_version)
    fallback_first = Q(parser_version__startswith="fallback:") | Q(parser_version="")
    order = Case(When(fallback_first, then=Value(0)), default=Value(1), output_field=IntegerField())
    return list(rows.order_by(order, "id").values_list("id", flat=True)[:limit])


def images_by_parser() -> dict[str, int]:
    rows = ProductImage.objects.filter(status=ProductImage.Status.READY).values_list("parser_version")
    return dict(Counter(v or "(unknown)" for (v,) in rows))


def products_with_ready_images_count() -> int:
    return Product.objects.filter(images__status=ProductImage.Status.READY).distinct().count()


def _file_url(field: FieldFile) -> str:
    return field.url if field else ""


def image_status_rows(*, image_ids: Sequence[int] = (), product_id: int | None = None) -> list[dict[str, object]]:
    """What the staff pages show of each image while it is processed: status, stage, reason,
    the original / cutout / mask URLs and the image it duplicates (with that image's product)."""
    rows = ProductImage.objects.select_related("product", "duplicate_of__product").order_by("product_id", "position")
    rows = rows.filter(product_id=product_id) if product_id is not None else rows.filter(pk__in=list(image_ids))
    out: list[dict[str, object]] = []
    for image in rows:
        duplicate = image.duplicate_of
        out.append(
            {
                "id": image.pk,
                "product_id": image.product_id,
                "sku": image.product.sku,
                "title": image.product.title,
                "source_name": image.source_name,
                "status": image.status,
                "stage": image.stage,
                "error": image.error,
                "file_url": _file_url(image.file),
                "cutout_url": _file_url(image.cutout),
                "mask_url": _file_url(image.mask),
                "seconds": round(sum(float(v) for v in (image.stage_timings or {}).values()), 2),
                "duplicate_of": None
                if duplicate is None
                else {
                    "image_id": duplicate.pk,
                    "product_id": duplicate.product_id,
                    "sku": duplicate.product.sku,
                    "title": duplicate.product.title,
                    "same_product": duplicate.product_id == image.product_id,
                },
            }
        )
    return out
