"""Writes to the catalog. Other apps change catalog data only through these functions."""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from catalog.csv_format import CatalogFileError, ProductRow, RowProblem, read_catalog
from catalog.image_checks import image_check_upload
from catalog.models import (
    Category,
    EmbeddingSpace,
    ImageVector,
    ImportJob,
    Product,
    ProductImage,
    ProductVector,
    Variant,
)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"}
# The stored file's extension follows the sniffed type, never the uploaded name.
EXTENSION_OF_TYPE = {
    "jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "avif": ".avif",
}  # fmt: skip


# --- categories --------------------------------------------------------------------------------


def category_ensure_path(names: Sequence[str]) -> Category | None:
    """Return the category at ``names`` (root first), creating missing levels."""
    parent: Category | None = None
    path = ""
    for depth, name in enumerate(names):
        slug = slugify(name)[:120] or f"c{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        path = f"{path}/{slug}" if path else slug
        full_name = f"{parent.full_name} › {name}" if parent else name
        parent, _ = Category.objects.get_or_create(
            path=path,
            defaults={"name": name[:120], "slug": slug, "parent": parent, "depth": depth, "full_name": full_name[:600]},
        )
    return parent


# --- products ----------------------------------------------------------------------------------


@dataclass
class ProductInput:
    sku: str
    title: str
    price: Decimal
    description: str = ""
    currency: str = "EUR"
    colour: str = ""
    pattern: str = ""
    brand: str = ""
    category: Category | None = None
    design_group: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    is_active: bool = True


def product_upsert(data: ProductInput) -> tuple[Product, str]:
    """Create or update the product with ``data.sku``. Returns (product, "created"|"updated"|"unchanged")."""
    values = {
        "title": data.title,
        "description": data.description,
        "price": data.price,
        "currency": data.currency,
        "colour": data.colour,
        "pattern": data.pattern,
        "brand": data.brand,
        "category": data.category,
        "design_group": data.design_group,
        "attributes": data.attributes,
        "is_active": data.is_active,
    }
    product = Product.objects.select_for_update().filter(sku=data.sku).first()
    if product is None:
        product = Product.objects.create(sku=data.sku, **values)
        return product, "created"
    changed = [name for name, value in values.items() if getattr(product, name) != value]
    if not changed:
        return product, "unchanged"
    for name in changed:
        setattr(product, name, values[name])
    product.save(update_fields=[*changed, "updated_at"])
    return product, "updated"


def product_set_stock(product: Product, stock: dict[str, int]) -> bool:
    """Make the product's stock exactly ``stock`` (size → units). Sizes not named drop to 0
    (they are kept, not deleted). Returns whether anything changed."""
    changed = False
    existing = {v.size: v for v in product.variants.select_for_update()}
    for position, (size, units) in enumerate(stock.items()):
        variant = existing.pop(size, None)
        if variant is None:
            Variant.objects.create(product=product, size=size, stock=units, position=position)
            changed = True
        elif variant.stock != units or variant.position != position:
            variant.stock, variant.position = units, position
            variant.save(update_fields=["stock", "position"])
            changed = True
    for variant in existing.values():
        if variant.stock:
            variant.stock = 0
            variant.save(update_fields=["stock"])
            changed = True
    return changed


# --- images ------------------------------------------------------------------------------------


@contextmanager
def atomic_with_files() -> Iterator[None]:
    """``transaction.atomic()`` that also deletes the files stored inside it when it rolls back,
    so there is never a file without its row. Image writes must run inside it."""
    stored: list[str] = []
    token = _stored_files.set(stored)
    try:
        with transaction.atomic():
            yield
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    finally:
        _stored_files.reset(token)


_stored_files: ContextVar[list[str] | None] = ContextVar("stored_files", default=None)


