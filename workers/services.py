"""The image pipeline: what the Celery tasks run. Catalog data is changed only through
``catalog.services`` and read through ``catalog.selectors``.

Stages today: ``validate`` (the file decodes as an image; its size is recorded). The garment
parser, vectors, attributes and near-duplicate stages arrive with the pipeline issue (#4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from django.db import transaction
from PIL import Image, UnidentifiedImageError

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services

logger = logging.getLogger(__name__)


class BadImageError(ValueError):
    """The image itself is unusable; retrying cannot help."""


def image_processing_enqueue(image_ids: Sequence[int]) -> None:
    """Queue processing for these images once the current transaction commits."""
    from workers.tasks import image_process

    ids = list(image_ids)

    def send() -> None:
        for image_id in ids:
            try:
                image_process.delay(image_id)
            except Exception:  # broker down: the image stays pending and the sweep re-sends it
                logger.warning("could not enqueue image %s; it stays pending for the sweep", image_id, exc_info=True)

    transaction.on_commit(send)


def stage_validate(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"the file is not a readable image ({exc.__class__.__name__}: {exc})") from exc
    return width, height


def image_pipeline_run(image_id: int) -> str:
    """Run every stage for one image. Idempotent: running it again redoes the same writes."""
    image = catalog_selectors.image_get(image_id)
    if image is None:
        logger.info("image %s no longer exists; nothing to do", image_id)
        return "missing"
    timings: dict[str, float] = {}
    catalog_services.image_mark_processing(image_id, "validate")
    started = time.perf_counter()
    try:
        width, height = stage_validate(image.file.path)
    except BadImageError as exc:
        timings["validate"] = round(time.perf_counter() - started, 4)
        catalog_services.image_mark_failed(image_id, stage="validate", reason=str(exc), timings=timings)
        logger.info("image %s failed validation: %s", image_id, exc)
        return "failed"
    timings["validate"] = round(time.perf_counter() - started, 4)
    catalog_services.image_mark_ready(image_id, timings=timings, width=width, height=height)
    return "ready"
