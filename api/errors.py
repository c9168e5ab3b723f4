"""One error body for every API failure:

    {"error": {"code": "validation_error", "message": "price: Ensure this value is greater than or equal to 0.",
               "fields": {"price": ["Ensure this value is greater than or equal to 0."]},
               "request_id": "3f1c9a0e5b7d4c2a8e6f0b1d2c3a4e5f"}}

``code`` is machine-readable (stable), ``message`` is for a person, ``fields`` maps request fields
(dotted paths for nested ones, ``non_field_errors`` for the request as a whole) to their messages,
``request_id`` names the request in the server's log (also sent as the ``X-Request-ID`` header).

An exception nobody expected becomes ``500 server_error``: the traceback goes to the log under the
request id, never into the body.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from catalog.image_checks import ImageRejected
from catalog.services import StorageUnavailable

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with what is stored."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ImageRefused(exceptions.APIException):
    """An uploaded image failed the upload checks (``catalog.image_checks``); ``fields`` names the
    form field the file came in."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "image_rejected"

    def __init__(self, field: str, messages: list[str]) -> None:
        super().__init__(detail={field: messages}, code="image_rejected")


# DRF's own codes, renamed where the API documents a clearer one.
CODE_NAMES = {"invalid": "validation_error", "error": "error"}

REQUEST_ID_HEADER = "X-Request-ID"
# A client's own X-Request-ID is kept only when it is a plain token (it ends up in logs and headers).
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REQUEST_ID_ATTR = "api_request_id"


def request_id_for(request: HttpRequest | Request | None) -> str:
    """The request's id: the client's ``X-Request-ID`` when it is a sane token (at most 64 of
    ``A-Z a-z 0-9 . _ -``), else a new uuid4 hex. Worked out once per request and kept on it, so the
    middleware, the exception handler and the log all name the same id."""
    if request is None:
        return uuid.uuid4().hex
    http_request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    known = getattr(http_request, _REQUEST_ID_ATTR, None)
    if isinstance(known, str):
        return known
    given = http_request.META.get("HTTP_X_REQUEST_ID", "")
    request_id = given if isinstance(given, str) and REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex
    setattr(http_request, _REQUEST_ID_ATTR, request_id)
    return request_id


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None, request_id: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "fields": fields or {}}
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def error_response(
    status_code: int,
    code: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
    request_id: str | None = None,
) -> JsonResponse:
    """The error body as a plain Django response (for middleware and URL fall-backs outside DRF)."""
    return JsonResponse(error_body(code, message, fields, request_id), status=status_code)


def server_error_message(request_id: str) -> str:
    """What an app developer reads on a 500: nothing of the exception itself."""
    return (
        "Something went wrong on the server and the request was not completed. Please try again later; "
        f"if it keeps failing, report it and quote request id {request_id}."
    )


def log_server_error(exc: BaseException, request: HttpRequest | Request | None, request_id: str) -> None:
    """The whole traceback to the log, under the request id the client was given."""
    method = getattr(request, "method", "?")
    path = getattr(request, "path", "?")
    logger.exception(
        "Unhandled %s in API request %s %s (request id %s)",
        type(exc).__name__,
        method,
        path,
        request_id,
        exc_info=exc,
        extra={"request_id": request_id},
    )


def service_unavailable_body(request_id: str) -> dict[str, Any]:
    """The body of ``503 service_unavailable``: the shop's database is not answering."""
    return error_body(
        "service_unavailable",
        "The shop cannot reach its catalog right now; nothing was changed. Try again in "
        f"{settings.SHOP_RETRY_AFTER_S} seconds (request id {request_id}).",
        request_id=request_id,
    )


def service_unavailable_response(request_id: str) -> JsonResponse:
    """``503 service_unavailable`` with ``Retry-After``, as a plain Django response."""
    response = JsonResponse(service_unavailable_body(request_id), status=503)
    response["Retry-After"] = str(settings.SHOP_RETRY_AFTER_S)
    return response


