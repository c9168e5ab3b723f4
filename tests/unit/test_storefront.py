"""Storefront helpers without the database (the pages themselves: tests/integration/test_storefront.py)."""

from __future__ import annotations


def test_links_keep_zero_values_and_drop_empty_ones():
    from search.presenters import link

    current = {"q": "tee", "colour": "", "in_stock": False, "garment": None, "page": 3}
    assert link("/search/photo/t", current, garment=0) == "/search/photo/t?q=tee&garment=0"
    assert link("/search", current, page=2) == "/search?q=tee&page=2"
    assert link("/search", {"q": "tee", "in_stock": True}, in_stock=None) == "/search?q=tee"
