"""The image pipeline: what the Celery tasks run. Catalog data is changed only through
``catalog.services`` and read through ``catalog.selectors``; models come from ``vision``.

Stages per image (the one running is on the row for staff to see; each is timed into
``stage_timings``):

1. ``validate`` – the stored bytes are decoded whole (:func:`catalog.image_checks.image_decode`):
   real type, limits, EXIF orientation, first frame of an animation, 8-bit RGB.
2. ``parse`` – the garment parser finds the garments (label, box); the product's item mask is the
   union of the garments (clothing, footwear, bag, accessory — never skin, hair or background);
   the cutout is an RGBA PNG cropped to it.
3. ``embed`` – image vectors of the cutout and of the full photo in the active embedding space.
4. ``attributes`` – category, colour and pattern predicted from the cutout, with confidences.
5. ``duplicates`` – the near-duplicate signature (pHash, ImageNet embedding, garment colour),
   checked against the nearest catalog photos; the oldest match is recorded as ``duplicate_of``.
6. ``product`` – the product's image vector (mean of its images) and, when its text changed,
   its text vector.

Delivery: a task *claims* its image first (:func:`catalog.services.image_claim`), so a message
delivered twice does nothing the second time, a redelivered one (worker killed) takes over, and an
image that has started ``SHOP_MAX_ATTEMPTS`` times without finishing is set aside as failed
(a poison image that kills its worker). Model work never runs inside a database transaction:
everything is computed first, then written in one transaction, replacing (never adding to) the
image's cutout, mask and vectors.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.image_checks import ImageRejected, image_decode
from catalog.models import EmbeddingSpace, Product

logger = logging.getLogger(__name__)


class ModelFailure(RuntimeError):
    """A model crashed on this image: retrying the same bytes cannot help."""

    def __init__(self, stage: str, exc: BaseException) -> None:
        super().__init__(f"the {stage} step crashed on this image ({exc.__class__.__name__}: {exc})")
        self.stage = stage


def lease_seconds() -> int:
    """How long a claim holds before another worker may take the image over (a dead worker's)."""
    return int(settings.CELERY_TASK_TIME_LIMIT) + 60


def _send(image_ids: Sequence[int]) -> int:
    """Hand tasks to the broker; stop at the first failure (broker down: the rest stay pending for
    the sweep rather than each waiting out a connection timeout). Returns how many were sent."""
    from workers.tasks import image_process

    sent: list[int] = []
    try:
        for image_id in image_ids:
            image_process.delay(image_id)
            sent.append(image_id)
    except Exception as exc:  # kombu raises OperationalError and friends when Redis is unreachable
        logger.warning(
            "could not reach the broker (%s); %d image(s) stay pending until the sweep sends them",
            exc.__class__.__name__,
            len(image_ids) - len(sent),
        )
    if sent:
        catalog_services.images_mark_enqueued(sent)
    return len(sent)


def image_processing_enqueue(image_ids: Sequence[int]) -> None:
    """Queue processing for these images once the current transaction commits
    (``SHOP_PIPELINE=off`` leaves them pending, e.g. for the evaluation command)."""
    if settings.SHOP_PIPELINE == "off":
        return
    ids = list(image_ids)
    transaction.on_commit(lambda: _send(ids))


def product_images_upload(
    files: Sequence[tuple[str, bytes, str]], *, product: Product | None = None
) -> list[catalog_services.UploadResult]:
    """Store uploaded photos (:func:`catalog.services.product_images_upload`: each file alone, onto
    ``product`` or as new products) and queue the new ones for processing."""
    results = catalog_services.product_images_upload(files, product=product)
    image_processing_enqueue([r.image_id for r in results if r.created and r.image_id])
    return results


def images_reprocess_enqueue(image_ids: Sequence[int]) -> int:
    """Reset these images to pending and hand them to the workers now. Returns how many the broker took."""
    ids = list(image_ids)
    catalog_services.images_reset_for_reprocess(ids)
    return _send(ids)


def product_text_run(product_id: int) -> bool:
    """Embed the product's text if it changed since its last text vector. Idempotent."""
    return product_text_refresh(product_id)


@dataclass
class SweepReport:
    pending: int = 0
    stuck: int = 0
    sent: int = 0
    texts: int = 0
    backfill: int = 0  # images sent to fill a new embedder's space
    redone: int = 0  # images sent to the active parser because another one made them


def images_sweep() -> SweepReport:
    """Send again what the broker never got (Redis was down at upload time) or lost, and what a dead
    worker left in ``processing`` past its lease; then the model lifecycle's share (see
    :func:`models_sweep`). Safe to run any time: claims make extra messages harmless."""
    # A pending image was never claimed, so sending it again can never process it twice (the claim
    # decides); after a lease's time its message is taken for lost (a worker killed holding it, found by
    # bench.soak), rather than waiting out the broker's longer visibility timeout (15 min).
    pending, stuck = catalog_selectors.images_to_sweep(resend_after_s=lease_seconds(), lease_s=lease_seconds())
    report = SweepReport(pending=len(pending), stuck=len(stuck))
    if pending or stuck:
        report.sent = _send(pending + stuck)
        logger.info("sweep: %d pending and %d stuck image(s); %d sent", report.pending, report.stuck, report.sent)
    space = catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
    if space is not None:
        from workers.tasks import product_text_embed

        missing = catalog_selectors.products_without_vector(space, "text")
        try:
            for product_id in missing:
                product_text_embed.delay(product_id)
                report.texts += 1
        except Exception as exc:
            logger.warning("sweep: could not queue text embedding (%s)", exc)
        if report.texts:
            logger.info("sweep: %d product text(s) without a vector sent", report.texts)
    try:
        models_sweep(report)
    except Exception:  # the image sweep above must never fail because of the model lifecycle
        logger.exception("sweep: the model lifecycle step failed")
    return report


def models_sweep(report: SweepReport | None = None) -> SweepReport:
    """The model lifecycle's periodic work, driven from here because it sends image tasks:

    * builds whose worker died are resumed; a kind still served by a fallback starts building;
    * while a new embedder fills its space, the images it lacks are embedded into it (new uploads
      are written to both spaces by the pipeline) and search switches once it covers everything;
    * images another parser made — the fallback's first — are processed again with the active one;
    * the space of an embedder that no longer serves is dropped once its rollback window has passed."""
    from lifecycle import selectors as lifecycle_selectors
    from lifecycle import services as lifecycle_services
    from lifecycle.models import ModelKind

    report = report or SweepReport()
    lifecycle_services.builds_resume()
    lifecycle_services.builds_auto_request()
    filling = lifecycle_selectors.version_filling()
    if filling is not None:
        space = catalog_selectors.embedding_space_get(filling.version)
        if space is not None:
            from workers.tasks import image_backfill, product_text_embed

            ids = catalog_selectors.images_missing_space(space, settings.SHOP_REDO_BATCH)
            texts = catalog_selectors.products_without_vector(space, "text", settings.SHOP_REDO_BATCH)
            try:
                for image_id in ids:
                    image_backfill.delay(image_id)
                for product_id in texts:
                    product_text_embed.delay(product_id)
                report.backfill = len(ids)
            except Exception as exc:
                logger.warning("sweep: could not queue the new space's backfill (%s)", exc)
            if ids:
                logger.info("sweep: %d image(s) sent to fill space %s", len(ids), space.name)
            lifecycle_services.embedder_switch_if_covered()
    lifecycle_services.spaces_drop_retired()
    parser = lifecycle_selectors.version_active(ModelKind.PARSER)
    if parser is not None and not parser.fallback:
        redo = catalog_selectors.images_made_by_other_parser(parser.version, settings.SHOP_REDO_BATCH)
        if redo:
            report.redone = images_reprocess_enqueue(redo)
            logger.info("sweep: %d image(s) made by another parser sent to parser %s", len(redo), parser.version)
    return report


def image_backfill_run(image_id: int) -> str:
    """Embed a processed image into the filling embedder's space (its stored cutout and photo; the
    parser's work is not redone) and keep the new heads' predictions aside until the switch. Idempotent."""
    from lifecycle import selectors as lifecycle_selectors
    from lifecycle.serving import embedder_for_space

    filling = lifecycle_selectors.version_filling()
    space = catalog_selectors.embedding_space_get(filling.version) if filling else None
    image = catalog_selectors.image_get(image_id)
    if space is None or image is None or image.status != "ready":
        return "nothing to do"
    if not image.cutout:
        images_reprocess_enqueue([image_id])
        return "reprocess"
    photo = load_image(image.file.path)
    with Image.open(image.cutout.path) as stored:
        cut = stored.copy()
    written, _ = embed_image(embedder_for_space(space), space, cut, photo)
    with transaction.atomic():
        catalog_services.image_vector_upsert(image_id, space, "cutout", written.cutout_vector.tolist())
        catalog_services.image_vector_upsert(image_id, space, "full", written.full_vector.tolist())
        catalog_services.image_store_predictions_next(image_id, written.predicted)
        catalog_services.product_refresh_image_vector(image.product_id, space)
        product_text_refresh(image.product_id, [space], mark=False)
    return "filled"


def models_preload() -> None:
    """Load the models once per worker process, before its first task: those the registry serves and
    the near-duplicate signature's ImageNet embedding."""
    from lifecycle.serving import serving_preload
    from vision.duplicates import embedding_model

    serving_preload()
    try:
        embedding_model()
    except Exception:
        logger.exception("duplicate-signature model not preloaded; the first task loads it")


def load_image(path: str) -> Image.Image:
    """Decode, check and normalise (see :func:`catalog.image_checks.image_decode`)."""
    return image_decode(path)


@dataclass
class SpaceOutputs:
    """What one embedder computed for an image: its vectors and its attribute heads' predictions."""

    space: EmbeddingSpace
    cutout_vector: np.ndarray
    full_vector: np.ndarray
    predicted: dict[str, dict[str, object]]


@dataclass
class ImageOutputs:
    width: int
    height: int
    cutout: Image.Image
    mask: np.ndarray
    garments: list[dict[str, object]]
    spaces: list[SpaceOutputs]  # the active space first, then a filling one
    parser_version: str = ""
    signature: dict[str, Any] = field(default_factory=dict)
    duplicate_of: int | None = None
    duplicate_reason: str = ""
    keypoints: Any = None  # vision.duplicates.Keypoints of the photo, for the duplicate check


def item_mask(image: Image.Image) -> tuple[np.ndarray, list[dict[str, object]], str]:
    """The product's item mask (all garments/items the parser finds), the garment list and the version
    of the parser that made them — the registry's active parser, or the fallback parser (u2netp minus
    PAN's skin and hair: one class-less item) while the shop has no trained one."""
    from lifecycle.serving import parser_serving

    parser, row = parser_serving()
    result = parser.parse(image)
    garments = [
        {"label": g.label, "box": list(g.box), "score": round(float(g.score), 4), "area": int(g.area)}
        for g in result.garments
    ]
    if row.fallback:
        for garment in garments:
            garment["note"] = "fallback parser"
    return result.item_mask(), garments, row.version


def fault_injected(content_hash: str) -> None:
    """Operational fault injection, off unless ``SHOP_FAULT_INJECTION`` is set (the fault tests and
    chaos drills use it): ``raise:<sha256 prefix>`` makes the parse stage raise for that image as a
    crashing model would; ``exit:<sha256 prefix>`` ends the worker process abruptly, as a segfault or
    the kernel's OOM killer would."""
    for rule in filter(None, settings.SHOP_FAULT_INJECTION.split(",")):
        action, _, prefix = rule.partition(":")
        if prefix and content_hash.startswith(prefix):
            if action == "raise":
                raise RuntimeError("injected fault: the parser crashed")
            if action == "exit":
                logger.error("injected fault: the worker process dies on image %s", content_hash[:12])
                os._exit(139)


def compute_outputs(
    path: str,
    timings: dict[str, float],
    on_stage: Callable[[str], None] = lambda stage: None,
    content_hash: str = "",
) -> ImageOutputs:
    """All model work for one image, outside any transaction. Raises :class:`ImageRejected` for bad
    input and :class:`ModelFailure` when a model crashes on it."""
    from lifecycle.serving import embedders_writing
    from vision.parser import cutout

    started = time.perf_counter()
    image = load_image(path)
    timings["validate"] = round(time.perf_counter() - started, 4)

    stage = "parse"
    try:
        on_stage(stage)
        started = time.perf_counter()
        fault_injected(content_hash)
        mask, garments, parser_version = item_mask(image)
        if mask.sum() < 0.002 * mask.size:  # nothing found: keep the whole photo rather than fail
            mask = np.ones_like(mask, dtype=bool)
            garments = []
        cut = cutout(image, mask)
        timings["parse"] = round(time.perf_counter() - started, 4)

        stage = "embed"
        on_stage(stage)
        started = time.perf_counter()
        writing = embedders_writing()
        spaces, attribute_seconds = [], 0.0
        for target in writing:
            space_outputs, seconds = embed_image(target.embedder, target.space, cut, image)
            spaces.append(space_outputs)
            attribute_seconds += seconds
        timings["embed"] = round(time.perf_counter() - started - attribute_seconds, 4)
        stage = "attributes"
        on_stage(stage)
        timings["attributes"] = round(attribute_seconds, 4)

        stage = "duplicates"
        on_stage(stage)
        started = time.perf_counter()
        from vision.duplicates import signature_of

        signature_full = signature_of(image)
        signature = signature_full.to_json()
        timings["duplicates"] = round(time.perf_counter() - started, 4)
    except (ImageRejected, MemoryError):
        raise
    except Exception as exc:
        if _is_transient(exc):
            raise
        raise ModelFailure(stage, exc) from exc
    return ImageOutputs(
        width=image.width,
        height=image.height,
        cutout=cut,
        mask=mask,
        garments=garments,
        spaces=spaces,
        parser_version=parser_version,
        signature=signature,
        keypoints=signature_full.keypoints,
    )


def embed_image(emb: Any, space: EmbeddingSpace, cut: Image.Image, image: Image.Image) -> tuple[SpaceOutputs, float]:
    """One embedder's vectors of the cutout and the whole photo and its attribute predictions (and the
    seconds the attribute heads took)."""
    from vision.clip import encode_with_trunk
    from vision.colour import colour_descriptor

    trunk, vectors = encode_with_trunk(emb.model, emb.preprocess, [cut, image])
    if not np.isfinite(vectors).all():
        raise FloatingPointError("the embedder returned NaN or infinite values")
    started = time.perf_counter()
    predicted = predict_attributes(trunk[:1], colour_descriptor(cut)[None], trunk[1:], emb=emb)[0]
    return SpaceOutputs(space, vectors[0], vectors[1], predicted), time.perf_counter() - started


def _keypoints_from_file(path: str) -> Any:
    from vision.duplicates import keypoints_of

    return keypoints_of(image_decode(path))


def _is_transient(exc: BaseException) -> bool:
    from celery.exceptions import SoftTimeLimitExceeded
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError, ConnectionError, SoftTimeLimitExceeded))


