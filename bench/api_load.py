"""Load runs against the shop (REST API and storefront pages): closed loop (locust users) or open loop (a fixed
arrival rate).

Closed loop (the default): 50 concurrent clients searching for 60 s (locust, headless).

    .venv/bin/python -m bench.api_load [--host http://127.0.0.1:8000] [--users 50] [--seconds 60]
        [--spawn-rate 10] [--out var/bench/api-load]

Each simulated shopper (a locust ``HttpUser``, 0.5–1.5 s between actions, like a person tapping)
mostly runs text searches (a mix of queries, some with filters and a second page) through the API
and the storefront's result page, and now and then lists products with filters, opens a product (API
and page), and asks for its similar items or in-stock alternatives. Every response other than 2xx/304
counts as a failure (429 included: throttling must be raised for a load run, e.g. start the shop with
``SHOP_API_RATE_SEARCH=1000000/minute SHOP_API_RATE_CATALOG=1000000/minute``; a single load generator
looks like one client). Answers asked for again come from the shared answer cache (search/answers.py);
start the shop with ``SHOP_ANSWER_CACHE_S=0`` to measure every request computed.

Prints locust's own figures per request kind and aggregated: requests, failures, requests/s, p50 and
p95 (ms); writes locust's CSV files under ``--out``; exits 1 when any request failed, 2 when the shop
does not answer.

Open loop (``--open-loop``): requests arrive at fixed rates, whatever the shop does.

    .venv/bin/python -m bench.api_load --open-loop [--rates 10,20,40,60] [--seconds 30]
        [--p95-target-ms 250] [--seed 1] [--warmup-seconds 3] [--max-threads 256] [--timeout 30]
        [--host http://127.0.0.1:8000] [--out var/bench/api-load]

A closed loop hides overload: a user waits for its answer before it thinks and asks again, so a slow
shop slows its clients down, fewer requests arrive while it is slow, and the slow moments are sampled
less (coordinated omission). The open loop fixes in advance when each request starts: Poisson arrivals
at each offered rate (exponential gaps drawn from ``random.Random(seed)``, the same seed for every
rate, so every rate sends the same sequence of requests and only the gaps shrink), each started on
schedule by a pool of up to ``--max-threads`` threads (plain ``http.client``, a kept-alive connection
per thread, no gevent) whether or not earlier requests have finished. A request's latency runs from
its *scheduled* start to the end of its response (or its failure), so time spent waiting in the
client counts too. The requests are drawn like the shopper's actions (the same weights, queries and
filters) from the same seeded generator, with SKUs fetched once from ``/api/v1/products?limit=100``.

After an uncounted warm-up (``--warmup-seconds`` at the lowest rate), each rate runs for ``--seconds``
and then waits for its last responses. Per rate it prints the offered rate; the achieved throughput
(successful responses per second, over ``--seconds`` or up to the last response if that came later);
requests; errors (non-2xx/304 and exceptions, by status); p50/p95/p99 in ms (``bench.stats``) overall
and p50/p95 per request kind; and whether p95 ≤ ``--p95-target-ms``. Higher rates are skipped once a
rate's p95 exceeds 4× the target or more than 20 % of its requests fail. It ends with the sustainable
rate, the highest offered rate whose p95 ≤ target with under 1 % errors, and writes it all to
``open-loop.json`` under ``--out``; exits 2 when the shop does not answer, else 0 (the figures are the
result, not a pass or a fail).

Both are bench commands, not tests: point them at a running shop (``bin/run``), throttles raised.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.stats import latency_summary

QUERIES = [
    "black t-shirt", "red dress", "blue jeans", "striped top", "summer dress", "leather jacket", "white shirt",
    "denim shorts", "floral blouse", "wool sweater", "black trousers", "hoodie", "pink skirt", "blak t-shrt",
    "green jacket", "knitted cardigan", "swimsuit", "socks", "grey jumper", "linen shirt",
]  # fmt: skip
FILTERS = [
    {}, {}, {"in_stock": "true"}, {"price_max": "30"}, {"colour": "Black"}, {"in_stock": "true", "price_min": "10"},
]  # fmt: skip


def search_params(rng: random.Random, second_page: tuple[str, str]) -> dict[str, str]:
    """A shopper's search: a query and a filter, and one time in five the second page (``second_page``:
    the parameter and value that ask for it, ``offset`` in the API, ``page`` on the storefront)."""
    params = {"q": rng.choice(QUERIES), **rng.choice(FILTERS)}
    if rng.random() < 0.2:
        params[second_page[0]] = second_page[1]
    return params


_LOCUST_RNG = random.Random()


# Only when locust loads this file as its locustfile (locust is imported by then and has monkey-patched
# the process with gevent): importing bench.api_load elsewhere, as the open loop and the tests do,
# must not import locust, whose import patches every socket and thread of the process.
if __name__ != "__main__" and "locust" in sys.modules:
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
            self._get("/api/v1/search", "/api/v1/search", search_params(_LOCUST_RNG, ("offset", "24")))

        @task(4)
        def page_search(self) -> None:
            self._get("/search", "/search", search_params(_LOCUST_RNG, ("page", "2")))

        @task(1)
        def page_product(self) -> None:
            if self.skus:
                sku = urllib.parse.quote(random.choice(self.skus), safe="")
                self._get(f"/p/{sku}/", "/p/{sku}/")

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


# --- open loop --------------------------------------------------------------------------------------

# The shopper's actions and their weights (the @task weights above); "alternatives" is split half and
# half between in-stock alternatives and similar items, as the shopper does.
KIND_WEIGHTS = {"search": 8, "page search": 4, "browse": 2, "product": 1, "page product": 1, "alternatives": 1}
STOP_P95_FACTOR = 4.0  # skip the higher rates once p95 exceeds this many times the target …
STOP_ERROR_RATE = 0.20  # … or more than this share of the requests fail
SUSTAINABLE_ERROR_RATE = 0.01


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the rate's start
    name: str  # the request kind, named like locust's (path template)
    path: str  # path and query string


@dataclass
class Outcome:
    name: str
    latency: float  # seconds from the scheduled start to the end of the response (or of the failure)
    lag: float  # seconds from the scheduled start to the moment a thread sent it
    error: str | None  # None when 2xx/304, else "HTTP 500", "TimeoutError", …


def _with_query(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}" if params else path


def request_draw(rng: random.Random, skus: Sequence[str]) -> tuple[str, str]:
    """One request like the locust Shopper's next action: (kind name, path with query)."""
    # without SKUs the shopper only searches and lists
    kinds = list(KIND_WEIGHTS) if skus else ["search", "page search", "browse"]
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    if kind == "search":
        return "/api/v1/search", _with_query("/api/v1/search", search_params(rng, ("offset", "24")))
    if kind == "page search":
        return "/search", _with_query("/search", search_params(rng, ("page", "2")))
    if kind == "browse":
        return "/api/v1/products", _with_query("/api/v1/products", {"limit": "24", **rng.choice(FILTERS)})
    sku = urllib.parse.quote(rng.choice(skus), safe="")
    if kind == "product":
        return "/api/v1/products/{sku}", f"/api/v1/products/{sku}"
    if kind == "page product":
        return "/p/{sku}/", f"/p/{sku}/"
    which = "alternatives" if rng.random() < 0.5 else "similar"
    return f"/api/v1/products/{{sku}}/{which}", f"/api/v1/products/{sku}/{which}"


