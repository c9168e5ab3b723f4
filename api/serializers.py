"""Request validation and response shapes of the API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.csv_format import SKU_RE
from catalog.models import Product, ProductImage
from catalog.selectors import PRODUCT_ORDERINGS, ProductFilters, category_names_from_root
from search.services import DEFAULT_SIGNALS, SIGNALS
from search.understanding import PART_KEYS

MAX_CATEGORY_LEVELS = 4
CATEGORY_PATH_RE = re.compile(r"[a-z0-9-]+(?:/[a-z0-9-]+)+")  # "women/tops"; a name has capitals or spaces
MAX_INT32 = 2_147_483_647
CENT = Decimal("0.01")


def absolute_url(context: Mapping[str, Any], url: str) -> str | None:
    if not url:
        return None
    request = context.get("request")
    return request.build_absolute_uri(url) if request is not None else url


def stored_file_url(context: Mapping[str, Any], name: str) -> str | None:
    """The absolute URL of a stored file by its storage name (None for "")."""
    return absolute_url(context, default_storage.url(name) if name else "")


def product_api_url(context: Mapping[str, Any], sku: str) -> str | None:
    return absolute_url(context, reverse("api:product-detail", args=[sku]))


# --- responses ---------------------------------------------------------------------------------


class CategoryRefSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="slug path from the root, e.g. `women/tops` (use it as the filter)")
    name = serializers.CharField()
    full_name = serializers.CharField(help_text="names from the root, e.g. `Women › Tops`")


class CategorySerializer(CategoryRefSerializer):
    id = serializers.IntegerField()
    parent_path = serializers.SerializerMethodField()
    depth = serializers.IntegerField()
    product_count = serializers.IntegerField(help_text="active products in this category and below it")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_parent_path(self, obj: Any) -> str | None:
        return obj.path.rsplit("/", 1)[0] if "/" in obj.path else None


class VariantSerializer(serializers.Serializer):
    size = serializers.CharField()
    stock = serializers.IntegerField(min_value=0)
    in_stock = serializers.SerializerMethodField()

    def get_in_stock(self, obj: Any) -> bool:
        return obj.stock > 0


class ImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="the photo as uploaded")
    cutout_url = serializers.SerializerMethodField(
        help_text="the garment alone, as an RGBA PNG without background, skin or hair (null until processed)"
    )
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    role = serializers.ChoiceField(choices=ProductImage.Role.choices)
    position = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ProductImage.Status.choices, help_text="processing status")

    @extend_schema_field(serializers.URLField())
    def get_url(self, obj: ProductImage) -> str | None:
        return absolute_url(self.context, obj.file.url if obj.file else "")

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_cutout_url(self, obj: ProductImage) -> str | None:
        return absolute_url(self.context, obj.cutout.url if obj.cutout else "")


class ProductSummarySerializer(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2, help_text="a decimal string, e.g. `19.99`")
    currency = serializers.CharField(help_text="ISO 4217 code")
    colour = serializers.CharField(allow_blank=True)
    pattern = serializers.CharField(allow_blank=True)
    brand = serializers.CharField(allow_blank=True)
    category = CategoryRefSerializer(allow_null=True)
    in_stock = serializers.BooleanField(help_text="some size has stock")
    sizes_in_stock = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField(help_text="the first photo (null when the product has none)")
    cutout_url = serializers.SerializerMethodField(help_text="the first photo's garment cutout (null until processed)")
    url = serializers.SerializerMethodField(help_text="this product in the API")

    # A product from catalog.selectors.products_by_ids carries its sizes in stock and first photo as
    # annotations (one query); one from product_list() has its variants and images prefetched.

    def get_sizes_in_stock(self, obj: Product) -> list[str]:
        if hasattr(obj, "summary_sizes_in_stock"):
            return list(obj.summary_sizes_in_stock or [])
        return [v.size for v in obj.variants.all() if v.stock > 0]

    def _first_photo(self, obj: Product, field: str) -> str:
        """The storage name of the first photo's ``file`` or ``cutout`` ("" when there is none)."""
        if hasattr(obj, f"summary_{field}"):
            return str(getattr(obj, f"summary_{field}"))
        images = list(obj.images.all())
        return getattr(images[0], field).name or "" if images else ""

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_image_url(self, obj: Product) -> str | None:
        return stored_file_url(self.context, self._first_photo(obj, "file"))

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_cutout_url(self, obj: Product) -> str | None:
        return stored_file_url(self.context, self._first_photo(obj, "cutout"))

    @extend_schema_field(serializers.URLField())
    def get_url(self, obj: Product) -> str | None:
        return product_api_url(self.context, obj.sku)

    @classmethod
    def rows(cls, products: Sequence[Product], context: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``cls(products, many=True, context=context).data`` for summaries read by
        ``catalog.selectors.products_by_ids``, built without DRF's per-field machinery (a third of an
        API search's CPU); tests/unit/test_api_summaries.py holds the two equal."""
        out = []
        for p in products:
            category = p.category
            out.append(
                {
                    "sku": str(p.sku),
                    "title": str(p.title),
                    "price": f"{Decimal(p.price).quantize(CENT):f}",
                    "currency": str(p.currency),
                    "colour": str(p.colour),
                    "pattern": str(p.pattern),
                    "brand": str(p.brand),
                    "category": None if category is None else cls._category_ref(category),
                    "in_stock": bool(p.in_stock),  # type: ignore[attr-defined]
                    "sizes_in_stock": list(p.summary_sizes_in_stock or []),  # type: ignore[attr-defined]
                    "image_url": stored_file_url(context, str(p.summary_file)),  # type: ignore[attr-defined]
                    "cutout_url": stored_file_url(context, str(p.summary_cutout)),  # type: ignore[attr-defined]
                    "url": product_api_url(context, p.sku),
                }
            )
        return out

    @staticmethod
    def _category_ref(category: Any) -> dict[str, str]:
        return {"path": str(category.path), "name": str(category.name), "full_name": str(category.full_name)}


class ProductDetailSerializer(ProductSummarySerializer):
    description = serializers.CharField(allow_blank=True)
    design_group = serializers.CharField(
        allow_blank=True, help_text="products sharing it are the same design in another colour"
    )
    attributes = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(help_text="inactive products are visible to staff only")
    total_stock = serializers.IntegerField()
    variants = VariantSerializer(many=True)
    images = ImageSerializer(many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(serializers.DictField(child=serializers.CharField(allow_blank=True)))
    def get_attributes(self, obj: Product) -> dict[str, str]:
        return {str(k): str(v) for k, v in (obj.attributes or {}).items()}


class FacetValueSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="category path, colour, pattern, size or price band (`20-50`, `200+`)")
    count = serializers.IntegerField()


class FacetsSerializer(serializers.Serializer):
    category = FacetValueSerializer(many=True)
    colour = FacetValueSerializer(many=True)
    pattern = FacetValueSerializer(many=True)
    size = FacetValueSerializer(many=True, help_text="sizes in stock")
    price = FacetValueSerializer(many=True)


class PageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="items in the whole result")
    next = serializers.URLField(allow_null=True, help_text="the next page (null on the last)")
    previous = serializers.URLField(allow_null=True, help_text="the previous page (null on the first)")


