"""Reads of embedding spaces and vectors: nearest neighbours (HNSW or exact), coverage, changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connections, transaction
from django.db.models import (
    Exists,
    OuterRef,
)

from catalog.models import (
    VECTOR_TABLES,
    EmbeddingSpace,
    ImageVector,
    Product,
    ProductImage,
    ProductVector,
    hnsw_index_name,
)
from catalog.selectors.search import (
    FilterMatch,
    ProductFilters,
    SqlParam,
    product_filter_match,
    product_filter_sql,
)


def product_ids_with_vector(product_ids: Sequence[int], space: EmbeddingSpace, kind: str) -> set[int]:
    """Which of these products have a ``kind`` vector in ``space`` (one query)."""
    rows = ProductVector.objects.filter(product_id__in=list(product_ids), space=space, kind=kind)
    return set(rows.values_list("product_id", flat=True))


def products_without_vector(space: EmbeddingSpace, kind: str, limit: int = 1000) -> list[int]:
    """Active products that have no ``kind`` vector in ``space`` yet."""
    has = ProductVector.objects.filter(product=OuterRef("pk"), space=space, kind=kind)
    rows = Product.objects.filter(is_active=True).filter(~Exists(has)).order_by("id")
    return list(rows.values_list("id", flat=True)[:limit])


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

    names = [hnsw_index_name(table, space, kind) for table, (_, kinds) in VECTOR_TABLES.items() for kind in kinds]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s) AND i.indisvalid AND i.indisready",
            [names],
        )
        return len(cursor.fetchall()) == len(names)


def embedding_space_active(modality: str) -> EmbeddingSpace | None:
    return EmbeddingSpace.objects.filter(modality=modality, is_active=True).first()


@dataclass(frozen=True)
class Neighbour:
    owner_id: int
    distance: float


@dataclass(frozen=True)
class CategoryGate:
    """Products in one of the ``allowed`` categories, or in none of the ``judged`` ones (a category the
    caller cannot judge, or no category): what a garment of a shopper's photo may be matched with."""

    allowed: tuple[int, ...]
    judged: tuple[int, ...]


def vector_nearest(
    *,
    table: str,
    space: EmbeddingSpace,
    kind: str,
    query: Sequence[float] | np.ndarray,
    k: int = 10,
    ef_search: int = 100,
    using: str | None = None,
    filters: ProductFilters | None = None,
    matching: FilterMatch | None = None,
    categories: CategoryGate | None = None,
    max_scan_tuples: int | None = None,
) -> list[Neighbour]:
    """The ``k`` nearest owners (image ids or product ids) by cosine distance, through the
    (space, kind) partial HNSW index. Reads go to the search database (a replica when configured).
    ``filters`` (product table only) restrict the products; a selective filter switches to an exact
    scan of the matching products so that the index never starves the result of candidates.
    ``matching`` is what ``product_filter_match(filters)`` returned, when the caller read it already.
    ``categories`` (product table only) keeps the products it lets through, tested as the index scan
    goes on; ``max_scan_tuples`` bounds how many rows a filtered index scan reads (pgvector's
    ``hnsw.max_scan_tuples``, 20,000 unless given), so a rare kind of product may come back short."""
    using = using or settings.SEARCH_DB_ALIAS
    if table not in VECTOR_TABLES:
        raise ValueError(f"table must be one of {sorted(VECTOR_TABLES)}")
    if len(query) != space.dim:
        raise ValueError(f"query has {len(query)} dimensions, space {space.name!r} holds {space.dim}")
    model, kinds = VECTOR_TABLES[table]
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}")
    if (filters is not None or categories is not None) and table != "product":
        raise ValueError("filters and categories apply to the product table only")
    owner = "image_id" if table == "image" else "product_id"
    dim = int(space.dim)
    literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
    distance = f"(t.vector::vector({dim})) <=> %s::vector({dim})"  # full precision, for what is returned
    indexed = f"(t.vector::halfvec({dim})) <=> %s::halfvec({dim})"  # the HNSW index's order
    join, condition = "", ""
    condition_params: list[SqlParam] = []
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
    if categories is not None:
        join = "JOIN catalog_product p ON p.id = t.product_id"
        condition += " AND (p.category_id IS NULL OR p.category_id = ANY(%s) OR NOT (p.category_id = ANY(%s)))"
        condition_params = [*condition_params, list(categories.allowed), list(categories.judged)]
    if join and not exact:  # the scan goes on past ef_search candidates until enough rows pass
        statements.append("SET LOCAL hnsw.iterative_scan = relaxed_order")
        if max_scan_tuples:
            statements.append(f"SET LOCAL hnsw.max_scan_tuples = {int(max_scan_tuples)}")
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
    params: list[SqlParam] = [space.pk]
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


def product_vector_rows_estimate(using: str | None = None) -> int:
    """The planner's estimate of the product vector table's rows (every space; no scan)."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'catalog_productvector'::regclass")
        row = cursor.fetchone()
    return max(0, int(row[0])) if row else 0


def product_vectors_newest_change(space: EmbeddingSpace, using: str | None = None) -> datetime | None:
    """When the newest product vector of ``space`` was written (an index lookup)."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT max(updated_at) FROM catalog_productvector WHERE space_id = %s", [space.pk])
        return cursor.fetchone()[0]


def product_vectors(product_ids: Sequence[int], space: EmbeddingSpace, kind: str) -> dict[int, np.ndarray]:
    """These products' vectors of ``kind`` in ``space`` (float32 arrays), by product id."""
    rows = ProductVector.objects.using(settings.SEARCH_DB_ALIAS).filter(
        product_id__in=list(product_ids), space=space, kind=kind
    )
    return {pid: np.asarray(vec, dtype=np.float32) for pid, vec in rows.values_list("product_id", "vector")}
