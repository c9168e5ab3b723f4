"""Photo search's parts that need no services: a product's garment kind, read from its category's name, and the
working copy of a large photo and the size its parser reads (search.services)."""

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


def test_a_photo_larger_than_the_working_side_is_scaled_down_with_the_factors_back():
    from PIL import Image

    from search.services import _photo_working_copy

    phone = Image.new("RGB", (3000, 4000))
    small, (sx, sy) = _photo_working_copy(phone, 1024)
    assert small.size == (768, 1024) and phone.size == (3000, 4000)  # the shopper's photo is left as it was
    assert (768 * sx, 1024 * sy) == (3000, 4000)
    wide = Image.new("RGB", (1500, 301))
    small, (sx, sy) = _photo_working_copy(wide, 1024)
    assert max(small.size) == 1024 and round(small.height * sy) == 301
    within = Image.new("RGB", (1024, 700))
    assert _photo_working_copy(within, 1024) == (within, (1.0, 1.0))
    assert _photo_working_copy(phone, 0) == (phone, (1.0, 1.0))  # 0: never scaled


def test_a_shoppers_photo_is_parsed_at_the_smaller_size_never_a_larger_one(settings):
    from types import SimpleNamespace

    from search.services import photo_parse_size

    parser = SimpleNamespace(working_size=384)
    settings.SEARCH_PHOTO_PARSE_SIZE = 320
    assert photo_parse_size(parser) == 320
    assert photo_parse_size(SimpleNamespace()) == 320  # a parser with a fixed input ignores it
    settings.SEARCH_PHOTO_PARSE_SIZE = 512  # above the parser's own: its own
    assert photo_parse_size(parser) is None
    settings.SEARCH_PHOTO_PARSE_SIZE = 0
    assert photo_parse_size(parser) is None
