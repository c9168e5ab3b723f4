"""Storefront pages: home, categories, text and photo search, product pages, and the embeddable
alternatives widget. Thin: reads go through catalog selectors, search through search.services and
search.alternatives, what the templates show is built in search.presenters."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods

from catalog import selectors as catalog_selectors
from catalog.image_checks import ImageRejected
from catalog.models import Product
from search import alternatives, answers, presenters, services
from search.forms import FILTER_FIELDS, PhotoForm, SearchForm
from search.query_photos import (
    PhotoNotFound,
    query_photo_open,
    query_photo_search,
    query_photo_store,
    query_photo_url,
)

GRID_PAGE_SIZE = 24
PHOTO_RESULTS = 8
WIDGET_MAX = 12


def _render(request: HttpRequest, template: str, context: dict[str, object], status: int = 200) -> HttpResponse:
    context.setdefault("nav", presenters.navigation())
    context.setdefault("q", request.GET.get("q", ""))
    return render(request, template, context, status=status)


def _not_found(request: HttpRequest, message: str) -> HttpResponse:
    return _render(request, "search/not_found.html", {"message": message}, status=404)


def _grid(request: HttpRequest, products: QuerySet[Product], base: str) -> dict[str, object]:
    page = Paginator(products, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    current = {"page": page.number}
    return {
        "cards": presenters.cards(page.object_list),
        "total": page.paginator.count,
        "pager": presenters.page_links(base, current, page.number, page.paginator.num_pages),
    }


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    context = _grid(request, catalog_selectors.product_list(), reverse("search:home"))
    return _render(request, "search/home.html", context)


@require_GET
def category(request: HttpRequest, path: str) -> HttpResponse:
    found = catalog_selectors.category_get_by_path(path)
    if found is None:
        return _not_found(request, f"There is no category “{path.strip('/')}”.")
    context = _grid(request, catalog_selectors.product_list_in_category(found), presenters.category_url(found))
    context |= {
        "category": found,
        "crumbs": presenters.breadcrumbs(found),
        "children": [
            {"name": c.name, "url": presenters.category_url(c)} for c in catalog_selectors.category_children(found)
        ],
        "active_path": found.path.split("/")[0],
    }
    return _render(request, "search/category.html", context)


def _current(form: SearchForm, *names: str) -> dict[str, object]:
    return {name: form.value(name) for name in names}


class _PastTheEnd(Exception):
    """A result page past the last one: go to the last page instead (never cached)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    context: dict[str, object] = {"form": form, "problems": form.problems(), "q": form.query}
    if not form.query:
        return _render(request, "search/search.html", context)
    # the results are the same for every visitor of this URL: rendered once per catalog version
    key = answers.answer_key("page", request.build_absolute_uri())
    try:
        context["body"] = mark_safe(answers.answer_cached(key, lambda: _search_body(form)))  # our template's output
    except _PastTheEnd as past:
        return redirect(past.url)
    return _render(request, "search/search.html", context)


def _search_body(form: SearchForm) -> str:
    """The rendered results of a valid search form (search/_search_body.html)."""
    base = reverse("search:search")
    current = _current(form, "q", *FILTER_FIELDS, "ignore")
    result = services.search_products(
        form.query, filters=form.filters(), page=form.page_number, page_size=GRID_PAGE_SIZE, ignore=form.ignored
    )
    if result.hits == [] and result.total and form.page_number > 1:  # a page past the end: the last one
        raise _PastTheEnd(presenters.link(base, current, page=result.pages if result.pages > 1 else None))
    context = {
        "form": form,
        "result": result,
        "cards": presenters.cards_for_ids([h.product_id for h in result.hits]),
        "facets": presenters.facets(result.facets, base, current),
        "chips": presenters.active_filters(base, current),
        "understood": presenters.understood_chips(base, current, result.understood, result.ignored),
        "ranking_note": services.RANKING_NOTE,
        "clear_url": presenters.link(base, {"q": form.query}),
        "corrected_url": presenters.link(base, current, q=result.corrected_query) if result.corrected_query else "",
        "pager": presenters.page_links(base, current, result.page, result.pages),
        "in_stock_url": presenters.link(base, current, in_stock=not form.value("in_stock")),
    }
    return str(render_to_string("search/_search_body.html", context))


@require_http_methods(["GET", "POST"])
def photo_upload(request: HttpRequest) -> HttpResponse:
    """POST a photo (multipart ``photo``) → kept under MEDIA_ROOT → redirect to its result page."""
    if request.method == "GET":
        return _render(request, "search/photo.html", {"upload_only": True})
    form = PhotoForm(request.POST, request.FILES)
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)  # an ErrorList yields str
        return _render(request, "search/photo.html", {"error": error, "upload_only": True}, status=400)
    upload = form.cleaned_data["photo"]
    limit = settings.SHOP_MAX_IMAGE_BYTES
    if upload.size and upload.size > limit:  # refused before its bytes are read into memory
        error = f"{upload.name}: {upload.size / 1e6:.1f} MB is over the {limit / 1e6:.1f} MB limit for one image"
        return _render(request, "search/photo.html", {"error": error, "upload_only": True}, status=400)
    try:
        token = query_photo_store(upload.read(), upload.name or "your photo", upload.content_type or "")
    except ImageRejected as exc:
        return _render(request, "search/photo.html", {"error": str(exc), "upload_only": True}, status=400)
    params = {k: v for k, v in request.POST.items() if k in ("in_stock", "category") and v}
    target = reverse("search:photo", args=[token])
    return redirect(f"{target}?{urlencode(params)}" if params else target)


