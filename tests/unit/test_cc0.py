"""The CC0 photo set → catalog CSV converter (the demo catalog whose pictures may be shipped)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from catalog.cc0 import cc0_to_catalog_csv, is_cc0_folder
from catalog.csv_format import KNOWN_COLUMNS
from catalog.hm import SourceError

HEADER = "file,item_id,category,kids,sender_id,width,height,dup_group,sha256"


def write_set(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.csv").write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return folder


def test_rows_become_catalog_products_one_per_duplicate_group(tmp_path):
    source = write_set(
        tmp_path / "cc0",
        [
            "images/aa.jpg,aaaa-1,Hoodie,False,1,400,533,aaaa-1,x",
            "images/ab.jpg,bbbb-2,Hoodie,False,1,400,533,aaaa-1,x",  # same garment photographed twice
            "images/c.jpg,cccc-3,Dress,True,2,400,533,cccc-3,x",
            "images/d.jpg,dddd-4,Not sure,False,2,400,533,dddd-4,x",  # unknown category: skipped
        ],
    )
    assert is_cc0_folder(source)
    out = tmp_path / "catalog.csv"
    assert cc0_to_catalog_csv(source, out) == 2
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == KNOWN_COLUMNS
        rows = {r["images"]: r for r in reader}
    assert set(rows) in ({"images/aa.jpg", "images/c.jpg"}, {"images/ab.jpg", "images/c.jpg"})
    dress = rows["images/c.jpg"]
    assert dress["category"] == "Kids > Dresses > Dress" and dress["title"].startswith("Kids’ Dress no. ")
    assert dress["sku"] == "CC0-CCCC" and float(dress["price"]) > 0 and ":" in dress["stock"]
    # deterministic: the same input gives the same file
    again = tmp_path / "again.csv"
    cc0_to_catalog_csv(source, again)
    assert again.read_bytes() == out.read_bytes()


def test_folders_that_are_not_the_cc0_set_are_told_apart(tmp_path):
    hm = tmp_path / "hm"
    hm.mkdir()
    (hm / "manifest.csv").write_text("file,item_id,group_id,category,kids,title\n", encoding="utf-8")
    assert not is_cc0_folder(hm)
    assert not is_cc0_folder(tmp_path / "missing")
    with pytest.raises(SourceError, match=r"no manifest\.csv"):
        cc0_to_catalog_csv(tmp_path / "missing", tmp_path / "out.csv")
    empty = write_set(tmp_path / "empty", ["images/x.jpg,x-1,Unknown,False,1,1,1,x-1,x"])
    with pytest.raises(SourceError, match="no rows with a known category"):
        cc0_to_catalog_csv(empty, tmp_path / "out.csv")