class ProductPageSerializer(PageSerializer):
    results = ProductSummarySerializer(many=True)
    facets = FacetsSerializer(help_text="counts over the whole filtered result, not just this page")


class SearchHitSerializer(serializers.Serializer):
    product = ProductSummarySerializer()
    score = serializers.FloatField(help_text="fused relevance; higher is better")
    signals = serializers.DictField(
        child=serializers.IntegerField(), help_text="rank of the product in each signal that found it"
    )


class ModelsServedSerializer(serializers.Serializer):
    parser = serializers.CharField(allow_null=True, help_text="the garment parser version that served")
    parser_fallback = serializers.BooleanField(help_text="true: the untrained fallback parser (one item per photo)")
    embedder = serializers.CharField(allow_null=True, help_text="the embedder whose vector space search read")
    embedder_fallback = serializers.BooleanField(
        help_text="true: the untrained bootstrap embedder (text queries are matched by words and product texts only)"
    )


class UnderstoodPartSerializer(serializers.Serializer):
    key = serializers.ChoiceField(choices=list(PART_KEYS), help_text="pass it in `ignore` to undo this part")
    # a response field named "label"; the stubs see Field.label (its display label) overridden
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="what to show on the chip, e.g. `up to 30.00 EUR`, `men`"
    )
    phrase = serializers.CharField(help_text="the words of the query it was read from")


