"""Answers shared between shoppers (search/answers.py): a repeated search, product or result page is
answered from the real Redis without ranking again, and never shows a catalog older than the last
committed change — the version the real PostgreSQL triggers of catalog 0013 keep. Staff answers and
answers computed inside a transaction are never shared."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.models import Product
from search import answers
from tests.support.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1"


@pytest.fixture(autouse=True)
def shared_answers(settings) -> Iterator[str]:
    """The answer cache on, under a key prefix of this test's own on the real Redis (removed after)."""
    prefix = f"test-answers-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {**settings.CACHES, "api": {**settings.CACHES["api"], "KEY_PREFIX": prefix}}
    settings.SHOP_ANSWER_CACHE_S = 600
    rates = {scope: "100000/minute" for scope in ("catalog", "search", "photo_search", "auth")}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    yield prefix
    client = caches["api"]._cache.get_client(write=True)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def stored_answers(prefix: str, kind: str) -> int:
    client = caches["api"]._cache.get_client(write=True)
    return sum(1 for _ in client.scan_iter(f"{prefix}:*answer:{kind}:*"))


def main(page: Any) -> str:
    """The page's content (its <main>), without the header's per-visitor CSRF token."""
    html = page.content.decode()
    return html[html.index("<main") : html.index("</main>")]


def make_products() -> dict[str, Product]:
    with transaction.atomic():
        category = CategoryFactory(name="Dresses")
        return {
            sku: ProductFactory(sku=sku, title=title, price=Decimal("30"), category=category, stock={"M": 2})
            for sku, title in [("Q1", "Zebrafrog party dress"), ("Q2", "Zebrafrog summer dress")]
        }


def test_the_catalog_version_moves_with_each_committed_write_only():
    products = make_products()
    first = catalog_selectors.catalog_version()
    assert catalog_selectors.catalog_version() == first  # reading changes nothing
    catalog_services.variant_stock_set(sku="Q1", size="M", stock=0)  # a stock change commits
    second = catalog_selectors.catalog_version()
    assert second != first
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.filter(pk=products["Q2"].pk).update(title="Rolled back")
        raise RuntimeError
    assert catalog_selectors.catalog_version() == second  # a rolled-back write leaves it
    with connection.cursor() as cursor:  # plain SQL is seen too: the triggers are the database's
        cursor.execute("UPDATE catalog_product SET price = 31 WHERE sku = 'Q2'")
    third = catalog_selectors.catalog_version()
    assert third not in (first, second)
    with connection.cursor() as cursor:  # and a truncate, as a test database's flush does
        cursor.execute("TRUNCATE catalog_variant, catalog_change")
    assert catalog_selectors.catalog_version() not in (first, second, third)


def test_a_repeated_search_is_shared_and_a_stock_change_shows_on_the_next_request(shared_answers):
    make_products()
    client = APIClient()
    url = f"{API}/search?q=zebrafrog+dress&signals=keyword"
    first = client.get(url)
    assert first.status_code == 200
    assert {r["product"]["sku"]: r["product"]["in_stock"] for r in first.json()["results"]} == {
        "Q1": True,
        "Q2": True,
    }
    assert stored_answers(shared_answers, "api") == 1
    with CaptureQueriesContext(connection) as queries:
        again = client.get(url)
    assert again.json() == first.json()
    # the shared answer: the catalog's version is read (and which models serve), no product is
    sql = [q["sql"] for q in queries.captured_queries]
    assert "SELECT version FROM catalog_change WHERE id = 1" in sql
    assert not [q for q in sql if "catalog_product" in q or "catalog_variant" in q], sql

    catalog_services.variant_stock_set(sku="Q1", size="M", stock=0)
    after = client.get(url).json()
    assert {r["product"]["sku"]: r["product"]["in_stock"] for r in after["results"]} == {"Q1": False, "Q2": True}
    assert stored_answers(shared_answers, "api") == 2  # a new key for the new version


def test_a_product_switched_off_leaves_the_shared_product_answer_at_once():
    make_products()
    client = APIClient()
    assert client.get(f"{API}/products/Q1").status_code == 200
    assert client.get(f"{API}/products/Q1").status_code == 200
    Product.objects.filter(sku="Q1").update(is_active=False)
    assert client.get(f"{API}/products/Q1").status_code == 404


def test_staff_answers_are_never_shared(django_user_model, shared_answers):
    make_products()
    Product.objects.filter(sku="Q1").update(is_active=False)
    staff = APIClient()
    staff.force_authenticate(django_user_model.objects.create_user("staffer", password="x", is_staff=True))
    assert staff.get(f"{API}/products/Q1").status_code == 200  # staff see inactive products
    assert stored_answers(shared_answers, "api") == 0
    assert APIClient().get(f"{API}/products/Q1").status_code == 404  # a shopper does not


def test_no_answer_is_shared_from_inside_a_transaction(shared_answers):
    make_products()
    with transaction.atomic():
        Product.objects.filter(sku="Q2").update(title="Uncommitted zebrafrog gown")
        seen = APIClient().get(f"{API}/products/Q2").json()["title"]
        assert seen == "Uncommitted zebrafrog gown"
        transaction.set_rollback(True)
    assert stored_answers(shared_answers, "api") == 0
    assert APIClient().get(f"{API}/products/Q2").json()["title"] == "Zebrafrog summer dress"


def test_result_pages_are_shared_per_url_and_follow_the_catalog(shared_answers):
    make_products()
    client = Client()
    page = client.get("/search", {"q": "zebrafrog dress"})
    assert page.status_code == 200 and "Zebrafrog party dress" in page.content.decode()
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()  # the visitor's own token, outside the share
    assert stored_answers(shared_answers, "page") == 1
    assert main(client.get("/search", {"q": "zebrafrog dress"})) == main(page)
    assert client.get("/search", {"q": "zebrafrog dress", "page": "9"}).status_code == 302  # past the end
    Product.objects.filter(sku="Q1").update(title="Quokka party gown")
    again = client.get("/search", {"q": "zebrafrog dress"}).content.decode()
    assert "Zebrafrog party dress" not in again and "Zebrafrog summer dress" in again
    product_page = client.get("/p/Q2/")
    assert product_page.status_code == 200 and "Zebrafrog summer dress" in product_page.content.decode()
    assert main(client.get("/p/Q2/")) == main(product_page)
    Product.objects.filter(sku="Q2").update(is_active=False)
    assert client.get("/p/Q2/").status_code == 404


def test_the_release_names_the_code(monkeypatch):
    answers.release_id.cache_clear()
    try:
        digest = answers.release_id()
        assert len(digest) == 16 and int(digest, 16) >= 0
        monkeypatch.setenv("SHOP_RELEASE", "v2026.12.07")
        answers.release_id.cache_clear()
        assert answers.release_id() == "v2026.12.07"
    finally:
        answers.release_id.cache_clear()
