"""REST API v1 views: thin — validate the request, call catalog / search / workers services and
selectors, shape the answer. Errors take one body (``api.errors``)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from api import serializers as s
from api import services
from api.errors import Conflict, ImageRefused
from api.permissions import IsCatalogStaff, PublicReadOnly
from api.responses import cached_body
from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.csv_format import SKU_PATTERN
from catalog.image_checks import ImageRejected, image_check_and_decode
from catalog.models import Product, ProductImage
from search import alternatives as search_alternatives
from search import services as search_services

MAX_ID = 2**63 - 1


# --- helpers -----------------------------------------------------------------------------------


def validated(serializer_class: type[s.serializers.Serializer], data: Any, *, partial: bool = False) -> dict[str, Any]:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def conditional(request: Request, data: Any) -> Response:
    """``data`` with a strong ETag (a hash of the exact JSON sent); ``304 Not Modified`` without a
    body when the client's ``If-None-Match`` names it."""
    etag = '"' + hashlib.sha256(JSONRenderer().render(data)).hexdigest()[:40] + '"'
    wanted = [tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")]
    response = Response(status=status.HTTP_304_NOT_MODIFIED) if etag in wanted or "*" in wanted else Response(data)
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


def page_links(request: Request, *, offset: int, limit: int, count: int) -> dict[str, Any]:
    url = request.build_absolute_uri()
    following = (
        replace_query_param(replace_query_param(url, "limit", limit), "offset", offset + limit)
        if offset + limit < count
        else None
    )
    previous = None
    if offset > 0:
        back = replace_query_param(url, "limit", limit)
        previous = (
            remove_query_param(back, "offset")
            if offset - limit <= 0
            else replace_query_param(back, "offset", offset - limit)
        )
    return {"count": count, "next": following, "previous": previous}


def facet_lists(facets: dict[str, list[tuple[str, int]]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [{"value": value, "count": n} for value, n in values] for name, values in facets.items()}


def summaries(request: Request, product_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Product summaries of these (active) products, by id."""
    products = catalog_selectors.products_by_ids(product_ids)
    data = s.ProductSummarySerializer.rows(products, {"request": request})
    return {p.pk: row for p, row in zip(products, data, strict=True)}


def product_or_404(request: Request, view: APIView, sku: str) -> Product:
    product = catalog_selectors.product_get(sku)
    if product is None:
        raise exceptions.NotFound(f"No product with SKU {sku}.")
    view.check_object_permissions(request, product)
    return product


def image_or_404(request: Request, view: APIView, image_id: int) -> ProductImage:
    image = catalog_selectors.image_get(image_id) if image_id <= MAX_ID else None
    if image is None:
        raise exceptions.NotFound(f"No image with id {image_id}.")
    view.check_object_permissions(request, image)
    return image


ERROR_TEXT = {
    400: "The request is not valid (`validation_error`, or `image_rejected` for a refused photo).",
    401: "No or a wrong token (`not_authenticated`, `authentication_failed`).",
    403: "Signed in, but not allowed (`permission_denied`: staff only).",
    404: "No such object (`not_found`).",
    409: "Conflict (`conflict`: the SKU exists).",
    413: "The body is over the upload limit (`payload_too_large`); refused before it is read.",
    415: "The body's content type is not accepted here (`unsupported_media_type`).",
    429: "Too many requests (`throttled`); the `Retry-After` header says how many seconds to wait.",
}
VALIDATION_EXAMPLE = OpenApiExample(
    "validation error",
    value={
        "error": {
            "code": "validation_error",
            "message": "price_max: must not be below price_min",
            "fields": {"price_max": ["must not be below price_min"]},
        }
    },
    response_only=True,
    status_codes=["400"],
)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(s.ErrorSerializer, description=ERROR_TEXT[code]) for code in (*codes, 429)}


NOT_MODIFIED = {304: OpenApiResponse(description="Not modified: the `If-None-Match` ETag is current (no body).")}
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="the `ETag` of an earlier answer: `304` without a body when nothing changed",
)
SKU = OpenApiParameter("sku", str, OpenApiParameter.PATH, pattern=f"^{SKU_PATTERN}$", description="product SKU")
IMAGE_ID = OpenApiParameter("image_id", int, OpenApiParameter.PATH, description="image id")
SUMMARY_EXAMPLE = {
    "sku": "0706016001",
    "title": "Jade HW Skinny Denim TRS",
    "price": "29.99",
    "currency": "EUR",
    "colour": "Black",
    "pattern": "Solid",
    "brand": "",
    "category": {"path": "trousers", "name": "Trousers", "full_name": "Trousers"},
    "in_stock": True,
    "sizes_in_stock": ["S", "M"],
    "image_url": "http://127.0.0.1:8000/media/products/0706016001/3f1c2d.jpg",
    "cutout_url": "http://127.0.0.1:8000/media/cutouts/0706016001/17.png",
    "url": "http://127.0.0.1:8000/api/v1/products/0706016001",
}


def product_body(request: Request, product: Any) -> dict[str, Any]:
    """A product as the detail endpoints return it (absolute URLs for this request's host)."""
    return s.ProductDetailSerializer(product, context={"request": request}).data


# --- catalog reads -----------------------------------------------------------------------------


class CategoryListView(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["catalog"],
        operation_id="categories_list",
        summary="Category tree",
        description="Every category, in tree order (by path), with the number of active products in it and below.",
        parameters=[IF_NONE_MATCH],
        responses={200: s.CategorySerializer(many=True), **NOT_MODIFIED, **errors()},
    )
    def get(self, request: Request) -> Response:
        def body() -> Any:
            return s.CategorySerializer(catalog_selectors.category_list(), many=True).data

        return conditional(request, cached_body(request, body))


class ProductListView(APIView):
    permission_classes = [PublicReadOnly]
    parser_classes = [JSONParser]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["catalog"],
        operation_id="products_list",
        summary="Products, filtered, with facets",
        description="Active products with the storefront's filters; `facets` count over the whole filtered "
        "result. Pages by `limit`/`offset` in a stable order (ties broken by id). Carries an `ETag`.",
        parameters=[s.ProductListQuerySerializer, IF_NONE_MATCH],
        responses={200: s.ProductPageSerializer, **NOT_MODIFIED, **errors(400)},
        examples=[VALIDATION_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        query = validated(s.ProductListQuerySerializer, request.query_params)
        return conditional(request, cached_body(request, lambda: self.body(request, query)))

    @staticmethod
    def body(request: Request, query: dict[str, Any]) -> dict[str, Any]:
        ids = catalog_selectors.product_ids_matching(s.FilterQuerySerializer.filters(query), ordering=query["ordering"])
        offset, limit = query["offset"], query["limit"]
        page_ids = ids[offset : offset + limit]
        rows = summaries(request, page_ids)
        return {
            **page_links(request, offset=offset, limit=limit, count=len(ids)),
            "results": [rows[pid] for pid in page_ids if pid in rows],
            "facets": facet_lists(search_services.facets_of(ids)),
        }

    @extend_schema(
        tags=["staff"],
        operation_id="products_create",
        summary="Create a product (staff)",
        description="A new product with its stock by size. Its text is embedded by the workers after commit.",
        request=s.ProductWriteSerializer,
        responses={201: s.ProductDetailSerializer, **errors(400, 401, 403, 409, 413, 415)},
        examples=[
            OpenApiExample(
                "new product",
                value={
                    "sku": "TEE-NAVY-01",
                    "title": "Navy cotton t-shirt",
                    "price": "19.99",
                    "currency": "EUR",
                    "colour": "Navy",
                    "pattern": "Solid",
                    "category": "Women > Tops",
                    "design_group": "TEE1",
                    "attributes": {"material": "cotton"},
                    "variants": [{"size": "S", "stock": 3}, {"size": "M", "stock": 0}],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ProductWriteSerializer, request.data)
        sku = data.pop("sku")
        variants = data.pop("variants", None)
        try:
            catalog_services.product_create(sku=sku, values=data, variants=variants)
        except catalog_services.ProductExists:
            raise Conflict(f"A product with SKU {sku} exists; PATCH /api/v1/products/{sku} to change it.") from None
        product = catalog_selectors.product_get(sku)
        body = product_body(request, product)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class ProductDetailView(APIView):
    permission_classes = [PublicReadOnly]
    parser_classes = [JSONParser]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["catalog"],
        operation_id="product_get",
        summary="One product",
        description="Variants with stock, photos with their garment cutouts (`cutout_url`, null until "
        "processed). Carries an `ETag`; send it back as `If-None-Match` for a `304`.",
        parameters=[SKU, IF_NONE_MATCH],
        responses={200: s.ProductDetailSerializer, **NOT_MODIFIED, **errors(404)},
    )
    def get(self, request: Request, sku: str) -> Response:
        def body() -> dict[str, Any]:
            return product_body(request, product_or_404(request, self, sku))

        return conditional(request, cached_body(request, body))

    @extend_schema(
        tags=["staff"],
        operation_id="product_update",
        summary="Update a product (staff)",
        description="Only the fields sent change. `variants`, when sent, is the whole stock by size.",
        parameters=[SKU],
        request=s.ProductUpdateSerializer,
        responses={200: s.ProductDetailSerializer, **errors(400, 401, 403, 404, 413, 415)},
        examples=[OpenApiExample("new price", value={"price": "14.99"}, request_only=True)],
    )
    def patch(self, request: Request, sku: str) -> Response:
        product_or_404(request, self, sku)
        data = validated(s.ProductUpdateSerializer, request.data, partial=True)
        variants = data.pop("variants", None)
        catalog_services.product_update(sku=sku, values=data, variants=variants)
        product = catalog_selectors.product_get(sku)
        return Response(product_body(request, product))


class VariantView(APIView):
    permission_classes = [IsCatalogStaff]
    parser_classes = [JSONParser]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["staff"],
        operation_id="product_variant_set",
        summary="Set one size's stock (staff)",
        description="Creates the size when the product does not have it; other sizes keep their stock.",
        parameters=[SKU, OpenApiParameter("size", str, OpenApiParameter.PATH, description='e.g. "M" or "one size"')],
        request=s.VariantStockSerializer,
        responses={200: s.ProductDetailSerializer, **errors(400, 401, 403, 404, 413, 415)},
    )
    def put(self, request: Request, sku: str, size: str) -> Response:
        product_or_404(request, self, sku)
        stock = validated(s.VariantStockSerializer, request.data)
        checked = validated(s.VariantWriteSerializer, {"size": size, **stock})
        catalog_services.variant_stock_set(sku=sku, size=checked["size"], stock=checked["stock"])
        product = catalog_selectors.product_get(sku)
        return Response(product_body(request, product))


class ProductImagesView(APIView):
    permission_classes = [IsCatalogStaff]
    parser_classes = [MultiPartParser]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["staff"],
        operation_id="product_images_upload",
        summary="Upload photos (staff)",
        description="Several photos at once (repeat `images`). Each is checked before it is stored (real type "
        "from its bytes, size, pixels, decompression bombs, HEIC) and stored alone: a refused file stops none "
        "of the others and leaves nothing behind. Processing (cutout, vectors, attributes, duplicates) runs in "
        "the workers; follow `status_url`. `400 image_rejected` when every file was refused.",
        parameters=[SKU],
        request={"multipart/form-data": s.ImageUploadFormSerializer},
        responses={201: s.UploadResponseSerializer, **errors(400, 401, 403, 404, 413, 415)},
    )
    def post(self, request: Request, sku: str) -> Response:
        product = product_or_404(request, self, sku)
        form = validated(s.ImageUploadFormSerializer, request.data)
        files = [
            services.UploadedFile(f.name or "photo", f.read(), getattr(f, "content_type", "") or "")
            for f in form["images"]
        ]
        results = services.product_images_add(product, files)
        if not any(r.ok for r in results):
            raise ImageRefused("images", [f"{r.name}: {r.error}" for r in results])
        rows = [
            {
                "name": r.name,
                "ok": r.ok,
                "error": r.error,
                "image_id": r.image_id,
                "created": r.created,
                "status_url": request.build_absolute_uri(f"/api/v1/images/{r.image_id}") if r.image_id else None,
            }
            for r in results
        ]
        body = {"stored": sum(r.ok for r in results), "refused": sum(not r.ok for r in results), "results": rows}
        return Response(s.UploadResponseSerializer(body).data, status=status.HTTP_201_CREATED)


ALTERNATIVE_EXAMPLE = {
    "sku": "0706016001",
    "results": [
        {
            "product": {**SUMMARY_EXAMPLE, "sku": "0706016002", "colour": "Light blue"},
            "score": 0.8123,
            "reason": "same design in light blue",
            "look": 0.91,
            "in_size": True,
        }
    ],
}


def _alternatives_body(request: Request, product: Product, found: list[Any]) -> dict[str, Any]:
    rows = summaries(request, [a.product_id for a in found])
    return {
        "sku": product.sku,
        "results": [
            {"product": rows[a.product_id], "score": a.score, "reason": a.reason, "look": a.look, "in_size": a.in_size}
            for a in found
            if a.product_id in rows
        ],
    }


class SimilarView(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "search"

    @extend_schema(
        tags=["search"],
        operation_id="product_similar",
        summary="Similar items",
        description="Products like this one (look, description, price, category), diverse (MMR), each with a reason.",
        parameters=[SKU, s.SimilarQuerySerializer],
        responses={200: s.AlternativesSerializer, **errors(400, 404)},
        examples=[OpenApiExample("similar", value=ALTERNATIVE_EXAMPLE, response_only=True, status_codes=["200"])],
    )
    def get(self, request: Request, sku: str) -> Response:
        query = validated(s.SimilarQuerySerializer, request.query_params)

        def body() -> dict[str, Any]:
            product = product_or_404(request, self, sku)
            try:
                found = search_alternatives.similar_products(product.pk, limit=query["limit"])
            except LookupError:
                raise exceptions.NotFound(f"Product {sku} is not active.") from None
            return _alternatives_body(request, product, found)

        return Response(cached_body(request, body))


class AlternativesView(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "search"

    @extend_schema(
        tags=["search"],
        operation_id="product_alternatives",
        summary="In-stock alternatives for a SKU",
        description="For a product that is sold out (or out of the shopper's `size`): in-stock products of the "
        "same or a sibling category, close in look, description and price; the same design in another colour "
        "first, then the shopper's size. Each with a reason.",
        parameters=[SKU, s.AlternativesQuerySerializer],
        responses={200: s.AlternativesSerializer, **errors(400, 404)},
        examples=[OpenApiExample("alternatives", value=ALTERNATIVE_EXAMPLE, response_only=True, status_codes=["200"])],
    )
    def get(self, request: Request, sku: str) -> Response:
        query = validated(s.AlternativesQuerySerializer, request.query_params)

        def body() -> dict[str, Any]:
            product = product_or_404(request, self, sku)
            try:
                found = search_alternatives.alternatives_for(
                    product.pk, size=query.get("size", ""), limit=query["limit"]
                )
            except LookupError:
                raise exceptions.NotFound(f"Product {sku} is not active.") from None
            return _alternatives_body(request, product, found)

        return Response(cached_body(request, body))


# --- search ------------------------------------------------------------------------------------


class SearchView(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "search"

    @extend_schema(
        tags=["search"],
        operation_id="search_text",
        summary="Text search",
        description="Hybrid search: the query's vector against the products' photos and texts, full-text "
        "keywords, and the catalog's own colour / pattern / category names, fused by reciprocal-rank fusion "
        "with weights that fit the query. Words that are no real word are corrected first (`corrected_query` "
        "when clearly better); prices, departments and sizes named in the query become filters and categories, "
        "colours and patterns boosts (`understood`; undo one with `ignore`). In-stock products first. Filters "
        "apply inside every signal; facets count the whole ranked result (at most 200 products). Pages by "
        "`limit`/`offset`, ties broken by product id.",
        parameters=[s.SearchQuerySerializer],
        responses={200: s.SearchPageSerializer, **errors(400)},
        examples=[
            OpenApiExample(
                "black t-shirt",
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "query": "blak t-shrt",
                    "corrected_query": "black t-shirt",
                    "note": "",
                    "understood": [{"key": "colour", "label": "colour: black", "phrase": "black"}],
                    "ignored": [],
                    "ranking": "in-stock products first: a sold-out one ranks below in-stock ones that match about "
                    "as well (within 10 %), unless the query names it",
                    "results": [{"product": SUMMARY_EXAMPLE, "score": 0.0651, "signals": {"keyword": 1, "image": 3}}],
                    "facets": {
                        "category": [{"value": "women/tops", "count": 1}],
                        "colour": [{"value": "Black", "count": 1}],
                        "pattern": [{"value": "Solid", "count": 1}],
                        "size": [{"value": "M", "count": 1}],
                        "price": [{"value": "20-50", "count": 1}],
                    },
                },
                response_only=True,
                status_codes=["200"],
            ),
            VALIDATION_EXAMPLE,
        ],
    )
    def get(self, request: Request) -> Response:
        query = validated(s.SearchQuerySerializer, request.query_params)
        return Response(cached_body(request, lambda: self.body(request, query)))

    @staticmethod
    def body(request: Request, query: dict[str, Any]) -> dict[str, Any]:
        signals = query.get("signals") or search_services.DEFAULT_SIGNALS
        ignore = query.get("ignore") or frozenset()
        ranking, facets = search_services.ranked_with_facets(
            query["q"], signals=signals, filters=s.FilterQuerySerializer.filters(query), ignore=ignore
        )
        ranked = ranking.hits
        offset, limit = query["offset"], query["limit"]
        page = ranked[offset : offset + limit]
        rows = summaries(request, [h.product_id for h in page])
        return {
            **page_links(request, offset=offset, limit=limit, count=len(ranked)),
            "query": " ".join(query["q"].split()),
            "corrected_query": ranking.corrected,
            "note": search_services.search_note(ranked, signals),
            # what became a filter or a boost; undo one with ignore=<key>
            "understood": [
                {"key": part.key, "label": part.label, "phrase": part.phrase}
                for part in (ranking.understood.parts if ranking.understood else [])
            ],
            "ignored": sorted(ignore),
            "ranking": search_services.RANKING_NOTE,
            "models": search_services.models_served(),
            "results": [
                {"product": rows[h.product_id], "score": round(h.score, 6), "signals": h.signals}
                for h in page
                if h.product_id in rows
            ],
            "facets": facet_lists(facets),
        }


class PhotoSearchView(APIView):
    permission_classes = [AllowAny]
    parser_classes = [MultiPartParser]
    throttle_scope = "photo_search"

    @extend_schema(
        tags=["search"],
        operation_id="search_photo",
        summary="Photo search",
        description="Upload a photo (multipart field `photo`): the garment parser finds each garment the "
        "person wears; each comes back with its box and the products that look like it (of a compatible "
        "kind). Narrow with `crop` (a box) or `garment` (an index from an earlier answer) and the usual "
        "filters. The photo passes the same checks as a staff upload (`400 image_rejected` says why). "
        "Throttled more strictly than text search.",
        request={"multipart/form-data": s.PhotoSearchFormSerializer},
        responses={200: s.PhotoSearchResponseSerializer, **errors(400, 413, 415)},
        examples=[
            OpenApiExample(
                "a person in a top and jeans",
                value={
                    "width": 768,
                    "height": 1024,
                    "garments": [
                        {
                            "index": 0,
                            "label": "top",
                            "box": [210, 180, 560, 520],
                            "score": 0.93,
                            "results": [{"product": SUMMARY_EXAMPLE, "score": 0.87}],
                        }
                    ],
                },
                response_only=True,
                status_codes=["200"],
            ),
            OpenApiExample(
                "not a photo",
                value={
                    "error": {
                        "code": "image_rejected",
                        "message": "photo: invoice.pdf: the file is a PDF document, not a photo; upload a JPEG, "
                        "PNG, WebP, AVIF or GIF",
                        "fields": {
                            "photo": [
                                "invoice.pdf: the file is a PDF document, not a photo; upload a JPEG, PNG, WebP, "
                                "AVIF or GIF"
                            ]
                        },
                    }
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        form = validated(s.PhotoSearchFormSerializer, request.data)
        upload = form["photo"]
        try:
            image = image_check_and_decode(upload.read(), upload.name or "photo", getattr(upload, "content_type", ""))
        except ImageRejected as exc:
            raise ImageRefused("photo", [str(exc)]) from None
        try:
            found = search_services.search_photo(
                image,
                limit=form["limit"],
                filters=s.FilterQuerySerializer.filters(form),
                crop=form.get("crop"),
                garment=form.get("garment"),
            )
        except search_services.PhotoError as exc:
            field = "crop" if "crop" in str(exc) else "garment"
            raise exceptions.ValidationError({field: [str(exc)]}) from None
        rows = summaries(request, sorted({h.product_id for g in found for h in g.hits}))
        first = form.get("garment") or 0
        garments = [
            {
                "index": first + n,
                "label": g.label,
                "box": list(g.box),
                "score": g.score,
                "results": [
                    {"product": rows[h.product_id], "score": round(h.score, 6)} for h in g.hits if h.product_id in rows
                ],
            }
            for n, g in enumerate(found)
        ]
        return Response(
            {
                "width": image.width,
                "height": image.height,
                "garments": garments,
                "models": search_services.models_served(),
            }
        )


# --- staff: images -----------------------------------------------------------------------------


class ImageStatusView(APIView):
    permission_classes = [IsCatalogStaff]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["staff"],
        operation_id="image_status",
        summary="An image's processing status (staff)",
        description="`pending` (stored, waiting for a worker), `processing` (with the `stage`), `ready`, or "
        "`failed` (with the reason in `error`); the cutout and mask once ready; the photo it duplicates, if any.",
        parameters=[IMAGE_ID],
        responses={200: s.ImageStatusSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = image_or_404(request, self, image_id)
        return Response(_image_status(request, image))


def _image_status(request: Request, image: ProductImage) -> dict[str, Any]:
    row = catalog_selectors.image_status_rows(image_ids=[image.pk])[0]
    for key in ("file_url", "cutout_url", "mask_url"):
        url = row[key]  # a str (catalog.selectors.images._file_url)
        row[key] = request.build_absolute_uri(str(url)) if url else None
    return s.ImageStatusSerializer(row).data


class ImageReprocessView(APIView):
    permission_classes = [IsCatalogStaff]
    throttle_scope = "catalog"

    @extend_schema(
        tags=["staff"],
        operation_id="image_reprocess",
        summary="Process an image again (staff)",
        description="Every pipeline stage runs again in the workers; the current cutout and vectors stay in "
        "use until the new ones replace them.",
        parameters=[IMAGE_ID],
        request=None,
        responses={202: s.ReprocessResponseSerializer, **errors(401, 403, 404)},
    )
    def post(self, request: Request, image_id: int) -> Response:
        image = image_or_404(request, self, image_id)
        queued = services.image_reprocess(image.pk)
        message = "queued for processing again" if queued else "saved as pending; the sweep sends it to the workers"
        body = {
            "id": image.pk,
            "queued": queued,
            "message": message,
            "status_url": request.build_absolute_uri(f"/api/v1/images/{image.pk}"),
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


# --- authentication ----------------------------------------------------------------------------


class TokenView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, FormParser]
    throttle_scope = "auth"

    def get_authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'  # wrong credentials: 401, like a wrong token

    @extend_schema(
        tags=["auth"],
        operation_id="auth_token",
        summary="Get an API token",
        description="Username and password → the user's token; send it as `Authorization: Token <token>`. "
        "Rate-limited per client address.",
        request=s.TokenRequestSerializer,
        responses={200: s.TokenResponseSerializer, **errors(400, 401, 413, 415)},
        auth=[],
        examples=[
            OpenApiExample("credentials", value={"username": "ana", "password": "s3cret-pass"}, request_only=True),
            OpenApiExample(
                "token",
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "username": "ana", "is_staff": False},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = validated(s.TokenRequestSerializer, request.data)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("The username or password is wrong.")
        body = {"token": services.token_for(user), "username": user.get_username(), "is_staff": is_staff_user(user)}
        return Response(body)


def is_staff_user(user: Any) -> bool:
    return bool(user.is_active and user.is_staff)
