"""URLs for tests/integration/test_api_errors.py: views that fail on purpose, then the project's own URLs (the
real API under /api/v1/, and the storefront the 404 / 500 pages link to). The test views come first,
since the API's catch-all answers any other /api/v1/ path."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop.urls import urlpatterns as shop_urlpatterns

SECRET = "s3cret-db-password-in-the-exception"


class BoomView(APIView):
    """A DRF view whose model loader fails."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        raise RuntimeError(f"model loader failed: {SECRET}")

    def post(self, request: Request) -> Response:
        raise FileNotFoundError(f"/srv/models/{SECRET}.pt")


class OkView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


def boom_plain(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"plain view failed: {SECRET}")


def missing_plain(request: HttpRequest) -> HttpResponse:
    raise Http404("nothing here")


def forbidden_plain(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


def html_error_plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"<h1>Server Error</h1><pre>{SECRET}</pre>", status=500)


def ok_plain(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def not_api(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"outside the API: {SECRET}")


urlpatterns = [
    path("api/v1/_boom", BoomView.as_view()),
    path("api/v1/_ok", OkView.as_view()),
    path("api/v1/_boom-plain", boom_plain),
    path("api/v1/_missing-plain", missing_plain),
    path("api/v1/_forbidden-plain", forbidden_plain),
    path("api/v1/_html-error", html_error_plain),
    path("api/v1/_ok-plain", ok_plain),
    path("elsewhere/_boom", not_api),
    *shop_urlpatterns,
]