def product_image_add(
    product: Product,
    content: bytes,
    *,
    source_name: str,
    role: str = ProductImage.Role.PRODUCT,
    position: int | None = None,
    content_type: str = "",
) -> tuple[ProductImage, bool]:
    """Store an image for ``product`` unless the same bytes are already there.

    The bytes are checked first (:func:`catalog.image_checks.image_check_upload`: real type, size,
    pixel limits); a refused file raises :class:`ImageRejected` and nothing is stored.
    Runs inside :func:`atomic_with_files`: the file is written first and removed again if the
    transaction rolls back, so there is never a file without a row or a row without its file.
    The caller queues its processing (``workers.services.image_processing_enqueue``, which sends
    when the transaction commits). Returns (image, created); ``created`` is
    False when this product already has these exact bytes (a duplicate upload).
    """
    stored_files = _stored_files.get()
    if stored_files is None:
        raise RuntimeError("product_image_add must run inside catalog.services.atomic_with_files()")
    info = image_check_upload(content, source_name, content_type)
    digest = hashlib.sha256(content).hexdigest()
    existing = ProductImage.objects.filter(product=product, content_hash=digest).first()
    if existing is not None:
        if position is not None and existing.position != position:
            existing.position = position
            existing.save(update_fields=["position", "updated_at"])
        return existing, False
    if position is None:
        position = product.images.count()
    name = f"products/{product.sku}/{digest[:16]}{EXTENSION_OF_TYPE[info.kind]}"
    stored = default_storage.save(name, ContentFile(content))
    stored_files.append(stored)
    image = ProductImage.objects.create(
        product=product,
        file=stored,
        position=position,
        role=role,
        content_hash=digest,
        source_name=source_name[:300],
        width=info.width,
        height=info.height,
    )
    return image, True


@dataclass(frozen=True)
class Claim:
    outcome: str  # "claimed", "missing", "done" (ready or failed already), "busy" (another live worker has it)
    attempts: int = 0


def image_claim(image_id: int, *, token: str, lease_seconds: int) -> Claim:
    """Take an image for processing, atomically. A pending image is taken; a processing one only
    by the same task (a redelivered or retried message) or when its holder's lease ran out (a
    worker that died). Ready and failed images are left alone, so a duplicate message does nothing."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=lease_seconds)
    taken = (
        ProductImage.objects.filter(pk=image_id)
        .filter(
            models.Q(status=ProductImage.Status.PENDING)
            | models.Q(status=ProductImage.Status.PROCESSING, claim_token=token)
            | models.Q(status=ProductImage.Status.PROCESSING, claimed_at__lt=stale)
            | models.Q(status=ProductImage.Status.PROCESSING, claimed_at__isnull=True)
        )
        .update(
            status=ProductImage.Status.PROCESSING,
            stage="validate",
            error="",
            claim_token=token[:64],
            claimed_at=now,
            attempts=models.F("attempts") + 1,
            updated_at=now,
        )
    )
    row = ProductImage.objects.filter(pk=image_id).values("status", "attempts").first()
    if row is None:
        return Claim("missing")
    if taken:
        return Claim("claimed", row["attempts"])
    if row["status"] == ProductImage.Status.PROCESSING:
        return Claim("busy", row["attempts"])
    return Claim("done", row["attempts"])


def image_set_stage(image_id: int, stage: str) -> None:
    """Record the stage a processing image is in (what staff see while it runs)."""
    ProductImage.objects.filter(pk=image_id, status=ProductImage.Status.PROCESSING).update(
        stage=stage, updated_at=timezone.now()
    )


def images_mark_enqueued(image_ids: Sequence[int]) -> None:
    ProductImage.objects.filter(pk__in=list(image_ids)).update(enqueued_at=timezone.now())


def images_reset_for_reprocess(image_ids: Sequence[int]) -> int:
    """Back to ``pending`` so the pipeline runs every stage again (their current cutouts and
    vectors stay in place until the new ones replace them)."""
    return ProductImage.objects.filter(pk__in=list(image_ids)).update(
        status=ProductImage.Status.PENDING,
        stage="queued again",
        error="",
        attempts=0,
        claim_token="",
        claimed_at=None,
        enqueued_at=None,
        updated_at=timezone.now(),
    )


def image_set_duplicate(image_id: int, duplicate_of: int | None) -> None:
    ProductImage.objects.filter(pk=image_id).update(duplicate_of_id=duplicate_of)


def image_mark_ready(
    image_id: int, *, timings: dict[str, float], width: int | None = None, height: int | None = None
) -> None:
    fields: dict[str, object] = {
        "status": ProductImage.Status.READY,
        "stage": "done",
        "error": "",
        "stage_timings": timings,
        "processed_at": timezone.now(),
        "updated_at": timezone.now(),
    }
    if width and height:
        fields.update(width=width, height=height)
    fields.update(claim_token="", claimed_at=None)
    ProductImage.objects.filter(pk=image_id).update(**fields)


def image_set_timings(image_id: int, timings: dict[str, float]) -> None:
    ProductImage.objects.filter(pk=image_id).update(stage_timings=timings)


def image_mark_failed(image_id: int, *, stage: str, reason: str, timings: dict[str, float] | None = None) -> None:
    ProductImage.objects.filter(pk=image_id).update(
        status=ProductImage.Status.FAILED,
        stage=stage,
        error=reason[:2000],
        stage_timings=timings or {},
        claim_token="",
        claimed_at=None,
        processed_at=timezone.now(),
        updated_at=timezone.now(),
    )


def image_store_outputs(
    image_id: int,
    *,
    cutout_png: bytes | None,
    mask_png: bytes | None,
    garments: list[dict[str, object]],
    predicted: dict[str, dict[str, object]],
    signature: dict[str, object] | None = None,
    parser_version: str = "",
    predicted_next: dict[str, dict[str, object]] | None = None,
) -> None:
    """Store what the pipeline computed for one image. Re-running replaces the same files (one
    cutout and one mask per image, named by the image id), never adds a second one."""
    image = ProductImage.objects.select_related("product").get(pk=image_id)
    updates: dict[str, object] = {
        "garments": garments,
        "predicted": predicted,
        "parser_version": parser_version,
        "predicted_next": predicted_next or {},
    }
    if signature is not None:
        updates["signature"] = signature
    for field_name, content, folder in (("cutout", cutout_png, "cutouts"), ("mask", mask_png, "masks")):
        if content is None:
            continue
        name = f"{folder}/{image.product.sku}/{image.pk}.png"
        if default_storage.exists(name):
            default_storage.delete(name)
        updates[field_name] = default_storage.save(name, ContentFile(content))
    ProductImage.objects.filter(pk=image_id).update(**updates, updated_at=timezone.now())


def product_text_for_embedding(product: Product) -> str:
    """The text a product's text vector is computed from (title, description, attributes)."""
    parts = [product.title, product.description]
    facts = [product.colour, product.pattern, product.category.name if product.category else ""]
    parts.append(" ".join(f for f in facts if f))
    parts.extend(str(v) for k, v in sorted(product.attributes.items()) if k not in {"split"})
    return ". ".join(p.strip() for p in parts if p and str(p).strip())


