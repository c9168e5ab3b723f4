"""REST API v1 (issue 7): mounted at /api/v1/ by shop/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api import views
from api.errors import api_not_found
from catalog.csv_format import SKU_PATTERN


class SkuConverter:
    regex = SKU_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SkuConverter, "sku")

app_name = "api"
urlpatterns: list[URLPattern | URLResolver] = [
    path("auth/token", views.TokenView.as_view(), name="auth-token"),
    path("categories", views.CategoryListView.as_view(), name="category-list"),
    path("products", views.ProductListView.as_view(), name="product-list"),
    path("products/<sku:sku>", views.ProductDetailView.as_view(), name="product-detail"),
    path("products/<sku:sku>/variants/<str:size>", views.VariantView.as_view(), name="product-variant"),
    path("products/<sku:sku>/images", views.ProductImagesView.as_view(), name="product-images"),
    path("products/<sku:sku>/similar", views.SimilarView.as_view(), name="product-similar"),
    path("products/<sku:sku>/alternatives", views.AlternativesView.as_view(), name="product-alternatives"),
    path("search", views.SearchView.as_view(), name="search"),
    path("search/photo", views.PhotoSearchView.as_view(), name="search-photo"),
    path("images/<int:image_id>", views.ImageStatusView.as_view(), name="image-status"),
    path("images/<int:image_id>/reprocess", views.ImageReprocessView.as_view(), name="image-reprocess"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^(?P<path>[\s\S]*)$", api_not_found),  # any other path, newlines included
]
