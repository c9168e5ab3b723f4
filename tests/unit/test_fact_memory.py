"""The in-memory product facts (search/fact_memory.py) on hand-made rows: no database needed. Their
agreement with PostgreSQL on a real catalog is tested in tests/integration/test_search.py."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from catalog.selectors import ProductFactRows, ProductFilters, RankFacts
from search.fact_memory import ProductFacts


def rows(ids, categories, colours, patterns, prices, stock, active) -> ProductFactRows:
    return ProductFactRows(
        ids=np.array(ids, dtype=np.int64),
        category_ids=np.array(categories, dtype=np.int64),
        colours=list(colours),
        patterns=list(patterns),
        prices=np.array(prices, dtype=np.float64),
        has_stock=np.array(stock, dtype=bool),
        is_active=np.array(active, dtype=bool),
        newest=None,
    )


@pytest.fixture
def facts() -> ProductFacts:
    return ProductFacts.empty().merged(
        rows(
            [3, 1, 2, 4, 5],
            [10, 10, 11, -1, 11],
            ["Black", "black", "Red", "", "Blue"],
            ["Solid", "Striped", "Solid", "Solid", ""],
            [20.0, 19.99, 50.0, 200.0, 35.5],
            [True, False, True, True, True],
            [True, True, True, True, False],
        )
    )


def ids(facts: ProductFacts, filters: ProductFilters, categories=None) -> list[int]:
    return facts.ids[facts.passing(filters, categories)].tolist()


def test_filters_select_active_products_like_the_sql_does(facts):
    assert facts.ids.tolist() == [1, 2, 3, 4, 5]  # kept in id order
    assert ids(facts, ProductFilters()) == [1, 2, 3, 4]  # 5 is switched off
    assert ids(facts, ProductFilters(colour="BLACK")) == [1, 3]  # any spelling, case ignored
    assert ids(facts, ProductFilters(price_min=Decimal("20"), price_max=Decimal("50"))) == [2, 3]  # both ends in
    assert ids(facts, ProductFilters(in_stock=True, pattern="solid")) == [2, 3, 4]
    assert ids(facts, ProductFilters(category="x"), [10]) == [1, 3]
    assert ids(facts, ProductFilters(category="nowhere"), []) == []
    assert ids(facts, ProductFilters(colour="black", exclude_ids=(3,))) == [1]
    assert not facts.serves(ProductFilters(size="M"))
    with pytest.raises(ValueError, match="size"):
        facts.passing(ProductFilters(size="M"), None)


def test_a_refresh_replaces_changed_products_and_adds_new_ones(facts):
    newer = facts.merged(rows([3, 9], [11, 10], ["Green", "Black"], ["Solid", "Solid"], [5.0, 7.0], [0, 1], [1, 1]))
    assert newer.ids.tolist() == [1, 2, 3, 4, 5, 9]
    assert ids(newer, ProductFilters(colour="black")) == [1, 9]  # 3 is green now
    assert ids(newer, ProductFilters(colour="green", in_stock=True)) == []
    assert ids(facts, ProductFilters(colour="black")) == [1, 3]  # the old copy is left as it was


def test_facet_counts_match_width_bucket_and_skip_empty_names(facts):
    counts, per_category = facts.facet_counts(np.array([1, 2, 3, 4]), [20, 50, 100, 200])
    # width_bucket: below 20 → 0; 20 ≤ p < 50 → 1; 50 ≤ p < 100 → 2; …; 200 and above → 4
    assert sorted(counts["price"]) == [("0", 1), ("1", 1), ("2", 1), ("4", 1)]
    assert sorted(counts["colour"]) == [("Black", 1), ("Red", 1), ("black", 1)]  # stored spellings, "" left out
    assert sorted(counts["pattern"]) == [("Solid", 3), ("Striped", 1)]
    assert per_category == {10: 2, 11: 1}  # product 4 has no category


def test_attribute_ranking_every_first_then_some(facts):
    wanted = {"colour": ["Black", "black"], "pattern": ["Solid"]}
    ranked = facts.attribute_ranking(wanted, {}, np.array([1, 2, 3, 4]), 10)
    assert ranked == [(3, 2.0), (1, 1.0), (2, 1.0), (4, 1.0)]
    exact = facts.attribute_ranking(wanted, {"colour": ["black"]}, np.array([1, 2, 3, 4]), 10)
    assert exact[0] == (3, 2.0)  # only 3 has both; the exact-name bonus orders within the full matches
    assert facts.attribute_ranking(wanted, {}, np.array([1, 2, 3, 4]), 2) == [(3, 2.0), (1, 1.0)]


def test_stock_categories_and_products_in_categories_from_the_facts():
    facts = ProductFacts.empty().merged(
        ProductFactRows(
            ids=np.array([3, 1, 2], dtype=np.int64),
            category_ids=np.array([7, 5, -1], dtype=np.int64),
            colours=["", "", ""],
            patterns=["", "", ""],
            prices=np.array([1.0, 2.0, 3.0]),
            has_stock=np.array([True, False, True]),
            is_active=np.array([True, True, True]),
            newest=None,
        )
    )
    assert facts.rank_facts([1, 2, 3, 99]) == {
        1: RankFacts(False, "", 5),
        2: RankFacts(True, "", None),
        3: RankFacts(True, "", 7),
    }
    assert facts.in_categories([1, 2, 3, 99], [5, 7], 10) == [(1, 5), (3, 7)]
    assert facts.in_categories([3, 1], [5, 7], 1) == [(1, 5)]  # lowest id first, at most limit