def product_text_hash(product: Product) -> str:
    return hashlib.sha256(product_text_for_embedding(product).encode()).hexdigest()


def product_mark_text_embedded(product_id: int, text_hash: str) -> None:
    Product.objects.filter(pk=product_id).update(text_hash=text_hash)


def products_search_claim(limit: int) -> list[Product]:
    """Take up to ``limit`` products whose search text changed (``search_dirty``, set by the database
    trigger of migration 0012) and clear their flag. Must run inside the caller's transaction: the
    rows stay locked until it commits, so an edit made meanwhile waits and marks the product again,
    and a caller that dies rolls the flags back. Rows another worker holds are skipped."""
    ids = list(
        Product.objects.select_for_update(skip_locked=True)
        .filter(search_dirty=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if not ids:
        return []
    Product.objects.filter(pk__in=ids).update(search_dirty=False)
    return list(Product.objects.select_related("category").filter(pk__in=ids).order_by("id"))


# --- vectors -----------------------------------------------------------------------------------

_SAFE_NAME = re.compile(r"[^a-z0-9_]")

VECTOR_TABLES: dict[str, tuple[type[ImageVector] | type[ProductVector], tuple[str, ...]]] = {
    "image": (ImageVector, tuple(ImageVector.Kind.values)),
    "product": (ProductVector, tuple(ProductVector.Kind.values)),
}


def hnsw_index_name(table: str, space: EmbeddingSpace, kind: str) -> str:
    return _SAFE_NAME.sub("_", f"{table}vec_hnsw_s{space.pk}_{kind}".lower())[:63]


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


# --- CSV import --------------------------------------------------------------------------------


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    images_added: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rows} good rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged; {self.images_added} new images queued for processing; "
            f"{len(self.problems)} bad rows"
        )


