"""Unit tests of the catalog CSV format (no database)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from catalog.csv_format import CatalogFileError, RowError, parse_price, parse_stock, read_catalog

HEADER = "sku,title,description,category,colour,pattern,price,currency,stock,group,images\n"


def test_price_parsing() -> None:
    assert parse_price("19.9") == Decimal("19.90")
    assert parse_price(" 0 ") == Decimal("0.00")
    for bad, words in [
        ("abc", "not a number"),
        ("-1", "negative"),
        ("12,99", "not a number"),
        ("1.999", "two decimals"),
        ("", "empty"),
        ("NaN", "finite"),
        ("1e12", "too large"),
    ]:
        with pytest.raises(RowError, match=words):
            parse_price(bad)


def test_stock_parsing() -> None:
    assert parse_stock("") == {"one size": 0}
    assert parse_stock("7") == {"one size": 7}
    assert parse_stock("S:3|M:0| L : 5") == {"S": 3, "M": 0, "L": 5}
    for bad in ["-2", "three", "S:x", "S:1|S:2", "S3|M:1"]:
        with pytest.raises(RowError):
            parse_stock(bad)


def test_rows_are_validated_with_editor_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 not empty")
    text = (
        HEADER
        + 'A1,"Shirt","a long\ndescription",Men > Shirts,blue,striped,19.99,EUR,5,g1,a.jpg\n'  # lines 2-3
        + ",No sku,,,,,1,EUR,1,,\n"  # line 4
        + "A2,Bad price,,,,,12.5.1,EUR,1,,\n"  # line 5
        + "A3,Missing image,,,,,1,EUR,1,,nope.jpg\n"  # line 6
        + "A1,Again,,,,,1,EUR,1,,\n"  # line 7
        + "A4,Escaping,,,,,1,EUR,1,,../etc/passwd\n"  # line 8
        + "\n"
        + "A5,Fine,,,,,3,usd,S:1|M:2,,\n"  # line 10
    )
    rows, problems = read_catalog(text.encode(), tmp_path)
    assert [r.sku for r in rows] == ["A1", "A5"]
    assert rows[0].category_path == ["Men", "Shirts"]
    assert rows[0].description == "a long\ndescription"
    assert rows[1].currency == "USD" and rows[1].stock == {"S": 1, "M": 2}
    found = {(p.line, p.sku): p.reason for p in problems}
    assert "sku is missing" in found[(4, "")]
    assert "not a number" in found[(5, "A2")]
    assert "not found" in found[(6, "A3")]
    assert "already appears on line 2" in found[(7, "A1")]
    assert "without '..'" in found[(8, "A4")]
    assert len(problems) == 5


def test_non_utf8_rows_are_refused_alone(tmp_path: Path) -> None:
    raw = (HEADER + "B1,Good,,,,,1,EUR,1,,\n").encode() + "B2,Caf\xe9 latin-1,,,,,1,EUR,1,,\n".encode("latin-1")
    rows, problems = read_catalog(b"\xef\xbb\xbf" + raw, tmp_path)
    assert [r.sku for r in rows] == ["B1"]
    assert len(problems) == 1 and problems[0].line == 3 and "UTF-8" in problems[0].reason


def test_unknown_columns_become_attributes(tmp_path: Path) -> None:
    text = "sku,title,price,material,fit\nC1,Coat,99,wool,\n"
    rows, problems = read_catalog(text.encode(), tmp_path)
    assert not problems
    assert rows[0].attributes == {"material": "wool"}
    assert rows[0].currency == "EUR"


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogFileError, match="empty"):
        read_catalog(b"", tmp_path)
    with pytest.raises(CatalogFileError, match="lacks column"):
        read_catalog(b"name,cost\nx,1\n", tmp_path)


def test_surplus_fields_are_reported(tmp_path: Path) -> None:
    rows, problems = read_catalog(b"sku,title,price\nD1,Top,5,extra\n", tmp_path)
    assert not rows and "more fields than the header" in problems[0].reason