def server_error_response(exc: BaseException, request: HttpRequest | Request | None) -> JsonResponse:
    """``500 server_error`` as a plain Django response, logged with the traceback — or ``503
    service_unavailable`` when the database is down (logged as a warning: nothing to debug)."""
    request_id = request_id_for(request)
    if isinstance(exc, OperationalError | InterfaceError):  # the database is down
        logger.warning("API request %s: database down (%s); answered 503", request_id, exc)
        return service_unavailable_response(request_id)
    log_server_error(exc, request, request_id)
    return error_response(500, "server_error", server_error_message(request_id), request_id=request_id)


def flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation detail as ``{"dotted.path": [messages]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            out.update(flatten_fields(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(flatten_fields(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _message(fields: dict[str, list[str]]) -> str:
    parts = []
    for name, messages in fields.items():
        text = " ".join(messages)
        parts.append(text if name == "non_field_errors" else f"{name}: {text}")
    return "; ".join(parts)[:1000] or "The request is not valid."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: every error in the API gets :func:`error_body`, with the request id;
    an exception DRF does not know is a logged ``500 server_error``."""
    request = context.get("request")
    request_id = request_id_for(request)
    if isinstance(exc, ImageRejected):
        exc = ImageRefused("file", [str(exc)])
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, TooManyFilesSent | TooManyFieldsSent):
        exc = exceptions.ValidationError({"non_field_errors": [str(exc) or "too many fields or files in the form"]})
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request could not be read.")
    response = exception_handler(exc, context)
    if isinstance(exc, StorageUnavailable):
        logger.warning("API request %s: %s; answered 503", request_id, exc)
        message = f"The photos cannot be stored right now ({exc}); nothing was stored for the file that failed. "
        message += f"Try again in {settings.SHOP_RETRY_AFTER_S} seconds (request id {request_id})."
        retry = {"Retry-After": str(settings.SHOP_RETRY_AFTER_S)}
        return Response(error_body("storage_unavailable", message, request_id=request_id), status=503, headers=retry)
    if response is None and isinstance(exc, OperationalError | InterfaceError):  # the database is down
        logger.warning("API request %s: database down (%s); answered 503", request_id, exc)
        retry = {"Retry-After": str(settings.SHOP_RETRY_AFTER_S)}
        return Response(service_unavailable_body(request_id), status=503, headers=retry)
    if response is None:  # an unexpected error: logged here, the client gets no detail of it
        log_server_error(exc, request, request_id)
        set_rollback()  # as DRF does for the errors it knows (ATOMIC_REQUESTS)
        return Response(
            error_body("server_error", server_error_message(request_id), request_id=request_id),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError | ImageRefused):
        fields = flatten_fields(exc.detail)
        code = "image_rejected" if isinstance(exc, ImageRefused) else "validation_error"
        response.data = error_body(code, _message(fields), fields, request_id)
        return response
    detail = getattr(exc, "detail", None) or str(exc)
    if isinstance(exc, exceptions.APIException):
        raw_code = exc.get_codes()
        code = raw_code if isinstance(raw_code, str) else exc.default_code
    else:  # Django's Http404 / PermissionDenied, converted by DRF
        code = "not_found" if response.status_code == 404 else "permission_denied"
    if isinstance(detail, dict | list):
        fields = flatten_fields(detail)
        response.data = error_body(CODE_NAMES.get(code, code), _message(fields), fields, request_id)
    else:
        response.data = error_body(CODE_NAMES.get(code, code), str(detail), request_id=request_id)
    return response


@csrf_exempt  # a POST to a wrong URL is told "not found", not Django's HTML CSRF page
def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any URL under /api/v1/ that names no endpoint."""
    return error_response(404, "not_found", not_found_message(request), request_id=request_id_for(request))


def not_found_message(request: HttpRequest) -> str:
    return f"There is no API endpoint at {request.path}; see /api/v1/docs/."
