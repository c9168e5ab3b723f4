"""The H&M → catalog CSV converter, on the real shared data when it is present (its import into the
database: tests/integration/test_hm_converter.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from catalog.csv_format import read_catalog
from catalog.hm import SourceError, hm_to_catalog_csv, synthetic_price, synthetic_stock

HM = Path(__file__).resolve().parents[3] / "shared" / "data" / "hm"
needs_hm = pytest.mark.skipif(not (HM / "manifest.csv").is_file(), reason="../shared/data/hm is not present")


def test_synthetic_values_are_deterministic_and_valid():
    assert synthetic_price("0108775015", "Garment Upper body") == synthetic_price("0108775015", "Garment Upper body")
    assert 9.99 <= float(synthetic_price("0108775015", "Garment Upper body")) <= 59.99
    stock = synthetic_stock("0108775015", "Shoes")
    assert stock.split("|")[0].startswith("36:")


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match=r"no manifest\.csv"):
        hm_to_catalog_csv(tmp_path, tmp_path / "out.csv")


@needs_hm
def test_converted_rows_parse_cleanly_and_keep_design_groups_whole(tmp_path):
    out = tmp_path / "hm.csv"
    count = hm_to_catalog_csv(HM, out, split="dev", limit=80)
    assert 1 <= count <= 80
    rows, problems = read_catalog(out.read_bytes(), HM)
    assert problems == [] and len(rows) == count
    with (HM / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    group_sizes: dict[str, int] = {}
    for r in manifest:
        if r["split"] == "dev":
            group_sizes[r["group_id"]] = group_sizes.get(r["group_id"], 0) + 1
    chosen: dict[str, int] = {}
    for row in rows:
        chosen[row.group] = chosen.get(row.group, 0) + 1
        assert row.attributes["split"] == "dev"
        assert len(row.images) == 1 and row.images[0].is_file()
    assert chosen == {g: group_sizes[g] for g in chosen}  # every chosen design comes with all its colours
    assert hm_to_catalog_csv(HM, tmp_path / "again.csv", split="dev", limit=80) == count
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()
