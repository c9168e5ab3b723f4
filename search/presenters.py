"""What the storefront templates and the widget show: product cards, facet links, active-filter
chips, page links and garment boxes, built from selectors' and search services' results. No
queries of its own beyond catalog selectors; no search logic."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.core.files.storage import default_storage
from django.urls import reverse

from catalog import selectors as catalog_selectors
from catalog.models import Category, Product, Variant
from search.forms import FILTER_FIELDS
from search.understanding import Part

CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
FACET_TITLES = {"category": "Category", "colour": "Colour", "pattern": "Pattern", "size": "Size", "price": "Price"}
FACET_LIMIT = 12  # values shown per facet


def price_display(price: Decimal | float, currency: str) -> str:
    sign = CURRENCY_SIGNS.get(currency.upper())
    amount = f"{Decimal(price):,.2f}"
    return f"{sign}{amount}" if sign else f"{amount} {currency.upper()}"


@dataclass
class Card:
    id: int
    sku: str
    title: str
    url: str
    price: str
    price_value: Decimal
    currency: str
    in_stock: bool
    image_url: str  # the garment cutout when there is one, else the original photo; "" without images
    category: str = ""
    reason: str = ""


def product_picture(product: Product, *, cutout: bool = True) -> str:
    """URL of the product's first image: its cutout (an RGBA PNG) when ready, else the original.
    Reads a summary's first-photo file names (``catalog.selectors.products_by_ids``) when it has them."""
    if hasattr(product, "summary_file"):
        # products_by_ids annotates summary_cutout together with summary_file (hasattr narrows only that one)
        name = (cutout and product.summary_cutout) or product.summary_file  # type: ignore[attr-defined]
        return default_storage.url(name) if name else ""
    images = list(product.images.all())
    for image in images:
        if cutout and image.cutout:
            return image.cutout.url
        if image.file:
            return image.file.url
    return ""


def product_card(product: Product, reason: str = "") -> Card:
    return Card(
        id=product.pk,
        sku=product.sku,
        title=product.title,
        url=reverse("search:product", args=[product.sku]),
        price=price_display(product.price, product.currency),
        price_value=product.price,
        currency=product.currency,
        in_stock=bool(getattr(product, "in_stock", True)),
        image_url=product_picture(product),
        category=product.category.name if product.category_id and product.category else "",
        reason=reason,
    )


def cards_for_ids(product_ids: Sequence[int], reasons: Mapping[int, str] | None = None) -> list[Card]:
    """Cards for these products, in this order (inactive or deleted products are left out)."""
    reasons = reasons or {}
    return [product_card(p, reasons.get(p.pk, "")) for p in catalog_selectors.products_by_ids(product_ids)]


def cards(products: Iterable[Product]) -> list[Card]:
    return [product_card(p) for p in products]


# --- navigation -----------------------------------------------------------------------------------


def category_url(category: Category) -> str:
    return reverse("search:category", args=[category.path])


def navigation() -> list[dict[str, str]]:
    return [{"name": c.name, "url": category_url(c), "path": c.path} for c in catalog_selectors.category_list_top()]


def breadcrumbs(category: Category) -> list[dict[str, str]]:
    trail = [*catalog_selectors.category_ancestors(category), category]
    return [{"name": c.name, "url": category_url(c)} for c in trail]


# --- links that keep the URL's query and filters --------------------------------------------------


def _empty(value: object) -> bool:
    return value is None or value is False or value == ""  # 0 is a value (garment 0), not empty


def _params(current: Mapping[str, object], **changes: object) -> dict[str, str]:
    keep = {k: str(v) for k, v in current.items() if not _empty(v)}
    for key, value in changes.items():
        if _empty(value):
            keep.pop(key, None)
        else:
            keep[key] = "1" if value is True else str(value)
    return keep


def link(base: str, current: Mapping[str, object], **changes: object) -> str:
    """``base`` with the current parameters, ``changes`` applied (None / "" removes one); the page
    number is dropped unless it is among the changes."""
    if "page" not in changes:
        changes["page"] = None
    params = _params(current, **changes)
    return f"{base}?{urlencode(params)}" if params else base


