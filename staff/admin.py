"""The Django admin for the catalog's models. Thin: display and navigation only; writes go through
services, except the product change form, which saves through the ORM: the database marks an edited
product's search text dirty (migration catalog 0012), so the edit is searchable like any other."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from catalog import selectors
from catalog.image_checks import ImageRejected, image_check_upload
from catalog.models import Category, EmbeddingSpace, ImportJob, Product, ProductImage, Variant
from catalog.services import atomic_with_files, product_image_add
from workers.services import image_processing_enqueue, images_reprocess_enqueue


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
    fields = ("preview", "position", "role", "status", "stage", "error", "duplicate_of", "content_hash")
    readonly_fields = ("preview", "status", "stage", "error", "duplicate_of", "content_hash")

    def has_add_permission(self, request: HttpRequest, obj: Product | None = None) -> bool:
        return False  # photos are added through "Product images → Add", which checks the bytes

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


class ProductImageUploadForm(forms.ModelForm):
    """Staff upload: the photo is checked from its bytes here, so a refused file is a form error
    and nothing is stored."""

    upload = forms.FileField(label="photo", help_text="JPEG, PNG, WebP, AVIF or GIF")

    class Meta:
        model = ProductImage
        fields = ("product", "role", "position")

    def clean_upload(self) -> Any:
        upload = self.cleaned_data["upload"]
        self.content = upload.read()
        try:
            image_check_upload(self.content, upload.name, getattr(upload, "content_type", "") or "")
        except ImageRejected as exc:
            raise forms.ValidationError(str(exc)) from None
        return upload


@admin.register(ProductImage)
class ProductImageAdmin(admin.ModelAdmin):
    list_display = ("preview", "product", "position", "role", "status", "stage", "error", "duplicate", "timings")
    list_filter = ("status", "role", "stage")
    search_fields = ("product__sku", "source_name", "content_hash")
    readonly_fields = (
        "preview",
        "content_hash",
        "source_name",
        "status",
        "stage",
        "error",
        "stage_timings",
        "width",
        "height",
        "duplicate_of",
        "attempts",
        "processed_at",
    )
    raw_id_fields = ("product", "duplicate_of")
    actions = ("reprocess",)

    def get_form(
        self, request: HttpRequest, obj: ProductImage | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        if obj is None:
            kwargs["form"] = ProductImageUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ProductImage | None = None) -> Any:
        if obj is None:
            return ("product", "role", "position", "upload")
        return ("preview", "product", "role", "position", *self.readonly_fields[1:])

    def get_readonly_fields(self, request: HttpRequest, obj: ProductImage | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ProductImage, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        upload = form.cleaned_data["upload"]
        with atomic_with_files():
            image, created = product_image_add(
                form.cleaned_data["product"],
                form.content,
                source_name=upload.name,
                role=form.cleaned_data["role"],
                position=form.cleaned_data.get("position"),
                content_type=getattr(upload, "content_type", "") or "",
            )
            if created:
                image_processing_enqueue([image.pk])
        obj.pk = obj.id = image.pk
        obj.product = image.product
        obj.position = image.position
        if not created:
            messages.info(request, f"{upload.name}: this product already has exactly this photo; nothing was added")

    @admin.action(description="Process the selected images again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[ProductImage]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        sent = images_reprocess_enqueue(ids)
        if sent < len(ids):
            messages.warning(request, f"{len(ids) - sent} image(s) wait for the broker; the sweep sends them")
        messages.success(request, f"{len(ids)} image(s) queued for processing")

    @admin.display(description="image")
    def preview(self, obj: ProductImage) -> str:
        return thumbnail(obj)

    @admin.display(description="duplicate of")
    def duplicate(self, obj: ProductImage) -> str:
        other = obj.duplicate_of
        if other is None:
            return ""
        return format_html(
            '<a href="{}#photos" class="{}">{} image {}</a>',
            reverse("admin:catalog_product_change", args=[other.product_id]),
            "staff-warning-inline" if other.product_id != obj.product_id else "",
            other.product.sku,
            other.pk,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProductImage]:
        return super().get_queryset(request).select_related("product", "duplicate_of__product")

    @admin.display(description="seconds")
    def timings(self, obj: ProductImage) -> str:
        total = sum(float(v) for v in (obj.stage_timings or {}).values())
        return f"{total:.2f}" if total else ""


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("path", "name", "depth")
    search_fields = ("name", "path")


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = ("name", "model_name", "model_version", "dim", "modality", "is_active")
    readonly_fields = ("dim",)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Bulk imports are started on the staff import page (CSV + images ZIP); here they are listed."""

    list_display = ("__str__", "progress_link", "status", "done", "total", "created", "updated", "failed", "created_by")
    list_filter = ("status",)
    readonly_fields = tuple(f.name for f in ImportJob._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started on the staff import page, which checks the files

    def has_change_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        return False

    @admin.display(description="progress and report")
    def progress_link(self, obj: ImportJob) -> str:
        return format_html('<a href="{}">open</a>', reverse("staff:import_detail", args=[obj.pk]))
