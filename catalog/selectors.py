"""Reads of catalog data. Other apps read catalog data only through these functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connections, transaction
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import Category, EmbeddingSpace, ImageVector, Product, ProductImage, ProductVector, Variant
from catalog.services import VECTOR_TABLES


def product_list(*, active_only: bool = True) -> QuerySet[Product]:
    """Products with ``in_stock`` and ``total_stock`` annotations and images prefetched."""
    qs = (
        Product.objects.select_related("category")
        .annotate(
            in_stock=Exists(Variant.objects.filter(product=OuterRef("pk"), stock__gt=0)),
            total_stock=Coalesce(Sum("variants__stock"), 0),
        )
        .prefetch_related(Prefetch("images", queryset=ProductImage.objects.order_by("position", "id")))
    )
    if active_only:
        qs = qs.filter(is_active=True)
    return qs.order_by("sku")


def product_get(sku: str) -> Product | None:
    return product_list(active_only=False).filter(sku=sku).first()


def product_get_by_id(product_id: int) -> Product | None:
    return Product.objects.select_related("category").filter(pk=product_id).first()


def product_has_vector(product_id: int, space: EmbeddingSpace, kind: str) -> bool:
    return ProductVector.objects.filter(product_id=product_id, space=space, kind=kind).exists()


def product_skus_by_id() -> dict[int, str]:
    return dict(Product.objects.values_list("pk", "sku"))


def category_descendants(category: Category) -> QuerySet[Category]:
    """The category and everything below it (by materialised path)."""
    return Category.objects.filter(Q(path=category.path) | Q(path__startswith=f"{category.path}/"))


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


def products_without_vector(space: EmbeddingSpace, kind: str, limit: int = 1000) -> list[int]:
    """Active products that have no ``kind`` vector in ``space`` yet."""
    has = ProductVector.objects.filter(product=OuterRef("pk"), space=space, kind=kind)
    rows = Product.objects.filter(is_active=True).filter(~Exists(has)).order_by("id")
    return list(rows.values_list("id", flat=True)[:limit])


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


def product_garment_classes(product_ids: Sequence[int]) -> dict[int, str]:
    """The garment class the parser found largest in each product's ready photos (products whose
    photos show no garment are left out)."""
    areas: dict[int, dict[str, int]] = {}
    rows = ProductImage.objects.filter(product_id__in=list(product_ids), status=ProductImage.Status.READY)
    for product_id, garments in rows.values_list("product_id", "garments"):
        for garment in garments or []:
            label, area = garment.get("label"), int(garment.get("area") or 0)
            if label and area:
                per = areas.setdefault(product_id, {})
                per[label] = per.get(label, 0) + area
    return {pid: max(per, key=per.__getitem__) for pid, per in areas.items()}


def product_skus_existing(skus: Sequence[str]) -> list[str]:
    return list(Product.objects.filter(sku__in=list(skus)).values_list("sku", flat=True))


def embedding_space_get(name: str) -> EmbeddingSpace | None:
    return EmbeddingSpace.objects.filter(name=name).first()


def embedding_space_active(modality: str) -> EmbeddingSpace | None:
    return EmbeddingSpace.objects.filter(modality=modality, is_active=True).first()


@dataclass(frozen=True)
class Neighbour:
    owner_id: int
    distance: float


def vector_nearest(
    *,
    table: str,
    space: EmbeddingSpace,
    kind: str,
    query: Sequence[float],
    k: int = 10,
    ef_search: int = 100,
    using: str | None = None,
) -> list[Neighbour]:
    """The ``k`` nearest owners (image ids or product ids) by cosine distance, through the
    (space, kind) partial HNSW index. Reads go to the search database (a replica when configured)."""
    using = using or settings.SEARCH_DB_ALIAS
    if table not in VECTOR_TABLES:
        raise ValueError(f"table must be one of {sorted(VECTOR_TABLES)}")
    if len(query) != space.dim:
        raise ValueError(f"query has {len(query)} dimensions, space {space.name!r} holds {space.dim}")
    model, kinds = VECTOR_TABLES[table]
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}")
    owner = "image_id" if table == "image" else "product_id"
    dim = int(space.dim)
    sql = (
        f"SELECT {owner}, (vector::vector({dim})) <=> %s::vector({dim}) AS distance "
        f"FROM {model._meta.db_table} WHERE space_id = %s AND kind = %s "
        f"ORDER BY (vector::vector({dim})) <=> %s::vector({dim}) LIMIT %s"
    )
    literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        cursor.execute(sql, [literal, space.pk, kind, literal, int(k)])
        return [Neighbour(owner_id=row[0], distance=float(row[1])) for row in cursor.fetchall()]
