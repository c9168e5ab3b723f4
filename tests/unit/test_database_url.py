"""shop.settings.database_from_url: a DATABASES entry from a postgres:// URL (parsed by dj-database-url),
its query parameters kept as OPTIONS. Needs no database and also runs with ``-p no:django``."""

from __future__ import annotations

import pytest

from shop.settings import database_from_url


def test_query_parameters_become_options():
    db = database_from_url("postgres://app:pw@db.internal:6432/shop_prod?sslmode=require&connect_timeout=5")
    assert db["OPTIONS"] == {"sslmode": "require", "connect_timeout": 5}
    assert (db["ENGINE"], db["HOST"], db["PORT"], db["NAME"]) == (
        "django.db.backends.postgresql",
        "db.internal",
        "6432",
        "shop_prod",
    )


def test_no_query_no_options():
    assert "OPTIONS" not in database_from_url("postgres://app@db.internal/shop_prod")


def test_percent_escapes_are_decoded():
    db = database_from_url("postgresql://app%2Bro:s%40c%3Aret%2F%25@db.internal/shop%2Dprod")
    assert (db["USER"], db["PASSWORD"], db["NAME"]) == ("app+ro", "s@c:ret/%", "shop-prod")


def test_defaults():
    db = database_from_url("postgres://")
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == ("127.0.0.1", "5432", "shop", "", "")
    assert database_from_url("postgres://u@h/")["NAME"] == "shop"
    assert database_from_url("postgres://u@h/x")["PORT"] == "5432"
    assert db["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize("url", ["mysql://u@h/x", "sqlite:///db.sqlite3", "pgsql://u@h/x", "db.internal/shop"])
def test_other_schemes_are_refused(url):
    with pytest.raises(ValueError, match="must start with postgres://"):
        database_from_url(url)


def test_connection_age_and_test_database_from_the_environment(monkeypatch):
    monkeypatch.delenv("SHOP_DB_CONN_MAX_AGE", raising=False)
    monkeypatch.delenv("SHOP_TEST_DB_NAME", raising=False)
    db = database_from_url("postgres://u@h/x")
    assert (db["CONN_MAX_AGE"], db["TEST"]) == (60, {"NAME": "test_shop"})
    monkeypatch.setenv("SHOP_DB_CONN_MAX_AGE", "0")
    monkeypatch.setenv("SHOP_TEST_DB_NAME", "test_other")
    db = database_from_url("postgres://u@h/x")
    assert (db["CONN_MAX_AGE"], db["TEST"]) == (0, {"NAME": "test_other"})
    monkeypatch.setenv("SHOP_DB_CONN_MAX_AGE", "forever")
    with pytest.raises(ValueError, match="SHOP_DB_CONN_MAX_AGE"):
        database_from_url("postgres://u@h/x")
