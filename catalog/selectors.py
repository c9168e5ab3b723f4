"""Reads of catalog data. Other apps read catalog data only through these functions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.files.storage import default_storage
from django.db import connections, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import (
    Category,
    EmbeddingSpace,
    ImageVector,
    ImportJob,
    Product,
    ProductImage,
    ProductVector,
    Variant,
)
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


class RankFacts(NamedTuple):
    """What ranking reads of a product besides its signals (a tuple: a search builds hundreds)."""

    has_stock: bool
    title: str
    category_id: int | None


def product_rank_facts(product_ids: Sequence[int]) -> dict[int, RankFacts]:
    """Whether each product has stock, its title and its category, in one small query (a search
    reads them for the few hundred products its signals found)."""
    if not product_ids:
        return {}
    sql = "SELECT id, has_stock, title, category_id FROM catalog_product WHERE id = ANY(%s)"
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [list(product_ids)])
        return {pid: RankFacts(has_stock, title, category) for pid, has_stock, title, category in cursor.fetchall()}


def product_prices(product_ids: Sequence[int]) -> dict[int, Decimal]:
    return dict(Product.objects.filter(pk__in=list(product_ids)).values_list("pk", "price"))


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


@dataclass(frozen=True)
class SpaceCoverage:
    images: int  # ready images
    images_covered: int  # of those, with both vectors in the space
    products: int  # active products with a ready image
    products_covered: int  # of those, with an image and a text vector in the space

    @property
    def complete(self) -> bool:
        return self.images_covered >= self.images and self.products_covered >= self.products


def embedding_space_coverage(space: EmbeddingSpace) -> SpaceCoverage:
    ready = ProductImage.objects.filter(status=ProductImage.Status.READY)
    both = ready.filter(
        Exists(ImageVector.objects.filter(image=OuterRef("pk"), space=space, kind="cutout")),
        Exists(ImageVector.objects.filter(image=OuterRef("pk"), space=space, kind="full")),
    )
    products = Product.objects.filter(is_active=True).filter(
        Exists(ProductImage.objects.filter(product=OuterRef("pk"), status=ProductImage.Status.READY))
    )
    covered = products.filter(
        Exists(ProductVector.objects.filter(product=OuterRef("pk"), space=space, kind="image")),
        Exists(ProductVector.objects.filter(product=OuterRef("pk"), space=space, kind="text")),
    )
    return SpaceCoverage(ready.count(), both.count(), products.count(), covered.count())


def embedding_space_indexes_valid(space: EmbeddingSpace) -> bool:
    """Whether every HNSW index of the space exists and is valid (a failed concurrent build leaves an
    invalid one behind)."""
    from catalog.services import hnsw_index_name

    names = [hnsw_index_name(table, space, kind) for table, (_, kinds) in VECTOR_TABLES.items() for kind in kinds]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s) AND i.indisvalid AND i.indisready",
            [names],
        )
        return len(cursor.fetchall()) == len(names)


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
    # values of the products' department attribute (settings.SEARCH_DEPARTMENT_ATTRIBUTE), any of them
    department: tuple[str, ...] = ()

    def active(self) -> bool:
        return bool(
            self.department
            or self.category
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


def category_ids_under(path: str, using: str | None = None) -> list[int]:
    """The ids of the category at ``path`` and of all its descendants (empty when there is none)."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT id FROM catalog_category WHERE path = %s OR path LIKE %s", [path, _like_prefix(path)])
        return [row[0] for row in cursor.fetchall()]


def product_filter_sql(filters: ProductFilters | None, alias: str = "p") -> tuple[str, list[object]]:
    """A SQL condition on ``catalog_product`` (as ``alias``) for these filters, and its parameters."""
    clauses = [f"{alias}.is_active"]
    params: list[object] = []
    if filters is None:
        return clauses[0], params
    if filters.category:
        # the category and its descendants as literal ids, so that the planner sees how few rows they
        # hold (a sub-select hides that and gets a scan of the whole product table)
        clauses.append(f"{alias}.category_id = ANY(%s)")
        params.append(category_ids_under(filters.category))
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
        clauses.append(f"{alias}.has_stock")  # kept by a trigger on the variants (migration 0008)
    if filters.exclude_ids:
        clauses.append(f"NOT ({alias}.id = ANY(%s))")
        params.append(list(filters.exclude_ids))
    if filters.department:
        clauses.append(f"{alias}.attributes ->> %s = ANY(%s)")
        params.extend([settings.SEARCH_DEPARTMENT_ATTRIBUTE, list(filters.department)])
    return " AND ".join(clauses), params