def catalog_import_row(row: ProductRow) -> tuple[str, list[int]]:
    """Write one parsed CSV row in its own transaction. Returns (outcome, ids of the new images)."""
    with atomic_with_files():
        category = category_ensure_path(row.category_path) if row.category_path else None
        product, outcome = product_upsert(
            ProductInput(
                sku=row.sku,
                title=row.title,
                description=row.description,
                price=row.price,
                currency=row.currency,
                colour=row.colour,
                pattern=row.pattern,
                category=category,
                design_group=row.group,
                attributes=row.attributes,
            )
        )
        stock_changed = product_set_stock(product, row.stock)
        added: list[int] = []
        for position, path in enumerate(row.images):
            image, created = product_image_add(product, path.read_bytes(), source_name=path.name, position=position)
            if created:
                added.append(image.pk)
        if outcome == "unchanged" and (stock_changed or added):
            outcome = "updated"
            product.save(update_fields=["updated_at"])
    return outcome, added


def catalog_import_csv(
    csv_path: Path,
    images_root: Path | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    on_images: Callable[[list[int]], None] | None = None,
) -> ImportReport:
    """Import a catalog CSV (see :mod:`catalog.csv_format`). Idempotent by SKU; each row commits
    alone, so bad rows are reported while the good ones import. ``on_images`` gets the ids of each
    row's new images once that row has committed (the workers queue their processing). Raises
    CatalogFileError when the file as a whole is unusable."""
    if not csv_path.is_file():
        raise CatalogFileError(f"{csv_path} does not exist or is not a file")
    if images_root is not None and not images_root.is_dir():
        raise CatalogFileError(f"images root {images_root} is not a folder")
    rows, problems = read_catalog(csv_path.read_bytes(), images_root, settings.SHOP_DEFAULT_CURRENCY)
    report = ImportReport(problems=list(problems))
    for done, row in enumerate(rows, start=1):
        try:
            outcome, added = catalog_import_row(row)
        except (OSError, ValueError) as exc:  # ImageRejected is a ValueError: the row imports nothing
            report.problems.append(RowProblem(row.line, row.sku, str(exc)))
        else:
            report.rows += 1
            report.images_added += len(added)
            if on_images and added:
                on_images(added)
            setattr(report, outcome, getattr(report, outcome) + 1)
        if on_progress:
            on_progress(done, len(rows))
    report.problems.sort(key=lambda p: p.line)
    logger.info("catalog import of %s: %s", csv_path, report.summary())
    return report


# --- staff uploads (issue 6) -------------------------------------------------------------------


class StorageUnavailable(RuntimeError):
    """The media storage cannot be written (full, gone, read-only): nothing was stored; try later."""


@dataclass
class UploadResult:
    """What happened to one file of a staff multi-file upload."""

    name: str
    ok: bool
    error: str = ""
    image_id: int | None = None
    product_id: int | None = None
    sku: str = ""
    created: bool = False  # False when the product already had exactly these bytes


SKU_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def product_sku_from_file_name(file_name: str) -> str:
    """A SKU from an image's file name ("Red Dress (2).jpg" → "Red-Dress-2"), made unique with a
    numeric suffix when the catalog already has it."""
    stem = Path(file_name.replace("\\", "/")).stem
    base = SKU_UNSAFE_RE.sub("-", stem).strip("-._")[:56] or "photo"
    if not base[0].isalnum():
        base = f"p{base}"[:56]
    sku, n = base, 1
    while Product.objects.filter(sku=sku).exists():
        n += 1
        sku = f"{base}-{n}"
    return sku


def product_title_from_file_name(file_name: str) -> str:
    stem = Path(file_name.replace("\\", "/")).stem
    words = re.sub(r"[_\-.]+", " ", stem).split()
    title = " ".join(words)[:300]
    return title[:1].upper() + title[1:] if title else "New product"