def arrivals_schedule(rate: float, seconds: float, seed: int, skus: Sequence[str]) -> list[Arrival]:
    """Poisson arrivals at ``rate`` per second for ``seconds``: exponential gaps and the requests, both
    drawn from ``random.Random(seed)`` (gap, then request, in turn), fixed before anything is sent."""
    rng = random.Random(seed)
    schedule: list[Arrival] = []
    at = rng.expovariate(rate)
    while at < seconds:
        name, path = request_draw(rng, skus)
        schedule.append(Arrival(at, name, path))
        at += rng.expovariate(rate)
    return schedule


class _Client:
    """GETs with one kept-alive ``http.client`` connection per thread."""

    def __init__(self, host: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(host)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.local = threading.local()
        self.connections: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = cls(self.netloc, timeout=self.timeout)
            self.local.conn = conn
            with self.lock:
                self.connections.append(conn)
        return conn

    def get(self, path: str) -> tuple[int, bytes]:
        conn = self._connection()
        fresh = conn.sock is None
        try:
            return self._once(conn, path)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            if fresh:
                raise
            return self._once(conn, path)  # the server had closed the kept-alive connection: once more, anew
        except BaseException:
            conn.close()
            raise

    def _once(self, conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
        headers = {"Accept": "application/json", "User-Agent": "bench.api_load open-loop"}
        conn.request("GET", self.prefix + path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        with self.lock:
            for conn in self.connections:
                conn.close()


def _ok(status: int) -> bool:
    return 200 <= status < 300 or status == 304


def skus_fetch(client: _Client) -> list[str]:
    """The SKUs the shopper picks products from, fetched once as its ``on_start`` does; [] when that fails."""
    try:
        status, body = client.get("/api/v1/products?limit=100")
        if status == 200:
            return [row["sku"] for row in json.loads(body)["results"]]
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        pass
    return []


def _ms(value: float) -> float:
    return round(1000.0 * value, 1)


def _p99_ms(latencies: Sequence[float]) -> float:
    if not latencies:
        return math.nan
    return round(float(np.percentile(1000.0 * np.asarray(latencies, dtype=np.float64), 99)), 1)


def _json_safe(value: object) -> object:
    """NaN (the percentiles of no requests) as null: the report stays strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class OpenLoop:
    """Sends scheduled arrivals on time from a thread pool and measures each from its scheduled start."""

    def __init__(self, host: str, max_threads: int = 256, timeout: float = 30.0) -> None:
        self.client = _Client(host, timeout)
        self.max_threads = max_threads
        self.pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="open-loop")
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def _send(self, arrival: Arrival, scheduled: float) -> Outcome:
        sent = time.perf_counter()
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        error = None
        try:
            status, _ = self.client.get(arrival.path)
            if not _ok(status):
                error = f"HTTP {status}"
        except Exception as exc:  # every failure is a result here, not a crash of the run
            error = type(exc).__name__
        finally:
            with self.lock:
                self.in_flight -= 1
        return Outcome(arrival.name, time.perf_counter() - scheduled, sent - scheduled, error)

    def run(self, schedule: Sequence[Arrival]) -> tuple[list[Outcome], float]:
        """Start every arrival at its time, wait for all; returns the outcomes and the elapsed seconds
        from the start of the schedule to the last response."""
        self.max_in_flight = 0
        t0 = time.perf_counter() + 0.01
        futures = []
        for arrival in schedule:
            delay = t0 + arrival.at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(self._send, arrival, t0 + arrival.at))
        outcomes = [future.result() for future in futures]
        ends = [t0 + arrival.at + outcome.latency for arrival, outcome in zip(schedule, outcomes, strict=True)]
        return outcomes, max(ends, default=t0) - t0


def rate_summarize(
    rate: float,
    seconds: float,
    outcomes: Sequence[Outcome],
    elapsed: float,
    p95_target_ms: float,
    max_in_flight: int = 0,
) -> dict:
    """The figures of one rate (see the module docstring)."""
    latencies = [o.latency for o in outcomes]
    errors = Counter(o.error for o in outcomes if o.error)
    n_errors = sum(errors.values())
    summary = latency_summary(latencies)
    error_rate = n_errors / len(outcomes) if outcomes else 0.0
    kinds = {}
    for name in sorted({o.name for o in outcomes}):
        mine = [o for o in outcomes if o.name == name]
        s = latency_summary([o.latency for o in mine])
        kinds[name] = {"requests": len(mine), "errors": sum(1 for o in mine if o.error), "p50_ms": s["p50_ms"],
                       "p95_ms": s["p95_ms"]}  # fmt: skip
    lags = latency_summary([o.lag for o in outcomes])
    meets = bool(outcomes) and summary["p95_ms"] <= p95_target_ms
    return {
        "offered_rps": rate,
        "seconds": seconds,
        "requests": len(outcomes),
        "ok": len(outcomes) - n_errors,
        "errors": n_errors,
        "error_rate": round(error_rate, 4),
        "errors_by_status": dict(errors.most_common()),
        "elapsed_s": round(elapsed, 3),
        "throughput_rps": round((len(outcomes) - n_errors) / max(elapsed, seconds), 2) if outcomes else 0.0,
        "p50_ms": summary["p50_ms"],
        "p95_ms": summary["p95_ms"],
        "p99_ms": _p99_ms(latencies),
        "mean_ms": summary["mean_ms"],
        "p95_target_ms": p95_target_ms,
        "p95_within_target": meets,
        "sustainable": meets and error_rate < SUSTAINABLE_ERROR_RATE,
        "send_lag_p95_ms": lags["p95_ms"],
        "max_in_flight": max_in_flight,
        "kinds": kinds,
    }


def _row(r: dict) -> str:
    verdict = "yes" if r["p95_within_target"] else "no"
    return (
        f"{r['offered_rps']:>9g} {r['throughput_rps']:>10.1f} {r['requests']:>9d} {r['errors']:>7d} "
        f"{r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {verdict:>10s}"
    )


def _header(p95_target_ms: float) -> str:
    target = f"p95≤{p95_target_ms:g}"
    return (
        f"{'offered/s':>9s} {'achieved/s':>10s} {'requests':>9s} {'errors':>7s} {'p50 ms':>8s} {'p95 ms':>8s} "
        f"{'p99 ms':>8s} {target:>10s}"
    )


def open_loop_run(
    host: str,
    rates: Sequence[float],
    seconds: float,
    *,
    p95_target_ms: float = 250.0,
    seed: int = 1,
    warmup_seconds: float = 3.0,
    max_threads: int = 256,
    timeout: float = 30.0,
    out: Path | None = None,
    echo: Callable[[str], object] = print,
) -> dict:
    """Run the open loop at each rate (ascending) against ``host``; returns the report, also written to
    ``out/open-loop.json`` when ``out`` is given."""
    host = host.rstrip("/")
    rates = sorted(rates)
    loop = OpenLoop(host, max_threads=max_threads, timeout=timeout)
    results: list[dict] = []
    skipped: list[float] = []
    try:
        skus = skus_fetch(loop.client)
        if not skus:
            echo("no SKUs from /api/v1/products?limit=100: only searches and product lists will be sent")
        if warmup_seconds > 0 and rates:
            echo(f"warm-up: {warmup_seconds:g} s at {rates[0]:g}/s (not counted) …")
            loop.run(arrivals_schedule(rates[0], warmup_seconds, seed + 1, skus))
        for i, rate in enumerate(rates):
            schedule = arrivals_schedule(rate, seconds, seed, skus)
            echo(f"open loop: {rate:g} requests/s for {seconds:g} s against {host} ({len(schedule)} scheduled) …")
            outcomes, elapsed = loop.run(schedule)
            result = rate_summarize(rate, seconds, outcomes, elapsed, p95_target_ms, loop.max_in_flight)
            results.append(result)
            echo(_header(p95_target_ms))
            echo(_row(result))
            for name, k in result["kinds"].items():
                echo(f"    {name:40s} {k['requests']:>6d} requests {k['errors']:>5d} errors  "
                     f"p50 {k['p50_ms']:>7.1f} ms  p95 {k['p95_ms']:>7.1f} ms")  # fmt: skip
            if result["errors_by_status"]:
                echo(f"    errors: {result['errors_by_status']}")
            if loop.max_in_flight >= max_threads:
                echo(f"    note: all {max_threads} client threads were busy; the client itself queued requests")
            if result["p95_ms"] > STOP_P95_FACTOR * p95_target_ms or result["error_rate"] > STOP_ERROR_RATE:
                skipped = list(rates[i + 1 :])
                if skipped:
                    echo(f"    stopping: p95 above {STOP_P95_FACTOR:g}× the target or over "
                         f"{STOP_ERROR_RATE:.0%} errors; skipped {', '.join(f'{r:g}' for r in skipped)}/s")  # fmt: skip
                break
    finally:
        loop.close()
    sustainable = max((r["offered_rps"] for r in results if r["sustainable"]), default=None)
    report = {
        "mode": "open-loop",
        "host": host,
        "seed": seed,
        "seconds_per_rate": seconds,
        "warmup_seconds": warmup_seconds,
        "p95_target_ms": p95_target_ms,
        "max_threads": max_threads,
        "timeout_s": timeout,
        "skus": len(skus),
        "rates": results,
        "skipped_rates": skipped,
        "sustainable_rps": sustainable,
    }
    echo("\n" + _header(p95_target_ms))
    for r in results:
        echo(_row(r))
    for rate in skipped:
        echo(f"{rate:>9g} {'(skipped)':>10s}")
    if sustainable is None:
        echo(f"\nsustainable rate: none of the rates ran with p95 ≤ {p95_target_ms:g} ms and under 1 % errors")
    else:
        echo(f"\nsustainable rate: {sustainable:g} requests/s (the highest with p95 ≤ {p95_target_ms:g} ms "
             "and under 1 % errors)")  # fmt: skip
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "open-loop.json"
        path.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
        echo(f"report: {path}")
    return report


def _read_stats(prefix: Path) -> list[dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _shop_answers(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"{host}/api/v1/categories", timeout=10) as response:
            response.read()
    except OSError as exc:
        print(f"the shop at {host} does not answer ({exc}); start it first (bin/run)", file=sys.stderr)
        return False
    return True


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from exc
    if not rates or any(not math.isfinite(r) or r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be positive numbers: {text!r}")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=None, help="per run (closed loop, default 60) or per rate "
                        "(open loop, default 30)")  # fmt: skip
    parser.add_argument("--out", default="var/bench/api-load")
    closed = parser.add_argument_group("closed loop (locust)")
    closed.add_argument("--users", type=int, default=50)
    closed.add_argument("--spawn-rate", type=float, default=10)
    opened = parser.add_argument_group("open loop")
    opened.add_argument("--open-loop", action="store_true", help="fixed arrival rates instead of locust users")
    opened.add_argument("--rates", type=_rates, default=[10.0, 20.0, 40.0, 60.0], help="requests/s, e.g. 10,20,40,60")
    opened.add_argument("--p95-target-ms", type=float, default=250.0)
    opened.add_argument("--seed", type=int, default=1)
    opened.add_argument("--warmup-seconds", type=float, default=3.0)
    opened.add_argument("--max-threads", type=int, default=256)
    opened.add_argument("--timeout", type=float, default=30.0, help="seconds per socket operation")
    args = parser.parse_args(argv)
    host = args.host.rstrip("/")
    if not _shop_answers(host):
        return 2
    out = Path(args.out)
    if args.open_loop:
        open_loop_run(
            host,
            args.rates,
            30.0 if args.seconds is None else args.seconds,
            p95_target_ms=args.p95_target_ms,
            seed=args.seed,
            warmup_seconds=args.warmup_seconds,
            max_threads=args.max_threads,
            timeout=args.timeout,
            out=out,
        )
        return 0
    seconds = 60 if args.seconds is None else round(args.seconds)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    command = [
        sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve()), "--headless", "--only-summary",
        "--host", host, "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{seconds}s",
        "--csv", str(prefix), "--stop-timeout", "10", "--loglevel", "WARNING",
    ]  # fmt: skip
    print(f"locust: {args.users} users for {seconds} s against {host} …", flush=True)
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
