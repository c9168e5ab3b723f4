"""The H&M → catalog CSV converter's output imported into the database, on the real shared data when it
is present (the converter alone: tests/unit/test_hm_converter.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.hm import hm_to_catalog_csv
from catalog.models import Product
from catalog.services import catalog_import_csv

HM = Path(__file__).resolve().parents[3] / "shared" / "data" / "hm"
needs_hm = pytest.mark.skipif(not (HM / "manifest.csv").is_file(), reason="../shared/data/hm is not present")


@needs_hm
@pytest.mark.django_db
def test_converted_catalog_imports(tmp_path):
    out = tmp_path / "hm.csv"
    count = hm_to_catalog_csv(HM, out, limit=25)
    report = catalog_import_csv(out, HM)
    assert report.problems == [] and report.created == count
    product = Product.objects.exclude(design_group="").first()
    assert product is not None and product.category is not None and product.colour
