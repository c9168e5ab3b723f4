"""Staff pages outside the stock admin screens (issue 6)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "staff"
urlpatterns: list[URLPattern | URLResolver] = []
