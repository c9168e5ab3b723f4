"""API middleware: one JSON error body for every /api/ error, with a request id
(:class:`ApiErrorMiddleware`); an oversized request body refused from its ``Content-Length`` alone,
before a byte of it is read (:class:`ApiBodyLimitMiddleware`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.http.multipartparser import MultiPartParserError

from api.errors import (
    REQUEST_ID_HEADER,
    error_response,
    not_found_message,
    request_id_for,
    server_error_message,
    server_error_response,
    service_unavailable_response,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

# Exceptions Django itself answers with a 4xx (the status is then given the API's body below).
DJANGO_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)

# The code for an error status that reached the middleware without the API's body.
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}
STATUS_MESSAGES = {
    400: "The request could not be read.",
    401: "Authentication is needed.",
    403: "You are not allowed to do this.",
    405: "This method is not allowed here.",
    406: "The answer cannot be given in the format asked for.",
    413: "The request body is too large.",
    415: "The request body's content type is not accepted here.",
    429: "Too many requests; try again later.",
}


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def is_json(response: HttpResponseBase) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().lower() == "application/json"


class ApiErrorMiddleware:
    """For /api/ requests: every response carries ``X-Request-ID`` (the client's own when it is a sane
    token, else a new one); an exception a view raises and nobody handled (a plain Django view under
    /api/, or a DRF view's response failing to render) is a logged ``500 server_error``; an error
    response that is not JSON (Django's 404 page for an unknown /api/ path, its 400 / 403 / 500 pages
    for errors in the middleware below this one) is answered with the API's error body instead.
    DRF views handle their own exceptions (``api.errors.api_exception_handler``).

    Sits right below ``CorsMiddleware``, so the answers it makes still carry the CORS headers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not is_api_request(request):
            return self.get_response(request)
        request_id = request_id_for(request)
        response = self.get_response(request)
        if response.status_code >= 400 and not is_json(response) and not getattr(response, "streaming", False):
            response = self.as_api_error(request, response, request_id)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_request(request) or isinstance(exception, DJANGO_CLIENT_ERRORS):
            return None  # Django answers these with their 4xx; __call__ gives that the API's body
        return server_error_response(exception, request)

    @staticmethod
    def as_api_error(request: HttpRequest, response: HttpResponseBase, request_id: str) -> HttpResponse:
        """The API's body in place of Django's HTML error page; the status and the headers that tell
        the client what to do next (``Allow``, ``Retry-After``, ``WWW-Authenticate``) are kept."""
        status = response.status_code
        if status == 503 and "Retry-After" in response:  # the database is down (shop.outages)
            return service_unavailable_response(request_id)
        if status >= 500:
            # Django logs it too ("Internal Server Error: ...", with the traceback of an exception); this names the id.
            logger.error(
                "API request %s %s answered %s (request id %s)", request.method, request.path, status, request_id
            )
            replaced = error_response(status, "server_error", server_error_message(request_id), request_id=request_id)
        elif status == 404:
            replaced = error_response(404, "not_found", not_found_message(request), request_id=request_id)
        else:
            code = STATUS_CODES.get(status, "error")
            message = STATUS_MESSAGES.get(status, "The request was not accepted.")
            replaced = error_response(status, code, message, request_id=request_id)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                replaced[header] = response[header]
        return replaced


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
        if is_api_request(request):
            request_id = request_id_for(request)
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response(
                    400, "bad_request", "The Content-Length header is not a number.", request_id=request_id
                )
            limit = body_limit_for(request.META.get("CONTENT_TYPE", ""))
            if declared > limit:
                return error_response(
                    413,
                    "payload_too_large",
                    f"The request body is {declared / 1e6:.1f} MB; this endpoint accepts at most {limit / 1e6:.1f} MB "
                    f"(one photo at most {settings.SHOP_MAX_IMAGE_BYTES / 1e6:.1f} MB).",
                    request_id=request_id,
                )
        return self.get_response(request)
