"""Reads of the category tree."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import connections
from django.db.models import (
    Count,
    Q,
    QuerySet,
)

from catalog.models import (
    Category,
    Product,
)


def category_descendants(category: Category) -> QuerySet[Category]:
    """The category and everything below it (by materialised path)."""
    return Category.objects.filter(Q(path=category.path) | Q(path__startswith=f"{category.path}/"))


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


def category_ids_under(path: str, using: str | None = None) -> list[int]:
    """The ids of the category at ``path`` and of all its descendants (empty when there is none)."""
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT id FROM catalog_category WHERE path = %s OR path LIKE %s", [path, _like_prefix(path)])
        return [row[0] for row in cursor.fetchall()]


def category_paths(category_ids: Sequence[int], using: str | None = None) -> dict[int, str]:
    if not category_ids:
        return {}
    with connections[using or settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT id, path FROM catalog_category WHERE id = ANY(%s)", [list(category_ids)])
        return {int(i): str(path) for i, path in cursor.fetchall()}


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


def category_get_by_path(path: str) -> Category | None:
    return Category.objects.filter(path=path.strip("/")).first()


def category_names_from_root(path: str) -> list[str] | None:
    """The names from the root down to the category at ``path`` ("women/tops" → ["Women", "Tops"]), or
    None when no category has that path."""
    found = category_get_by_path(path)
    return None if found is None else [c.name for c in [*category_ancestors(found), found]]


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
