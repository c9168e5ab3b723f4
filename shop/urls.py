"""Top-level URLs."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from shop import views

urlpatterns = [
    path("", include("search.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("staff/models/", include("lifecycle.urls")),
    path("staff/", include("staff.urls")),
    path("api/v1/", include("api.urls")),
    path("admin/", admin.site.urls),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", views.media),
    ]

# pages answer 503 with Retry-After while the database is down, 500 otherwise (shop/outages.py)
handler500 = "shop.outages.server_error_page"

admin.site.site_header = "Fashion shop staff"
admin.site.site_title = "Fashion shop staff"
