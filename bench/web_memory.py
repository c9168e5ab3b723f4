"""Memory per web process, and what its queries cost, for each query runtime in one run.

    .venv/bin/python -m bench.web_memory [--runtimes onnx,torch] [--photos 20] [--phone-photos 4]
        [--out var/bench/web-memory]

Against the local stack that ``bin/run`` started (its web server is restarted by this command, and left
running with the default runtime at the end). For each runtime (``SHOP_QUERY_RUNTIME``; the first one is
the shop's default, the others the baselines) it:

1. restarts the web server (``python -m shop.localstack restart web``) with that runtime and the shared
   answers off (``SHOP_ANSWER_CACHE_S=0``: every request is computed);
2. sends, through the REST API, every text query of ``bench.api_load`` (once each, then again: warm),
   ``--photos`` photo searches with real studio photos of people (``../shared/data/viton/image``, 256
   pixels high) and ``--phone-photos`` with street photos of people (``../shared/data/ccp``) scaled to
   a phone camera's 4000 × 3000, then a storefront result page and a product page;
3. reads every web worker process (gunicorn's children): resident memory (RSS), private memory (USS:
   what one more web process adds), proportional memory (PSS: shared pages split among the processes
   that map them), and whether torch and onnxruntime are mapped;
4. times the warm text searches and the photo searches (p50/p95 in ms, ``bench.stats``).

Prints one table per runtime and writes ``web-memory.json`` under ``--out``. A bench, not a test: the
figures are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.api_load import QUERIES
from bench.shared_photos import jpeg_bytes, phone_sized
from bench.stats import latency_summary

REPO = Path(__file__).resolve().parent.parent
VITON = REPO.parent / "shared" / "data" / "viton" / "image"
PHONE_SIDE = 4000  # a 12-megapixel phone photo, 4000 × 3000


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def photo_search(url: str, jpeg: bytes) -> dict[str, Any]:
    """POST a JPEG to the API's photo search (multipart, as the mobile app sends it); the parsed answer."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="look.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url + "/api/v1/search/photo",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _photos(count: int) -> list[bytes]:
    from PIL import Image

    found = sorted(VITON.glob("*.jpg"))[:count]
    if not found:
        raise SystemExit(f"no photos under {VITON}: the bench needs ../shared/data beside the repository")
    return [jpeg_bytes(Image.open(path).convert("RGB")) for path in found]


def _phone_photos(count: int, side: int = PHONE_SIDE) -> list[bytes]:
    """CCP street photos of people (dev split) scaled to a phone camera's 12 megapixels (``side`` pixels
    high), as JPEG: what the API receives from a shopper's phone (it searches them as they came)."""
    return [jpeg_bytes(photo) for photo in phone_sized("ccp", count, side)]


def _web_workers() -> list[psutil.Process]:
    from shop import localstack

    layout = localstack.layout_from_env(os.environ)
    master = localstack.read_pid(layout.pid_file("web"))
    if master is None:
        raise SystemExit("the web server is not running: start the shop with bin/run first")
    return psutil.Process(master).children()


def _process_memory(process: psutil.Process) -> dict[str, Any]:
    info = process.memory_full_info()
    maps = Path(f"/proc/{process.pid}/maps").read_text()
    return {
        "pid": process.pid,
        "rss_mb": round(info.rss / 2**20, 1),
        "uss_mb": round(info.uss / 2**20, 1),
        "pss_mb": round(info.pss / 2**20, 1),
        "torch_loaded": "libtorch" in maps,
        "onnxruntime_loaded": "onnxruntime" in maps,
    }


def _restart_web(runtime: str) -> float:
    env = {
        **os.environ,
        "SHOP_QUERY_RUNTIME": runtime,
        "SHOP_ANSWER_CACHE_S": "0",
        # one client sends every request: the per-client throttles are raised for the run
        "SHOP_API_RATE_SEARCH": "1000000/minute",
        "SHOP_API_RATE_CATALOG": "1000000/minute",
        "SHOP_API_RATE_PHOTO": "1000000/minute",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "shop.localstack", "restart", "web"], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the web server did not restart with {runtime}: {done.stdout[-800:]}{done.stderr[-800:]}")
    return time.perf_counter() - started


