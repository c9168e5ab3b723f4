"""The products' filterable facts kept in the search process's memory, beside their vectors.

A filtered text search first needs the products that pass the filter: in PostgreSQL that is a
bitmap scan returning every matching id (6–10 ms for the 8,000 products of one colour among 100,000
on the 2-core machine), then the attribute signal ranks those same products by how many of the
query's attributes they carry (another 8 ms). From columns in memory both are a few vectorised
comparisons (under 1 ms). ``python -m bench.search`` measures the filtered search both ways.

:class:`ProductFacts` holds, per product (ids ascending): category id, colour and pattern (as codes
of their stored spellings), price, the stock flag, whether it is active — about 30 bytes a product —
and the title ranking reads to tell a product the query names (about 60 bytes more).
:class:`search.vector_memory.MemoryVectors` loads and refreshes it with the vectors, from
``catalog_product.updated_at`` (indexed; the stock trigger stamps it, migration 0009), so it may lag
the database by up to ``SEARCH_MEMORY_REFRESH_S``. What a search shows is therefore checked against
the database once more (:func:`catalog.selectors.product_ids_passing`, one look-up of the result
set): a product switched off or sold out a moment ago never shows up; one switched on a moment ago
may be missing until the next refresh. Filters on a size in stock read the variants and always go
to the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalog.selectors import ProductFactRows, ProductFilters, RankFacts


@dataclass(frozen=True)
class Codes:
    """Stored spellings ↔ small integer codes (grows only)."""

    of: dict[str, int]

    def extended(self, values: Sequence[str]) -> Codes:
        new = dict(self.of)
        for value in values:
            new.setdefault(value, len(new))
        return Codes(new)

    def codes(self, values: Sequence[str]) -> np.ndarray:
        return np.array([self.of[v] for v in values], dtype=np.int32)

    def matching_lower(self, value: str) -> np.ndarray:
        """Codes of every spelling equal to ``value`` ignoring case."""
        wanted = value.lower()
        return np.array([c for v, c in self.of.items() if v.lower() == wanted], dtype=np.int32)

    def matching(self, values: Sequence[object]) -> np.ndarray:
        return np.array([self.of[v] for v in values if isinstance(v, str) and v in self.of], dtype=np.int32)


@dataclass(frozen=True)
class ProductFacts:
    """Filterable facts of products, one row per product, ids ascending (immutable: a refresh builds
    a new one, so a search reading the old one is never disturbed)."""

    ids: np.ndarray
    category_ids: np.ndarray
    colours: np.ndarray  # codes in colour_codes
    patterns: np.ndarray  # codes in pattern_codes
    prices: np.ndarray
    has_stock: np.ndarray
    is_active: np.ndarray
    colour_codes: Codes
    pattern_codes: Codes
    titles: np.ndarray  # str objects

    @classmethod
    def empty(cls) -> ProductFacts:
        none = np.zeros(0, np.int64)
        return cls(
            none, none, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), np.zeros(0, bool),
            np.zeros(0, bool), Codes({}), Codes({}), np.zeros(0, object),
        )  # fmt: skip

    def merged(self, rows: ProductFactRows) -> ProductFacts:
        """These rows added; a product already present takes its new facts."""
        if not len(rows.ids):
            return self
        colour_codes = self.colour_codes.extended(rows.colours)
        pattern_codes = self.pattern_codes.extended(rows.patterns)
        ids = np.concatenate([self.ids, rows.ids])
        order = np.argsort(ids, kind="stable")  # equal ids: the newer row last
        ordered = ids[order]
        keep = order[np.append(ordered[1:] != ordered[:-1], True)]

        def column(old: np.ndarray, new: np.ndarray) -> np.ndarray:
            return np.concatenate([old, new.astype(old.dtype)])[keep]

        return ProductFacts(
            ids=ids[keep],
            category_ids=column(self.category_ids, rows.category_ids),
            colours=column(self.colours, colour_codes.codes(rows.colours)),
            patterns=column(self.patterns, pattern_codes.codes(rows.patterns)),
            prices=column(self.prices, rows.prices),
            has_stock=column(self.has_stock, rows.has_stock),
            is_active=column(self.is_active, rows.is_active),
            colour_codes=colour_codes,
            pattern_codes=pattern_codes,
            titles=column(self.titles, np.array(rows.titles or [""] * len(rows.ids), dtype=object)),
        )

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of these product ids (ids not held are left out)."""
        pos = np.searchsorted(self.ids, ids)
        return pos[(pos < len(self.ids)) & (self.ids[np.minimum(pos, len(self.ids) - 1)] == ids)]

    def rank_facts(self, product_ids: Sequence[int]) -> dict[int, RankFacts]:
        """Stock, title and category of each of these products (those kept here)."""
        if not len(self.ids) or not len(product_ids):
            return {}
        wanted = np.asarray(product_ids, dtype=np.int64)
        at = np.clip(np.searchsorted(self.ids, wanted), 0, len(self.ids) - 1)
        found = self.ids[at] == wanted
        rows = at[found]
        categories = [c if c >= 0 else None for c in self.category_ids[rows].tolist()]
        facts = map(RankFacts._make, zip(self.has_stock[rows].tolist(), self.titles[rows], categories, strict=True))
        return dict(zip(wanted[found].tolist(), facts, strict=True))

    def in_categories(
        self, product_ids: Sequence[int], category_ids: Sequence[int], limit: int
    ) -> list[tuple[int, int]]:
        """(product id, category id) of up to ``limit`` of these products (those kept here) that are in
        one of these categories, lowest ids first."""
        if not len(self.ids) or not len(product_ids):
            return []
        wanted = np.asarray(product_ids, dtype=np.int64)
        at = np.clip(np.searchsorted(self.ids, wanted), 0, len(self.ids) - 1)
        keep = (self.ids[at] == wanted) & np.isin(self.category_ids[at], np.asarray(category_ids, dtype=np.int64))
        rows = np.sort(at[keep])[:limit]  # rows are in id order
        return list(zip(self.ids[rows].tolist(), self.category_ids[rows].tolist(), strict=True))

    @staticmethod
    def serves(filters: ProductFilters) -> bool:
        """Whether these facts answer the filter (a size in stock needs the variants, a department the
        attributes: no)."""
        return not filters.size and not filters.department

    def passing(self, filters: ProductFilters, category_ids: Sequence[int] | None) -> np.ndarray:
        """Boolean mask over the rows: active products passing ``filters`` (``category_ids``: the
        filter's category and its descendants, as :func:`catalog.selectors.category_ids_under`)."""
        if not self.serves(filters):
            raise ValueError("a size filter reads the variants: ask the database")
        mask = self.is_active.copy()
        if filters.category:
            mask &= np.isin(self.category_ids, np.asarray(category_ids or [], dtype=np.int64))
        if filters.price_min is not None:
            mask &= self.prices >= float(filters.price_min)
        if filters.price_max is not None:
            mask &= self.prices <= float(filters.price_max)
        if filters.colour:
            mask &= np.isin(self.colours, self.colour_codes.matching_lower(filters.colour))
        if filters.pattern:
            mask &= np.isin(self.patterns, self.pattern_codes.matching_lower(filters.pattern))
        if filters.in_stock:
            mask &= self.has_stock
        if filters.exclude_ids:
            mask &= ~np.isin(self.ids, np.asarray(list(filters.exclude_ids), dtype=np.int64))
        return mask

    def attribute_ranking(
        self, wanted: dict[str, list[object]], exact: dict[str, list[object]], among: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        """The attribute signal over the products ``among`` (ids): those carrying every wanted
        attribute first (the ones named exactly as written before plural/singular matches), then
        those carrying some, most first; ties by id — the order of the SQL in
        :func:`search.services.attribute_signal` when every candidate is ranked."""
        pos = self._rows_of(among)
        columns = {"colour": self.colours, "pattern": self.patterns, "category": self.category_ids}
        codes = {"colour": self.colour_codes, "pattern": self.pattern_codes}

        def hits(name: str, values: list[object]) -> np.ndarray:
            targets = codes[name].matching(values) if name in codes else np.asarray(values, dtype=np.int64)
            return np.isin(columns[name][pos], targets)

        def count(named: dict[str, list[object]]) -> np.ndarray:
            total = np.zeros(len(pos), np.int64)
            for name, values in named.items():
                total += hits(name, values)
            return total

        matched, bonus = count(wanted), count(exact)
        ids = self.ids[pos]
        every = matched == len(wanted)
        first = np.lexsort((ids[every], -bonus[every]))[:limit]
        rows = [(int(i), float(len(wanted))) for i in ids[every][first]]
        if len(rows) < limit and len(wanted) > 1:
            some = (matched > 0) & ~every
            order = np.lexsort((ids[some], -matched[some]))[: limit - len(rows)]
            rows += [(int(i), float(n)) for i, n in zip(ids[some][order], matched[some][order], strict=True)]
        return rows

    def facet_counts(
        self, ids: np.ndarray, price_edges: Sequence[float]
    ) -> tuple[dict[str, list[tuple[str, int]]], dict[int, int]]:
        """Colour, pattern and price-bucket counts over the products ``ids`` (as
        :func:`catalog.selectors.product_facet_counts` counts them: stored spellings, empty ones left
        out; the bucket as ``width_bucket`` numbers it) and the count per category id."""
        pos = self._rows_of(ids)

        def spelled(column: np.ndarray, codes: Codes) -> list[tuple[str, int]]:
            names = {c: v for v, c in codes.of.items()}
            found, n = np.unique(column[pos], return_counts=True)
            return [(names[int(c)], int(k)) for c, k in zip(found, n, strict=True) if names[int(c)] != ""]

        buckets = np.searchsorted(np.asarray(price_edges, dtype=np.float64), self.prices[pos], side="right")
        found, n = np.unique(buckets, return_counts=True)
        counts = {
            "colour": spelled(self.colours, self.colour_codes),
            "pattern": spelled(self.patterns, self.pattern_codes),
            "price": [(str(int(b)), int(k)) for b, k in zip(found, n, strict=True)],
        }
        categories, per = np.unique(self.category_ids[pos], return_counts=True)
        return counts, {int(c): int(k) for c, k in zip(categories, per, strict=True) if c >= 0}
