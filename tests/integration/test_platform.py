"""The services around the catalog: health endpoint, Redis, staff bootstrap, admin, demo load."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from catalog.services import catalog_import_csv
from shop.services import staff_user_ensure
from tests.support.images import jpeg_bytes


def test_redis_is_real(redis_client):
    redis_client.set("shop:test:key", "value", ex=10)
    assert redis_client.get("shop:test:key") == b"value"
    assert redis_client.info("server")["redis_version"]


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True
    assert body["database"].startswith("ok (pgvector")
    assert body["broker"] == "ok"


@pytest.mark.django_db
def test_healthz_says_503_when_the_broker_is_gone(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")


@pytest.mark.django_db
def test_staff_user_is_created_once_and_its_password_kept(tmp_path: Path):
    first = staff_user_ensure("staff", tmp_path / "creds.txt")
    second = staff_user_ensure("staff", tmp_path / "creds.txt")
    assert first.created and not second.created
    assert first.password == second.password
    user = get_user_model().objects.get(username="staff")
    assert user.is_staff and user.is_superuser and user.check_password(first.password)
    assert (tmp_path / "creds.txt").stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db
def test_admin_lists_products_with_their_images(client, make_catalog):
    path = make_catalog(
        [
            {"sku": "ADM-1", "title": "Linen shirt", "price": "35", "stock": "M:1", "images": "p/shirt.jpg"},
            {"sku": "ADM-2", "title": "Sold-out skirt", "price": "20", "stock": "0"},
        ],
        {"p/shirt.jpg": jpeg_bytes()},
    )
    catalog_import_csv(path, path.parent)
    admin = get_user_model().objects.create_superuser("boss", password="x")
    client.force_login(admin)
    page = client.get("/admin/catalog/product/").content.decode()
    assert "Linen shirt" in page and "Sold-out skirt" in page and "out of stock" in page
    assert '<img src="/media/products/ADM-1/' in page
    src = "/media/" + page.split('<img src="/media/', 1)[1].split('"', 1)[0]
    media = client.get(src)
    assert media.status_code == 200 and b"".join(media.streaming_content)[:2] == b"\xff\xd8"
    assert client.get("/admin/catalog/product/?q=linen").content.decode().count("Linen shirt") >= 1


@pytest.mark.django_db
def test_admin_needs_staff(client):
    response = client.get("/admin/catalog/product/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_storefront_home_shows_products_or_an_empty_state(client, make_catalog):
    assert "The shop is empty for now" in client.get("/").content.decode()
    path = make_catalog([{"sku": "H1", "title": "Wool coat", "price": "99", "stock": "2"}])
    catalog_import_csv(path, path.parent)
    page = client.get("/").content.decode()
    assert "Wool coat" in page and "€99.00" in page and "In stock" in page


@pytest.mark.django_db
def test_load_demo_without_a_source_leaves_the_shop_empty(settings, tmp_path):
    settings.SHOP_DEMO_SOURCE = str(tmp_path / "nothing-here")
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    assert "the shop starts empty" in out.getvalue()
    settings.SHOP_DEMO_SOURCE = ""
    call_command("load_demo", stdout=out)
    assert "SHOP_DEMO_SOURCE is empty" in out.getvalue()
