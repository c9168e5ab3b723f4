"""Catalog data: categories, products, variants, images and their vectors.

Vectors of different models and dimensions live side by side: every vector row names its
:class:`EmbeddingSpace` (one model version, one dimension, one modality) and its ``kind``; the
column itself is an untyped pgvector ``vector``. Each (space, kind) gets its own partial HNSW
index on ``(vector::halfvec(dim))`` (half precision; the rows keep full precision) created by
:func:`catalog.services.embedding_space_ensure`.
Switching the embedding model therefore means registering a new space and re-embedding, never
changing the schema.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MinValueValidator
from django.db import models
from pgvector.django import VectorField


class Category(models.Model):
    """A node of the category tree; ``path`` is the full slug path used for descendant queries."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    path = models.CharField(max_length=600, unique=True, help_text="slug path from the root, e.g. women/tops")
    full_name = models.CharField(max_length=600, blank=True, help_text="names from the root, e.g. Women › Tops")
    depth = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["parent", "slug"], name="category_unique_slug_per_parent"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.name


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    brand = models.CharField(max_length=120, blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    colour = models.CharField(max_length=60, blank=True, db_index=True)
    pattern = models.CharField(max_length=60, blank=True, db_index=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default="EUR")
    attributes = models.JSONField(default=dict, blank=True, help_text="any further attributes, e.g. material")
    design_group = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="products sharing this key are the same design in another colour",
    )
    is_active = models.BooleanField(default=True)
    # True when any size has stock. Kept by a database trigger on catalog_variant (migration 0008),
    # so every way of writing stock (services, admin, bulk SQL) keeps it right; the "in stock" filter
    # reads this one column instead of probing the variants of every product.
    has_stock = models.BooleanField(default=False, editable=False)
    # sha256 of the text that was last embedded; the pipeline re-embeds when it changes.
    text_hash = models.CharField(max_length=64, blank=True)
    # Keyword search document (title, description, colour, pattern, category names), GIN-indexed.
    # Both are kept by database triggers (migration 0012), whoever writes the row: a change to the
    # search text recomputes the document in the same statement and sets search_dirty, which the
    # workers' periodic products_text_refresh clears once the text vector is computed again.
    search_document = SearchVectorField(null=True, editable=False)
    search_dirty = models.BooleanField(default=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        indexes = [
            GinIndex(fields=["search_document"], name="product_search_document_gin"),
            models.Index(fields=["id"], condition=models.Q(search_dirty=True), name="product_search_dirty"),
        ]
        constraints = [models.CheckConstraint(condition=models.Q(price__gte=0), name="product_price_not_negative")]

    def __str__(self) -> str:
        return f"{self.sku} {self.title}"


class Variant(models.Model):
    ONE_SIZE = "one size"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    size = models.CharField(max_length=30, default=ONE_SIZE)
    stock = models.PositiveIntegerField(default=0)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["product_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["product", "size"], name="variant_unique_size")]

    def __str__(self) -> str:
        return f"{self.product.sku} / {self.size}"


def product_image_path(instance: ProductImage, filename: str) -> str:
    return f"products/{instance.product.sku}/{filename}"


class ProductImage(models.Model):
    class Role(models.TextChoices):
        PRODUCT = "product", "product shot"
        ON_MODEL = "on_model", "on model"
        DETAIL = "detail", "detail"
        FLAT_LAY = "flat_lay", "flat lay"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        PROCESSING = "processing", "processing"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=product_image_path, max_length=300)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.PRODUCT)
    content_hash = models.CharField(max_length=64, db_index=True, help_text="sha256 of the original file")
    source_name = models.CharField(max_length=300, blank=True, help_text="original file name or import path")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    stage = models.CharField(max_length=40, blank=True, help_text="the stage running or last run")
    error = models.TextField(blank=True, help_text="why processing failed, in words a person understands")
    stage_timings = models.JSONField(default=dict, blank=True, help_text="seconds per stage")
    cutout = models.FileField(upload_to="cutouts/", max_length=300, blank=True)
    mask = models.FileField(upload_to="masks/", max_length=300, blank=True)
    predicted = models.JSONField(
        default=dict, blank=True, help_text="attributes predicted from the image: {name: {value, confidence}}"
    )
    garments = models.JSONField(default=list, blank=True, help_text="garments the parser found: label, box, score")
    parser_version = models.CharField(
        max_length=120, blank=True, help_text="the parser that made the cutout ('fallback:…' = the untrained fallback)"
    )
    predicted_next = models.JSONField(
        default=dict, blank=True, help_text="the next embedder's attribute predictions, taken over when it switches in"
    )
    signature = models.JSONField(default=dict, blank=True, help_text="near-duplicate signature (hashes, colour)")
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="duplicates",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Delivery bookkeeping for the workers (see workers/services.py): who holds the image and since
    # when, how many times processing started, and when it was last handed to the broker.
    claim_token = models.CharField(max_length=64, blank=True, help_text="task id of the worker processing it")
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="times processing started since the last reset")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="last time a task was sent for it")

    class Meta:
        ordering = ["product_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "content_hash"], name="image_unique_content_per_product"),
        ]

    def __str__(self) -> str:
        return f"{self.product.sku} image {self.position}"


