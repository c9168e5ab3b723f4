"""Reads of catalog data. Other apps read catalog data only through these functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

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


@dataclass(frozen=True)
class ProductFilters:
    """What a shopper narrows a search to. Empty fields do not filter."""

    category: str = ""  # a category path; its descendants are included
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    size: str = ""  # in stock in this size
    colour: str = ""
    pattern: str = ""
    in_stock: bool = False
    exclude_ids: tuple[int, ...] = ()

    def active(self) -> bool:
        return bool(
            self.category
            or self.price_min is not None
            or self.price_max is not None
            or self.size
            or self.colour
            or self.pattern
            or self.in_stock
            or self.exclude_ids
        )


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


def product_filter_sql(filters: ProductFilters | None, alias: str = "p") -> tuple[str, list[object]]:
    """A SQL condition on ``catalog_product`` (as ``alias``) for these filters, and its parameters."""
    clauses = [f"{alias}.is_active"]
    params: list[object] = []
    if filters is None:
        return clauses[0], params
    if filters.category:
        clauses.append(f"{alias}.category_id IN (SELECT id FROM catalog_category WHERE path = %s OR path LIKE %s)")
        params += [filters.category, _like_prefix(filters.category)]
    if filters.price_min is not None:
        clauses.append(f"{alias}.price >= %s")
        params.append(filters.price_min)
    if filters.price_max is not None:
        clauses.append(f"{alias}.price <= %s")
        params.append(filters.price_max)
    if filters.colour:
        clauses.append(f"lower({alias}.colour) = lower(%s)")
        params.append(filters.colour)
    if filters.pattern:
        clauses.append(f"lower({alias}.pattern) = lower(%s)")
        params.append(filters.pattern)
    if filters.size:
        clauses.append(
            f"EXISTS (SELECT 1 FROM catalog_variant v WHERE v.product_id = {alias}.id AND v.stock > 0 "
            "AND lower(v.size) = lower(%s))"
        )
        params.append(filters.size)
    elif filters.in_stock:
        clauses.append(f"EXISTS (SELECT 1 FROM catalog_variant v WHERE v.product_id = {alias}.id AND v.stock > 0)")
    if filters.exclude_ids:
        clauses.append(f"NOT ({alias}.id = ANY(%s))")
        params.append(list(filters.exclude_ids))
    return " AND ".join(clauses), params


def product_count_matching(filters: ProductFilters | None, using: str | None = None) -> int:
    where, params = product_filter_sql(filters)
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM catalog_product p WHERE {where}", params)
        return int(cursor.fetchone()[0])


def pgvector_version(using: str) -> tuple[int, ...]:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return tuple(int(x) for x in row[0].split(".")) if row else (0,)


# Filtered vector search: up to this many matching products an exact scan of just those is cheap
# and always complete; above it the HNSW index is asked for enough candidates that the filter
# still leaves k (pgvector >= 0.8 has iterative index scans for this, used when the server has them).
EXACT_SCAN_MAX = 20_000
EF_SEARCH_MAX = 1000


def vector_nearest(
    *,
    table: str,
    space: EmbeddingSpace,
    kind: str,
    query: Sequence[float],
    k: int = 10,
    ef_search: int = 100,
    using: str | None = None,
    filters: ProductFilters | None = None,
    matching: int | None = None,
) -> list[Neighbour]:
    """The ``k`` nearest owners (image ids or product ids) by cosine distance, through the
    (space, kind) partial HNSW index. Reads go to the search database (a replica when configured).
    ``filters`` (product table only) restrict the products; a selective filter switches to an exact
    scan of the matching products so that the index never starves the result of candidates.
    ``matching`` is how many products pass ``filters``, when the caller counted them already."""
    using = using or settings.SEARCH_DB_ALIAS
    if table not in VECTOR_TABLES:
        raise ValueError(f"table must be one of {sorted(VECTOR_TABLES)}")
    if len(query) != space.dim:
        raise ValueError(f"query has {len(query)} dimensions, space {space.name!r} holds {space.dim}")
    model, kinds = VECTOR_TABLES[table]
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}")
    if filters is not None and table != "product":
        raise ValueError("filters apply to the product table only")
    owner = "image_id" if table == "image" else "product_id"
    dim = int(space.dim)
    literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
    distance = f"(t.vector::vector({dim})) <=> %s::vector({dim})"
    join, condition, condition_params = "", "", []
    statements = [f"SET LOCAL hnsw.ef_search = {int(ef_search)}"]
    exact = False
    if filters is not None and filters.active():
        where, condition_params = product_filter_sql(filters)
        join, condition = "JOIN catalog_product p ON p.id = t.product_id", f" AND {where}"
        if matching is None:
            matching = product_count_matching(filters, using)
        if matching <= EXACT_SCAN_MAX:
            exact = True
        elif pgvector_version(using) >= (0, 8):
            statements.append("SET LOCAL hnsw.iterative_scan = relaxed_order")
        else:
            total = max(1, product_count_matching(None, using))
            wanted = int(k * total / max(1, matching) * 1.5)
            statements = [f"SET LOCAL hnsw.ef_search = {min(EF_SEARCH_MAX, max(ef_search, wanted))}"]
    # Exact: order by an expression the HNSW index cannot serve ("+ 0"), so the planner reaches the
    # few matching rows through the product filter and the (product, space, kind) index instead.
    order = f"({distance}) + 0" if exact else distance
    sql = (
        f"SELECT t.{owner}, {distance} AS distance FROM {model._meta.db_table} t {join} "
        f"WHERE t.space_id = %s AND t.kind = %s{condition} ORDER BY {order} LIMIT %s"
    )
    params = [literal, space.pk, kind, *condition_params, literal, int(k)]
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    hits = [Neighbour(owner_id=row[0], distance=float(row[1])) for row in rows]
    hits.sort(key=lambda n: (n.distance, n.owner_id))  # relaxed-order iterative scans are only nearly sorted
    return hits


@dataclass(frozen=True)
class ProductBrief:
    """What ranking and facets need of a product, in one query."""

    id: int
    sku: str
    title: str
    price: Decimal
    colour: str
    pattern: str
    design_group: str
    category_id: int | None
    category_path: str
    category_name: str
    sizes_in_stock: tuple[str, ...]

    @property
    def in_stock(self) -> bool:
        return bool(self.sizes_in_stock)

    @property
    def parent_path(self) -> str:
        return self.category_path.rsplit("/", 1)[0] if "/" in self.category_path else ""


def product_briefs(product_ids: Sequence[int], using: str | None = None) -> dict[int, ProductBrief]:
    sql = """
        SELECT p.id, p.sku, p.title, p.price, p.colour, p.pattern, p.design_group, p.category_id,
               coalesce(c.path, ''), coalesce(c.name, ''),
               coalesce(array_agg(v.size ORDER BY v.position, v.id) FILTER (WHERE v.stock > 0), '{}')
        FROM catalog_product p
        LEFT JOIN catalog_category c ON c.id = p.category_id
        LEFT JOIN catalog_variant v ON v.product_id = p.id
        WHERE p.id = ANY(%s) AND p.is_active
        GROUP BY p.id, c.path, c.name
    """
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [list(product_ids)])
        return {row[0]: ProductBrief(*row[:10], tuple(row[10])) for row in cursor.fetchall()}


def product_ids_in_design(design_group: str, using: str | None = None) -> list[int]:
    if not design_group:
        return []
    return list(
        Product.objects.using(using or settings.SEARCH_DB_ALIAS)
        .filter(design_group=design_group, is_active=True)
        .values_list("id", flat=True)
    )


def product_vectors(product_ids: Sequence[int], space: EmbeddingSpace, kind: str) -> dict[int, list[float]]:
    rows = ProductVector.objects.using(settings.SEARCH_DB_ALIAS).filter(
        product_id__in=list(product_ids), space=space, kind=kind
    )
    return {pid: [float(x) for x in vec] for pid, vec in rows.values_list("product_id", "vector")}


def keyword_lexicon(using: str | None = None) -> dict[str, int]:
    """Every word (English stem) of the active catalog's search documents with the number of products
    it appears in."""
    sql = "SELECT word, ndoc FROM ts_stat('SELECT search_document FROM catalog_product WHERE is_active')"
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql)
        return {word: int(n) for word, n in cursor.fetchall()}


def attribute_vocabulary(using: str | None = None) -> dict[str, dict[str, list[object]]]:
    """The catalog's colour and pattern values and leaf-category names, lower-cased, each with what
    to match in the table: the stored spellings (colour, pattern) or the category ids."""
    sql = """
        SELECT 'colour', lower(colour), colour FROM catalog_product WHERE is_active AND colour <> '' GROUP BY 2, 3
        UNION ALL
        SELECT 'pattern', lower(pattern), pattern FROM catalog_product WHERE is_active AND pattern <> '' GROUP BY 2, 3
        UNION ALL
        SELECT 'category', lower(name), id::text FROM catalog_category c
        WHERE NOT EXISTS (SELECT 1 FROM catalog_category k WHERE k.parent_id = c.id)
    """
    vocabulary: dict[str, dict[str, list[object]]] = {"colour": {}, "pattern": {}, "category": {}}
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql)
        for field_name, value, stored in cursor.fetchall():
            vocabulary[field_name].setdefault(value, []).append(int(stored) if field_name == "category" else stored)
    return vocabulary


def product_facet_counts(product_ids: Sequence[int], price_edges: Sequence[float]) -> dict[str, list[tuple[str, int]]]:
    """Facet counts over these products in one round trip: category path, colour, pattern, price band
    (the index of the band the price falls in, by ``price_edges``) and sizes in stock."""
    sql = """
        SELECT 'category', c.path, count(*) FROM catalog_product p JOIN catalog_category c ON c.id = p.category_id
            WHERE p.id = ANY(%(ids)s) GROUP BY c.path
        UNION ALL SELECT 'colour', p.colour, count(*) FROM catalog_product p
            WHERE p.id = ANY(%(ids)s) AND p.colour <> '' GROUP BY p.colour
        UNION ALL SELECT 'pattern', p.pattern, count(*) FROM catalog_product p
            WHERE p.id = ANY(%(ids)s) AND p.pattern <> '' GROUP BY p.pattern
        UNION ALL SELECT 'price', width_bucket(p.price, %(edges)s::numeric[])::text, count(*) FROM catalog_product p
            WHERE p.id = ANY(%(ids)s) GROUP BY 2
        UNION ALL SELECT 'size', v.size, count(DISTINCT v.product_id) FROM catalog_variant v
            WHERE v.product_id = ANY(%(ids)s) AND v.stock > 0 GROUP BY v.size
    """
    counts: dict[str, list[tuple[str, int]]] = {k: [] for k in ("category", "colour", "pattern", "size", "price")}
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, {"ids": list(product_ids), "edges": [float(e) for e in price_edges]})
        for facet, value, n in cursor.fetchall():
            counts[facet].append((value, int(n)))
    return counts
