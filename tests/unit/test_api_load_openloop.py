"""bench.api_load's open loop against a tiny local HTTP server standing in for the shop's REST API:
requests start on their Poisson schedule, latencies count from the scheduled start, the report has
its fields. Needs neither the database nor Redis and also runs with ``-p no:django``."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import api_load

REPO = Path(__file__).resolve().parents[2]
SLOW_S = 0.05  # every search sleeps this long
SKUS = ["A1", "B 2", "C3"]


class FakeShop(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the shop's server offers it
    disable_nagle_algorithm = True  # else headers and body, written apart, wait ~40 ms for a delayed ACK
    server: FakeShop

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path, query = parts.path, urllib.parse.parse_qs(parts.query)
        segments = [urllib.parse.unquote(segment) for segment in path.split("/")]
        if path == "/api/v1/categories":
            body: object = {"results": []}
        elif path == "/api/v1/products" and query.get("limit") == ["100"]:
            body = {"results": [{"sku": sku} for sku in SKUS]}
        elif path == "/api/v1/products" and query.get("limit") == ["24"]:
            body = {"results": [{"sku": sku} for sku in SKUS], "count": len(SKUS)}
        elif path == "/api/v1/search" and query.get("q"):
            time.sleep(SLOW_S)
            body = {"results": [{"sku": SKUS[0]}]}
        elif len(segments) == 5 and path.startswith("/api/v1/products/") and segments[4] in SKUS:
            body = {"sku": segments[4]}
        elif len(segments) == 6 and segments[4] in SKUS and segments[5] in ("similar", "alternatives"):
            body = {"results": [{"sku": SKUS[1]}]}
        elif path == "/search" and query.get("q"):
            body = {"page": "results"}
        elif len(segments) == 4 and segments[1] == "p" and segments[2] in SKUS and segments[3] == "":
            body = {"page": segments[2]}
        else:
            self._answer(404, {"detail": f"no such path {self.path}"})
            return
        self._answer(200, body)

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        with self.server.lock:
            self.server.hits[urllib.parse.urlsplit(self.path).path] += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    server = FakeShop()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_schedule_is_poisson_at_the_rate_and_fixed_by_the_seed():
    schedule = api_load.arrivals_schedule(50, 20, seed=7, skus=SKUS)
    assert schedule == api_load.arrivals_schedule(50, 20, seed=7, skus=SKUS)
    assert schedule != api_load.arrivals_schedule(50, 20, seed=8, skus=SKUS)
    assert 0.9 * 1000 < len(schedule) < 1.1 * 1000
    times = [a.at for a in schedule]
    assert times == sorted(times) and times[0] > 0 and times[-1] < 20
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert abs(sum(gaps) / len(gaps) - 1 / 50) < 0.002
    # exponential gaps: their standard deviation is about their mean (0 for a fixed pace)
    mean = sum(gaps) / len(gaps)
    sd = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert 0.85 * mean < sd < 1.15 * mean
    # the shopper's mix: about 8 API searches : 4 result pages : 2 lists : 1 product : 1 product page :
    # 1 similar-or-alternatives
    names = Counter(a.name for a in schedule)
    assert 0.4 < names["/api/v1/search"] / len(schedule) < 0.54
    assert 0.17 < names["/search"] / len(schedule) < 0.30
    assert names["/p/{sku}/"] > 0
    assert names["/api/v1/products/{sku}/similar"] > 0 and names["/api/v1/products/{sku}/alternatives"] > 0
    assert {a.path for a in schedule if a.name == "/api/v1/products/{sku}"} <= {
        "/api/v1/products/A1",
        "/api/v1/products/B%202",
        "/api/v1/products/C3",
    }
    # without SKUs only searches and product lists, like the shopper's tasks that need none
    assert {a.name for a in api_load.arrivals_schedule(50, 5, seed=7, skus=[])} == {
        "/api/v1/search",
        "/search",
        "/api/v1/products",
    }


def test_open_loop_against_a_local_server(shop: FakeShop, tmp_path: Path):
    seconds, rates = 2.0, [20.0, 40.0]
    lines: list[str] = []
    started = time.monotonic()
    report = api_load.open_loop_run(
        shop.url, rates, seconds, warmup_seconds=0.5, seed=3, out=tmp_path, echo=lines.append
    )
    assert time.monotonic() - started < 10
    assert report == json.loads((tmp_path / "open-loop.json").read_text())
    assert report["skus"] == len(SKUS)
    assert [r["offered_rps"] for r in report["rates"]] == rates and report["skipped_rates"] == []
    warmup = len(api_load.arrivals_schedule(rates[0], 0.5, 4, SKUS))
    sent = sum(shop.hits.values()) - shop.hits["/api/v1/categories"] - 1  # less the SKU fetch
    assert sent == warmup + sum(r["requests"] for r in report["rates"])  # every scheduled request reached it
    for r in report["rates"]:
        assert abs(r["requests"] - r["offered_rps"] * seconds) <= 0.35 * r["offered_rps"] * seconds
        assert r["requests"] == len(api_load.arrivals_schedule(r["offered_rps"], seconds, 3, SKUS))
        assert r["errors"] == 0 and r["errors_by_status"] == {} and r["ok"] == r["requests"]
        assert r["sustainable"] and r["p95_within_target"]
        assert 0.5 * r["offered_rps"] < r["throughput_rps"] <= 1.5 * r["offered_rps"]
        for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "elapsed_s", "send_lag_p95_ms", "max_in_flight"):
            assert key in r
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
        kinds = r["kinds"]
        assert {"/api/v1/search", "/api/v1/products"} <= set(kinds)
        assert sum(k["requests"] for k in kinds.values()) == r["requests"]
        search = kinds["/api/v1/search"]
        assert set(search) == {"requests", "errors", "p50_ms", "p95_ms"}
        assert search["p50_ms"] >= 1000 * SLOW_S  # the sleep, counted from the scheduled start
        assert kinds["/api/v1/products"]["p50_ms"] < 1000 * SLOW_S
    assert report["sustainable_rps"] == 40.0
    assert any("sustainable rate: 40 requests/s" in line for line in lines)


def test_overload_stops_before_the_higher_rates(shop: FakeShop, tmp_path: Path):
    # a 5 ms target: the 50 ms searches put p95 far above 4× it, so 40/s is never run
    report = api_load.open_loop_run(
        shop.url, [40, 20], 1.0, p95_target_ms=5, warmup_seconds=0, out=tmp_path, echo=lambda line: None
    )
    assert [r["offered_rps"] for r in report["rates"]] == [20]
    assert report["skipped_rates"] == [40]
    assert report["rates"][0]["p95_within_target"] is False
    assert report["sustainable_rps"] is None
    assert json.loads((tmp_path / "open-loop.json").read_text())["sustainable_rps"] is None


def test_errors_are_counted_by_status(tmp_path: Path):
    class Failing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path.startswith("/api/v1/categories") else 503
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        report = api_load.open_loop_run(
            f"http://127.0.0.1:{server.server_address[1]}/", [20, 40], 1.0, warmup_seconds=0, echo=lambda line: None
        )
    finally:
        server.shutdown()
        server.server_close()
    (only,) = report["rates"]  # everything failed: more than 20 %, so 40/s is skipped
    assert only["errors"] == only["requests"] > 0
    assert only["errors_by_status"] == {"HTTP 503": only["requests"]}
    assert only["sustainable"] is False and report["skipped_rates"] == [40]
    assert report["skus"] == 0  # the SKU fetch failed too: only searches and lists were sent
    assert set(only["kinds"]) <= {"/api/v1/search", "/search", "/api/v1/products"}


def test_exit_code_2_when_the_shop_does_not_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["--open-loop", "--host", f"http://127.0.0.1:{port}", "--seconds", "1", "--out", str(tmp_path)]
    assert api_load.main(argv) == 2
    assert "does not answer" in capsys.readouterr().err
    assert not (tmp_path / "open-loop.json").exists()


def test_cli_open_loop_exits_0_and_writes_the_report(shop: FakeShop, tmp_path: Path, capsys):
    argv = ["--open-loop", "--host", shop.url, "--rates", "10", "--seconds", "1", "--warmup-seconds", "0"]
    assert api_load.main([*argv, "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "open-loop.json").read_text())["rates"][0]["offered_rps"] == 10
    assert "sustainable rate" in capsys.readouterr().out


def test_importing_the_module_does_not_import_locust():
    """locust's import monkey-patches the whole process with gevent; only its own loading of the
    locustfile may import it."""
    code = "import sys, bench.api_load; assert 'locust' not in sys.modules and 'gevent' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_latency_counts_from_the_scheduled_start(shop: FakeShop):
    """Five searches all due at once through one client thread: each waits for the ones before it, and
    that wait is part of its latency (a closed loop would report about 50 ms for every one)."""
    loop = api_load.OpenLoop(shop.url, max_threads=1, timeout=5)
    try:
        schedule = [api_load.Arrival(0.0, "/api/v1/search", "/api/v1/search?q=socks") for _ in range(5)]
        outcomes, elapsed = loop.run(schedule)
    finally:
        loop.close()
    latencies = sorted(o.latency for o in outcomes)
    assert all(o.error is None for o in outcomes)
    for i, latency in enumerate(latencies, start=1):
        assert i * SLOW_S <= latency < i * SLOW_S + 0.1
    assert elapsed == pytest.approx(latencies[-1], abs=0.01)
    assert sorted(o.lag for o in outcomes)[-1] >= 4 * SLOW_S  # the last one was sent only after four searches
    assert loop.max_in_flight == 1
