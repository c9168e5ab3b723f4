"""Writes of embedding spaces (with their HNSW indexes) and vectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import connection, models, transaction

from catalog.models import (
    VECTOR_TABLES,
    EmbeddingSpace,
    ImageVector,
    Product,
    ProductImage,
    ProductVector,
    hnsw_index_name,
)

logger = logging.getLogger(__name__)


def embedding_space_ensure(
    *, name: str, model_name: str, dim: int, modality: str, model_version: str = "", activate: bool = False
) -> EmbeddingSpace:
    """Register a vector space and make sure each of its (table, kind) pairs has a partial HNSW
    index (cosine) on ``vector::halfvec(dim)``: the rows keep full precision, the index holds half
    precision (half the size and build time; recall and the evaluation figures measured the same,
    docs/search.md). Idempotent: an index of another form (a full-precision one made by an earlier
    version) is replaced. A space's dimension never changes: a new model with another dimension is a
    new space."""
    if dim <= 0 or dim > 2000:
        raise ValueError(f"dimension {dim} is outside 1..2000, the range an HNSW index supports")
    with transaction.atomic():
        space, created = EmbeddingSpace.objects.get_or_create(
            name=name,
            defaults={"model_name": model_name, "model_version": model_version, "dim": dim, "modality": modality},
        )
        if not created and space.dim != dim:
            raise ValueError(f"space {name!r} already holds {space.dim}-d vectors; register a new name for {dim}-d")
        if activate:
            EmbeddingSpace.objects.filter(modality=space.modality).exclude(pk=space.pk).update(is_active=False)
            if not space.is_active:
                space.is_active = True
                space.save(update_fields=["is_active"])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE %s", [f"%vec_hnsw_s{space.pk}_%"]
            )
            existing = dict(cursor.fetchall())
            for table, (model, kinds) in VECTOR_TABLES.items():
                db_table = model._meta.db_table
                for kind in kinds:
                    name = hnsw_index_name(table, space, kind)
                    if name in existing:
                        if f"halfvec({int(dim)})) halfvec_cosine_ops" in existing[name]:
                            continue
                        # full precision (an earlier version), or left by an earlier space with this id
                        # (a flushed database): replaced
                        cursor.execute(f"DROP INDEX {name}")
                    cursor.execute(
                        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(table, space, kind)} ON {db_table} "
                        f"USING hnsw ((vector::halfvec({int(dim)})) halfvec_cosine_ops) "
                        f"WITH (m = 16, ef_construction = 64) "
                        f"WHERE space_id = %s AND kind = %s",
                        [space.pk, kind],
                    )
    return space


def embedding_space_activate(space: EmbeddingSpace, *, take_predictions: bool = False) -> None:
    """Make ``space`` the one search reads, in one transaction with anything the caller does
    (``take_predictions``: the images' attribute predictions of the space's model, stored aside while it
    filled, replace the previous model's)."""
    with transaction.atomic():
        EmbeddingSpace.objects.filter(modality=space.modality).exclude(pk=space.pk).update(is_active=False)
        EmbeddingSpace.objects.filter(pk=space.pk).update(is_active=True)
        if take_predictions:
            ProductImage.objects.exclude(predicted_next={}).update(
                predicted=models.F("predicted_next"), predicted_next={}
            )


def embedding_space_drop(space: EmbeddingSpace, *, batch: int = 5000) -> int:
    """Delete an inactive space: its HNSW indexes first (``DROP INDEX CONCURRENTLY``, which never blocks
    the writes of the other spaces' vectors), then its vectors in batches, then the space itself. Search
    never reads an inactive space, so nothing in flight notices. Safe to run again after a crash half-way.
    Returns the number of vectors deleted."""
    if connection.in_atomic_block:
        raise RuntimeError("embedding_space_drop runs outside a transaction (it drops indexes concurrently)")
    space.refresh_from_db()
    if space.is_active:
        raise ValueError(f"space {space.name!r} is the one search reads; activate another before dropping it")
    with connection.cursor() as cursor:
        for table, (_, kinds) in VECTOR_TABLES.items():
            for kind in kinds:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {hnsw_index_name(table, space, kind)}")
    deleted = 0
    for model in (ImageVector, ProductVector):
        while True:
            ids = list(model.objects.filter(space=space).values_list("pk", flat=True)[:batch])
            if not ids:
                break
            deleted += model.objects.filter(pk__in=ids).delete()[0]
    EmbeddingSpace.objects.filter(pk=space.pk, is_active=False).delete()
    logger.info("space %s dropped (%d vectors)", space.name, deleted)
    return deleted


def image_store_predictions_next(image_id: int, predicted: dict[str, dict[str, object]]) -> None:
    ProductImage.objects.filter(pk=image_id).update(predicted_next=predicted)


def _check_dim(space: EmbeddingSpace, vector: Sequence[float]) -> None:
    if len(vector) != space.dim:
        raise ValueError(f"vector has {len(vector)} dimensions, space {space.name!r} holds {space.dim}")


def image_vector_upsert(image_id: int, space: EmbeddingSpace, kind: str, vector: Sequence[float]) -> None:
    _check_dim(space, vector)
    ImageVector.objects.update_or_create(image_id=image_id, space=space, kind=kind, defaults={"vector": list(vector)})


def product_vector_upsert(product_id: int, space: EmbeddingSpace, kind: str, vector: Sequence[float]) -> None:
    _check_dim(space, vector)
    ProductVector.objects.update_or_create(
        product_id=product_id, space=space, kind=kind, defaults={"vector": list(vector)}
    )


def product_refresh_image_vector(product_id: int, space: EmbeddingSpace) -> bool:
    """The product's image vector = normalised mean of its images' cutout vectors (failed images
    left out; an image being reprocessed keeps counting with its previous vector until replaced)."""
    import numpy as np

    with transaction.atomic():
        # One writer per product at a time, so two of its images finishing together both count.
        Product.objects.select_for_update().filter(pk=product_id).values_list("pk", flat=True).first()
        rows = list(
            ImageVector.objects.filter(image__product_id=product_id, space=space, kind=ImageVector.Kind.CUTOUT)
            .exclude(image__status=ProductImage.Status.FAILED)
            .values_list("vector", flat=True)
        )
        if not rows:
            ProductVector.objects.filter(product_id=product_id, space=space, kind=ProductVector.Kind.IMAGE).delete()
            return False
        mean = np.mean([np.asarray(r, dtype=np.float32) for r in rows], axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        product_vector_upsert(product_id, space, ProductVector.Kind.IMAGE, mean.tolist())
        return True