@dataclass(frozen=True)
class FilterMatch:
    """How many products pass a filter, and which, when they are few enough for an exact scan."""

    count: int  # exact when ``ids`` is given; else EXACT_SCAN_MAX + 1, "more than EXACT_SCAN_MAX"
    ids: tuple[int, ...] | None  # None: more than EXACT_SCAN_MAX match (the index path serves them)


def product_filter_match(filters: ProductFilters, using: str | None = None) -> FilterMatch:
    """The products passing ``filters``, read once per search: their ids when at most EXACT_SCAN_MAX
    match (every vector signal then scans just those rows, without filtering the product table
    again), else only their count."""
    using = using or settings.SEARCH_DB_ALIAS
    where, params = product_filter_sql(filters)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT p.id FROM catalog_product p WHERE {where} LIMIT %s", [*params, EXACT_SCAN_MAX + 1])
        ids = tuple(row[0] for row in cursor.fetchall())
    # Counting every match of a broad filter took 90 ms at 1,000,000 products (bench.search) and
    # nothing needs the number: the index path serves any count above EXACT_SCAN_MAX the same way.
    return FilterMatch(count=len(ids), ids=ids if len(ids) <= EXACT_SCAN_MAX else None)


def product_ids_in_categories(
    category_ids: Sequence[int], filters: ProductFilters | None = None, limit: int = 200
) -> list[tuple[int, int]]:
    """(product id, category id) of up to ``limit`` active products of *each* of these categories that
    pass ``filters`` (whichever the category's index finds first: no ordering, which would make the
    planner walk the whole table for a selective filter). Categories outside the filter's category are not looked in (a
    look for the first products of a category the filter excludes would walk the whole table)."""
    if filters is not None and filters.category:
        allowed = set(category_ids_under(filters.category))
        category_ids = [c for c in category_ids if c in allowed]
    if not category_ids:
        return []
    where, params = product_filter_sql(filters)
    sql = f"""
        SELECT found.id, found.category_id FROM unnest(%s::bigint[]) AS wanted(id)
        CROSS JOIN LATERAL (
            SELECT p.id, p.category_id FROM catalog_product p
            WHERE p.category_id = wanted.id AND {where} LIMIT %s
        ) found
    """
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [list(category_ids), *params, limit])
        return [(pid, cid) for pid, cid in cursor.fetchall()]


# Filtered vector search: up to this many matching products an exact scan of just those is cheap
# and always complete; above it the HNSW index is walked with pgvector's iterative scan, which goes on
# past ef_search candidates until the filter has left k (or max_scan_tuples were visited).
EXACT_SCAN_MAX = 20_000


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
    matching: FilterMatch | None = None,
) -> list[Neighbour]:
    """The ``k`` nearest owners (image ids or product ids) by cosine distance, through the
    (space, kind) partial HNSW index. Reads go to the search database (a replica when configured).
    ``filters`` (product table only) restrict the products; a selective filter switches to an exact
    scan of the matching products so that the index never starves the result of candidates.
    ``matching`` is what ``product_filter_match(filters)`` returned, when the caller read it already."""
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
    distance = f"(t.vector::vector({dim})) <=> %s::vector({dim})"  # full precision, for what is returned
    indexed = f"(t.vector::halfvec({dim})) <=> %s::halfvec({dim})"  # the HNSW index's order
    join, condition, condition_params = "", "", []
    statements = [f"SET LOCAL hnsw.ef_search = {int(ef_search)}"]
    exact = False
    if filters is not None and filters.active():
        if matching is None:
            matching = product_filter_match(filters, using)
        if matching.ids is not None:
            # Few enough: score exactly the matching products' rows, found through the
            # (product, space, kind) index; the product table is not read again.
            exact = True
            condition, condition_params = " AND t.product_id = ANY(%s)", [list(matching.ids)]
        else:
            where, condition_params = product_filter_sql(filters)
            join, condition = "JOIN catalog_product p ON p.id = t.product_id", f" AND {where}"
            statements.append("SET LOCAL hnsw.iterative_scan = relaxed_order")
    # Exact: order by an expression the HNSW index cannot serve ("+ 0"), so the planner reaches the
    # few matching rows through the (product, space, kind) index instead.
    order = f"({distance}) + 0" if exact else indexed
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


