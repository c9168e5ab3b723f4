"""Small catalogs the search, storefront, API and browser tests share, built the way a shop builds
one: a catalog CSV and its photos imported by the real import service, every photo processed by the
real pipeline (inline, with the test models)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.support import bad_images as bad

# sku, title, category, colour, pattern, price, stock, design group, image colour
CatalogRow = tuple[str, str, str, str, str, str, str, str, tuple[int, int, int]]

SMALL_CATALOG: list[CatalogRow] = [
    ("R1", "Red cotton t-shirt", "Women > Tops", "Red", "Solid", "15", "S:2|M:0", "TEE1", (200, 30, 30)),
    ("B2", "Navy cotton t-shirt", "Women > Tops", "Blue", "Solid", "15", "S:0|M:0", "TEE1", (30, 40, 120)),
    ("K3", "Black cotton t-shirt", "Women > Tops", "Black", "Solid", "16", "M:2", "TEE1", (20, 20, 20)),
    ("K2", "Black striped t-shirt", "Women > Tops", "Black", "Striped", "18", "M:4", "", (40, 40, 40)),
    ("R2", "Red floral dress", "Women > Dresses", "Red", "Floral", "45", "M:1", "", (190, 40, 60)),
    ("G1", "Green summer dress", "Women > Dresses", "Green", "Solid", "35", "S:1", "", (40, 160, 60)),
    ("B1", "Blue denim jeans", "Men > Trousers", "Blue", "Denim", "60", "32:3", "", (40, 60, 150)),
    ("K1", "Black leather jacket", "Men > Jackets", "Black", "Solid", "150", "L:1", "", (25, 25, 30)),
]

# two products out of stock (TEE-RED, JACKET-BLACK), one design in three colours (TEE1), TEE-NAVY sold
# out in M only
STOREFRONT_CATALOG: list[CatalogRow] = [
    ("TEE-RED", "Red cotton t-shirt", "Women > Tops", "Red", "Solid", "15", "S:0|M:0", "TEE1", (200, 30, 30)),
    ("TEE-NAVY", "Navy cotton t-shirt", "Women > Tops", "Blue", "Solid", "15", "S:3|M:0", "TEE1", (30, 40, 120)),
    ("TEE-BLACK", "Black cotton t-shirt", "Women > Tops", "Black", "Solid", "16", "M:2", "TEE1", (20, 20, 20)),
    ("TEE-STRIPE", "Black striped t-shirt", "Women > Tops", "Black", "Striped", "18", "M:4", "", (40, 40, 40)),
    ("DRESS-RED", "Red floral dress", "Women > Dresses", "Red", "Floral", "45", "M:1", "", (190, 40, 60)),
    ("DRESS-GREEN", "Green summer dress", "Women > Dresses", "Green", "Solid", "35", "S:1", "", (40, 160, 60)),
    ("JEANS-BLUE", "Blue denim jeans", "Men > Trousers", "Blue", "Denim", "60", "32:3", "", (40, 60, 150)),
    ("JACKET-BLACK", "Black leather jacket", "Men > Jackets", "Black", "Solid", "150", "L:0", "", (25, 25, 30)),
]


def catalog_import_processed(
    folder: Path, rows: Sequence[CatalogRow], image_size: tuple[int, int] = (120, 180)
) -> dict[str, int]:
    """Write ``rows`` as a catalog CSV with one photo each into ``folder``, import it and process every
    photo inline (the Celery pipeline is off meanwhile); sku → product id. Needs database access."""
    from catalog import selectors
    from catalog.services import catalog_import_csv
    from search.services import search_caches_reset
    from workers.services import image_pipeline_run

    lines = ["sku,title,description,category,colour,pattern,price,stock,group,images"]
    for sku, title, category, colour, pattern, price, stock, group, rgb in rows:
        (folder / f"{sku}.jpg").write_bytes(bad.jpeg(image_size, rgb))
        description = f"{title} in {colour.lower()}, {pattern.lower()}"
        lines.append(f'{sku},{title},"{description}",{category},{colour},{pattern},{price},{stock},{group},{sku}.jpg')
    (folder / "catalog.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    previous = settings.SHOP_PIPELINE
    settings.SHOP_PIPELINE = "off"
    try:
        report = catalog_import_csv(folder / "catalog.csv", folder)
        assert not report.problems, report.problems
        for image_id in selectors.images_with_status("pending").values_list("pk", flat=True):
            assert image_pipeline_run(image_id) == "ready"
    finally:
        settings.SHOP_PIPELINE = previous
    search_caches_reset()
    return {sku: pid for pid, sku in selectors.product_skus_by_id().items()}


@contextlib.contextmanager
def module_catalog(
    django_db_blocker: Any, folder: Path, rows: Sequence[CatalogRow], *, pipeline_off: bool = True
) -> Iterator[dict[str, int]]:
    """A catalog for a whole test module: built once (photos under ``folder/media``, which stays
    MEDIA_ROOT for the module; the Celery pipeline stays off unless ``pipeline_off`` is false), the
    database flushed and the settings restored afterwards. Yields sku → product id."""
    from django.core.management import call_command

    from search.services import search_caches_reset

    previous = (settings.SHOP_PIPELINE, settings.MEDIA_ROOT)
    settings.MEDIA_ROOT = folder / "media"
    try:
        with django_db_blocker.unblock():
            ids = catalog_import_processed(folder, rows)
        if pipeline_off:
            settings.SHOP_PIPELINE = "off"
        yield ids
    finally:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)
        settings.SHOP_PIPELINE, settings.MEDIA_ROOT = previous
        search_caches_reset()
