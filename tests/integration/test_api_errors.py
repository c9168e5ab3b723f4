"""Every error the REST API answers is its own JSON body with a request id — unexpected exceptions
included (a DRF view, a plain Django view, Django's own error pages under /api/) — and the request id
is echoed (a sane X-Request-ID) or made up, in the body and the X-Request-ID header. The failing views
live in tests/support/api_error_urls.py beside the real API."""

from __future__ import annotations

import logging
import re

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client

from tests.support.api_error_urls import SECRET

pytestmark = pytest.mark.urls("tests.support.api_error_urls")

API = "/api/v1"
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def client() -> Client:
    """A test client that answers what the server answers, even when an exception escaped."""
    client = Client()
    client.raise_request_exception = False
    return client


def server_error_of(response: HttpResponse) -> dict:
    """The API's 500 body: {"error": {"code": "server_error", "message", "fields", "request_id"}}, and
    nothing of the exception."""
    assert response.status_code == 500, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "fields", "request_id"}, error
    assert error["code"] == "server_error" and error["fields"] == {}
    assert "try again later" in error["message"] and error["request_id"] in error["message"]
    assert response["X-Request-ID"] == error["request_id"]
    text = response.content.decode()
    for leak in (SECRET, "Traceback", "RuntimeError", "FileNotFoundError", "api_error_urls", ".py"):
        assert leak not in text, leak
    return error


# --- unexpected exceptions ----------------------------------------------------------------------


def test_drf_view_raising_is_a_json_500_with_a_new_request_id(client, caplog):
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = client.get(f"{API}/_boom")
    error = server_error_of(response)
    assert HEX_ID.fullmatch(error["request_id"])
    # logged with the traceback and the request id; the exception text stays in the log
    records = [r for r in caplog.records if r.name == "api.errors"]
    assert len(records) == 1
    record = records[0]
    assert record.exc_info and record.exc_info[0] is RuntimeError
    assert error["request_id"] in record.getMessage() and record.request_id == error["request_id"]
    assert "GET /api/v1/_boom" in record.getMessage()
    assert SECRET in caplog.text and "Traceback" in caplog.text


def test_drf_view_raising_echoes_the_clients_request_id(client):
    response = client.post(f"{API}/_boom", HTTP_X_REQUEST_ID="app-7f3a.retry_2")  # a FileNotFoundError
    assert server_error_of(response)["request_id"] == "app-7f3a.retry_2"


def test_plain_view_raising_is_a_json_500(client, caplog):
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = client.get(f"{API}/_boom-plain", HTTP_X_REQUEST_ID="req-1")
    assert server_error_of(response)["request_id"] == "req-1"
    record = next(r for r in caplog.records if r.name == "api.errors")
    assert record.exc_info[0] is RuntimeError and "req-1" in record.getMessage()


def test_the_exception_is_handled_not_raised_out_of_the_request():
    """The middleware answers: Django never sees an uncaught exception (no got_request_exception,
    so the default test client raises nothing)."""
    client = Client()  # raise_request_exception left on
    server_error_of(client.get(f"{API}/_boom"))
    server_error_of(client.get(f"{API}/_boom-plain"))


def test_an_html_error_page_under_the_api_becomes_the_json_body(client):
    server_error_of(client.get(f"{API}/_html-error", HTTP_X_REQUEST_ID="abc"))


class RaisingMiddleware:
    """Fails for one path, outside any view (below ApiErrorMiddleware)."""

    def __init__(self, get_response: object) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.endswith("/_middleware-boom"):
            raise RuntimeError(f"middleware failed: {SECRET}")
        return self.get_response(request)  # type: ignore[operator]


def test_an_exception_in_a_middleware_below_is_a_json_500(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.RaisingMiddleware"]
    client = Client()
    client.raise_request_exception = False
    error = server_error_of(client.get(f"{API}/_middleware-boom", HTTP_X_REQUEST_ID="mw-1"))
    assert error["request_id"] == "mw-1"


def test_outside_the_api_django_answers_as_before(client):
    response = client.get("/elsewhere/_boom", HTTP_X_REQUEST_ID="x-1")
    assert response.status_code == 500
    assert not response["Content-Type"].startswith("application/json")
    assert "X-Request-ID" not in response


# --- request ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "x" * 65,  # too long
        "has space",
        "semi;colon",
        "line\nbreak",
        "ünïcode",
        "",
    ],
)
def test_an_unfit_request_id_is_replaced_by_a_new_one(client, given):
    error = server_error_of(client.get(f"{API}/_boom", HTTP_X_REQUEST_ID=given))
    assert HEX_ID.fullmatch(error["request_id"]), error["request_id"]


def test_a_64_character_request_id_is_kept(client):
    given = "A-z0.9_" * 9 + "x"
    assert len(given) == 64
    assert server_error_of(client.get(f"{API}/_boom", HTTP_X_REQUEST_ID=given))["request_id"] == given


def test_each_request_gets_its_own_id(client):
    first = server_error_of(client.get(f"{API}/_boom"))["request_id"]
    second = server_error_of(client.get(f"{API}/_boom"))["request_id"]
    assert first != second


def test_successful_api_responses_carry_the_request_id_header(client):
    ok = client.get(f"{API}/_ok", HTTP_X_REQUEST_ID="ok-1")
    assert ok.status_code == 200 and ok.json() == {"ok": True} and ok["X-Request-ID"] == "ok-1"
    plain = client.get(f"{API}/_ok-plain")
    assert plain.status_code == 200 and HEX_ID.fullmatch(plain["X-Request-ID"])


# --- 4xx: the old keys, plus the request id -------------------------------------------------------


def client_error_of(response: HttpResponse, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields", "request_id"}, body
    error = body["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


@pytest.mark.django_db
def test_a_missing_product_is_the_old_404_plus_the_request_id(client):
    error = client_error_of(client.get(f"{API}/products/NOPE", HTTP_X_REQUEST_ID="r-404"), 404, "not_found")
    assert error["fields"] == {} and error["request_id"] == "r-404"
    error = client_error_of(client.get(f"{API}/products/NOPE"), 404, "not_found")
    assert HEX_ID.fullmatch(error["request_id"])


@pytest.mark.django_db
def test_a_validation_error_keeps_its_fields_and_gains_the_request_id(client):
    error = client_error_of(client.get(f"{API}/products", {"limit": "0"}), 400, "validation_error")
    assert "limit" in error["fields"]


def test_a_refused_method_and_a_refused_body_carry_the_request_id(client):
    response = client.delete(f"{API}/_ok", HTTP_X_REQUEST_ID="r-405")
    assert client_error_of(response, 405, "method_not_allowed")["request_id"] == "r-405"
    response = client.post(f"{API}/_ok", "x", content_type="application/json", CONTENT_LENGTH="99999999999")
    client_error_of(response, 413, "payload_too_large")


def test_unknown_api_paths_are_json_404s(client):
    client_error_of(client.get(f"{API}/no-such-endpoint"), 404, "not_found")  # the API's catch-all
    for path in ("/api/", "/api/v2/products", "/api/nothing/here"):  # no URL at all: Django's 404
        error = client_error_of(client.get(path, HTTP_X_REQUEST_ID="p-1"), 404, "not_found")
        assert path in error["message"] and error["request_id"] == "p-1"


def test_django_4xx_exceptions_in_plain_api_views_are_json(client):
    client_error_of(client.get(f"{API}/_missing-plain"), 404, "not_found")
    client_error_of(client.get(f"{API}/_forbidden-plain"), 403, "permission_denied")