def product_vectors_nearest_exact(
    *,
    space: EmbeddingSpace,
    kinds: Sequence[str],
    query: Sequence[float],
    product_ids: Sequence[int],
    k: int,
    using: str | None = None,
) -> dict[str, list[Neighbour]]:
    """For each of ``kinds``, the ``k`` products among ``product_ids`` nearest to ``query`` (exact).
    Every product's vector rows of all those kinds are read in one pass (the rows of one product
    lie together), which halves the work of scanning the kinds one after the other."""
    using = using or settings.SEARCH_DB_ALIAS
    _, allowed = VECTOR_TABLES["product"]
    if not kinds or set(kinds) - set(allowed):
        raise ValueError(f"kinds must be some of {allowed}")
    if len(query) != space.dim:
        raise ValueError(f"query has {len(query)} dimensions, space {space.name!r} holds {space.dim}")
    found: dict[str, list[Neighbour]] = {kind: [] for kind in kinds}
    if not product_ids or k <= 0:
        return found
    dim = int(space.dim)
    literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
    sql = f"""
        SELECT kind, product_id, distance FROM (
            SELECT kind, product_id, distance,
                   row_number() OVER (PARTITION BY kind ORDER BY distance, product_id) AS rank
            FROM (
                SELECT t.kind, t.product_id, (t.vector::vector({dim})) <=> %s::vector({dim}) AS distance
                FROM catalog_productvector t
                WHERE t.space_id = %s AND t.kind = ANY(%s) AND t.product_id = ANY(%s)
            ) scored
        ) ranked
        WHERE rank <= %s
        ORDER BY kind, rank
    """
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [literal, space.pk, list(kinds), list(product_ids), int(k)])
        for kind, product_id, distance in cursor.fetchall():
            found[kind].append(Neighbour(owner_id=product_id, distance=float(distance)))
    return found


def product_vectors_changed_since(
    space: EmbeddingSpace, since: datetime | None, using: str | None = None
) -> tuple[list[int], list[str], np.ndarray, datetime | None]:
    """The product vectors of ``space`` written after ``since`` (all when None): product ids, kinds,
    an (n, dim) float32 matrix, and the newest ``updated_at`` among them (``since`` when none
    changed). Vectors travel in pgvector's binary form (``vector_send``), which is fast to read."""
    sql = (
        f"SELECT product_id, kind, vector_send(vector::vector({int(space.dim)})), updated_at "
        "FROM catalog_productvector WHERE space_id = %s"
    )
    params: list[object] = [space.pk]
    if since is not None:
        sql += " AND updated_at > %s"
        params.append(since)
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return [], [], np.zeros((0, int(space.dim)), np.float32), since
    # binary vector: int16 dimension, int16 unused, then big-endian float32 values
    matrix = np.stack([np.frombuffer(row[2], dtype=">f4", offset=4) for row in rows]).astype(np.float32)
    return [int(r[0]) for r in rows], [str(r[1]) for r in rows], matrix, max(r[3] for r in rows)


def product_vector_count(space: EmbeddingSpace, using: str | None = None) -> int:
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM catalog_productvector WHERE space_id = %s", [space.pk])
        return int(cursor.fetchone()[0])


