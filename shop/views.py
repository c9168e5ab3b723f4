"""Operational endpoints."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.static import serve

from shop.health import health_check


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 otherwise (used by compose health checks)."""
    report = health_check()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """Uploaded files, served by Django only when SHOP_SERVE_MEDIA is on (local runs)."""
    response = serve(request, path, document_root=str(settings.MEDIA_ROOT))
    response["Cache-Control"] = "public, max-age=86400"
    return response
