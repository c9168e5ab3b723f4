"""A soak run: mixed shoppers, staff uploads and edits against a whole local shop of its own while a
chaos loop stops Redis, restarts PostgreSQL and kills the worker at random (seeded), 127.0.0.1 only.

    .venv/bin/python -m bench.soak [--minutes 30] [--seed 7] [--products 60] [--out var/bench/soak.json]

It brings up its own stack with ``bin/run`` (PostgreSQL, Redis, the Celery worker, gunicorn, a demo
catalog of ``--products`` H&M products; its own data folder and ports, no model builds: the models
under ``SHOP_MODELS_DIR`` or the fallbacks serve), then for ``--minutes``:

* shoppers (threads): storefront home, search and product pages, the widget, API search, products,
  alternatives; now and then a photo search;
* staff: photo uploads (``POST /api/v1/products/{sku}/images``), title edits (``PATCH``) and stock
  changes (``PUT …/variants/{size}``), with a token;
* chaos, one event at a time, 45–90 s apart, each kind once in every three: Redis stopped for 20 s;
  PostgreSQL stopped for 10 s; the worker killed (SIGKILL) and started again 10 s later, as a
  container's restart policy would.

Afterwards it waits (at most 10 minutes) for every upload to settle and reports: requests by surface
and status class, p95 latency per surface, the chaos events, and the end state — every accepted upload
``ready`` or ``failed`` with a reason exactly once (one row per upload, ready ones with one cutout), every
product's keyword-search document current. Figures are printed and written as JSON, never asserted;
the exit status is 1 when the end state is wrong. The stack is stopped and its folder removed at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from PIL import Image

from bench.stats import latency_summary
from shop.localstack import pid_alive

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")
QUERIES = ["black t-shirt", "red dress", "blue jeans", "striped top", "summer dress", "blak t-shrt", "swimsuit",
           "wool sweater", "something warm for winter", "dress under 30 euros"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """A whole local shop in a folder of its own, driven through shop.localstack and bin/run."""

    def __init__(self, folder: Path, products: int) -> None:
        self.folder = folder
        pg, rd, web = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{web}"
        self.env = {
            **os.environ,
            "SHOP_DATA_DIR": str(folder / "data"),
            "DATABASE_URL": f"postgres://shop@127.0.0.1:{pg}/soak",
            "REDIS_URL": f"redis://127.0.0.1:{rd}/0",
            "SHOP_WEB_PORT": str(web),
            "SHOP_DEMO_LIMIT": str(products),
            "SHOP_AUTO_BUILD": "false",
            "SHOP_HTTPS": "false",
            "SHOP_SWEEP_INTERVAL": "15",
            "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", "/tmp"),
            **{f"SHOP_API_RATE_{s}": "1000000/minute" for s in ("CATALOG", "SEARCH", "PHOTO", "AUTH")},
        }

    def run(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result.stdout

    def local(self, *args: str) -> str:
        return self.run(PY, "-m", "shop.localstack", *args, timeout=180)

    def manage(self, *args: str) -> str:
        return self.run(PY, "manage.py", *args)

    def worker_pid(self) -> int | None:
        pid_file = Path(self.env["SHOP_DATA_DIR"]) / "run" / "worker.pid"
        try:
            return int(pid_file.read_text())
        except (OSError, ValueError):
            return None


def jpeg(rng: random.Random) -> bytes:
    image = Image.new("RGB", (240, 360), (250, 250, 250))
    colour = tuple(rng.randrange(30, 220) for _ in range(3))
    image.paste(Image.new("RGB", (140, 280), colour), (50, 40))  # a garment-like block on white
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(field: str, name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.uploads: list[int] = []  # image ids the shop accepted
        self.upload_refused: Counter[int] = Counter()

    def call(
        self,
        surface: str,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, content = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, content = exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            status, content = 0, b""  # no answer at all (connection refused, timeout)
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.statuses[surface][f"{status // 100}xx" if status else "no answer"] += 1
            self.latencies[surface].append(elapsed)
        return status, content


# (cumulative share, surface, path) of what a shopper does next
SHOPPER_MIX = [
    (0.20, "page: search", "/search?q={q}"),
    (0.30, "page: home", "/"),
    (0.40, "page: product", "/p/{sku}/"),
    (0.45, "widget", "/widget/alternatives/{sku}.json"),
    (0.75, "api: search", "/api/v1/search?q={q}"),
    (0.85, "api: products", "/api/v1/products?limit=20"),
    (0.97, "api: alternatives", "/api/v1/products/{sku}/alternatives"),
    (1.01, "api: photo search", "/api/v1/search/photo"),
]


def shopper(stack: Stack, rec: Recorder, skus: list[str], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    base = stack.url
    while not stop.is_set():
        q = urllib.parse.quote_plus(rng.choice(QUERIES))
        sku = rng.choice(skus)
        pick = rng.random()
        surface, path = next((surface, path) for share, surface, path in SHOPPER_MIX if pick < share)
        if surface == "api: photo search":
            body, kind = multipart("photo", "me.jpg", jpeg(rng))
            rec.call(surface, f"{base}{path}", "POST", body, {"Content-Type": kind})
        else:
            rec.call(surface, f"{base}{path.format(q=q, sku=sku)}")
        time.sleep(rng.uniform(0.2, 0.8))


def staff(stack: Stack, rec: Recorder, token: str, skus: list[str], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    auth = {"Authorization": f"Token {token}"}
    while not stop.is_set():
        sku = rng.choice(skus)
        choice = rng.random()
        if choice < 0.4:
            body, kind = multipart("images", f"soak-{uuid.uuid4().hex[:8]}.jpg", jpeg(rng))
            status, content = rec.call(
                "staff: upload",
                f"{stack.url}/api/v1/products/{sku}/images",
                "POST",
                body,
                {**auth, "Content-Type": kind},
            )
            if status in (200, 201):
                ids = [r["image_id"] for r in json.loads(content)["results"] if r["ok"] and r["created"]]
                with rec.lock:
                    rec.uploads.extend(ids)
            else:
                with rec.lock:
                    rec.upload_refused[status] += 1
        elif choice < 0.7:
            title = json.dumps({"title": f"Soak edit {rng.randrange(10_000)}"}).encode()
            rec.call("staff: edit", f"{stack.url}/api/v1/products/{sku}", "PATCH", title,
                     {**auth, "Content-Type": "application/json"})  # fmt: skip
        else:
            stock = json.dumps({"stock": rng.randrange(0, 5)}).encode()
            rec.call("staff: stock", f"{stack.url}/api/v1/products/{sku}/variants/M", "PUT", stock,
                     {**auth, "Content-Type": "application/json"})  # fmt: skip
        time.sleep(rng.uniform(1.0, 3.0))


def chaos(stack: Stack, events: list[dict[str, Any]], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    order: list[str] = []
    while not stop.wait(rng.uniform(45, 90)):
        if not order:  # every kind once per three events, in a seeded random order
            order = rng.sample(["redis", "postgres", "worker"], 3)
        kind = order.pop()
        pid = stack.worker_pid()
        if pid is None or not pid_alive(pid):  # gone by itself since the last event: say so, with its log
            log = Path(stack.env["SHOP_DATA_DIR"]) / "log" / "worker.log"
            tail = log.read_text(errors="replace").splitlines()[-30:] if log.is_file() else []
            events.append({"kind": "worker found gone", "outcome": "restarted", "log": tail})
            print("  chaos: the worker was gone by itself; restarting it", flush=True)
            stack.local("start", "worker")
        started = time.monotonic()
        try:
            if kind == "redis":
                stack.local("stop", "redis")
                stop.wait(20)
                stack.local("start", "redis")
            elif kind == "postgres":
                stack.local("stop", "postgres")
                stop.wait(10)
                stack.local("start", "postgres")
            else:
                pid = stack.worker_pid()
                if pid:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker and its pool processes
                stop.wait(10)
                stack.local("start", "worker")
            outcome = "ok"
        except Exception as exc:  # reported, and the soak goes on
            outcome = f"error: {exc}"
        events.append({"kind": kind, "seconds": round(time.monotonic() - started, 1), "outcome": outcome})
        print(f"  chaos: {kind} ({events[-1]['seconds']} s) {outcome}", flush=True)


END_STATE_SQL = {
    "uploads": "SELECT status, count(*) FROM catalog_productimage WHERE id = ANY(%s) GROUP BY status",
    "failed without a reason": "SELECT count(*) FROM catalog_productimage WHERE id = ANY(%s) AND status = 'failed' "
    "AND coalesce(error, '') = ''",
    "ready without a cutout": "SELECT count(*) FROM catalog_productimage WHERE id = ANY(%s) AND status = 'ready' "
    "AND coalesce(cutout, '') = ''",
    "stale search documents": """
        SELECT count(*) FROM catalog_product p LEFT JOIN catalog_category c ON c.id = p.category_id
        WHERE p.search_document IS DISTINCT FROM
              to_tsvector('english', concat_ws(' ', p.title, p.description, p.colour, p.pattern, c.full_name))""",
}


def _count(row: tuple[Any, ...] | None) -> Any:
    """The count a ``SELECT count(*)`` returned (such a query always returns one row)."""
    if row is None:
        raise RuntimeError("a count(*) query returned no row")
    return row[0]


def end_state(stack: Stack, ids: list[int]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        uploads: dict[str, int] = dict(conn.execute(END_STATE_SQL["uploads"], [ids]).fetchall())
        rows = sum(uploads.values())
        out: dict[str, Any] = {
            "accepted uploads": len(ids),
            "distinct": len(set(ids)),
            "rows": rows,
            "by status": uploads,
        }
        for name in ("failed without a reason", "ready without a cutout"):
            out[name] = _count(conn.execute(END_STATE_SQL[name], [ids]).fetchone())
        out["stale search documents"] = _count(conn.execute(END_STATE_SQL["stale search documents"]).fetchone())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--products", type=int, default=60)
    parser.add_argument("--shoppers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "soak.json")
    args = parser.parse_args()
    # a SIGTERM (a CI timeout, kill) stops the soak through its clean-up too, leaving no stack behind
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"soak stopped by signal {signum}"))
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"shop-soak-{os.getpid()}"
    stack = Stack(folder, args.products)
    print(f"starting a shop of its own at {stack.url} (data in {folder}) …", flush=True)
    try:
        stack.run("bin/run", timeout=1800)
        token = stack.manage(
            "shell", "-c",
            "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
            "u = get_user_model().objects.filter(is_staff=True).first(); "
            "print(Token.objects.get_or_create(user=u)[0].key)",
        ).strip().splitlines()[-1]  # fmt: skip
        skus = json.loads(urllib.request.urlopen(f"{stack.url}/api/v1/products?limit=100", timeout=30).read())[
            "results"
        ]
        skus = [p["sku"] for p in skus]
        if not skus:
            raise SystemExit("the shop has no products: bin/run loads the demo from ../shared/data; is it there?")
        events: list[dict[str, Any]] = []
        rec, stop = Recorder(), threading.Event()
        threads = [
            threading.Thread(target=shopper, args=(stack, rec, skus, stop, args.seed * 100 + i), daemon=True)
            for i in range(args.shoppers)
        ]
        threads.append(threading.Thread(target=staff, args=(stack, rec, token, skus, stop, args.seed), daemon=True))
        threads.append(threading.Thread(target=chaos, args=(stack, events, stop, args.seed), daemon=True))
        print(f"soaking for {args.minutes:g} min: {args.shoppers} shoppers, 1 staff member, chaos (seed {args.seed})")
        for t in threads:
            t.start()
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(60, max(0.0, deadline - time.monotonic())))
            done = sum(sum(c.values()) for c in rec.statuses.values())
            print(f"  {int((args.minutes * 60 - (deadline - time.monotonic())) / 60)} min: {done} requests", flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        # everything back up, then every upload settles
        stack.local("start", "postgres", "redis", "worker")
        ids = list(rec.uploads)
        settle_by = time.monotonic() + 600
        state = end_state(stack, ids)
        while time.monotonic() < settle_by and set(state["by status"]) - {"ready", "failed"}:
            time.sleep(10)
            state = end_state(stack, ids)
        report = {
            "minutes": args.minutes,
            "seed": args.seed,
            "requests": {s: dict(c) for s, c in sorted(rec.statuses.items())},
            "p95_ms": {s: latency_summary([ms / 1000 for ms in v])["p95_ms"] for s, v in sorted(rec.latencies.items())},
            "p50_ms": {s: latency_summary([ms / 1000 for ms in v])["p50_ms"] for s, v in sorted(rec.latencies.items())},
            "chaos": events,
            "uploads refused": dict(rec.upload_refused),
            "end state": state,
        }  # fmt: skip
    finally:
        subprocess.run([PY, "-m", "shop.localstack", "stop"], cwd=REPO, env=stack.env, capture_output=True)
        from shop.localstack import stack_data_remove

        stack_data_remove(stack.env)
    totals: Counter[str] = Counter()
    for counts in report["requests"].values():
        totals.update(counts)
    print(json.dumps(report, indent=1))
    print(f"requests by status class: {dict(totals)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    good = (
        state["rows"] == state["distinct"] == state["accepted uploads"]
        and not set(state["by status"]) - {"ready", "failed"}
        and state["failed without a reason"] == 0
        and state["ready without a cutout"] == 0
        and state["stale search documents"] == 0
    )
    print(f"end state {'as it must be' if good else 'WRONG'}; written to {args.out}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