def product_vectors_newest_change(space: EmbeddingSpace, using: str | None = None) -> datetime | None:
    """When the newest product vector of ``space`` was written (an index lookup)."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT max(updated_at) FROM catalog_productvector WHERE space_id = %s", [space.pk])
        return cursor.fetchone()[0]


@dataclass(frozen=True)
class ProductFactRows:
    """What the filters and the attribute signal read of products, column by column (ids ascending)."""

    ids: np.ndarray  # int64
    category_ids: np.ndarray  # int64, -1 for none
    colours: list[str]
    patterns: list[str]
    prices: np.ndarray  # float64
    has_stock: np.ndarray  # bool
    is_active: np.ndarray  # bool
    newest: datetime | None  # the newest updated_at among them (``since`` when none changed)
    titles: list[str] = field(default_factory=list)  # what ranking reads to tell a product named by the query


def product_facts_changed_since(since: datetime | None, using: str | None = None) -> ProductFactRows:
    """The filterable facts of every product written after ``since`` (all when None)."""
    sql = "SELECT id, category_id, colour, pattern, price, has_stock, is_active, updated_at, title FROM catalog_product"
    params: list[object] = []
    if since is not None:
        sql += " WHERE updated_at > %s"
        params.append(since)
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql + " ORDER BY id", params)
        rows = cursor.fetchall()
    return ProductFactRows(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        category_ids=np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
        colours=[r[2] for r in rows],
        patterns=[r[3] for r in rows],
        prices=np.array([float(r[4]) for r in rows], dtype=np.float64),
        has_stock=np.array([bool(r[5]) for r in rows], dtype=bool),
        is_active=np.array([bool(r[6]) for r in rows], dtype=bool),
        newest=max((r[7] for r in rows), default=since),
        titles=[r[8] for r in rows],
    )


def product_facts_newest_change(using: str | None = None) -> datetime | None:
    """When the newest product row was written (an index lookup)."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT max(updated_at) FROM catalog_product")
        return cursor.fetchone()[0]


def product_ids_passing(
    product_ids: Sequence[int], filters: ProductFilters | None, using: str | None = None
) -> set[int]:
    """Which of these products pass ``filters`` now (one indexed look-up of at most a page or two)."""
    if not product_ids:
        return set()
    where, params = product_filter_sql(filters)
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        sql = f"SELECT p.id FROM catalog_product p WHERE p.id = ANY(%s) AND {where}"
        cursor.execute(sql, [list(product_ids), *params])
        return {row[0] for row in cursor.fetchall()}


def product_ids_passing_with_sizes(
    product_ids: Sequence[int], filters: ProductFilters | None, using: str | None = None
) -> tuple[set[int], list[tuple[str, int]]]:
    """Which of these products pass ``filters`` now, and among those, per size in stock, how many
    products have it — in one round trip."""
    if not product_ids:
        return set(), []
    where, params = product_filter_sql(filters)
    sql = f"""
        WITH passing AS (SELECT p.id FROM catalog_product p WHERE p.id = ANY(%s) AND {where})
        SELECT NULL, id, 0 FROM passing
        UNION ALL
        SELECT v.size, NULL, count(DISTINCT v.product_id) FROM catalog_variant v
        WHERE v.product_id IN (SELECT id FROM passing) AND v.stock > 0 GROUP BY v.size
    """
    passing: set[int] = set()
    sizes: list[tuple[str, int]] = []
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [list(product_ids), *params])
        for size, product_id, n in cursor.fetchall():
            if size is None:
                passing.add(int(product_id))
            else:
                sizes.append((size, int(n)))
    return passing, sizes


def category_paths(category_ids: Sequence[int], using: str | None = None) -> dict[int, str]:
    if not category_ids:
        return {}
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT id, path FROM catalog_category WHERE id = ANY(%s)", [list(category_ids)])
        return {int(i): str(path) for i, path in cursor.fetchall()}


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


def keyword_surface_words(using: str | None = None) -> set[str]:
    """The words of the active catalog's titles, descriptions, colours, patterns and category names,
    lower-cased as written (not stemmed): what a typo may be corrected to."""
    sql = """
        SELECT word FROM ts_stat($$
            SELECT to_tsvector('simple', concat_ws(' ', p.title, p.description, p.colour, p.pattern, c.name))
            FROM catalog_product p LEFT JOIN catalog_category c ON c.id = p.category_id WHERE p.is_active
        $$)
    """
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql)
        return {word for (word,) in cursor.fetchall()}


def product_price_quantile(share: float, using: str | None = None) -> Decimal | None:
    """The price below which ``share`` of the active products lie (None for an empty catalog)."""
    sql = "SELECT percentile_disc(%s) WITHIN GROUP (ORDER BY price) FROM catalog_product WHERE is_active"
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [share])
        return cursor.fetchone()[0]


