"""The fault policy (docs/production.md, "When a dependency is down"), each fault with the real service
stopped and started again by the test, and each public surface asked while it is down and after:

* Redis down (the API's throttle counts): pages and API reads keep answering 200 — the counts fail open
  to the process's memory — and go back to Redis once it answers, with no restart;
* PostgreSQL down: pages answer 503 with ``Retry-After`` and a page that needs no database, the API
  503 ``service_unavailable`` in its JSON error body with a request id, ``/healthz`` 503; everything
  answers 200 again once PostgreSQL is back, with no restart and nothing lost.

The pipeline's faults (a worker killed mid-task, Redis down during an upload, PostgreSQL restarted under
a running worker, poison images) are in tests/integration/test_pipeline_faults.py; a missing trained model (the
fallbacks serve) in tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connections
from django.test import Client
from rest_framework.authtoken.models import Token

from catalog.models import Product
from shop import outages
from tests.integration.test_localstack import stack
from tests.integration.test_pipeline_faults import PrivateRedis
from tests.support import bad_images as bad
from tests.support.catalogs import SMALL_CATALOG, catalog_import_processed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

PAGES = ["/", "/search?q=red+t-shirt"]
API_READS = ["/api/v1/products", "/api/v1/search?q=red+t-shirt"]


@pytest.fixture
def shop(tmp_path, test_models, media_root) -> dict[str, int]:
    return catalog_import_processed(tmp_path, SMALL_CATALOG[:4])


@pytest.fixture
def client() -> Client:
    # a client that answers as the web server would, rather than raising the view's exception
    return Client(raise_request_exception=False)


@pytest.fixture
def throttle_redis(tmp_path, settings, monkeypatch) -> Iterator[PrivateRedis]:
    """The API's throttle counts on a Redis of this test's own, which it can stop."""
    server = PrivateRedis(tmp_path)
    server.start()
    settings.CACHES = {**settings.CACHES, "api": {**settings.CACHES["api"], "LOCATION": server.url}}
    monkeypatch.setattr(outages, "REDIS_RETRY_S", 0.2)
    caches["api"].memory_clear()  # counts an earlier test made while its Redis was down
    yield server
    server.stop()


def alternatives_url(shop: dict[str, int]) -> str:
    sku = Product.objects.get(pk=shop["B2"]).sku
    return f"/api/v1/products/{sku}/alternatives"


def product_pages(shop: dict[str, int]) -> list[str]:
    """The product's page and the embeddable widget's answer for it."""
    sku = Product.objects.get(pk=shop["B2"]).sku
    return [f"/p/{sku}/", f"/widget/alternatives/{sku}.json"]


def test_redis_down_pages_and_api_reads_stay_up_and_counts_go_back_to_redis(shop, client, throttle_redis):
    counts = redis.Redis.from_url(throttle_redis.url)
    urls = [*PAGES, *product_pages(shop), *API_READS, alternatives_url(shop)]
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert counts.keys("*throttle*"), "the throttle counts live in Redis while it answers"

    throttle_redis.stop()
    before = sum(outages.fail_open_counts.values())
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        if url.startswith("/api/"):
            assert response["Content-Type"].startswith("application/json")
    assert sum(outages.fail_open_counts.values()) > before, "served from memory, and counted"
    upload = io.BytesIO(bad.jpeg((120, 180), (200, 30, 30)))
    upload.name = "me.jpg"
    photo = client.post("/api/v1/search/photo", {"photo": upload})
    assert photo.status_code == 200 and "garments" in photo.json()

    throttle_redis.start()  # empty, as after a restart without persistence
    time.sleep(0.3)  # the cache tries Redis again after REDIS_RETRY_S
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert counts.keys("*throttle*"), "the counts are back in Redis, with no restart"


def test_a_throttle_still_limits_while_redis_is_down(shop, client, throttle_redis, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "search": "3/minute"},
    }
    throttle_redis.stop()
    answers = [client.get("/api/v1/search", {"q": "red"}).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]  # counted in this process meanwhile


def test_postgres_down_pages_and_api_answer_503_then_recover(shop, client):
    env = dict(os.environ)
    api = [*API_READS, alternatives_url(shop)]
    pages = [*PAGES, *product_pages(shop)]
    urls = [*pages, *api]
    products = Product.objects.count()
    user = get_user_model().objects.create_user("staffer", password="pw", is_staff=True)
    token = Token.objects.create(user=user).key
    connections.close_all()
    stack(env, "stop", "postgres")
    try:
        for url in pages:
            response = client.get(url)
            assert response.status_code == 503, (url, response.status_code)
            assert response["Retry-After"] == str(settings.SHOP_RETRY_AFTER_S)
            assert b"back in a moment" in response.content
        for url in api:
            response = client.get(url)
            assert response.status_code == 503, (url, response.status_code)
            assert response["Retry-After"] == str(settings.SHOP_RETRY_AFTER_S)
            error = response.json()["error"]
            assert error["code"] == "service_unavailable" and error["request_id"] == response["X-Request-ID"]
        upload = io.BytesIO(bad.jpeg((120, 180), (200, 30, 30)))
        upload.name = "me.jpg"
        photo = client.post("/api/v1/search/photo", {"photo": upload})
        assert photo.status_code == 503 and photo.json()["error"]["code"] == "service_unavailable"
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["ok"] is False
        # a staff write is refused the same way, and writes nothing
        write = client.post(
            "/api/v1/products",
            {"sku": "NEW-1", "title": "New", "price": "9"},
            content_type="application/json",
            headers={"Authorization": f"Token {token}"},
        )
        assert write.status_code == 503 and write.json()["error"]["code"] == "service_unavailable"
    finally:
        stack(env, "start", "postgres")
    # back, with no restart of anything: Django opens new connections for the next request
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert client.get("/healthz").status_code == 200
    assert Product.objects.count() == products  # nothing lost, nothing half-written
    assert not Product.objects.filter(sku="NEW-1").exists()


def test_search_reads_fall_back_to_the_primary_while_the_replica_cannot_be_reached(shop):
    """The replica's entry as shop/settings.py builds it, with a replica nobody answers for: the
    connection Django's PostgreSQL backend makes from it reaches the primary instead (libpq's multi-host
    connection), and a keyword search on it finds the products."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    from shop.settings import database_from_url, replica_with_fallback
    from tests.integration.test_pipeline_faults import free_port

    primary = connections["default"].settings_dict
    replica_url = f"postgres://{primary['USER']}@127.0.0.1:{free_port()}/{primary['NAME']}"  # nothing listens
    entry = replica_with_fallback(database_from_url(replica_url), {**primary, "PASSWORD": ""})
    assert entry["HOST"] == f"127.0.0.1,{primary['HOST']}"
    # the connection parameters Django's PostgreSQL backend derives from that entry, given to the driver
    wrapper = DatabaseWrapper(connections.configure_settings({"default": primary, "probe": entry})["probe"], "probe")
    with psycopg.connect(**wrapper.get_connection_params()) as conn:
        found = conn.execute("SELECT count(*) FROM catalog_product WHERE search_document @@ plainto_tsquery('red')")
        assert found.fetchone()[0] >= 1
        assert conn.info.port == int(primary["PORT"])  # the primary answered
    # a replica with other credentials is not given a fallback it could not log in to
    other = database_from_url(f"postgres://reader:x@replica.internal:5432/{primary['NAME']}")
    assert replica_with_fallback(other, primary) == other