def duplicate_find(image_id: int, outputs: ImageOutputs, space: EmbeddingSpace) -> tuple[int | None, str]:
    """The oldest other catalog photo this one duplicates (by the rule in :mod:`vision.duplicates`),
    among its nearest neighbours by full-photo vector."""
    from vision.duplicates import ImageSignature, is_duplicate

    neighbours = catalog_selectors.vector_nearest(
        table="image", space=space, kind="full", query=outputs.spaces[0].full_vector.tolist(), k=12, using="default"
    )
    ids = [n.owner_id for n in neighbours if n.owner_id != image_id]
    mine = ImageSignature.from_json(outputs.signature)
    mine.keypoints = outputs.keypoints
    matches: list[tuple[int, str]] = []
    for other_id, (data, path) in catalog_selectors.image_signatures(ids).items():
        if not data:
            continue
        theirs = ImageSignature.from_json(data)
        theirs.keypoints = functools.partial(_keypoints_from_file, path)
        same, reason = is_duplicate(mine, theirs)
        if same:
            matches.append((other_id, reason))
    if not matches:
        return None, ""
    return min(matches)


_heads_cache: dict[str, object] = {}


def predict_attributes(
    trunk: np.ndarray, colour: np.ndarray, whole: np.ndarray | None = None, emb: Any = None
) -> list[dict[str, dict[str, object]]]:
    """An embedder's attribute predictions (default: the newest checkpoint, as the evaluation loads it)
    for cutouts (trunk features, colour descriptors) and their whole photos' trunk features; none for a
    hub model or the untrained bootstrap embedder, which have no attribute heads."""
    from pathlib import Path

    from vision.attributes import HEADS_NAME, AttributeHeads
    from vision.clip import embedder

    emb = emb or embedder()
    folder = emb.name.removeprefix("local-dir:")
    if trunk.shape[1] == 0 or not emb.name.startswith("local-dir:") or not (Path(folder) / HEADS_NAME).is_file():
        return [{} for _ in range(len(trunk))]
    heads = _heads_cache.get(folder)
    if heads is None:
        heads = AttributeHeads.load(Path(folder))
        _heads_cache[folder] = heads
    preds = heads.predict(trunk, colour, whole)  # type: ignore[attr-defined]
    return [{k: {"value": v.value, "confidence": v.confidence} for k, v in p.items()} for p in preds]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def products_text_embed(
    products: Sequence[Product], targets: Sequence[tuple[EmbeddingSpace, Any]], *, mark: bool
) -> bool:
    """Embed the texts of ``products`` into each (space, embedder) of ``targets`` where a product's
    text changed since it was last embedded or the space has no text vector of it yet, one model call
    per space; ``mark`` records the texts as embedded. Returns whether any vector was written."""
    digests = {p.pk: catalog_services.product_text_hash(p) for p in products}
    changed = {p.pk for p in products if p.text_hash != digests[p.pk]}
    wrote = False
    for space, embedder in targets:
        have = catalog_selectors.product_ids_with_vector([p.pk for p in products], space, "text")
        todo = [p for p in products if p.pk in changed or p.pk not in have]
        if not todo:
            continue
        vectors = embedder.encode_texts([catalog_services.product_text_for_embedding(p) for p in todo])
        for product, vector in zip(todo, vectors, strict=True):
            catalog_services.product_vector_upsert(product.pk, space, "text", vector.tolist())
        wrote = True
    if mark:
        for pk in changed:
            catalog_services.product_mark_text_embedded(pk, digests[pk])
    return wrote