def variant_sizes(using: str | None = None) -> list[str]:
    """Every size the active products' variants come in."""
    sql = """SELECT DISTINCT v.size FROM catalog_variant v JOIN catalog_product p ON p.id = v.product_id
             WHERE p.is_active"""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql)
        return [size for (size,) in cursor.fetchall()]


def attribute_values(key: str, using: str | None = None) -> list[str]:
    """The distinct values of one key of the active products' ``attributes``."""
    sql = """SELECT DISTINCT attributes ->> %s FROM catalog_product
             WHERE is_active AND attributes ? %s AND attributes ->> %s <> ''"""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [key, key, key])
        return [value for (value,) in cursor.fetchall()]


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


PREDICTED_ATTRIBUTES = ("category", "colour", "pattern")


def predicted_vocabulary(using: str | None = None) -> dict[str, set[str]]:
    """The values the attribute heads have given the active catalog's ready images, per attribute
    (as stored: the heads' own vocabulary)."""
    sql = """
        SELECT DISTINCT kv.key, kv.value ->> 'value'
        FROM catalog_productimage i
        JOIN catalog_product p ON p.id = i.product_id AND p.is_active
        CROSS JOIN LATERAL jsonb_each(i.predicted) kv
        WHERE i.status = 'ready' AND kv.key = ANY(%s)
    """
    vocabulary: dict[str, set[str]] = {name: set() for name in PREDICTED_ATTRIBUTES}
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [list(PREDICTED_ATTRIBUTES)])
        for name, value in cursor.fetchall():
            if value:
                vocabulary[name].add(value)
    return vocabulary


def products_by_predicted(
    wanted: dict[str, Sequence[str]], filters: ProductFilters | None, limit: int, using: str | None = None
) -> list[tuple[int, int, float]]:
    """Products whose ready images were predicted to show the wanted attribute values: (product id,
    how many of the attributes match, summed confidence of the matches), best first. The image
    that matches best speaks for its product."""
    names = [name for name in PREDICTED_ATTRIBUTES if wanted.get(name)]
    if not names:
        return []
    matches = [f"(i.predicted -> '{name}' ->> 'value') = ANY(%s)" for name in names]
    confidence = " + ".join(
        f"CASE WHEN {m} THEN coalesce((i.predicted -> '{n}' ->> 'confidence')::float, 0) ELSE 0 END"
        for m, n in zip(matches, names, strict=True)
    )
    values = [list(wanted[name]) for name in names]
    where, params = product_filter_sql(filters)
    sql = f"""
        SELECT i.product_id, max({" + ".join(f"({m})::int" for m in matches)}) AS matched, max({confidence}) AS score
        FROM catalog_productimage i JOIN catalog_product p ON p.id = i.product_id
        WHERE i.status = 'ready' AND {where} AND ({" OR ".join(matches)})
        GROUP BY i.product_id
        ORDER BY matched DESC, score DESC, i.product_id
        LIMIT %s
    """
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [*values, *values, *params, *values, limit])
        return [(int(pid), int(matched), float(score)) for pid, matched, score in cursor.fetchall()]


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


# --- staff pages (issue 6) ---------------------------------------------------------------------


def _file_url(field: object) -> str:
    return field.url if field else ""  # type: ignore[attr-defined]


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


@dataclass
class StyleCluster:
    number: int
    size: int
    label: str  # the commonest category and colour among its products
    products: list[dict[str, object]]  # nearest the centre first: id, sku, title, picture URL, distance


@dataclass
class StyleClusters:
    clusters: list[StyleCluster]
    products: int  # products with an image vector that were clustered
    space: str
    key: str  # the catalog's last-change key the result was computed (and cached) for
    cached: bool
    seconds: float


