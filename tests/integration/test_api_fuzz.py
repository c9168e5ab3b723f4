"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis + hypothesis)
against a live server (pytest-django ``live_server``: real HTTP, real PostgreSQL + pgvector, a tiny
catalog processed by the real pipeline). Every operation, valid and invalid inputs, anonymous and with
a staff token: no 5xx, every status documented, every body matching its schema."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches

from tests.support import bad_images as bad

# sku, title, category, colour, pattern, price, stock, design group, image colour
FUZZ_CATALOG = [
    ("TEE-RED", "Red cotton t-shirt", "Women > Tops", "Red", "Solid", "15", "S:0|M:0", "TEE1", (200, 30, 30)),
    ("TEE-NAVY", "Navy cotton t-shirt", "Women > Tops", "Blue", "Solid", "15", "S:3|M:2", "TEE1", (30, 40, 120)),
    ("DRESS-RED", "Red floral dress", "Women > Dresses", "Red", "Floral", "45", "M:1", "", (190, 40, 60)),
    ("JEANS-BLUE", "Blue denim jeans", "Men > Trousers", "Blue", "Denim", "60", "32:3", "", (40, 60, 150)),
]
EXAMPLES = int(os.environ.get("SHOP_API_FUZZ_EXAMPLES", "12"))  # per operation, mode and client


@pytest.fixture
def fuzz_catalog(transactional_db, media_root: Path, tmp_path: Path, test_models: Path, settings) -> dict[str, int]:
    from catalog import selectors
    from catalog.services import catalog_import_csv
    from search.services import search_caches_reset
    from workers.services import image_pipeline_run

    settings.SHOP_PIPELINE = "off"  # images the fuzzer uploads stay pending (no broker traffic)
    lines = ["sku,title,description,category,colour,pattern,price,stock,group,images"]
    for sku, title, category, colour, pattern, price, stock, group, rgb in FUZZ_CATALOG:
        (tmp_path / f"{sku}.jpg").write_bytes(bad.jpeg((120, 180), rgb))
        lines.append(
            f'{sku},{title},"{title} in {colour}",{category},{colour},{pattern},{price},{stock},{group},{sku}.jpg'
        )
    (tmp_path / "catalog.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = catalog_import_csv(tmp_path / "catalog.csv", tmp_path)
    assert not report.problems, report.problems
    for image_id in selectors.images_with_status("pending").values_list("pk", flat=True):
        assert image_pipeline_run(image_id) == "ready"
    search_caches_reset()
    return {sku: pid for pid, sku in selectors.product_skus_by_id().items()}


@pytest.fixture
def unthrottled(settings):
    prefix = f"test-fuzz-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {**settings.CACHES, "api": {**settings.CACHES["api"], "KEY_PREFIX": prefix}}
    rates = {scope: "1000000/minute" for scope in ("catalog", "search", "photo_search", "auth")}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    yield
    client = caches["api"]._cache.get_client(write=True)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_fuzz_every_operation_from_the_openapi_schema(live_server, fuzz_catalog, unthrottled, redis_client):
    import schemathesis
    from django.contrib.auth import get_user_model
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from rest_framework.authtoken.models import Token
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from catalog.models import ProductImage

    staff = get_user_model().objects.create_user("fuzz-staff", password="x", is_staff=True)
    staff_token = Token.objects.create(user=staff).key
    shopper = get_user_model().objects.create_user("fuzz-shopper", password="pw-shopper")
    Token.objects.create(user=shopper)
    image_ids = list(ProductImage.objects.values_list("pk", flat=True))
    skus = list(fuzz_catalog)

    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/?format=json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14, [op.label for op in operations]
    statuses: Counter[tuple[str, int]] = Counter()
    calls = 0
    skipped: list[str] = []
    started = time.monotonic()

    def fuzz(operation, mode, headers: dict[str, str], n: int) -> None:
        @given(
            case=operation.as_strategy(generation_mode=mode),
            sku=st.sampled_from([None, *skus]),
            image_id=st.sampled_from([None, *image_ids]),
        )
        @settings(
            max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def run(case, sku, image_id):
            nonlocal calls
            # half the time aim at objects that exist, so the happy paths are fuzzed too
            if sku and "sku" in (case.path_parameters or {}):
                case.path_parameters["sku"] = sku
            if image_id and "image_id" in (case.path_parameters or {}):
                case.path_parameters["image_id"] = image_id
            response = case.call(base_url=live_server.url, headers=headers, timeout=60)
            calls += 1
            statuses[(operation.label, response.status_code)] += 1
            case.validate_response(response, checks=checks, headers=headers)

        try:
            run()
        except Unsatisfiable:
            # nothing invalid to send (an operation without parameters or body): negative mode only
            assert mode == GenerationMode.NEGATIVE, operation.label
            skipped.append(operation.label)

    for operation in operations:
        method, path = operation.label.split(" ", 1)
        staff_only = (method != "GET" and path not in ("/api/v1/auth/token", "/api/v1/search/photo")) or (
            path.startswith("/api/v1/images/")
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for who, headers in (("staff", {"Authorization": f"Token {staff_token}"}), ("anonymous", {})):
                fuzz(operation, mode, headers, EXAMPLES if (who == "staff") == staff_only else max(3, EXAMPLES // 3))
    redis_client.delete(django_settings.CELERY_TASK_DEFAULT_QUEUE)  # reprocess requests reach the broker
    seconds = time.monotonic() - started
    summary = sorted(statuses.items())
    print(f"\nschemathesis: {len(operations)} operations, {calls} requests in {seconds:.0f} s, no 5xx, all conform")
    print(f"  negative mode impossible (nothing to make invalid): {sorted(set(skipped))}")
    for (label, code), count in summary:
        print(f"  {label:55s} {code}: {count}")
    assert all(code < 500 for (_, code), _ in summary)
    # the fuzzing reached the happy paths, not only the refusals
    ok = {label for (label, code), _ in summary if code < 300}
    for expected in ("GET /api/v1/products", "GET /api/v1/search", "GET /api/v1/products/{sku}/alternatives",
                     "POST /api/v1/products", "PATCH /api/v1/products/{sku}"):  # fmt: skip
        assert expected in ok, (expected, summary)


def test_a_50_mb_upload_is_refused_over_http_without_reading_it(live_server):
    """Headers promising 50 MB and not one byte of body: the answer (413) comes at once, so the server
    never waited for, let alone read, the body."""
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/v1/search/photo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n"
            + f"Content-Length: {50 * 1000 * 1000}\r\n\r\n".encode()
        )
        started = time.monotonic()
        received = b""
        while b"payload_too_large" not in received and time.monotonic() - started < 5:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert '"code":"payload_too_large"' in answer.replace(" ", "")
    assert time.monotonic() - started < 5
