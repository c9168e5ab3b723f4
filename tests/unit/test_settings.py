"""Settings helpers: configuration from the environment, with clear errors."""

from __future__ import annotations

import pytest

from shop.settings import database_from_url, env_bool, env_int


def test_database_url_parsing():
    db = database_from_url("postgres://app:s%40cret@db.internal:6432/shop_prod")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "app",
        "s@cret",
        "db.internal",
        "6432",
        "shop_prod",
    )
    assert database_from_url("postgresql://u@h/x")["PORT"] == "5432"
    with pytest.raises(ValueError, match="must start with postgres://"):
        database_from_url("mysql://u@h/x")


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("SHOP_X_BOOL", "Yes")
    monkeypatch.setenv("SHOP_X_INT", "12")
    assert env_bool("SHOP_X_BOOL", False) is True
    assert env_bool("SHOP_X_UNSET", True) is True
    assert env_int("SHOP_X_INT", 1) == 12
    monkeypatch.setenv("SHOP_X_INT", "twelve")
    with pytest.raises(ValueError, match="must be an integer"):
        env_int("SHOP_X_INT", 1)
