"""Operational endpoints."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from shop.health import health_check


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 otherwise (used by compose health checks)."""
    report = health_check()
    return JsonResponse(report, status=200 if report["ok"] else 503)
