"""Shopper input: the text search with its filters (all in the URL) and the photo upload."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from catalog.selectors import ProductFilters
from search.understanding import PART_KEYS

FILTER_FIELDS = ("category", "colour", "pattern", "size", "price_min", "price_max", "in_stock")


class SearchForm(forms.Form):
    """``/search?q=…&category=…&colour=…&pattern=…&size=…&price_min=…&price_max=…&in_stock=1&page=N``.
    Bad values (a price that is not a number, page 0) are reported and ignored, never a server error."""

    q = forms.CharField(required=False, max_length=200, strip=True, label="Search")
    category = forms.CharField(required=False, max_length=600)
    colour = forms.CharField(required=False, max_length=60)
    pattern = forms.CharField(required=False, max_length=60)
    size = forms.CharField(required=False, max_length=30)
    price_min = forms.DecimalField(required=False, min_value=Decimal("0"), max_digits=10, decimal_places=2)
    price_max = forms.DecimalField(required=False, min_value=Decimal("0"), max_digits=10, decimal_places=2)
    in_stock = forms.BooleanField(required=False)
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000)
    # understood parts of the query the shopper undid (search.understanding.PART_KEYS), comma-separated
    ignore = forms.CharField(required=False, max_length=100)

    def clean_ignore(self) -> str:
        names = sorted({part.strip() for part in self.cleaned_data["ignore"].split(",") if part.strip()})
        unknown = [name for name in names if name not in PART_KEYS]
        if unknown:
            raise forms.ValidationError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PART_KEYS)}")
        return ",".join(names)

    @property
    def ignored(self) -> frozenset[str]:
        return frozenset(name for name in str(self.value("ignore") or "").split(",") if name)

    def clean_category(self) -> str:
        return self.cleaned_data["category"].strip("/ ")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        low, high = data.get("price_min"), data.get("price_max")
        if low is not None and high is not None and low > high:
            self.add_error("price_max", "the highest price is below the lowest")
        return data

    def value(self, name: str) -> object:
        """The cleaned value, or the field's empty value when it was invalid."""
        self.is_valid()  # cleaned_data keeps the valid fields even when others are invalid
        data = self.cleaned_data
        return data.get(name) if data.get(name) is not None else self.fields[name].to_python("")

    @property
    def query(self) -> str:
        return str(self.value("q") or "")

    @property
    def page_number(self) -> int:
        page = self.value("page")  # an int from the IntegerField, or None
        return page if isinstance(page, int) and page else 1

    def _price(self, name: str) -> Decimal | None:
        price = self.value(name)  # a Decimal from the DecimalField, or None
        return price if isinstance(price, Decimal) else None

    def filters(self) -> ProductFilters:
        return ProductFilters(
            category=str(self.value("category") or ""),
            colour=str(self.value("colour") or ""),
            pattern=str(self.value("pattern") or ""),
            size=str(self.value("size") or ""),
            price_min=self._price("price_min"),
            price_max=self._price("price_max"),
            in_stock=bool(self.value("in_stock")),
        )

    def problems(self) -> list[str]:
        """What was wrong with the URL's values, for a person ("price_min: Enter a number.")."""
        if self.is_valid():
            return []
        labels = {"price_min": "lowest price", "price_max": "highest price", "page": "page"}
        # an ErrorList yields its messages as str (django-stubs types them more widely)
        return [f"{labels.get(name, name)}: {' '.join(str(e) for e in errors)}" for name, errors in self.errors.items()]


class PhotoForm(forms.Form):
    """The shopper's photo. Only presence is checked here; what the bytes are is checked by
    :func:`catalog.image_checks.image_check_upload` in :func:`search.query_photos.query_photo_store`."""

    photo = forms.FileField(
        required=True,
        allow_empty_file=True,  # an empty file gets the image checks' own message
        error_messages={"required": "choose a photo to search with (JPEG, PNG, WebP, AVIF or GIF)"},
    )