def product_text_refresh(product_id: int, spaces: Sequence[EmbeddingSpace] | None = None, *, mark: bool = True) -> bool:
    """Embed the product's text where it changed since the last time or has no vector yet, in
    ``spaces`` (default: every space the pipeline writes); ``mark`` records the text as embedded (not
    when filling one new space alone). Idempotent."""
    from lifecycle.serving import embedder_for_space, embedders_writing

    product = catalog_selectors.product_get_by_id(product_id)
    if product is None:
        return False
    if spaces is None:
        targets = [(w.space, w.embedder) for w in embedders_writing()]
    else:
        targets = [(space, embedder_for_space(space)) for space in spaces]
    return products_text_embed([product], targets, mark=mark)


def products_text_refresh(batch: int = 64) -> int:
    """Compute the text vectors of products whose text changed since the last time (the dirty flag
    the database sets on any write of their title, description, colour, pattern, category or
    attributes — admin, API, import or SQL alike), in batches, for every space the pipeline writes.
    A product whose text is back to what was last embedded costs a hash, not a model call. Run by
    the periodic ``products_text_refresh`` task; safe to run any time and in parallel (rows taken
    by one run are skipped by another). Returns how many products were looked at."""
    from lifecycle.serving import embedders_writing

    if not catalog_selectors.products_search_dirty_exist():
        return 0  # the usual case: one index lookup, no model touched
    writers = embedders_writing()
    if not writers:
        return 0  # nothing can embed yet: the products stay dirty until an embedder serves
    seen = 0
    while True:
        # The rows stay locked while their texts are embedded (a batch takes well under a second):
        # a worker that dies here rolls back and leaves them dirty for the next run.
        with transaction.atomic():
            products = catalog_services.products_search_claim(batch)
            if not products:
                break
            seen += len(products)
            products_text_embed(products, [(w.space, w.embedder) for w in writers], mark=True)
    if seen:
        logger.info("text refresh: %d product(s) whose text changed looked at", seen)
    return seen


