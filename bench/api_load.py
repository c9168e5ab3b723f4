"""A short load run against the REST API: 50 concurrent clients searching for 60 s (locust, headless).

    .venv/bin/python -m bench.api_load [--host http://127.0.0.1:8000] [--users 50] [--seconds 60]
        [--spawn-rate 10] [--out var/bench/api-load]

Each simulated shopper (a locust ``HttpUser``, 0.5–1.5 s between actions, like a person tapping)
mostly runs text searches (a mix of queries, some with filters and a second page), and now and then
lists products with filters, opens a product, and asks for its similar items or in-stock
alternatives. Every response other than 2xx/304 counts as a failure (429 included: throttling must
be raised for a load run, e.g. start the shop with ``SHOP_API_RATE_SEARCH=1000000/minute
SHOP_API_RATE_CATALOG=1000000/minute``; a single load generator looks like one client).

Prints locust's own figures per request kind and aggregated: requests, failures, requests/s, p50 and
p95 (ms); writes locust's CSV files under ``--out``; exits 1 when any request failed, 2 when the shop
does not answer. It is a bench command, not a test: point it at a running shop (``bin/run``).
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import urllib.request
from pathlib import Path

QUERIES = [
    "black t-shirt", "red dress", "blue jeans", "striped top", "summer dress", "leather jacket", "white shirt",
    "denim shorts", "floral blouse", "wool sweater", "black trousers", "hoodie", "pink skirt", "blak t-shrt",
    "green jacket", "knitted cardigan", "swimsuit", "socks", "grey jumper", "linen shirt",
]  # fmt: skip
FILTERS = [
    {}, {}, {"in_stock": "true"}, {"price_max": "30"}, {"colour": "Black"}, {"in_stock": "true", "price_min": "10"},
]  # fmt: skip

if __name__ != "__main__":  # imported by locust as the locustfile
    from locust import HttpUser, between, task

    class Shopper(HttpUser):
        wait_time = between(0.5, 1.5)
        skus: list[str] = []

        def on_start(self) -> None:
            if not Shopper.skus:
                with self.client.get("/api/v1/products?limit=100", name="/api/v1/products", catch_response=True) as r:
                    if r.status_code == 200:
                        Shopper.skus = [row["sku"] for row in r.json()["results"]]

        def _get(self, path: str, name: str, params: dict[str, str] | None = None) -> None:
            with self.client.get(path, params=params, name=name, catch_response=True) as response:
                if response.status_code not in (200, 304):
                    response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

        @task(8)
        def search(self) -> None:
            params = {"q": random.choice(QUERIES), **random.choice(FILTERS)}
            if random.random() < 0.2:
                params["offset"] = "24"
            self._get("/api/v1/search", "/api/v1/search", params)

        @task(2)
        def browse(self) -> None:
            self._get("/api/v1/products", "/api/v1/products", {"limit": "24", **random.choice(FILTERS)})

        @task(1)
        def product(self) -> None:
            if self.skus:
                self._get(f"/api/v1/products/{random.choice(self.skus)}", "/api/v1/products/{sku}")

        @task(1)
        def alternatives(self) -> None:
            if self.skus:
                sku = random.choice(self.skus)
                if random.random() < 0.5:
                    self._get(f"/api/v1/products/{sku}/alternatives", "/api/v1/products/{sku}/alternatives")
                else:
                    self._get(f"/api/v1/products/{sku}/similar", "/api/v1/products/{sku}/similar")


def _read_stats(prefix: Path) -> list[dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:8000")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--out", default="var/bench/api-load")
    args = parser.parse_args(argv)
    host = args.host.rstrip("/")
    try:
        with urllib.request.urlopen(f"{host}/api/v1/categories", timeout=10) as response:
            response.read()
    except OSError as exc:
        print(f"the shop at {host} does not answer ({exc}); start it first (bin/run)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    command = [
        sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve()), "--headless", "--only-summary",
        "--host", host, "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s",
        "--csv", str(prefix), "--stop-timeout", "10", "--loglevel", "WARNING",
    ]  # fmt: skip
    print(f"locust: {args.users} users for {args.seconds} s against {host} …", flush=True)
    subprocess.run(command, check=False)
    rows = _read_stats(prefix)
    print(f"\n{'request':45s} {'requests':>9s} {'failures':>9s} {'req/s':>7s} {'p50 ms':>7s} {'p95 ms':>7s}")
    failures = 0
    for row in rows:
        name = row["Name"] if row["Type"] else "all requests (aggregated)"
        print(
            f"{name:45s} {row['Request Count']:>9s} {row['Failure Count']:>9s} {float(row['Requests/s']):7.1f} "
            f"{row['50%']:>7s} {row['95%']:>7s}"
        )
        if row["Name"] == "Aggregated":
            failures = int(row["Failure Count"])
    failures_file = Path(f"{prefix}_failures.csv")
    if failures and failures_file.exists():
        print("\nfailures:\n" + failures_file.read_text()[:2000])
    print(f"\n{failures} failed requests; locust CSV files in {out}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
