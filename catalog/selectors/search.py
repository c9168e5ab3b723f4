"""Reads that search is built on: filters, the facts and vocabularies it keeps, facet counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connections

from catalog.selectors.categories import category_ids_under

# A value that a database cursor adapts to SQL: what ``cursor.execute`` takes in its parameter list
# (as django-stubs types it).
SqlParam: TypeAlias = (
    bool | int | float | Decimal | str | bytes | date | datetime | UUID | tuple[Any, ...] | list[Any] | None
)


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


def product_filter_sql(filters: ProductFilters | None, alias: str = "p") -> tuple[str, list[SqlParam]]:
    """A SQL condition on ``catalog_product`` (as ``alias``) for these filters, and its parameters."""
    clauses = [f"{alias}.is_active"]
    params: list[SqlParam] = []
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


# Filtered vector search: up to this many matching products an exact scan of just those is cheap
# and always complete; above it the HNSW index is walked with pgvector's iterative scan, which goes on
# past ef_search candidates until the filter has left k (or max_scan_tuples were visited).
EXACT_SCAN_MAX = 20_000


@dataclass(frozen=True)
class FilterMatch:
    """Which products pass a filter, when they are few enough for an exact scan."""

    ids: tuple[int, ...] | None  # None: more than EXACT_SCAN_MAX match (the index path serves them)


def product_filter_match(filters: ProductFilters, using: str | None = None) -> FilterMatch:
    """The products passing ``filters``, read once per search: their ids when at most EXACT_SCAN_MAX
    match (every vector signal then scans just those rows, without filtering the product table
    again), else None."""
    using = using or settings.SEARCH_DB_ALIAS
    where, params = product_filter_sql(filters)
    with connections[using].cursor() as cursor:
        # The planner's estimate first (a fraction of a millisecond): reading 20,001 ids of a broad
        # filter only to learn that there are more took 43–83 ms at 1,000,000 products (bench.search).
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT p.id FROM catalog_product p WHERE {where}", params)
        if _plan_rows(cursor.fetchone()) > EXACT_SCAN_MAX:
            return FilterMatch(ids=None)
        cursor.execute(f"SELECT p.id FROM catalog_product p WHERE {where} LIMIT %s", [*params, EXACT_SCAN_MAX + 1])
        ids = tuple(row[0] for row in cursor.fetchall())
    # Counting every match of a broad filter took 90 ms at 1,000,000 products (bench.search) and
    # nothing needs the number: the index path serves any count above EXACT_SCAN_MAX the same way.
    return FilterMatch(ids=ids if len(ids) <= EXACT_SCAN_MAX else None)


# A filter the planner expects to match more than EXACT_SCAN_MAX products goes to the index path
# without reading its matches. Estimates come from the table's statistics (the expression index of 0006
# gives lower(colour) and lower(pattern) theirs); one that is too high sends a filter of, say, 15,000
# products to the iterative index scan, which serves it too (it stops after hnsw.max_scan_tuples,
# 20,000 index tuples: enough while the filter keeps more than 1 % of a catalog of a million). One that
# is too low reads the ids, as without an estimate.
def _plan_rows(row: tuple[Any, ...] | None) -> float:
    """The estimated rows of an ``EXPLAIN (FORMAT JSON)`` result; 0 when it cannot be read (the ids
    are then read, as without an estimate)."""
    try:
        plan = row[0] if row is not None else None
        if isinstance(plan, str):
            plan = json.loads(plan)
        return float(plan[0]["Plan"]["Plan Rows"])  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return 0.0


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
    params: list[SqlParam] = []
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


def leaf_categories_in_tree(using: str | None = None) -> list[tuple[int, str, str]]:
    """Every leaf category as (id, name, name with its parent's: "t-shirt (garment upper body)"),
    lower-cased, by id: what a category means includes where the catalog files it."""
    sql = """
        SELECT c.id, lower(c.name), lower(c.name || coalesce(' (' || parent.name || ')', ''))
        FROM catalog_category c LEFT JOIN catalog_category parent ON parent.id = c.parent_id
        WHERE NOT EXISTS (SELECT 1 FROM catalog_category k WHERE k.parent_id = c.id)
        ORDER BY c.id
    """
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql)
        return [(int(pk), name, in_tree) for pk, name, in_tree in cursor.fetchall()]


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
    # the products' rows are read once (a million-product table: 6.1–11.2 → 4.7–6.2 ms for 200 ids)
    sql = """
        WITH found AS MATERIALIZED (
            SELECT p.category_id, p.colour, p.pattern, p.price FROM catalog_product p WHERE p.id = ANY(%(ids)s)
        )
        SELECT 'category', c.path, count(*) FROM found f JOIN catalog_category c ON c.id = f.category_id
            GROUP BY c.path
        UNION ALL SELECT 'colour', f.colour, count(*) FROM found f WHERE f.colour <> '' GROUP BY f.colour
        UNION ALL SELECT 'pattern', f.pattern, count(*) FROM found f WHERE f.pattern <> '' GROUP BY f.pattern
        UNION ALL SELECT 'price', width_bucket(f.price, %(edges)s::numeric[])::text, count(*) FROM found f GROUP BY 2
        UNION ALL SELECT 'size', v.size, count(DISTINCT v.product_id) FROM catalog_variant v
            WHERE v.product_id = ANY(%(ids)s) AND v.stock > 0 GROUP BY v.size
    """
    counts: dict[str, list[tuple[str, int]]] = {k: [] for k in ("category", "colour", "pattern", "size", "price")}
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, {"ids": list(product_ids), "edges": [float(e) for e in price_edges]})
        for facet, value, n in cursor.fetchall():
            counts[facet].append((value, int(n)))
    return counts
