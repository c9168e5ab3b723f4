"""Staff admin for the catalog. Thin: display and navigation only; writes go through services."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from catalog import selectors
from catalog.models import Category, EmbeddingSpace, Product, ProductImage, Variant


def thumbnail(image: ProductImage | None, size: int = 64) -> str:
    if image is None or not image.file:
        return "—"
    return format_html(
        '<img src="{}" alt="{}" style="height:{}px;width:auto;border-radius:4px;background:#f4f4f4">',
        image.file.url,
        image.source_name or "product image",
        size,
    )


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ("size", "stock", "position")


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    extra = 0
    fields = ("preview", "position", "role", "status", "stage", "error", "content_hash")
    readonly_fields = ("preview", "status", "stage", "error", "content_hash")

    @admin.display(description="image")
    def preview(self, obj: ProductImage) -> str:
        return thumbnail(obj, 96)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("picture", "sku", "title", "category", "colour", "price", "currency", "stock", "is_active")
    list_display_links = ("picture", "sku", "title")
    list_filter = ("is_active", "category", "colour", "pattern")
    search_fields = ("sku", "title", "description", "design_group")
    inlines = (VariantInline, ProductImageInline)
    readonly_fields = ("text_hash", "created_at", "updated_at")
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return selectors.product_list(active_only=False)

    @admin.display(description="image")
    def picture(self, obj: Product) -> str:
        images = list(obj.images.all())
        return thumbnail(images[0] if images else None)

    @admin.display(description="stock", ordering="total_stock")
    def stock(self, obj: Product) -> str:
        total = getattr(obj, "total_stock", 0)
        return f"{total}" if total else "out of stock"


@admin.register(ProductImage)
class ProductImageAdmin(admin.ModelAdmin):
    list_display = ("preview", "product", "position", "role", "status", "stage", "error")
    list_filter = ("status", "role")
    search_fields = ("product__sku", "source_name", "content_hash")
    readonly_fields = (
        "content_hash",
        "status",
        "stage",
        "error",
        "stage_timings",
        "width",
        "height",
        "duplicate_of",
        "processed_at",
    )
    raw_id_fields = ("product", "duplicate_of")

    @admin.display(description="image")
    def preview(self, obj: ProductImage) -> str:
        return thumbnail(obj)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("path", "name", "depth")
    search_fields = ("name", "path")


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = ("name", "model_name", "model_version", "dim", "modality", "is_active")
    readonly_fields = ("dim",)