class EmbeddingSpace(models.Model):
    """One vector space: a model (name + version) producing vectors of one dimension and modality."""

    class Modality(models.TextChoices):
        IMAGE_TEXT = "image_text", "image and text (CLIP-style, shared space)"
        IMAGE = "image", "image only"
        TEXT = "text", "text only"

    name = models.CharField(max_length=120, unique=True, help_text="e.g. shop-clip-effl0-minilm@3")
    model_name = models.CharField(max_length=120)
    model_version = models.CharField(max_length=60, blank=True)
    dim = models.PositiveIntegerField()
    modality = models.CharField(max_length=20, choices=Modality.choices)
    is_active = models.BooleanField(default=False, help_text="search uses the active space of a modality")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.dim}-d)"


class ImageVector(models.Model):
    class Kind(models.TextChoices):
        CUTOUT = "cutout", "garment cutout"
        FULL = "full", "full photo"

    image = models.ForeignKey(ProductImage, on_delete=models.CASCADE, related_name="vectors")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="image_vectors")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    vector = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "space", "kind"], name="imagevector_unique")]


class ProductVector(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "title, description and attributes"
        IMAGE = "image", "mean of the product's image vectors"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="vectors")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="product_vectors")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    vector = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "space", "kind"], name="productvector_unique")]


class ImportJob(models.Model):
    """A bulk import started from the staff pages: a catalog CSV plus an optional ZIP of its images,
    run by a Celery task (``workers.tasks.catalog_import_job``) that records its progress here."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for a worker"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    csv_file = models.FileField(upload_to="imports/", max_length=300)
    zip_file = models.FileField(upload_to="imports/", max_length=300, blank=True)
    csv_name = models.CharField(max_length=300, blank=True, help_text="the uploaded CSV's file name")
    zip_name = models.CharField(max_length=300, blank=True, help_text="the uploaded ZIP's file name")
    created_by = models.CharField(max_length=150, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="rows to write (good rows of the file)")
    done = models.PositiveIntegerField(default=0, help_text="rows written or refused so far")
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="bad rows")
    images_added = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text="bad rows: [{line, sku, reason}]")
    error = models.TextField(blank=True, help_text="why the whole file could not be imported")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.csv_name or 'catalog'}, {self.status})"


class CatalogChange(models.Model):
    """One row whose ``version`` changes with every committed transaction that writes what a shopper
    sees (products, stock, photos, vectors, categories, embedding spaces): a fresh random UUID, set by
    deferred triggers at commit (migration 0013). Readers key answers they share on it; a transaction
    that rolls back leaves the earlier version, and no version is ever used twice."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.UUIDField()

    class Meta:
        db_table = "catalog_change"


# The vector tables and the kinds of vector each holds; each (space, kind) has its own HNSW index.
VECTOR_TABLES: dict[str, tuple[type[ImageVector] | type[ProductVector], tuple[str, ...]]] = {
    "image": (ImageVector, tuple(ImageVector.Kind.values)),
    "product": (ProductVector, tuple(ProductVector.Kind.values)),
}

_SAFE_NAME = re.compile(r"[^a-z0-9_]")


def hnsw_index_name(table: str, space: EmbeddingSpace, kind: str) -> str:
    return _SAFE_NAME.sub("_", f"{table}vec_hnsw_s{space.pk}_{kind}".lower())[:63]
