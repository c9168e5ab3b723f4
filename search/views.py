"""Storefront pages (a first product grid; search arrives with issue #5, the full storefront with #6)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors as catalog_selectors


def home(request: HttpRequest) -> HttpResponse:
    page = Paginator(catalog_selectors.product_list(), 48).get_page(request.GET.get("page"))
    return render(request, "search/home.html", {"page": page})