def measure(url: str, runtime: str, photos: list[bytes], phone: list[bytes]) -> dict[str, Any]:
    startup = _restart_web(runtime)
    for query in QUERIES:  # cold: each query's first encoding
        _get(f"{url}/api/v1/search?{urllib.parse.urlencode({'q': query})}")
    text = []
    for query in QUERIES:  # warm (the process keeps a query's vector): what a repeated query costs
        started = time.perf_counter()
        _get(f"{url}/api/v1/search?{urllib.parse.urlencode({'q': query, 'limit': 24})}")
        text.append(time.perf_counter() - started)
    fresh = []
    for i, query in enumerate(QUERIES):  # words no process has encoded yet
        started = time.perf_counter()
        _get(f"{url}/api/v1/search?{urllib.parse.urlencode({'q': f'{query} {i}'})}")
        fresh.append(time.perf_counter() - started)
    photo, garments = [], 0
    for jpeg in photos:
        started = time.perf_counter()
        answer = photo_search(url, jpeg)
        photo.append(time.perf_counter() - started)
        garments += len(answer["garments"])
    phone_photo = []
    for jpeg in phone:
        started = time.perf_counter()
        photo_search(url, jpeg)
        phone_photo.append(time.perf_counter() - started)
    _get(f"{url}/search?q=red+dress")
    products = json.loads(_get(f"{url}/api/v1/products?limit=1"))["results"]
    if products:
        _get(f"{url}/p/{urllib.parse.quote(products[0]['sku'])}/")
    processes = [_process_memory(p) for p in _web_workers()]
    return {
        "runtime": runtime,
        "restart_s": round(startup, 1),
        "processes": processes,
        "rss_mb_max": max(p["rss_mb"] for p in processes),
        "uss_mb_max": max(p["uss_mb"] for p in processes),
        "pss_mb_max": max(p["pss_mb"] for p in processes),
        "text_search_repeated": latency_summary(text),
        "text_search_new_words": latency_summary(fresh),
        "photo_search": latency_summary(photo),
        "garments_found": garments,
        "phone_photo_search": latency_summary(phone_photo) if phone_photo else None,
    }


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--host", default=os.environ.get("SHOP_URL", "http://127.0.0.1:8000"))
    cli.add_argument("--runtimes", default="onnx,torch")
    cli.add_argument("--photos", type=int, default=20)
    cli.add_argument("--phone-photos", type=int, default=4, help="12-megapixel photos sent after the others")
    cli.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "web-memory")
    args = cli.parse_args(argv)
    photos = _photos(args.photos)
    phone = _phone_photos(args.phone_photos)
    runs = []
    try:
        for runtime in args.runtimes.split(","):
            print(f"[web_memory] {runtime}: restarting the web server and querying it …", flush=True)
            run = measure(args.host.rstrip("/"), runtime.strip(), photos, phone)
            runs.append(run)
            print(f"  restart {run['restart_s']} s; {len(run['processes'])} web processes")
            for p in run["processes"]:
                print(
                    f"  pid {p['pid']}: RSS {p['rss_mb']} MB, private (USS) {p['uss_mb']} MB, PSS {p['pss_mb']} MB,"
                    f" torch {'loaded' if p['torch_loaded'] else 'not loaded'},"
                    f" onnxruntime {'loaded' if p['onnxruntime_loaded'] else 'not loaded'}"
                )
            for kind in ("text_search_repeated", "text_search_new_words", "photo_search"):
                s = run[kind]
                print(f"  {kind.replace('_', ' ')}: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms (n={s['n']})")
            print(f"  garments found in {len(photos)} photos: {run['garments_found']}")
            if run["phone_photo_search"]:
                s = run["phone_photo_search"]
                print(f"  photo search, {len(phone)} 12-megapixel photos: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms")
    finally:  # leave the shop as bin/run started it (its own environment: the default runtime)
        subprocess.run([sys.executable, "-m", "shop.localstack", "restart", "web"], cwd=REPO, capture_output=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web-memory.json").write_text(json.dumps({"runs": runs}, indent=2))
    print(f"[web_memory] report: {args.out / 'web-memory.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