def _band_bounds(band: str) -> tuple[str, str]:
    if band.endswith("+"):
        return band[:-1], ""
    low, _, high = band.partition("-")
    return low, high


def _plain(value: object) -> str:
    """A price as the URL writes it: 20 rather than 20.00."""
    if value in (None, ""):
        return ""
    number = Decimal(str(value))
    return str(number.quantize(Decimal(1))) if number == number.to_integral() else str(number)


@dataclass
class FacetValue:
    label: str
    count: int
    url: str
    active: bool


@dataclass
class Facet:
    name: str
    title: str
    values: list[FacetValue] = field(default_factory=list)


def facets(found: Mapping[str, Sequence[tuple[str, int]]], base: str, current: Mapping[str, object]) -> list[Facet]:
    """Facet values as links that add the filter, or remove it when it is the active one."""
    names = catalog_selectors.category_names_by_path([value for value, _ in found.get("category", [])])
    out: list[Facet] = []
    for name in ("category", "colour", "pattern", "size", "price"):
        facet = Facet(name, FACET_TITLES[name])
        for value, count in list(found.get(name, []))[:FACET_LIMIT]:
            if name == "price":
                low, high = _band_bounds(value)
                active = _plain(current.get("price_min")) == low and _plain(current.get("price_max")) == high
                url = (
                    link(base, current, price_min=None, price_max=None)
                    if active
                    else link(base, current, price_min=low, price_max=high or None)
                )
                label = f"{low}+" if not high else f"{low}–{high}"
            else:
                active = str(current.get(name) or "").lower() == value.lower()
                url = link(base, current, **{name: None if active else value})
                label = names.get(value, value).replace(" > ", " › ") if name == "category" else value
            facet.values.append(FacetValue(label, count, url, active))
        if facet.values:
            out.append(facet)
    return out


def active_filters(base: str, current: Mapping[str, object]) -> list[dict[str, str]]:
    """One removable chip per active filter: label and the URL without it."""
    chips: list[dict[str, str]] = []
    for name in FILTER_FIELDS:
        value = current.get(name)
        if _empty(value) or (name == "price_max" and not _empty(current.get("price_min"))):
            continue
        if name in ("price_min", "price_max"):
            low, high = _plain(current.get("price_min")), _plain(current.get("price_max"))
            label = f"Price {low}–{high}" if low and high else (f"Price from {low}" if low else f"Price up to {high}")
            url = link(base, current, price_min=None, price_max=None)
        elif name == "in_stock":
            label, url = "In stock only", link(base, current, in_stock=None)
        elif name == "category":
            names = catalog_selectors.category_names_by_path([str(value)])
            label = names.get(str(value), str(value)).replace(" > ", " › ")
            url = link(base, current, category=None)
        else:
            label, url = f"{FACET_TITLES[name]}: {value}", link(base, current, **{name: None})
        chips.append({"label": label, "url": url})
    return chips


def understood_chips(
    base: str, current: Mapping[str, object], parts: list[Part], ignored: list[str]
) -> list[dict[str, str]]:
    """One chip per understood part of the query (a filter or a boost the shop read from the words):
    its label and the URL that undoes it; then one per undone part, with the URL that reads it again."""
    chips = []
    for part in parts:
        undo = ",".join(sorted({*ignored, part.key}))
        chips.append(
            {"label": part.label, "phrase": part.phrase, "url": link(base, current, ignore=undo), "undone": ""}
        )
    for key in ignored:
        again = ",".join(k for k in ignored if k != key)
        chips.append({"label": key, "phrase": "", "url": link(base, current, ignore=again or None), "undone": "1"})
    return chips


def page_links(base: str, current: Mapping[str, object], page: int, pages: int) -> dict[str, object]:
    """Previous / next and a short run of page numbers around the current one."""
    window = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    numbers: list[dict[str, object]] = []
    last = 0
    for n in window:
        if n - last > 1:
            numbers.append({"gap": True})
        numbers.append({"number": n, "url": link(base, current, page=n if n > 1 else None), "current": n == page})
        last = n
    return {
        "page": page,
        "pages": pages,
        "previous": link(base, current, page=page - 1 if page > 2 else None) if page > 1 else "",
        "next": link(base, current, page=page + 1) if page < pages else "",
        "numbers": numbers if pages > 1 else [],
    }


