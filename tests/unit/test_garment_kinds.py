"""A product's garment kind for photo search, read from its category's name (search.services)."""

from __future__ import annotations

import pytest

from search.services import COMPATIBLE_GARMENTS, GARMENT_KIND_WORDS, garment_kind_of_category


@pytest.mark.parametrize(
    ("name", "parent", "kind"),
    [
        ("Trousers", "Garment Lower body", "bottom"),
        ("Swimwear bottom", "Swimwear", "bottom"),  # the last word says it
        ("Bikini top", "Swimwear", "top"),
        ("Leggings/Tights", "Garment Lower body", "bottom"),
        ("Hat/beanie", "Accessories", "accessory"),
        ("Night gown", "Nightwear", "dress"),
        ("Outdoor Waistcoat", "Garment Upper body", "outerwear"),
        ("T-shirt", "Garment Upper body", "top"),
        ("Cross-body bag", "Accessories", "bag"),
        ("Wedge", "Shoes", "footwear"),
        ("Jeans", "Men", "bottom"),
        ("Other", "Accessories", "accessory"),  # the parent's name when the leaf's says nothing
        ("Garment Set", "Garment Full body", None),  # nothing says it: the parser's label decides
        ("Robe", "Nightwear", None),
    ],
)
def test_a_categorys_name_says_its_garment_kind(name: str, parent: str, kind: str | None):
    assert garment_kind_of_category(name, parent) == kind


def test_every_kind_is_one_a_photo_garment_can_be_matched_with():
    assert set(GARMENT_KIND_WORDS) == set(COMPATIBLE_GARMENTS)
    words = [w for ws in GARMENT_KIND_WORDS.values() for w in ws]
    assert len(words) == len(set(words)), "a word names one kind"
