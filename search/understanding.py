"""Query understanding: what in a shopper's query the catalog can filter on or boost, and the rest.

From "men's black jumpers under 30 euros" it takes

* a **price** bound ("under 30 euros", "below €30", "less than 30", "over 50", "between 20 and 40",
  "20-40 €"; "cheap" = the cheapest third of the catalog) → a price filter;
* a **department** ("men's", "for women", "kids", "baby", "sportswear") → a filter on the products'
  department attribute (``SEARCH_DEPARTMENT_ATTRIBUTE``; the words and values in ``SEARCH_DEPARTMENTS``),
  only where the catalog has that department;
* a **size** ("size M", "in size 38") → in stock in that size, where the catalog has it;
* **category, colour and pattern** names (with plurals and the synonyms in ``SEARCH_SYNONYMS``:
  "jeans", "pants" → trousers; "jumper" → sweater) → boosts through the attribute signal.

Filter phrases leave the text the signals read (numbers and "men's" only confuse the keyword match);
the rest goes to every signal. Each understood part is shown to the shopper as a chip they can undo:
an undone part (its ``key`` in ``ignore``) is read as plain words again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

from django.conf import settings

from catalog.selectors import ProductFilters
from search.caching import catalog_fact

PART_KEYS = ("price", "department", "size", "category", "colour", "pattern")
CURRENCY = r"(?:€|eur|euros?|\$|usd|dollars?|£|gbp|pounds?)"
NUMBER = r"(\d{1,6}(?:[.,]\d{1,2})?)"
_MAX = re.compile(
    rf"\b(?:under|below|less than|cheaper than|up to|at most|max(?:imum)?|no more than)\s*{CURRENCY}?\s*{NUMBER}"
    rf"\s*{CURRENCY}?(?!\w)|<\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?(?!\w)",
    re.IGNORECASE,
)
_MIN = re.compile(
    rf"\b(?:over|above|more than|at least|from)\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?(?!\w)", re.IGNORECASE
)
_RANGE = re.compile(
    rf"\b(?:between\s*)?{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?\s*(?:-|–|to|and)\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}(?!\w)"
    rf"|\bbetween\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?\s*and\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?(?!\w)",
    re.IGNORECASE,
)
_CHEAP = re.compile(r"\b(?:cheap|cheapest|budget|affordable|inexpensive|bargain)\b", re.IGNORECASE)
_SIZE = re.compile(r"\b(?:in\s+)?size\s+([a-z0-9]{1,5})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """One understood part of the query, shown as a chip the shopper can undo."""

    key: str  # one of PART_KEYS (undo it by adding the key to ``ignore``)
    label: str  # what the chip says: "under 30.00 EUR", "men", "size M", "category: trousers"
    phrase: str  # the words of the query it came from


@dataclass
class Understood:
    query: str  # as typed (after cleaning)
    text: str  # what the signals read: the query without its filter phrases
    filters: ProductFilters  # the shopper's filters with the understood ones added
    parts: list[Part] = field(default_factory=list)
    ignore: frozenset[str] = frozenset()


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None


def _cut(text: str, span: tuple[int, int]) -> str:
    return text[: span[0]] + " " + text[span[1] :]


def understand_query(
    query: str,
    filters: ProductFilters | None = None,
    *,
    ignore: frozenset[str] | set[str] = frozenset(),
    recognised: dict[str, list[str]] | None = None,
) -> Understood:
    """The parts of ``query`` the catalog can filter on or boost (none of the ``ignore`` keys), and the
    text left for the signals. Filters the shopper set explicitly win over understood ones.
    ``recognised``: the catalog attribute values the query names (search.services.recognise_attributes),
    shown as chips too."""
    from catalog import selectors as catalog_selectors

    ignore = frozenset(ignore)
    filters = filters or ProductFilters()
    text = query
    parts: list[Part] = []
    currency = settings.SHOP_DEFAULT_CURRENCY
    price_min, price_max = filters.price_min, filters.price_max
    if "price" not in ignore:
        found = _RANGE.search(text)
        if found:
            numbers = [g for g in found.groups() if g]
            low, high = _number(numbers[0]), _number(numbers[1])
            if low is not None and high is not None and low <= high:
                price_min = price_min if price_min is not None else low
                price_max = price_max if price_max is not None else high
                parts.append(Part("price", f"{low:.2f}–{high:.2f} {currency}", found.group(0).strip()))
                text = _cut(text, found.span())
        else:
            upper, lower = _MAX.search(text), _MIN.search(text)
            if upper:
                bound = _number(next(g for g in upper.groups() if g))
                if bound is not None:
                    price_max = price_max if price_max is not None else bound
                    parts.append(Part("price", f"up to {bound:.2f} {currency}", upper.group(0).strip()))
            if lower:
                bound = _number(next(g for g in lower.groups() if g))
                if bound is not None:
                    price_min = price_min if price_min is not None else bound
                    parts.append(Part("price", f"from {bound:.2f} {currency}", lower.group(0).strip()))
            for match in sorted((m for m in (upper, lower) if m), key=lambda m: -m.start()):
                text = _cut(text, match.span())
            cheap = _CHEAP.search(text)
            if cheap and price_max is None:
                bound = catalog_fact(
                    "understanding:cheap",
                    lambda: catalog_selectors.product_price_quantile(settings.SEARCH_CHEAP_QUANTILE),
                )
                if bound is not None:
                    price_max = bound
                    parts.append(Part("price", f"cheap: up to {bound:.2f} {currency}", cheap.group(0)))
                    text = _cut(text, cheap.span())
    size = filters.size
    if "size" not in ignore and not size:
        found = _SIZE.search(text)
        if found:
            sizes = catalog_fact(
                "understanding:sizes", lambda: {s.lower(): s for s in catalog_selectors.variant_sizes()}
            )
            if found.group(1).lower() in sizes:
                size = sizes[found.group(1).lower()]
                parts.append(Part("size", f"size {size}", found.group(0).strip()))
                text = _cut(text, found.span())
    department = filters.department
    if "department" not in ignore and not department:
        text, department, part = _department(text)
        if part:
            parts.append(part)
    if recognised:
        for key in ("category", "colour", "pattern"):
            if key not in ignore:
                parts.extend(Part(key, f"{key}: {value}", value) for value in recognised.get(key, []))
    text = " ".join(text.split())
    understood_filters = replace(filters, price_min=price_min, price_max=price_max, size=size, department=department)
    return Understood(query, text or query, understood_filters, parts, ignore)


def _department(text: str) -> tuple[str, tuple[str, ...], Part | None]:
    """The first department the text names (words of ``SEARCH_DEPARTMENTS``) that the catalog holds:
    the text without those words, the department's catalog values, the chip."""
    from catalog import selectors as catalog_selectors

    held = catalog_fact(
        "understanding:departments",
        lambda: set(catalog_selectors.attribute_values(settings.SEARCH_DEPARTMENT_ATTRIBUTE)),
    )
    if not held:
        return text, (), None
    for name, spec in settings.SEARCH_DEPARTMENTS.items():
        values = tuple(v for v in spec["values"] if v in held)
        if not values:
            continue
        words = sorted(spec["words"], key=len, reverse=True)
        pattern = re.compile(r"(?<![\w'])(?:for\s+)?(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w'])", re.I)
        found = pattern.search(text)
        if found:
            return _cut(text, found.span()), values, Part("department", name, found.group(0).strip())
    return text, (), None