class SearchPageSerializer(PageSerializer):
    query = serializers.CharField()
    corrected_query = serializers.CharField(
        allow_blank=True,
        help_text="the query with its typos corrected, when that is clearly better supported (show 'did you mean')",
    )
    models = ModelsServedSerializer(help_text="which models answered (a fallback while the shop trains its own)")
    note = serializers.CharField(allow_blank=True)
    understood = UnderstoodPartSerializer(
        many=True,
        help_text="parts of the query read as a price, department or size filter or a category, colour "
        "or pattern boost",
    )
    ignored = serializers.ListField(child=serializers.CharField(), help_text="understood parts undone by `ignore`")
    ranking = serializers.CharField(help_text="how the results are ordered (in-stock products first)")
    results = SearchHitSerializer(many=True)
    facets = FacetsSerializer()


class PhotoHitSerializer(serializers.Serializer):
    product = ProductSummarySerializer()
    score = serializers.FloatField(help_text="cosine similarity of the garment and the product's photos")


class GarmentSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="pass it back as `garment` to search this garment alone")
    # a response field named "label"; the stubs see Field.label (its display label) overridden
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="top, outerwear, dress, bottom, footwear, bag or accessory"
    )
    box = serializers.ListField(
        child=serializers.IntegerField(), min_length=4, max_length=4, help_text="x0, y0, x1, y1 in photo pixels"
    )
    score = serializers.FloatField(help_text="the parser's confidence")
    results = PhotoHitSerializer(many=True)


class PhotoSearchResponseSerializer(serializers.Serializer):
    width = serializers.IntegerField(help_text="the photo's width after EXIF orientation")
    height = serializers.IntegerField()
    garments = GarmentSerializer(many=True)
    models = ModelsServedSerializer(help_text="which models answered (a fallback while the shop trains its own)")


class AlternativeSerializer(serializers.Serializer):
    product = ProductSummarySerializer()
    score = serializers.FloatField()
    reason = serializers.CharField(
        help_text='why it is offered, e.g. "same design in navy", "similar cut in black, for less"'
    )
    look = serializers.FloatField(help_text="image similarity")
    in_size = serializers.BooleanField(help_text="in stock in the requested size (true when no size was given)")


class AlternativesSerializer(serializers.Serializer):
    sku = serializers.CharField()
    results = AlternativeSerializer(many=True)


class DuplicateSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    product_id = serializers.IntegerField()
    sku = serializers.CharField()
    title = serializers.CharField()
    same_product = serializers.BooleanField()


class ImageStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    source_name = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=ProductImage.Status.choices)
    stage = serializers.CharField(allow_blank=True, help_text="the stage running or last run")
    error = serializers.CharField(allow_blank=True, help_text="why processing failed")
    file_url = serializers.URLField(allow_null=True)
    cutout_url = serializers.URLField(allow_null=True)
    mask_url = serializers.URLField(allow_null=True)
    seconds = serializers.FloatField(help_text="processing time over all stages")
    duplicate_of = DuplicateSerializer(allow_null=True)


class UploadResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True, help_text="why the file was refused")
    image_id = serializers.IntegerField(allow_null=True)
    created = serializers.BooleanField(help_text="false when the product already had exactly these bytes")
    status_url = serializers.URLField(allow_null=True)


class UploadResponseSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = UploadResultSerializer(many=True)


class ReprocessResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queued = serializers.BooleanField(help_text="false when the broker was unreachable (the sweep sends it later)")
    message = serializers.CharField()
    status_url = serializers.URLField()


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="send it as `Authorization: Token <token>`")
    username = serializers.CharField()
    is_staff = serializers.BooleanField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable, e.g. validation_error, not_found, throttled")
    message = serializers.CharField(help_text="for a person")
    # a response field named "fields"; the stubs see Serializer.fields (the bound fields) overridden
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="request field (dotted path) → its problems; empty when not about fields",
    )
    request_id = serializers.CharField(help_text="the request's id (also the X-Request-ID header): quote it to support")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- requests ----------------------------------------------------------------------------------