def test_media_storage_unwritable_uploads_answer_503_and_store_nothing_then_recover(shop, client, settings, tmp_path):
    from catalog.models import ProductImage

    user = get_user_model().objects.create_user("staffer", password="pw", is_staff=True)
    auth = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    sku = Product.objects.get(pk=shop["B2"]).sku

    def upload(colour: tuple[int, int, int]):
        photo = io.BytesIO(bad.jpeg((120, 180), colour))
        photo.name = "new.jpg"
        return client.post(f"/api/v1/products/{sku}/images", {"images": photo}, headers=auth)

    images = ProductImage.objects.count()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    working = settings.MEDIA_ROOT
    settings.MEDIA_ROOT = blocker / "media"  # nothing can be written under a file
    refused = upload((10, 200, 30))
    assert refused.status_code == 503, refused.content[:300]
    assert refused["Retry-After"] == str(settings.SHOP_RETRY_AFTER_S)
    assert refused.json()["error"]["code"] == "storage_unavailable"
    assert ProductImage.objects.count() == images  # no row without its file
    staff = Client(raise_request_exception=False)
    staff.force_login(user)
    photo = io.BytesIO(bad.jpeg((120, 180), (10, 200, 30)))
    photo.name = "new.jpg"
    page = staff.post(f"/staff/upload/?product={shop['B2']}", {"files": photo, "product": shop["B2"]})
    assert page.status_code == 200 and b"could not be stored" in page.content  # the staff page says so
    assert ProductImage.objects.count() == images
    for url in [*PAGES, *product_pages(shop), *API_READS]:
        assert client.get(url).status_code == 200, url  # photos missing, pages up

    settings.MEDIA_ROOT = working
    stored = upload((10, 200, 30))
    assert stored.status_code == 201 and stored.json()["stored"] == 1
    assert ProductImage.objects.count() == images + 1