def product_images_upload(
    files: Sequence[tuple[str, bytes, str]],
    *,
    product: Product | None = None,
) -> list[UploadResult]:
    """Store each of ``files`` (name, bytes, declared content type) on ``product``, or, when
    ``product`` is None, each as a new inactive product (SKU and title from the file name, price 0;
    staff complete and activate it later). Every file commits alone: a refused file (the reason
    from :func:`catalog.image_checks.image_check_upload`) leaves neither a product nor a file, and
    never stops the others. Processing is queued when each file's transaction commits. A storage that
    cannot be written stops the upload with :class:`StorageUnavailable` (the files before it stay
    stored, the one that failed left nothing behind)."""
    from catalog.image_checks import ImageRejected

    results: list[UploadResult] = []
    for name, content, content_type in files:
        try:
            image_check_upload(content, name, content_type)  # refuse before creating a product for it
            with atomic_with_files():
                target = product
                if target is None:
                    target = Product.objects.create(
                        sku=product_sku_from_file_name(name),
                        title=product_title_from_file_name(name),
                        price=Decimal("0"),
                        currency=settings.SHOP_DEFAULT_CURRENCY,
                        is_active=False,
                    )
                    Variant.objects.create(product=target, size=Variant.ONE_SIZE, stock=0)
                image, created = product_image_add(target, content, source_name=name, content_type=content_type)
        except ImageRejected as exc:
            reason = str(exc)
            reason = reason[len(name) + 2 :] if reason.startswith(f"{name}: ") else reason  # name shown beside
            results.append(UploadResult(name=name, ok=False, error=reason))
            continue
        except OSError as exc:  # the file could not be written: its row was rolled back with it
            logger.error("upload of %s: the media storage cannot be written (%s)", name, exc)
            raise StorageUnavailable(f"the media storage cannot be written ({exc.strerror or exc})") from exc
        results.append(
            UploadResult(name=name, ok=True, image_id=image.pk, product_id=target.pk, sku=target.sku, created=created)
        )
    return results


# --- bulk import jobs (issue 6) ----------------------------------------------------------------


