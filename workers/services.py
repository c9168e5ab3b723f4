"""The image pipeline: what the Celery tasks run. Catalog data is changed only through
``catalog.services`` and read through ``catalog.selectors``; models come from ``vision``.

Stages per image (each timed into ``stage_timings``):

1. ``validate`` – the file decodes as an image; its size is recorded.
2. ``parse`` – the garment parser finds the garments (label, box); the product's item mask is the
   union of the garments (clothing, footwear, bag, accessory — never skin, hair or background);
   the cutout is an RGBA PNG cropped to it.
3. ``embed`` – image vectors of the cutout and of the full photo in the active embedding space.
4. ``attributes`` – category, colour and pattern predicted from the cutout, with confidences.
5. ``product`` – the product's image vector (mean of its images) and, when its text changed,
   its text vector.

Model work never runs inside a database transaction: everything is computed first, then written.
"""

from __future__ import annotations

import functools
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image, ImageOps, UnidentifiedImageError

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.models import EmbeddingSpace

logger = logging.getLogger(__name__)


class BadImageError(ValueError):
    """The image itself is unusable; retrying cannot help."""


def image_processing_enqueue(image_ids: Sequence[int]) -> None:
    """Queue processing for these images once the current transaction commits
    (``SHOP_PIPELINE=off`` leaves them pending, e.g. for the evaluation command)."""
    if settings.SHOP_PIPELINE == "off":
        return
    from workers.tasks import image_process

    ids = list(image_ids)

    def send() -> None:
        for image_id in ids:
            try:
                image_process.delay(image_id)
            except Exception:  # broker down: the image stays pending and the sweep re-sends it
                logger.warning("could not enqueue image %s; it stays pending for the sweep", image_id, exc_info=True)

    transaction.on_commit(send)


def load_image(path: str) -> Image.Image:
    """Decode, check and normalise (EXIF orientation applied, RGB)."""
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            img.seek(0)
            image = ImageOps.exif_transpose(img)
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"the file is not a readable image ({exc.__class__.__name__}: {exc})") from exc
    return image


@dataclass
class ImageOutputs:
    width: int
    height: int
    cutout: Image.Image
    mask: np.ndarray
    garments: list[dict[str, object]]
    cutout_vector: np.ndarray
    full_vector: np.ndarray
    predicted: dict[str, dict[str, object]]


def item_mask(image: Image.Image) -> tuple[np.ndarray, list[dict[str, object]]]:
    """The product's item mask (all garments/items the parser finds) and the garment list.

    Without a trained parser checkpoint (a fresh machine before ``train_parser`` ran), the
    salient-object baseline (rembg ``u2netp``) cuts the item out instead and no garments are listed;
    the image's garments then say so."""
    from vision.assets import AssetMissing
    from vision.parser import garment_parser

    try:
        parser = garment_parser()
    except AssetMissing:
        logger.warning("no garment parser checkpoint: using the u2netp salient-object cut-out instead")
        return u2netp_fallback().garment_mask(image), [{"label": "item", "note": "u2netp fallback"}]
    result = parser.parse(image)
    garments = [
        {"label": g.label, "box": list(g.box), "score": round(float(g.score), 4), "area": int(g.area)}
        for g in result.garments
    ]
    mask = result.item_mask()
    return mask, garments


@functools.cache
def u2netp_fallback() -> Any:
    from vision.baselines import U2NetPBaseline

    return U2NetPBaseline()


def compute_outputs(path: str, timings: dict[str, float]) -> ImageOutputs:
    """All model work for one image, outside any transaction."""
    from vision.clip import embedder, encode_with_trunk
    from vision.parser import cutout

    started = time.perf_counter()
    image = load_image(path)
    timings["validate"] = round(time.perf_counter() - started, 4)

    started = time.perf_counter()
    mask, garments = item_mask(image)
    if mask.sum() < 0.002 * mask.size:  # nothing found: keep the whole photo rather than fail
        mask = np.ones_like(mask, dtype=bool)
        garments = []
    cut = cutout(image, mask)
    timings["parse"] = round(time.perf_counter() - started, 4)

    started = time.perf_counter()
    emb = embedder()
    trunk, vectors = encode_with_trunk(emb.model, emb.preprocess, [cut, image])
    timings["embed"] = round(time.perf_counter() - started, 4)

    started = time.perf_counter()
    from vision.colour import colour_histogram

    predicted = predict_attributes(trunk[:1], colour_histogram(cut)[None])[0]
    timings["attributes"] = round(time.perf_counter() - started, 4)
    return ImageOutputs(
        width=image.width,
        height=image.height,
        cutout=cut,
        mask=mask,
        garments=garments,
        cutout_vector=vectors[0],
        full_vector=vectors[1],
        predicted=predicted,
    )


