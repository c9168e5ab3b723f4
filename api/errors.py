"""One error body for every API failure:

    {"error": {"code": "validation_error", "message": "price: Ensure this value is greater than or equal to 0.",
               "fields": {"price": ["Ensure this value is greater than or equal to 0."]}}}

``code`` is machine-readable (stable), ``message`` is for a person, ``fields`` maps request fields
(dotted paths for nested ones, ``non_field_errors`` for the request as a whole) to their messages.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from catalog.image_checks import ImageRejected


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


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(
    status_code: int, code: str, message: str, fields: dict[str, list[str]] | None = None
) -> JsonResponse:
    """The error body as a plain Django response (for middleware and URL fall-backs outside DRF)."""
    return JsonResponse(error_body(code, message, fields), status=status_code)


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


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every error in the API gets :func:`error_body`."""
    if isinstance(exc, ImageRejected):
        exc = ImageRefused("file", [str(exc)])
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, TooManyFilesSent | TooManyFieldsSent):
        exc = exceptions.ValidationError({"non_field_errors": [str(exc) or "too many fields or files in the form"]})
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request could not be read.")
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (and logging) takes it
    if isinstance(exc, exceptions.ValidationError | ImageRefused):
        fields = flatten_fields(exc.detail)
        code = "image_rejected" if isinstance(exc, ImageRefused) else "validation_error"
        response.data = error_body(code, _message(fields), fields)
        return response
    detail = getattr(exc, "detail", None) or str(exc)
    if isinstance(exc, exceptions.APIException):
        raw_code = exc.get_codes()
        code = raw_code if isinstance(raw_code, str) else exc.default_code
    else:  # Django's Http404 / PermissionDenied, converted by DRF
        code = "not_found" if response.status_code == 404 else "permission_denied"
    if isinstance(detail, dict | list):
        fields = flatten_fields(detail)
        response.data = error_body(CODE_NAMES.get(code, code), _message(fields), fields)
    else:
        response.data = error_body(CODE_NAMES.get(code, code), str(detail))
    return response


@csrf_exempt  # a POST to a wrong URL is told "not found", not Django's HTML CSRF page
def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any URL under /api/v1/ that names no endpoint."""
    return error_response(404, "not_found", f"There is no API endpoint at {request.path}; see /api/v1/docs/.")
