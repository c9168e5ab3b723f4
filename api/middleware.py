"""Refuse an oversized API request body from its ``Content-Length`` alone, before a byte of it is read."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from api.errors import error_response


def body_limit_for(content_type: str) -> int:
    """Multipart uploads may carry several photos (``SHOP_API_MAX_UPLOAD_BYTES``); any other body
    (JSON, forms) is read into memory whole, so it gets Django's in-memory limit."""
    if content_type.lower().startswith("multipart/"):
        return int(settings.SHOP_API_MAX_UPLOAD_BYTES)
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.SHOP_API_MAX_UPLOAD_BYTES)


class ApiBodyLimitMiddleware:
    """413 with the API's error body when an /api/ request declares more bytes than allowed. The
    check reads only the header, so a 50 MB body is never read into memory or onto disk."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response(400, "bad_request", "The Content-Length header is not a number.")
            limit = body_limit_for(request.META.get("CONTENT_TYPE", ""))
            if declared > limit:
                return error_response(
                    413,
                    "payload_too_large",
                    f"The request body is {declared / 1e6:.1f} MB; this endpoint accepts at most {limit / 1e6:.1f} MB "
                    f"(one photo at most {settings.SHOP_MAX_IMAGE_BYTES / 1e6:.1f} MB).",
                )
        return self.get_response(request)
