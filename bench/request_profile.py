"""Where a request's CPU goes, by stage: the shop's busiest requests run in this process through Django's
request handler (middleware, DRF, views, search, serializers: everything but the HTTP server) against
the configured database, timed without a profiler and then profiled (cProfile), the profile's time
split into the stages below.

    .venv/bin/python -m bench.request_profile [--requests 200] [--out var/bench/request-profile.json]

Point it at a shop's database (``DATABASE_URL``, ``SHOP_MODELS_DIR`` as for ``bin/run``); the throttle
rates are lifted for the run, and the shared answers are off (every request is computed). Printed per
surface: ms per request unprofiled (the figure to compare) and, from the profile, ms per request in each
stage (profiling slows everything by about the same factor, so read the stages as shares).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any, cast

from bench.stats import latency_summary

REPO = Path(__file__).resolve().parent.parent
QUERIES = [
    "black t-shirt", "red dress", "blue jeans", "striped top", "summer dress", "leather jacket", "white shirt",
    "denim shorts", "floral blouse", "wool sweater", "black trousers", "hoodie", "pink skirt", "blak t-shrt",
    "green jacket", "knitted cardigan", "swimsuit", "socks", "grey jumper", "linen shirt",
]  # fmt: skip
FILTERS = [{}, {}, {"in_stock": "true"}, {"price_max": "30"}, {"colour": "Black"}, {"in_stock": "true"}]

# stage -> functions (path suffix, name) whose cumulative time is the stage's; nested stages are
# subtracted from the stage that contains them (listed after it)
STAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("throttle, auth (DRF initial)", [("rest_framework/views.py", "initial")]),
    ("search: signals and fusion", [("search/services.py", "_ranked")]),
    ("search: facets and result check", [("search/services.py", "ranked_with_facets")]),
    ("summaries: database", [("catalog/selectors/products.py", "products_by_ids")]),
    ("summaries: serializers", [("api/views.py", "summaries")]),
    ("models served", [("search/services.py", "models_served")]),
    ("page: template rendering", [("django/template/base.py", "render")]),
    ("page: search", [("search/services.py", "search_products")]),
]
CONTAINS = {
    "search: facets and result check": ["search: signals and fusion"],
    "summaries: serializers": ["summaries: database"],
    "page: search": ["search: facets and result check", "search: signals and fusion"],
}


def requests_for(surface: str, n: int, skus: list[str]) -> list[tuple[str, dict[str, str]]]:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        q = {"q": rng.choice(QUERIES), **rng.choice(FILTERS)}
        if surface == "api: search":
            out.append(("/api/v1/search", q))
        elif surface == "page: search":
            out.append(("/search", q))
        elif surface == "api: products":
            out.append(("/api/v1/products", {"limit": "20", **rng.choice(FILTERS)}))
        else:  # page: product
            out.append((f"/p/{rng.choice(skus)}/", {}))
    return out


def stage_ms(stats: pstats.Stats, n: int) -> dict[str, float]:
    cumulative: dict[str, float] = {}
    for stage, functions in STAGES:
        total = 0.0
        for (filename, _, name), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
            if name in {f for _, f in functions} and any(filename.endswith(p) for p, f in functions if f == name):
                total += ct
        cumulative[stage] = total
    own = {s: t - sum(cumulative.get(c, 0.0) for c in CONTAINS.get(s, [])) for s, t in cumulative.items()}
    return {s: round(1000 * t / n, 1) for s, t in own.items() if t > 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "request-profile.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from catalog.models import Product

    settings.ALLOWED_HOSTS = ["*"]
    # every request computed: answers shared through the cache (search/answers.py) would hide the work
    settings.SHOP_ANSWER_CACHE_S = 0
    rates = cast(dict[str, str], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])  # a dict in shop/settings.py
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(rates, "1000000/minute"),
    }
    skus = list(Product.objects.filter(is_active=True).values_list("sku", flat=True)[:200])
    if not skus:
        print("no products in this database: point DATABASE_URL at a shop's database (bin/run loads the demo)")
        return 2
    client = Client()
    report: dict[str, Any] = {"requests": args.requests, "database": settings.DATABASES["default"]["NAME"]}
    for surface in ("api: search", "page: search", "api: products", "page: product"):
        calls = requests_for(surface, args.requests, skus)
        for path, params in calls[: max(20, args.requests // 4)]:  # warm: models, query vectors, facts
            response = client.get(path, params)
            assert response.status_code == 200, (path, response.status_code)
        timings = []
        for path, params in calls:
            t0 = time.perf_counter()
            client.get(path, params)
            timings.append(time.perf_counter() - t0)
        profile = cProfile.Profile()
        profile.enable()
        t0 = time.perf_counter()
        for path, params in calls:
            client.get(path, params)
        profiled = time.perf_counter() - t0
        profile.disable()
        stages = stage_ms(pstats.Stats(profile), len(calls))
        stages["everything else (middleware, routing, rendering)"] = round(
            1000 * profiled / len(calls) - sum(stages.values()), 1
        )
        report[surface] = {"unprofiled": latency_summary(timings), "profiled_ms_per_request": stages}
        print(f"\n{surface}: {report[surface]['unprofiled']['p50_ms']} ms p50 unprofiled; profiled, per request:")
        for stage, ms in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"  {ms:7.1f} ms  {stage}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