_heads_cache: dict[str, object] = {}


def predict_attributes(trunk: np.ndarray, colour: np.ndarray) -> list[dict[str, dict[str, object]]]:
    from vision.attributes import AttributeHeads
    from vision.clip import embedder

    emb = embedder()
    folder = emb.name.removeprefix("local-dir:")
    if trunk.shape[1] == 0 or not emb.name.startswith("local-dir:"):
        return [{} for _ in range(len(trunk))]
    heads = _heads_cache.get(folder)
    if heads is None:
        from pathlib import Path

        heads = AttributeHeads.load(Path(folder))
        _heads_cache[folder] = heads
    preds = heads.predict(trunk, colour)  # type: ignore[attr-defined]
    return [{k: {"value": v.value, "confidence": v.confidence} for k, v in p.items()} for p in preds]


def active_space() -> EmbeddingSpace:
    from vision.clip import embedder

    emb = embedder()
    return catalog_services.embedding_space_ensure(
        name=emb.version,
        model_name=emb.name,
        dim=emb.dim,
        modality=EmbeddingSpace.Modality.IMAGE_TEXT,
        activate=True,
    )


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def product_text_refresh(product_id: int, space: EmbeddingSpace) -> bool:
    """Embed the product's text again when it changed since the last time (or has no vector)."""
    from vision.clip import embedder

    product = catalog_selectors.product_get_by_id(product_id)
    if product is None:
        return False
    digest = catalog_services.product_text_hash(product)
    has_vector = catalog_selectors.product_has_vector(product_id, space, "text")
    if product.text_hash == digest and has_vector:
        return False
    vector = embedder().encode_texts([catalog_services.product_text_for_embedding(product)])[0]
    catalog_services.product_vector_upsert(product_id, space, "text", vector.tolist())
    catalog_services.product_mark_text_embedded(product_id, digest)
    return True


def image_pipeline_run(image_id: int) -> str:
    """Run every stage for one image. Idempotent: running it again redoes the same writes."""
    image = catalog_selectors.image_get(image_id)
    if image is None:
        logger.info("image %s no longer exists; nothing to do", image_id)
        return "missing"
    timings: dict[str, float] = {}
    catalog_services.image_mark_processing(image_id, "parse")
    try:
        outputs = compute_outputs(image.file.path, timings)
    except BadImageError as exc:
        catalog_services.image_mark_failed(image_id, stage="validate", reason=str(exc), timings=timings)
        logger.info("image %s failed validation: %s", image_id, exc)
        return "failed"
    started = time.perf_counter()
    space = active_space()
    mask_image = Image.fromarray((outputs.mask * 255).astype(np.uint8))
    with transaction.atomic():
        catalog_services.image_store_outputs(
            image_id,
            cutout_png=png_bytes(outputs.cutout),
            mask_png=png_bytes(mask_image),
            garments=outputs.garments,
            predicted=outputs.predicted,
        )
        catalog_services.image_vector_upsert(image_id, space, "cutout", outputs.cutout_vector.tolist())
        catalog_services.image_vector_upsert(image_id, space, "full", outputs.full_vector.tolist())
        catalog_services.image_mark_ready(image_id, timings=timings, width=outputs.width, height=outputs.height)
    catalog_services.product_refresh_image_vector(image.product_id, space)
    product_text_refresh(image.product_id, space)
    timings["product"] = round(time.perf_counter() - started, 4)
    catalog_services.image_set_timings(image_id, timings)
    return "ready"