class FilterQuerySerializer(serializers.Serializer):
    """The storefront's filters (``catalog.selectors.ProductFilters``)."""

    category = serializers.CharField(
        required=False, allow_blank=True, max_length=600, help_text="category path; its descendants are included"
    )
    price_min = serializers.DecimalField(required=False, max_digits=10, decimal_places=2, min_value=Decimal("0"))
    price_max = serializers.DecimalField(required=False, max_digits=10, decimal_places=2, min_value=Decimal("0"))
    size = serializers.CharField(required=False, allow_blank=True, max_length=30, help_text="in stock in this size")
    colour = serializers.CharField(required=False, allow_blank=True, max_length=60)
    pattern = serializers.CharField(required=False, allow_blank=True, max_length=60)
    in_stock = serializers.BooleanField(required=False, default=False, help_text="only products with stock")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("price_min"), attrs.get("price_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"price_max": ["must not be below price_min"]})
        return attrs

    @staticmethod
    def filters(attrs: dict[str, Any]) -> ProductFilters:
        return ProductFilters(
            category=attrs.get("category", "").strip("/"),
            price_min=attrs.get("price_min"),
            price_max=attrs.get("price_max"),
            size=attrs.get("size", ""),
            colour=attrs.get("colour", ""),
            pattern=attrs.get("pattern", ""),
            in_stock=bool(attrs.get("in_stock")),
        )


class PagingQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=24, min_value=1, max_value=100)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=100_000)


class ProductListQuerySerializer(FilterQuerySerializer, PagingQuerySerializer):
    ordering = serializers.ChoiceField(
        choices=sorted(PRODUCT_ORDERINGS), required=False, default="sku", help_text="ties are broken by product id"
    )


class SearchQuerySerializer(FilterQuerySerializer, PagingQuerySerializer):
    q = serializers.CharField(max_length=200, help_text="what the shopper typed, e.g. `black striped t-shirt`")
    signals = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text=f"comma-separated subset of {', '.join(SIGNALS)} (default: {', '.join(DEFAULT_SIGNALS)}, fused)",
    )
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=1000)
    ignore = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="comma-separated understood parts to read as plain words again (undo a chip): "
        f"{', '.join(PART_KEYS)}",
    )

    def validate_ignore(self, value: str) -> frozenset[str]:
        names = frozenset(part.strip() for part in value.split(",") if part.strip())
        unknown = sorted(names - set(PART_KEYS))
        if unknown:
            raise serializers.ValidationError(
                f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PART_KEYS)}"
            )
        return names

    def validate_signals(self, value: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        unknown = [name for name in names if name not in SIGNALS]
        if unknown:
            raise serializers.ValidationError(
                f"unknown signal(s) {', '.join(unknown)}; choose from {', '.join(SIGNALS)}"
            )
        return names or DEFAULT_SIGNALS


class PhotoSearchFormSerializer(FilterQuerySerializer):
    photo = serializers.FileField(
        allow_empty_file=True, help_text="JPEG, PNG, WebP, AVIF or GIF; HEIC must be exported as JPEG first"
    )
    crop = serializers.CharField(
        required=False, allow_blank=True, max_length=60, help_text="`x0,y0,x1,y1`: search only this box (photo pixels)"
    )
    garment = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="search only this garment (`index` of an earlier answer)"
    )
    limit = serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=50, help_text="results per garment"
    )

    def validate_crop(self, value: str) -> tuple[int, int, int, int] | None:
        if not value:
            return None
        parts = value.split(",")
        if len(parts) != 4 or not all(p.strip().isdigit() and len(p.strip()) <= 6 for p in parts):
            raise serializers.ValidationError("write the box as four whole pixel numbers: x0,y0,x1,y1")
        x0, y0, x1, y1 = (int(p) for p in parts)
        if x1 <= x0 or y1 <= y0:
            raise serializers.ValidationError("x1 must be greater than x0 and y1 greater than y0")
        return x0, y0, x1, y1


class SimilarQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=8, min_value=1, max_value=50)


class AlternativesQuerySerializer(serializers.Serializer):
    size = serializers.CharField(
        required=False, allow_blank=True, max_length=30, help_text="the shopper's size: alternatives in it come first"
    )
    limit = serializers.IntegerField(required=False, default=5, min_value=1, max_value=20)


class VariantWriteSerializer(serializers.Serializer):
    size = serializers.CharField(max_length=30, help_text='e.g. "M", "32", or "one size"')
    stock = serializers.IntegerField(min_value=0, max_value=MAX_INT32)


def _check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError(f"{what} may not contain NUL characters")
    return value


class ProductWriteSerializer(serializers.Serializer):
    sku = serializers.RegexField(
        SKU_RE, max_length=64, help_text="letters, digits, `.`, `_`, `-`; at most 64 (create only)"
    )
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0"))
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217, e.g. EUR")
    colour = serializers.CharField(required=False, allow_blank=True, max_length=60)
    pattern = serializers.CharField(required=False, allow_blank=True, max_length=60)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=120)
    category = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=600,
        help_text='names from the root separated by `>`, e.g. "Women > Tops" (missing levels are created), '
        'or the path of an existing category as the reads give it, e.g. "women/tops"; empty = no category',
    )
    design_group = serializers.CharField(required=False, allow_blank=True, max_length=64)
    attributes = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=500),
        required=False,
        help_text='further attributes, e.g. {"material": "cotton"}',
    )
    is_active = serializers.BooleanField(required=False, default=True)
    variants = VariantWriteSerializer(
        many=True, required=False, help_text="the whole stock by size; sizes not named drop to 0 (they are kept)"
    )

    def validate_category(self, value: str) -> list[str]:
        if ">" not in value and "/" in value:  # a path, as reads and filters write it
            names = category_names_from_root(value.strip())
            if names is not None:
                return names
            if CATEGORY_PATH_RE.fullmatch(value.strip()):
                raise serializers.ValidationError(
                    f'no category has the path "{value.strip()}" (GET /api/v1/categories lists them); to '
                    'create one, write the names from the root as "Men > Shirts"'
                )
        names = [part.strip() for part in value.split(">")] if value.strip() else []
        if any(not name for name in names):
            raise serializers.ValidationError('empty level: write the names from the root as "Women > Tops"')
        if len(names) > MAX_CATEGORY_LEVELS:
            raise serializers.ValidationError(f"at most {MAX_CATEGORY_LEVELS} levels")
        if any(len(name) > 120 for name in names):
            raise serializers.ValidationError("each level's name may have at most 120 characters")
        return names

    def validate_attributes(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50:
            raise serializers.ValidationError("at most 50 attributes")
        for key in value:
            if not key.strip() or len(key) > 60 or "\x00" in key:
                raise serializers.ValidationError("names must be 1–60 characters, without NUL characters")
        return value

    def validate_variants(self, value: list[dict[str, Any]]) -> list[tuple[str, int]]:
        if len(value) > 50:
            raise serializers.ValidationError("at most 50 sizes")
        sizes = [v["size"] for v in value]
        duplicates = sorted({s for s in sizes if sizes.count(s) > 1})
        if duplicates:
            raise serializers.ValidationError(f"size(s) named twice: {', '.join(duplicates)}")
        return [(v["size"], v["stock"]) for v in value]


class ProductUpdateSerializer(ProductWriteSerializer):
    """Every field optional; the SKU is the URL's and cannot change."""

    sku = None  # type: ignore[assignment]
    is_active = serializers.BooleanField(required=False)


class VariantStockSerializer(serializers.Serializer):
    stock = serializers.IntegerField(min_value=0, max_value=MAX_INT32)


class ImageUploadFormSerializer(serializers.Serializer):
    images = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        min_length=1,
        help_text="one or more photos (repeat the field); each is checked and stored alone",
    )

    def validate_images(self, value: list[Any]) -> list[Any]:
        most = settings.SHOP_API_MAX_FILES
        if len(value) > most:
            raise serializers.ValidationError(f"at most {most} photos per request")
        return value


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"}, trim_whitespace=False)