# --- product page ---------------------------------------------------------------------------------


def gallery(product: Product) -> list[dict[str, str]]:
    out = []
    for image in product.images.all():
        if not image.file:
            continue
        out.append(
            {
                "original": image.file.url,
                "cutout": image.cutout.url if image.cutout else "",
                "role": image.get_role_display(),
            }
        )
    return out


def sizes(variants: Sequence[Variant], product_url: str, chosen: str) -> list[dict[str, object]]:
    return [
        {
            "size": v.size,
            "stock": v.stock,
            "in_stock": v.stock > 0,
            "few": 0 < v.stock <= 3,
            "chosen": v.size.lower() == chosen.lower(),
            "url": f"{product_url}?{urlencode({'size': v.size})}",
        }
        for v in variants
    ]


# --- photo search ---------------------------------------------------------------------------------


@dataclass
class GarmentView:
    index: int
    label: str
    left: float  # % of the photo's width / height
    top: float
    width: float
    height: float
    url: str
    chosen: bool
    cards: list[Card]
    label_below: bool = False  # the label sits at the box's bottom edge (another label holds the top spot)
    layer: int = 1  # smaller boxes above larger ones, so a box inside another stays clickable


def garment_views(
    results: Sequence[object],
    photo_size: tuple[int, int],
    url_for: Callable[[int], str],
    chosen: int | None,
) -> list[GarmentView]:
    """Each garment found (``search.services.GarmentResult``) as a box in % of the photo, with its
    result cards."""
    width, height = photo_size
    views: list[GarmentView] = []
    for index, result in enumerate(results):
        x0, y0, x1, y1 = result.box  # type: ignore[attr-defined]
        hits = result.hits  # type: ignore[attr-defined]
        views.append(
            GarmentView(
                index=index,
                label=str(result.label),  # type: ignore[attr-defined]
                left=round(100.0 * x0 / width, 3),
                top=round(100.0 * y0 / height, 3),
                width=round(100.0 * (x1 - x0) / width, 3),
                height=round(100.0 * (y1 - y0) / height, 3),
                url=url_for(index),
                chosen=chosen == index,
                cards=cards_for_ids([h.product_id for h in hits]),
            )
        )
    views.sort(key=lambda v: (v.top, v.left))  # head to toe; each keeps the service's index for its link
    _place_labels(views)
    return views


def _place_labels(views: list[GarmentView]) -> None:
    """Labels go at a box's top-left corner unless another label is already (nearly) there; then at
    its bottom-left. Smaller boxes are layered above larger ones."""
    taken: list[tuple[float, float]] = []

    def free(x: float, y: float) -> bool:
        return all(abs(x - tx) > 18 or abs(y - ty) > 7 for tx, ty in taken)

    for view in views:
        top, bottom = (view.left, view.top), (view.left, view.top + view.height - 6)
        view.label_below = not free(*top) and free(*bottom)
        taken.append(bottom if view.label_below else top)
    for layer, view in enumerate(sorted(views, key=lambda v: -(v.width * v.height)), start=1):
        view.layer = layer


# --- widget ---------------------------------------------------------------------------------------


def widget_payload(
    product: Product, alternatives: Sequence[object], absolute: Callable[[str], str], size: str
) -> dict[str, object]:
    """The alternatives widget's JSON (see docs/widget.md)."""
    reasons = {a.product_id: a.reason for a in alternatives}  # type: ignore[attr-defined]
    items = []
    for card in cards_for_ids(list(reasons), reasons):
        items.append(
            {
                "sku": card.sku,
                "title": card.title,
                "price": f"{card.price_value:.2f}",
                "price_display": card.price,
                "currency": card.currency,
                "image": absolute(card.image_url) if card.image_url else None,
                "url": absolute(card.url),
                "reason": card.reason,
            }
        )
    return {
        "sku": product.sku,
        "title": product.title,
        "url": absolute(reverse("search:product", args=[product.sku])),
        "in_stock": bool(getattr(product, "in_stock", False)),
        "size": size,
        "alternatives": items,
    }
