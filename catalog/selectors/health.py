"""Reads for the staff pages: catalog health, import jobs, style clusters."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.db.models import (
    Count,
    Exists,
    Max,
    OuterRef,
)

from catalog.models import (
    EmbeddingSpace,
    ImportJob,
    Product,
    ProductImage,
    ProductVector,
    Variant,
)


def import_job_get(job_id: int) -> ImportJob | None:
    return ImportJob.objects.filter(pk=job_id).first()


def import_jobs_recent(limit: int = 10) -> list[ImportJob]:
    return list(ImportJob.objects.order_by("-created_at", "-id")[:limit])


@dataclass
class CatalogHealth:
    products: int
    images: int
    status_counts: dict[str, int]
    failed_reasons: list[tuple[str, int]]  # reason, how many images
    failed_images: list[ProductImage]
    unfinished_images: list[ProductImage]  # pending or processing
    products_without_images: list[Product]
    duplicate_images: list[ProductImage]
    out_of_stock: list[Product]
    without_images_count: int
    duplicates_count: int
    out_of_stock_count: int


def catalog_health(*, list_limit: int = 50) -> CatalogHealth:
    """The numbers and lists of the staff catalog health page (lists cut at ``list_limit``)."""
    images = ProductImage.objects.select_related("product")
    status_counts = {status: 0 for status in ProductImage.Status.values}
    for row in ProductImage.objects.values("status").annotate(n=Count("id")):
        status_counts[row["status"]] = row["n"]
    failed = images.filter(status=ProductImage.Status.FAILED)
    reasons = [
        (row["error"] or "no reason recorded", row["n"])
        for row in failed.values("error").annotate(n=Count("id")).order_by("-n", "error")
    ]
    unfinished = images.filter(status__in=[ProductImage.Status.PENDING, ProductImage.Status.PROCESSING])
    no_images = Product.objects.filter(~Exists(ProductImage.objects.filter(product=OuterRef("pk"))))
    duplicates = images.select_related("duplicate_of__product").filter(duplicate_of__isnull=False)
    out_of_stock = Product.objects.filter(is_active=True).filter(
        ~Exists(Variant.objects.filter(product=OuterRef("pk"), stock__gt=0))
    )
    return CatalogHealth(
        products=Product.objects.count(),
        images=sum(status_counts.values()),
        status_counts=status_counts,
        failed_reasons=reasons,
        failed_images=list(failed.order_by("-updated_at")[:list_limit]),
        unfinished_images=list(unfinished.order_by("id")[:list_limit]),
        products_without_images=list(no_images.order_by("sku")[:list_limit]),
        duplicate_images=list(duplicates.order_by("product__sku", "id")[:list_limit]),
        out_of_stock=list(out_of_stock.order_by("sku")[:list_limit]),
        without_images_count=no_images.count(),
        duplicates_count=duplicates.count(),
        out_of_stock_count=out_of_stock.count(),
    )


def catalog_last_change() -> str:
    """A key that changes whenever products or their image vectors change (the newest write time
    and the row counts, so deletions count too)."""
    products = Product.objects.aggregate(n=Count("id"), at=Max("updated_at"))
    vectors = ProductVector.objects.filter(kind=ProductVector.Kind.IMAGE).aggregate(n=Count("id"), at=Max("updated_at"))
    stamp = max([t for t in (products["at"], vectors["at"]) if t is not None], default=None)
    return f"{stamp.isoformat() if stamp else 'empty'}:{products['n']}:{vectors['n']}"


def product_image_vectors(space: EmbeddingSpace) -> list[tuple[int, list[float]]]:
    """Every product's image vector in ``space`` as (product id, vector)."""
    rows = ProductVector.objects.filter(space=space, kind=ProductVector.Kind.IMAGE).values_list("product_id", "vector")
    return [(pid, vector) for pid, vector in rows]


def products_with_pictures(product_ids: list[int]) -> tuple[dict[int, Product], dict[int, str]]:
    """These products (active or not, with their category) and the URL of each one's first picture
    (its cutout when it has one)."""
    products = {p.pk: p for p in Product.objects.select_related("category").filter(pk__in=product_ids)}
    pictures: dict[int, str] = {}
    for image in ProductImage.objects.filter(product_id__in=product_ids).order_by("product_id", "position", "id"):
        if image.product_id not in pictures and (image.cutout or image.file):
            pictures[image.product_id] = (image.cutout or image.file).url
    return products, pictures


def catalog_version(using: str | None = None) -> str:
    """A name for the catalog as it is now, new with each committed transaction that changed what
    shoppers see (products, stock, photos, vectors, categories, spaces; the row ``catalog_change``,
    kept by triggers, a random UUID). Read from ``using`` (the search database by default, so a
    replica's answers go with the replica's version); one primary-key lookup."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT version FROM catalog_change WHERE id = 1")
        row = cursor.fetchone()
    return str(row[0]) if row else "none"
