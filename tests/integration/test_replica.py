"""A real streaming read replica, locally: ``shop.localstack`` starts a primary and a replica of it
(``pg_basebackup``, then WAL streaming) and the web server with ``DATABASE_REPLICA_URL``, so search
reads go to the replica while staff writes go to the primary.

What a shopper may see is bounded: a product switched off, or sold out, on the primary leaves search
results within ``STATED_LAG_S``; while the replica is stopped search keeps answering from the primary
(libpq's multi-host fallback), and nothing sold out is shown then either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shop import localstack
from tests.integration.test_localstack import REPO, free_port, manage, stack

pytestmark = pytest.mark.services

STATED_LAG_S = 2.0  # docs/production.md, "Read replicas for search"

SETUP = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token
from catalog.services import ProductInput, product_set_stock, product_upsert
for sku, title in [("R1", "Zebrafrog party dress"), ("R2", "Zebrafrog summer dress"), ("R3", "Zebrafrog maxi dress")]:
    with transaction.atomic():
        product, _ = product_upsert(ProductInput(sku=sku, title=title, price=Decimal("20")))
        product_set_stock(product, {"M": 3})
user = get_user_model().objects.create_user("replica-staff", password="pw", is_staff=True)
print("TOKEN", Token.objects.create(user=user).key)
"""


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[dict[str, Any]]:
    pg, replica, rd, web = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SHOP_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"postgres://shop@127.0.0.1:{pg}/replicatest",
        "DATABASE_REPLICA_URL": f"postgres://shop@127.0.0.1:{replica}/replicatest",
        "REDIS_URL": f"redis://127.0.0.1:{rd}/0",
        "SHOP_WEB_PORT": str(web),
        "SHOP_HTTPS": "false",
        "SHOP_MODELS_DIR": str(tmp_path / "models"),
        "SHOP_REPLICA_CONNECT_TIMEOUT": "1",
    }
    try:
        out = stack(env, "start", "postgres", "replica", "redis")
        assert "replica: up" in out and "streaming" in out

        manage(env, "migrate", "--noinput")
        manage(env, "models", "ensure", "--no-build")
        token = manage(env, "shell", "-c", SETUP).split("TOKEN")[-1].strip()
        stack(env, "start", "web")
        yield {"env": env, "url": f"http://127.0.0.1:{web}", "token": token, "replica_port": replica}
    finally:
        names = ["web", "redis", "replica", "postgres"]
        subprocess.run([sys.executable, "-m", "shop.localstack", "stop", *names], env=env, cwd=REPO)
        localstack.stack_data_remove(env)


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def shown(shop: dict[str, Any], in_stock: bool = False) -> set[str]:
    query = "/api/v1/search?q=zebrafrog" + ("&in_stock=true" if in_stock else "")
    return {row["product"]["sku"] for row in call(shop["url"] + query)["results"]}


def seconds_until(check: Any, limit: float = 30.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit, "never happened"
        time.sleep(0.02)
    return time.monotonic() - started


def replica_reads(shop: dict[str, Any]) -> int:
    """Transactions the replica has run in the shop's database (search reads land there)."""
    url = shop["env"]["DATABASE_REPLICA_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)  # a standby, read-only
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0])


def test_search_reads_the_replica_within_the_stated_lag_and_falls_back_to_the_primary(replicated):
    shop, token = replicated, replicated["token"]
    primary = shop["env"]["DATABASE_URL"]
    with psycopg.connect(primary, autocommit=True) as conn:
        streaming = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()
    assert streaming == (1,), "the replica follows the primary's WAL"

    before = replica_reads(shop)
    for _ in range(8):  # every web process and thread warm: a lag measured is the replica's, not a model load
        assert shown(shop) == {"R1", "R2", "R3"}
    assert replica_reads(shop) > before, "search read the replica"

    # staff writes go to the primary; what search shows follows within the stated lag
    call(f"{shop['url']}/api/v1/products/R1", "PATCH", {"is_active": False}, token)
    lag_off = seconds_until(lambda: "R1" not in shown(shop))
    call(f"{shop['url']}/api/v1/products/R2/variants/M", "PUT", {"stock": 0}, token)
    lag_sold_out = seconds_until(lambda: "R2" not in shown(shop, in_stock=True))
    assert lag_off <= STATED_LAG_S and lag_sold_out <= STATED_LAG_S, (lag_off, lag_sold_out)

    # the replica stopped: search answers from the primary, and shows its newest state at once
    stack(shop["env"], "stop", "replica")
    assert shown(shop) == {"R2", "R3"}
    call(f"{shop['url']}/api/v1/products/R3/variants/M", "PUT", {"stock": 0}, token)
    assert shown(shop, in_stock=True) == set()

    # back: the replica catches up from the primary's WAL and serves the reads again
    stack(shop["env"], "start", "replica")
    before = replica_reads(shop)
    seconds_until(lambda: shown(shop, in_stock=True) == set() and replica_reads(shop) > before)
