"""The bulk import's ZIP checks without the database (the staff pages, with PostgreSQL, Redis and the
worker: tests/integration/test_staff.py)."""

from __future__ import annotations

import io
import zipfile

import pytest

from catalog import services
from tests.support import bad_images as bad
from tests.support.archives import zip_bytes


def test_zip_limits_on_member_count_and_total_size(settings, tmp_path):
    many = zip_bytes({f"p{i}.jpg": bad.jpeg() for i in range(5)})
    settings.SHOP_IMPORT_ZIP_MAX_MEMBERS = 4
    with pytest.raises(services.ImportFileError, match="at most 4"):
        services.import_zip_members_check(zipfile.ZipFile(io.BytesIO(many)))
    settings.SHOP_IMPORT_ZIP_MAX_MEMBERS = 100
    settings.SHOP_IMPORT_ZIP_MAX_BYTES = len(bad.jpeg()) * 3
    with pytest.raises(services.ImportFileError, match="zip bomb or is too large"):
        services.import_zip_members_check(zipfile.ZipFile(io.BytesIO(many)))
    settings.SHOP_IMPORT_ZIP_MAX_BYTES = 10 * 1024**2
    (tmp_path / "ok.zip").write_bytes(zip_bytes({"a/b.jpg": bad.jpeg()}))
    assert services.import_zip_extract(tmp_path / "ok.zip", tmp_path / "out") == len(bad.jpeg())
    assert (tmp_path / "out" / "a" / "b.jpg").read_bytes() == bad.jpeg()