def _kmeans(matrix: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (cosine) with k-means++ seeding; deterministic for a given seed.
    Returns (labels, unit-length centres)."""
    rng = np.random.default_rng(seed)
    n = matrix.shape[0]
    centres = [matrix[int(rng.integers(n))]]
    for _ in range(1, k):
        sims = np.max(matrix @ np.stack(centres).T, axis=1)
        weights = np.clip(1.0 - sims, 0.0, None) ** 2
        total = float(weights.sum())
        pick = int(rng.choice(n, p=weights / total)) if total > 1e-12 else int(rng.integers(n))
        centres.append(matrix[pick])
    centre_matrix = np.stack(centres)
    labels = np.full(n, -1)
    for _ in range(iterations):
        new_labels = np.argmax(matrix @ centre_matrix.T, axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(k):
            members = matrix[labels == c]
            if len(members):
                mean = members.mean(axis=0)
                centre_matrix[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return labels, centre_matrix


def catalog_style_clusters(*, k: int | None = None, per_cluster: int = 6) -> StyleClusters:
    """Style clusters of the catalog: k-means over the products' image vectors (active image
    space), each with the products nearest its centre. Cached (Django cache) under the catalog's
    last-change key, so k-means runs once per catalog change, never on every page view."""
    import time

    from django.core.cache import cache

    space = embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
    key = catalog_last_change()
    if space is None:
        return StyleClusters([], 0, "", key, False, 0.0)
    cache_key = f"staff:style-clusters:{space.pk}:{k}:{per_cluster}:{key}"
    found = cache.get(cache_key)
    if found is not None:
        found.cached = True
        return found
    started = time.monotonic()
    rows = list(
        ProductVector.objects.filter(space=space, kind=ProductVector.Kind.IMAGE).values_list("product_id", "vector")
    )
    if not rows:
        return StyleClusters([], 0, space.name, key, False, 0.0)
    ids = [pid for pid, _ in rows]
    matrix = np.asarray([np.asarray(v, dtype=np.float32) for _, v in rows])
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    n_clusters = min(len(ids), k or max(2, min(12, round(math.sqrt(len(ids) / 2)))))
    labels, centres = _kmeans(matrix, n_clusters)
    products = {p.pk: p for p in Product.objects.select_related("category").filter(pk__in=ids)}
    pictures: dict[int, str] = {}
    for image in ProductImage.objects.filter(product_id__in=ids).order_by("product_id", "position", "id"):
        if image.product_id not in pictures and (image.cutout or image.file):
            pictures[image.product_id] = (image.cutout or image.file).url
    clusters: list[StyleCluster] = []
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        if not len(members):
            continue
        distance = 1.0 - matrix[members] @ centres[c]
        order = members[np.argsort(distance, kind="stable")]
        categories = Counter(str(products[ids[i]].category or "") for i in members if products[ids[i]].category)
        colours = Counter(products[ids[i]].colour for i in members if products[ids[i]].colour)
        label = " · ".join(x for x in (_commonest(categories), _commonest(colours)) if x) or "mixed"
        clusters.append(
            StyleCluster(
                number=0,
                size=len(members),
                label=label,
                products=[
                    {
                        "id": ids[i],
                        "sku": products[ids[i]].sku,
                        "title": products[ids[i]].title,
                        "picture": pictures.get(ids[i], ""),
                        "distance": round(float(1.0 - matrix[i] @ centres[c]), 3),
                    }
                    for i in order[:per_cluster]
                ],
            )
        )
    clusters.sort(key=lambda cl: -cl.size)
    for number, cluster in enumerate(clusters, start=1):
        cluster.number = number
    result = StyleClusters(clusters, len(ids), space.name, key, False, round(time.monotonic() - started, 3))
    cache.set(cache_key, result, timeout=24 * 3600)
    return result


def _commonest(counter: Counter[str]) -> str:
    if not counter:
        return ""
    value, n = counter.most_common(1)[0]
    return f"{value} ({n})"


# --- REST API v1 (issue 7) ---------------------------------------------------------------------


def category_list() -> list[Category]:
    """Every category (tree order by path), each with ``product_count``: active products filed in it
    or below it."""
    categories = list(Category.objects.order_by("path", "id"))
    direct = dict(
        Product.objects.filter(is_active=True, category__isnull=False)
        .values_list("category__path")
        .annotate(n=Count("id"))
        .values_list("category__path", "n")
    )
    for category in categories:
        prefix = f"{category.path}/"
        category.product_count = sum(  # type: ignore[attr-defined]
            n for path, n in direct.items() if path == category.path or path.startswith(prefix)
        )
    return categories


PRODUCT_ORDERINGS: dict[str, str] = {
    "sku": "p.sku, p.id",
    "price": "p.price, p.id",
    "-price": "p.price DESC, p.id",
    "newest": "p.created_at DESC, p.id DESC",
    "title": "lower(p.title), p.id",
}


def product_ids_matching(
    filters: ProductFilters | None, *, ordering: str = "sku", using: str | None = None
) -> list[int]:
    """Ids of the active products passing ``filters`` in a stable order (``PRODUCT_ORDERINGS``; ties
    broken by id), for paging and facets."""
    if ordering not in PRODUCT_ORDERINGS:
        raise ValueError(f"ordering must be one of {sorted(PRODUCT_ORDERINGS)}")
    where, params = product_filter_sql(filters)
    sql = f"SELECT p.id FROM catalog_product p WHERE {where} ORDER BY {PRODUCT_ORDERINGS[ordering]}"
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# What a product summary shows (a result card, the API's summaries), read in one query: the summary
# fields, the sizes in stock and the first photo's file and cutout as columns of the product's row.
# Loading the rows of every variant and image instead (and decoding their JSON) took more than half of
# an API search's CPU (bench/request_profile.py).
SUMMARY_PRODUCT_FIELDS = ("id", "sku", "title", "price", "currency", "colour", "pattern", "brand", "category")


def products_by_ids(product_ids: Sequence[int], *, active_only: bool = True) -> list[Product]:
    """These products in the given order (missing or, with ``active_only``, inactive ones left
    out), as summaries: the summary fields and category, ``in_stock`` / ``total_stock``,
    ``summary_sizes_in_stock`` (by position) and ``summary_file`` / ``summary_cutout`` (the first
    photo's file names, "" without one) annotated."""
    first_image = ProductImage.objects.filter(product=OuterRef("pk")).order_by("position", "id")
    rows = (
        Product.objects.select_related("category")
        .only(*SUMMARY_PRODUCT_FIELDS, *(f"category__{f}" for f in ("id", "name", "path", "full_name")))
        .annotate(
            in_stock=Exists(Variant.objects.filter(product=OuterRef("pk"), stock__gt=0)),
            total_stock=Coalesce(Sum("variants__stock"), 0),
            summary_sizes_in_stock=ArrayAgg(
                "variants__size", filter=Q(variants__stock__gt=0), order_by=("variants__position", "variants__id")
            ),
            summary_file=Coalesce(Subquery(first_image.values("file")[:1]), Value(""), output_field=CharField()),
            summary_cutout=Coalesce(Subquery(first_image.values("cutout")[:1]), Value(""), output_field=CharField()),
        )
        .filter(pk__in=list(product_ids))
    )
    if active_only:
        rows = rows.filter(is_active=True)
    by_id = {p.pk: p for p in rows}
    return [by_id[pid] for pid in product_ids if pid in by_id]


def product_get_detailed(sku: str) -> Product | None:
    """The product with this SKU (active or not) with category, variants and images loaded."""
    return product_list(active_only=False).filter(sku=sku).prefetch_related("variants").first()


# --- storefront (issue 6) ----------------------------------------------------------------------


def category_get_by_path(path: str) -> Category | None:
    return Category.objects.filter(path=path.strip("/")).first()


def category_list_top() -> list[Category]:
    """The root categories, by name."""
    return list(Category.objects.filter(parent__isnull=True).order_by("name"))


def category_children(category: Category) -> list[Category]:
    return list(Category.objects.filter(parent=category).order_by("name"))


def category_ancestors(category: Category) -> list[Category]:
    """The category's ancestors from the root down, without the category itself."""
    parts = category.path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return list(Category.objects.filter(path__in=prefixes).order_by("depth"))


def category_names_by_path(paths: Sequence[str]) -> dict[str, str]:
    return dict(Category.objects.filter(path__in=list(paths)).values_list("path", "full_name"))


def product_list_in_category(category: Category) -> QuerySet[Product]:
    """Active products of the category and everything below it (``product_list`` annotations)."""
    return product_list().filter(category__in=category_descendants(category))


def product_list_by_ids(product_ids: Sequence[int]) -> list[Product]:
    """Active products (``product_list`` annotations) in the order of ``product_ids``."""
    found = {p.pk: p for p in product_list().filter(pk__in=list(product_ids))}
    return [found[pid] for pid in product_ids if pid in found]


def product_variants(product_id: int) -> list[Variant]:
    return list(Variant.objects.filter(product_id=product_id).order_by("position", "id"))