class ImportFileError(ValueError):
    """An uploaded import file (CSV or ZIP) is refused as a whole; the message says why."""


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def import_zip_members_check(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The regular files of an images ZIP, after refusing unsafe archives: absolute paths, ``..``,
    symbolic links, too many members, or more uncompressed bytes (or a compression ratio) than a
    photo archive can have (a zip bomb). Raises :class:`ImportFileError` naming the member."""
    max_members = _setting("SHOP_IMPORT_ZIP_MAX_MEMBERS", 5000)
    max_total = _setting("SHOP_IMPORT_ZIP_MAX_BYTES", 2 * 1024**3)
    max_ratio = _setting("SHOP_IMPORT_ZIP_MAX_RATIO", 100)
    infos = archive.infolist()
    if len(infos) > max_members:
        raise ImportFileError(f"the ZIP holds {len(infos)} entries; at most {max_members} are accepted")
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise ImportFileError(f"the ZIP entry {name!r} has an absolute path; paths must be relative")
        if ".." in parts:
            raise ImportFileError(f"the ZIP entry {name!r} points outside the archive ('..'); it is refused")
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:
            raise ImportFileError(f"the ZIP entry {name!r} is a symbolic link; links are refused")
        if info.flag_bits & 0x1:
            raise ImportFileError(f"the ZIP entry {name!r} is encrypted; upload an archive without a password")
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_total:
            raise ImportFileError(
                f"the ZIP unpacks to more than {max_total // 1024**2} MiB; it looks like a zip bomb or is too large"
            )
        if info.file_size > 1024**2 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise ImportFileError(
                f"the ZIP entry {name!r} expands {info.file_size // max(info.compress_size, 1)}× "
                "(a zip bomb); photos do not compress like that"
            )
        files.append(info)
    return files


def import_zip_extract(zip_path: Path, target: Path) -> int:
    """Unpack the checked ZIP into ``target`` member by member (never ``extractall``), stopping if
    the bytes read exceed what the headers declared. Returns the number of files written."""
    max_total = _setting("SHOP_IMPORT_ZIP_MAX_BYTES", 2 * 1024**3)
    written = 0
    root = target.resolve()
    with zipfile.ZipFile(zip_path) as archive:
        for info in import_zip_members_check(archive):
            dest = root.joinpath(*[p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")])
            if root not in dest.resolve().parents:
                raise ImportFileError(f"the ZIP entry {info.filename!r} points outside the archive")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, dest.open("wb") as out:
                size = 0
                while chunk := src.read(1024 * 1024):
                    size += len(chunk)
                    written += len(chunk)
                    if size > info.file_size or written > max_total:
                        raise ImportFileError(f"the ZIP entry {info.filename!r} unpacks to more than it declares")
                    out.write(chunk)
    return written


def import_job_create(
    *,
    csv_name: str,
    csv_content: bytes,
    zip_name: str = "",
    zip_file: BinaryIO | None = None,
    created_by: str = "",
) -> ImportJob:
    """Check and store an uploaded catalog CSV (and images ZIP) as a pending import job, which the
    caller queues (``workers.services.import_job_enqueue``). A CSV without the required header or an
    unsafe ZIP raises :class:`ImportFileError` and nothing is stored."""
    try:
        read_catalog(csv_content, None, settings.SHOP_DEFAULT_CURRENCY)
    except CatalogFileError as exc:
        raise ImportFileError(f"{csv_name}: {exc}") from None
    if zip_file is not None:
        try:
            with zipfile.ZipFile(zip_file) as archive:
                import_zip_members_check(archive)
        except zipfile.BadZipFile:
            raise ImportFileError(f"{zip_name} is not a ZIP archive") from None
        zip_file.seek(0)
    with atomic_with_files():
        stored = _stored_files.get()
        assert stored is not None
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        csv_stored = default_storage.save(f"imports/{stamp}-catalog.csv", ContentFile(csv_content))
        stored.append(csv_stored)
        zip_stored = ""
        if zip_file is not None:
            zip_stored = default_storage.save(f"imports/{stamp}-images.zip", File(zip_file, name="images.zip"))
            stored.append(zip_stored)
        job = ImportJob.objects.create(
            csv_file=csv_stored,
            zip_file=zip_stored,
            csv_name=csv_name[:300],
            zip_name=zip_name[:300],
            created_by=created_by[:150],
        )
    return job


def import_job_claim(job_id: int) -> bool:
    """Take a pending (or interrupted running) job; a finished one is left alone, so a message
    delivered twice does nothing. Returns whether the caller should run it."""
    return bool(
        ImportJob.objects.filter(pk=job_id, status__in=[ImportJob.Status.PENDING, ImportJob.Status.RUNNING]).update(
            status=ImportJob.Status.RUNNING, started_at=timezone.now(), error=""
        )
    )


def import_job_progress(job_id: int, done: int, total: int) -> None:
    ImportJob.objects.filter(pk=job_id).update(done=done, total=total, updated_at=timezone.now())


def import_job_finish(job_id: int, report: ImportReport | None = None, *, error: str = "") -> None:
    values: dict[str, object] = {"finished_at": timezone.now(), "updated_at": timezone.now()}
    if report is None:
        values.update(status=ImportJob.Status.FAILED, error=error)
    else:
        values.update(
            status=ImportJob.Status.DONE,
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            images_added=report.images_added,
            failed=len(report.problems),
            problems=[{"line": p.line, "sku": p.sku, "reason": p.reason} for p in report.problems],
        )
    ImportJob.objects.filter(pk=job_id).update(**values)


def import_job_run(job_id: int, *, on_images: Callable[[list[int]], None] | None = None) -> str:
    """Run a bulk import job: unpack its ZIP into a private folder, import the CSV with it as the
    images root (idempotent by SKU, each row alone), record progress and the bad rows. Running it
    again (a redelivered message) repeats nothing that is done. ``on_images`` as in
    :func:`catalog_import_csv`. Returns the job's final status."""
    import tempfile

    if not import_job_claim(job_id):
        job = ImportJob.objects.filter(pk=job_id).first()
        return job.status if job else "missing"
    job = ImportJob.objects.get(pk=job_id)
    with tempfile.TemporaryDirectory(prefix="shop-import-") as tmp:
        root = Path(tmp)
        try:
            (root / "catalog.csv").write_bytes(default_storage.open(job.csv_file.name).read())
            images = root / "images"
            images.mkdir()
            if job.zip_file:
                with default_storage.open(job.zip_file.name) as src, (root / "images.zip").open("wb") as out:
                    while chunk := src.read(1024 * 1024):
                        out.write(chunk)
                try:
                    import_zip_extract(root / "images.zip", images)
                except zipfile.BadZipFile:
                    raise ImportFileError(f"{job.zip_name or 'the ZIP'} is not a ZIP archive") from None
            report = catalog_import_csv(
                root / "catalog.csv",
                images,
                on_progress=lambda done, total: import_job_progress(job_id, done, total),
                on_images=on_images,
            )
        except (ImportFileError, CatalogFileError) as exc:
            import_job_finish(job_id, error=str(exc).replace(str(root), "the upload"))
            return ImportJob.Status.FAILED
        # Reasons name the private folder the ZIP was unpacked into; staff know it as "the ZIP".
        report.problems = [
            RowProblem(p.line, p.sku, p.reason.replace(str(images), "the ZIP").replace(str(root), "the upload"))
            for p in report.problems
        ]
        import_job_finish(job_id, report)
    return ImportJob.Status.DONE