def image_mark_timed_out(image_id: int) -> str:
    """The task ran past its soft time limit: the image fails with that reason (no retry)."""
    catalog_services.image_mark_failed(
        image_id,
        stage="timeout",
        reason=f"processing took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped",
    )
    return "failed"


def image_pipeline_run(image_id: int, token: str = "") -> str:
    """Run every stage for one image. Idempotent and safe to deliver twice (see the module notes).
    Returns "ready", "failed", "missing", "done" (nothing to do) or "busy" (another worker has it)."""
    claim = catalog_services.image_claim(image_id, token=token or f"local-{image_id}", lease_seconds=lease_seconds())
    if claim.outcome != "claimed":
        logger.info("image %s: %s, nothing to do", image_id, claim.outcome)
        return claim.outcome
    if claim.attempts > settings.SHOP_MAX_ATTEMPTS:
        reason = (
            f"processing started {claim.attempts - 1} times and never finished (the worker stopped each time); "
            "the image was set aside — check the worker log, replace the photo or run `manage.py reprocess --sku`"
        )
        catalog_services.image_mark_failed(image_id, stage="parse", reason=reason)
        logger.error("image %s set aside after %d unfinished attempts", image_id, claim.attempts - 1)
        return "failed"
    image = catalog_selectors.image_get(image_id)
    if image is None:
        return "missing"
    timings: dict[str, float] = {}
    try:
        outputs = compute_outputs(
            image.file.path,
            timings,
            on_stage=lambda stage: catalog_services.image_set_stage(image_id, stage),
            content_hash=image.content_hash,
        )
    except ImageRejected as exc:
        catalog_services.image_mark_failed(image_id, stage="validate", reason=str(exc), timings=timings)
        logger.info("image %s refused: %s", image_id, exc)
        return "failed"
    except ModelFailure as exc:
        catalog_services.image_mark_failed(image_id, stage=exc.stage, reason=str(exc), timings=timings)
        logger.warning("image %s: %s", image_id, exc, exc_info=exc.__cause__)
        return "failed"
    catalog_services.image_set_stage(image_id, "product")
    started = time.perf_counter()
    space = outputs.spaces[0].space
    outputs.duplicate_of, outputs.duplicate_reason = duplicate_find(image_id, outputs, space)
    mask_image = Image.fromarray((outputs.mask * 255).astype(np.uint8))
    with transaction.atomic():
        catalog_services.image_store_outputs(
            image_id,
            cutout_png=png_bytes(outputs.cutout),
            mask_png=png_bytes(mask_image),
            garments=outputs.garments,
            predicted=outputs.spaces[0].predicted,
            predicted_next=outputs.spaces[1].predicted if len(outputs.spaces) > 1 else None,
            signature=outputs.signature,
            parser_version=outputs.parser_version,
        )
        catalog_services.image_set_duplicate(image_id, outputs.duplicate_of)
        for written in outputs.spaces:  # the active space, and a new embedder's while it fills
            catalog_services.image_vector_upsert(image_id, written.space, "cutout", written.cutout_vector.tolist())
            catalog_services.image_vector_upsert(image_id, written.space, "full", written.full_vector.tolist())
            catalog_services.product_refresh_image_vector(image.product_id, written.space)
        product_text_refresh(image.product_id, [written.space for written in outputs.spaces])
        timings["product"] = round(time.perf_counter() - started, 4)
        catalog_services.image_mark_ready(image_id, timings=timings, width=outputs.width, height=outputs.height)
    if outputs.duplicate_of:
        logger.info("image %s duplicates image %s: %s", image_id, outputs.duplicate_of, outputs.duplicate_reason)
    return "ready"


def import_job_enqueue(job_id: int) -> None:
    """Queue a staff bulk import job once the current transaction commits (a broker that is down
    leaves it pending; the import page offers to start it again)."""

    def send() -> None:
        from workers.tasks import catalog_import_job

        try:
            catalog_import_job.delay(job_id)
        except Exception as exc:  # kombu raises OperationalError and friends when Redis is unreachable
            logger.warning("could not queue import job %s (%s); it stays pending", job_id, exc.__class__.__name__)

    transaction.on_commit(send)


def import_job_run(job_id: int) -> str:
    """A staff bulk import; each row's new images are queued for processing as the row commits."""
    return catalog_services.import_job_run(job_id, on_images=image_processing_enqueue)
