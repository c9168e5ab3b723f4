"""evaluation.evalsets: the evaluation files built from ../shared/data (data-backed tests skip without it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.evalsets import DataMissing, attribute_queries, build_eval_sets, garment_mask
from vision.assets import REPO

DATA = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not all((DATA / d / "manifest.csv").is_file() for d in ("hm", "viton", "ccp")),
    reason=f"shared data not present at {DATA} (hm, viton, ccp manifests)",
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------- without data


def test_garment_mask_is_binary_and_picks_garment_labels():
    labels = np.array([[0, 5, 19], [41, 14, 5]], dtype=np.uint8)  # 5 blouse, 14 dress: garments; 19 hair, 41 skin
    mask = garment_mask(labels, {5, 14})
    assert mask.dtype == np.uint8
    assert mask.tolist() == [[0, 255, 0], [0, 255, 255]]


def test_attribute_queries_group_exact_matches_and_cap():
    rows = [
        {"item_id": str(i), "colour_master": "Black", "pattern": "Solid", "category": "Dress"} for i in range(3)
    ] + [
        {"item_id": "3", "colour_master": "black", "pattern": "Stripe", "category": "Dress"},
        {"item_id": "4", "colour_master": "Light  Blue", "pattern": "Solid", "category": "T-shirt"},
    ]
    queries = attribute_queries(rows, max_queries=100, min_relevant=1)
    by_text = {(q["family"], q["text"]): q["relevant"] for q in queries}
    assert by_text[("colour+pattern+category", "black solid dress")] == ["0", "1", "2"]
    assert by_text[("colour+pattern+category", "black stripe dress")] == ["3"]
    assert by_text[("colour+category", "black dress")] == ["0", "1", "2", "3"]
    assert by_text[("colour+category", "light blue t-shirt")] == ["4"]
    assert all(set(q["attributes"]) <= {"colour", "pattern", "category"} for q in queries)
    assert len({q["id"] for q in queries}) == len(queries)
    capped = attribute_queries(rows, max_queries=2, min_relevant=1)  # one per family
    assert [q["family"] for q in capped] == ["colour+pattern+category", "colour+category"]
    assert attribute_queries(rows, max_queries=2, min_relevant=1) == capped  # seeded
    # Queries with fewer relevant items than min_relevant are left out (P@10 could not reach 1).
    strict = attribute_queries(rows, max_queries=100, min_relevant=3)
    assert {q["text"] for q in strict} == {"black solid dress", "black dress"}


def test_missing_data_folder_is_reported(tmp_path):
    with pytest.raises(DataMissing):
        build_eval_sets(tmp_path / "nope", tmp_path / "out", log=lambda _: None)


# ---------------------------------------------------------------- with ../shared/data


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not all((DATA / d / "manifest.csv").is_file() for d in ("hm", "viton", "ccp")):
        pytest.skip(f"shared data not present at {DATA}")
    out = tmp_path_factory.mktemp("evalsets")
    build_eval_sets(DATA, out, log=lambda _: None)
    return out


@needs_data
def test_index_lists_every_file_with_counts(sets):
    index = json.loads((sets / "index.json").read_text())
    for name, count in index["counts"].items():
        assert (sets / name).is_file(), name
        assert count > 0, name
    assert Path(index["images_roots"]["hm_dev_catalog.csv"]) == (DATA / "hm").resolve()
    assert index["counts"]["hm_dev_catalog.csv"] == sum(
        1 for r in read_csv(DATA / "hm" / "manifest.csv") if r["split"] == "dev"
    )


@needs_data
def test_attribute_queries_name_attributes_their_relevant_items_have(sets):
    catalog = {r["sku"]: r for r in read_csv(sets / "hm_dev_catalog.csv")}
    queries = read_jsonl(sets / "hm_dev_attribute_queries.jsonl")
    assert 0 < len(queries) <= 400
    assert {q["family"] for q in queries} == {"colour+pattern+category", "colour+category"}

    def values(row: dict[str, str]) -> dict[str, str]:
        # catalog: colour = manifest colour_master, category = "<group> > <product type>"
        return {
            "colour": " ".join(row["colour"].lower().split()),
            "pattern": " ".join(row["pattern"].lower().split()),
            "category": " ".join(row["category"].split(" > ")[-1].lower().split()),
        }

    for q in queries:
        assert q["text"] == q["text"].lower()
        assert q["relevant"], q
        assert q["text"] == " ".join(q["attributes"].values())
        for sku in q["relevant"]:
            assert sku in catalog, (q["id"], sku)
            have = values(catalog[sku])
            assert all(have[a] == v for a, v in q["attributes"].items()), (q["id"], sku, have)
        # and every catalog item with those attributes is relevant
        expected = {s for s, r in catalog.items() if all(values(r)[a] == v for a, v in q["attributes"].items())}
        assert set(q["relevant"]) == expected, q["id"]


@needs_data
def test_hm_catalog_images_exist_under_the_hm_folder(sets):
    rows = read_csv(sets / "hm_dev_catalog.csv")
    assert all((DATA / "hm" / r["images"]).is_file() for r in rows[:50])
    attrs = read_csv(sets / "hm_dev_attributes.csv")
    assert len(attrs) == len(rows)
    assert all(Path(r["image"]).is_absolute() and Path(r["image"]).is_file() for r in attrs[:50])
    assert all(r["category"] and r["colour"] and r["pattern"] for r in attrs)


@needs_data
def test_viton_person_queries_point_at_catalog_products(sets):
    catalog = {r["sku"]: r for r in read_csv(sets / "viton_dev_catalog.csv")}
    assert all(r["category"] == "Women > Tops" and r["price"] == "10" and r["stock"] == "1" for r in catalog.values())
    assert all((DATA / "viton" / r["images"]).is_file() for r in catalog.values())
    queries = read_jsonl(sets / "viton_dev_person_queries.jsonl")
    assert queries
    for q in queries:
        assert Path(q["image"]).is_absolute() and Path(q["image"]).is_file()
        assert q["relevant"] and all(sku in catalog for sku in q["relevant"])
    # the person's own item is always relevant
    assert all(q["id"].removeprefix("viton-") in q["relevant"] for q in queries)


@needs_data
def test_ccp_masks_are_binary_and_match_their_images(sets):
    rows = read_csv(sets / "ccp_dev_segmentation.csv")
    assert len(rows) == sum(1 for r in read_csv(DATA / "ccp" / "manifest.csv") if r["split"] == "dev")
    for r in rows[:15]:
        assert Path(r["image"]).is_absolute() and Path(r["mask"]).is_absolute()
        assert Path(r["mask"]).parent == (sets / "ccp_dev_masks").resolve()
        mask = np.asarray(Image.open(r["mask"]))
        with Image.open(r["image"]) as im:
            assert mask.shape == (im.height, im.width)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert (mask == 255).any()  # every CCP photo shows clothes


@needs_data
def test_viton_product_segmentation_uses_only_ok_masks(sets):
    rows = read_csv(sets / "viton_dev_product_segmentation.csv")
    ok = {
        r["file"]
        for r in read_csv(DATA / "viton" / "manifest.csv")
        if r["split"] == "dev" and r["role"] == "product" and r["mask_quality"] == "ok"
    }
    assert {str(Path(r["image"]).relative_to((DATA / "viton").resolve())) for r in rows} == ok
    assert all(Path(r["mask"]).is_file() for r in rows)
