"""Reads of products: lists, single products, summaries, stock and the facts ranking needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import connections
from django.db.models import (
    Exists,
    OuterRef,
    Prefetch,
    QuerySet,
    Sum,
)
from django.db.models.functions import Coalesce

from catalog.models import (
    Category,
    Product,
    ProductImage,
    Variant,
)
from catalog.selectors.categories import category_descendants
from catalog.selectors.search import ProductFilters, product_filter_sql


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
    """The product with this SKU (active or not) with ``product_list``'s annotations, its category,
    variants and images loaded."""
    return product_list(active_only=False).filter(sku=sku).prefetch_related("variants").first()


def product_get_by_id(product_id: int) -> Product | None:
    return Product.objects.select_related("category").filter(pk=product_id).first()


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
        # a row is ProductBrief's fields in order, the sizes as an array (one starred tuple for mypy,
        # which cannot tell how many fields row[:10] fills)
        return {row[0]: ProductBrief(*(*row[:10], tuple(row[10]))) for row in cursor.fetchall()}


def product_ids_in_design(design_group: str, using: str | None = None) -> list[int]:
    if not design_group:
        return []
    return list(
        Product.objects.using(using or settings.SEARCH_DB_ALIAS)
        .filter(design_group=design_group, is_active=True)
        .values_list("id", flat=True)
    )


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
# an API search's CPU (bench/request_profile.py); compiling the same query through the ORM on every
# call took two thirds of what was left (5.1 ms a call for 24 products, 1.5 ms of it in PostgreSQL), so
# the SQL is written once here and the rows become model instances directly.
SUMMARY_PRODUCT_FIELDS = ("id", "sku", "title", "price", "currency", "colour", "pattern", "brand", "category")
_SUMMARY_CATEGORY_FIELDS = ("id", "name", "path", "full_name")


def _model_order(model: type[Product] | type[Category], names: Sequence[str]) -> list[str]:
    """These fields' column names in the model's own field order (``Model.from_db`` takes the values
    of a partial row in that order)."""
    return [f.attname for f in model._meta.concrete_fields if f.name in names]


_SUMMARY_PRODUCT_COLUMNS = _model_order(Product, SUMMARY_PRODUCT_FIELDS)
_SUMMARY_CATEGORY_COLUMNS = _model_order(Category, _SUMMARY_CATEGORY_FIELDS)
_SUMMARY_SQL = f"""
SELECT {", ".join(f"p.{c}" for c in _SUMMARY_PRODUCT_COLUMNS)},
       {", ".join(f"c.{c}" for c in _SUMMARY_CATEGORY_COLUMNS)},
       EXISTS (SELECT 1 FROM catalog_variant v WHERE v.product_id = p.id AND v.stock > 0),
       COALESCE((SELECT sum(v.stock) FROM catalog_variant v WHERE v.product_id = p.id), 0),
       ARRAY(SELECT v.size FROM catalog_variant v WHERE v.product_id = p.id AND v.stock > 0
             ORDER BY v.position, v.id),
       COALESCE((SELECT i.file FROM catalog_productimage i WHERE i.product_id = p.id
                 ORDER BY i.position, i.id LIMIT 1), ''),
       COALESCE((SELECT i.cutout FROM catalog_productimage i WHERE i.product_id = p.id
                 ORDER BY i.position, i.id LIMIT 1), '')
FROM catalog_product p LEFT JOIN catalog_category c ON c.id = p.category_id
WHERE p.id = ANY(%s) AND (p.is_active OR NOT %s)
"""


def products_by_ids(product_ids: Sequence[int], *, active_only: bool = True) -> list[Product]:
    """These products in the given order (missing or, with ``active_only``, inactive ones left
    out), as summaries: the summary fields and category, ``in_stock`` / ``total_stock``,
    ``summary_sizes_in_stock`` (by position) and ``summary_file`` / ``summary_cutout`` (the first
    photo's file names, "" without one) set on each."""
    wanted = [int(pid) for pid in product_ids]
    if not wanted:
        return []
    with connections["default"].cursor() as cursor:
        cursor.execute(_SUMMARY_SQL, [wanted, active_only])
        rows = cursor.fetchall()
    by_id: dict[int, Product] = {}
    np_, nc = len(_SUMMARY_PRODUCT_COLUMNS), len(_SUMMARY_CATEGORY_COLUMNS)
    for row in rows:
        product = Product.from_db("default", _SUMMARY_PRODUCT_COLUMNS, row[:np_])
        category_row = row[np_ : np_ + nc]
        category = Category.from_db("default", _SUMMARY_CATEGORY_COLUMNS, category_row) if product.category_id else None
        Product.category.field.set_cached_value(product, category)
        product.in_stock, product.total_stock, sizes, file, cutout = row[np_ + nc :]  # type: ignore[attr-defined]
        product.summary_sizes_in_stock = list(sizes)  # type: ignore[attr-defined]
        product.summary_file, product.summary_cutout = file, cutout  # type: ignore[attr-defined]
        by_id[product.pk] = product
    return [by_id[pid] for pid in wanted if pid in by_id]


def product_list_in_category(category: Category) -> QuerySet[Product]:
    """Active products of the category and everything below it (``product_list`` annotations)."""
    return product_list().filter(category__in=category_descendants(category))


def product_variants(product_id: int) -> list[Variant]:
    return list(Variant.objects.filter(product_id=product_id).order_by("position", "id"))


def products_search_dirty_exist() -> bool:
    """Whether any product's text changed since its text vector was computed (the partial index
    ``product_search_dirty`` answers it)."""
    return Product.objects.filter(search_dirty=True).exists()
