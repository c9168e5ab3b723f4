"""The second-annotator comparison of ``evaluate attributes --annotations`` (hand-computed cases) and
``scripts/label_audit.py``, which draws the blind sample and its contact sheets."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from evaluation.attributes import agreement_on_sample, read_annotations
from vision.assets import REPO

AUDIT = REPO / "docs" / "label-audit"
SHARED_HM = REPO.parent / "shared" / "data" / "hm"


def test_agreement_counts_only_items_both_label():
    truth = {"a": "Black", "b": "Grey", "c": "White", "d": "Beige"}
    annotator = {"a": "Black", "b": "Black", "c": "White", "x": "Blue"}  # x is not in the manifest
    methods = {"shop": {"a": "Black", "b": "Grey", "c": "Beige", "d": "Beige"}, "majority": {}}
    out = agreement_on_sample(truth, annotator, methods)
    # shared items a, b, c: the annotator agrees on a and c (2/3); the shop on a and b (2/3) — its
    # right answer on d does not count, the annotator did not label d; majority predicted nothing
    assert out == {"items": 3, "annotator": 0.6667, "shop": 0.6667, "majority": 0.0}


def test_agreement_on_no_shared_items_reports_only_the_count():
    assert agreement_on_sample({"a": "Black"}, {"b": "Black"}, {"shop": {"a": "Black"}}) == {"items": 0}


def test_read_annotations_keeps_labelled_cells_and_rejects_files_without_the_columns(tmp_path: Path):
    good = tmp_path / "good.csv"
    good.write_text("n,item_id,colour,category\n0,001,Black,\n1,002, ,Top\n")
    assert read_annotations(good) == {"001": {"colour": "Black"}, "002": {"category": "Top"}}
    bad = tmp_path / "bad.csv"
    bad.write_text("n,sku,colour\n0,001,Black\n")
    with pytest.raises(ValueError, match="needs an item_id column"):
        read_annotations(bad)


def run_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "label_audit.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    rows = []
    for i, colour in enumerate(["Black", "White", "Grey", "Black", "Blue", "Beige", "Black"]):
        Image.new("RGB", (36, 54), (40 * i, 30, 200 - 20 * i)).save(tmp_path / f"{i}.jpg")
        rows.append({"image": f"{i}.jpg", "item_id": f"item{i}", "colour": colour, "category": "Top"})
    path = tmp_path / "attributes.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_label_audit_writes_blind_sheets_and_the_same_sample_for_the_same_seed(tiny_manifest: Path, tmp_path: Path):
    first, second = tmp_path / "one", tmp_path / "two"
    for out in (first, second):
        result = run_audit(
            "--manifest", str(tiny_manifest), "--attribute", "colour", "--n", "5", "--seed", "3", "--out", str(out)
        )
        assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((first / "to-label.csv").open()))
    assert [r["n"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(r["colour"] == "" for r in rows)  # blind: no label handed to the annotator
    assert len({r["item_id"] for r in rows}) == 5
    assert (first / "to-label.csv").read_text() == (second / "to-label.csv").read_text()
    with Image.open(first / "sheet-0.png") as sheet:
        assert sheet.size == (6 * 150, 1 * (225 + 18))  # five tiles fit one row of six
    assert (first / "vocabulary.txt").read_text().splitlines()[0] == "Black\t3"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attribute", "colour", "--n", "0"], "--n must be at least 1"),
        (["--attribute", "pattern"], "lacks the columns ['pattern']"),
        (["--attribute", "colour", "--split", "dev"], "has no split column"),
    ],
)
def test_label_audit_refuses_bad_arguments(tiny_manifest: Path, tmp_path: Path, args: list[str], message: str):
    result = run_audit("--manifest", str(tiny_manifest), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "attribute", "column", "seed"),
    [
        ("hm-dev-colour-seed20261205.csv", "colour", "colour_master", 20261205),
        ("hm-dev-category-seed5122026.csv", "category", "category", 5122026),
    ],
)
def test_committed_annotations_are_the_sample_the_script_draws(
    tmp_path: Path, name: str, attribute: str, column: str, seed: int
):
    if not (SHARED_HM / "manifest.csv").is_file():
        pytest.skip(f"shared data not present at {SHARED_HM}")
    result = run_audit(
        "--manifest",
        str(SHARED_HM / "manifest.csv"),
        "--split",
        "dev",
        "--attribute",
        attribute,
        "--column",
        column,
        "--n",
        "120",
        "--seed",
        str(seed),
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    drawn = [r["item_id"] for r in csv.DictReader((tmp_path / "to-label.csv").open())]
    labelled = list(csv.DictReader((AUDIT / name).open()))
    assert [r["item_id"] for r in labelled] == drawn
    vocabulary = {line.split("\t")[0] for line in (tmp_path / "vocabulary.txt").read_text().splitlines()}
    assert {r[attribute] for r in labelled} <= vocabulary  # every label is one the catalog uses