@require_GET
def photo_results(request: HttpRequest, token: str) -> HttpResponse:
    form = SearchForm(request.GET)
    try:
        photo = query_photo_open(token)
    except PhotoNotFound as exc:
        return _render(request, "search/photo.html", {"error": str(exc), "upload_only": True}, status=404)
    chosen_raw = request.GET.get("garment", "")
    chosen = int(chosen_raw) if chosen_raw.isdigit() else None
    base = reverse("search:photo", args=[token])
    current = _current(form, *FILTER_FIELDS) | {"garment": chosen}
    results = query_photo_search(token, form.filters(), PHOTO_RESULTS)
    garments = presenters.garment_views(
        results, photo.size, lambda i: presenters.link(base, current, garment=i if i != chosen else None), chosen
    )
    error = ""
    if chosen is not None and not 0 <= chosen < len(garments):
        error = f"This photo shows {len(garments)} garment(s); showing all of them."
        chosen = None
    context: dict[str, object] = {
        "token": token,
        "photo_url": query_photo_url(token),
        "photo_size": photo.size,
        "garments": garments,
        "shown": [g for g in garments if chosen is None or g.index == chosen],
        "chosen": chosen,
        "all_url": presenters.link(base, current, garment=None),
        "chips": presenters.active_filters(base, current),
        "in_stock_url": presenters.link(base, current, in_stock=not form.value("in_stock")),
        "in_stock": bool(form.value("in_stock")),
        "error": error,
        "models": services.models_served(),
    }
    return _render(request, "search/photo.html", context)


@require_GET
def product(request: HttpRequest, sku: str) -> HttpResponse:
    # the page is the same for every visitor of this URL: built once per catalog version
    key = answers.answer_key("page", request.build_absolute_uri())
    context = answers.answer_cached(key, lambda: _product_context(request, sku))
    if context is None:
        return _not_found(request, f"We could not find a product with the code “{sku}”.")
    return _render(request, "search/product.html", dict(context))


def _product_context(request: HttpRequest, sku: str) -> dict[str, object] | None:
    """What the product page shows (None when there is no such active product; not cached)."""
    found = catalog_selectors.product_get(sku)
    if found is None or not found.is_active:
        return None
    url = reverse("search:product", args=[found.sku])
    size = request.GET.get("size", "").strip()[:30]
    variants = catalog_selectors.product_variants(found.pk)
    sizes = presenters.sizes(variants, url, size)
    chosen = next((s for s in sizes if s["chosen"]), None)
    size_missing = bool(size) and chosen is None
    size_sold_out = chosen is not None and not chosen["in_stock"]
    similar = alternatives.similar_products(found.pk, limit=8)
    instead = []
    if not found.in_stock or size_sold_out:  # type: ignore[attr-defined]  # product_get annotates in_stock
        alts = alternatives.alternatives_for(found.pk, size=size if size_sold_out else "", limit=5)
        instead = presenters.cards_for_ids([a.product_id for a in alts], {a.product_id: a.reason for a in alts})
    return {
        "product": found,
        "card": presenters.product_card(found),
        "gallery": presenters.gallery(found),
        "sizes": sizes,
        "size": chosen["size"] if chosen else "",
        "size_missing": size if size_missing else "",
        "size_sold_out": size_sold_out,
        "similar": presenters.cards_for_ids([a.product_id for a in similar]),
        "instead": instead,
        "crumbs": presenters.breadcrumbs(found.category) if found.category else [],
        "active_path": found.category.path.split("/")[0] if found.category else "",
    }


# --- the embeddable alternatives widget -----------------------------------------------------------


def _widget_headers(response: HttpResponse, max_age: int = 300) -> HttpResponse:
    response["Cache-Control"] = f"public, max-age={max_age}"
    response["Access-Control-Allow-Origin"] = "*"  # public, read-only data for pages on other origins
    return response


def _widget_error(message: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=60" if status == 404 else "no-store"
    return response


@require_GET
def widget_alternatives(request: HttpRequest, sku: str) -> HttpResponse:
    """``/widget/alternatives/<sku>.json?limit=5&size=M``: in-stock alternatives as JSON, cacheable
    (ETag, 304) and readable from any origin."""
    limit_raw = request.GET.get("limit", "5")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= WIDGET_MAX:
        return _widget_error(f"limit must be a whole number from 1 to {WIDGET_MAX}", 400)
    size = request.GET.get("size", "").strip()[:30]
    found = catalog_selectors.product_get(sku)
    if found is None or not found.is_active:
        return _widget_error(f"no product with SKU {sku!r}", 404)
    alts = alternatives.alternatives_for(found.pk, size=size, limit=int(limit_raw))
    payload = presenters.widget_payload(found, alts, request.build_absolute_uri, size)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_json_default).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    matches = [t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")]
    if etag in matches or "*" in matches:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["ETag"] = etag
    return _widget_headers(response)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@lru_cache(maxsize=1)
def _widget_script() -> bytes:
    found = finders.find("js/alternatives-widget.js")
    if not found:
        raise Http404("widget script missing")
    return Path(str(found)).read_bytes()


@require_GET
def widget_script(request: HttpRequest) -> HttpResponse:
    """``/widget/alternatives.js``: the one-tag embed script (see docs/widget.md)."""
    body = _widget_script()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/javascript; charset=utf-8")
    response["ETag"] = etag
    return _widget_headers(response, max_age=3600)
