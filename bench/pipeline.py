"""Pipeline throughput on this machine: images per second through the whole upload pipeline (real
Celery workers on the real Redis broker, real PostgreSQL, the trained models), with one and with two
worker processes, against the per-stage sum measured in the same run.

    .venv/bin/python -m bench.pipeline [--images 48] [--processes 1 2] [--out var/bench/pipeline.json]

It starts the local PostgreSQL and Redis if they are down (as ``bin/run`` does), imports H&M dev
product shots from ../shared/data into a fresh database of its own (dropped afterwards), and uses
Redis database 2 so that a running shop's queue is left alone. For each process count: every image
back to pending, a worker with that many processes (models preloaded, a warm-up image each), then
the clock runs from the first task sent until the last image is ``ready``.

* ``img/s`` — images finished per wall-clock second;
* ``stage sum`` — the mean over images of the stage timings the worker recorded (validate, parse,
  embed, attributes, duplicates, product): the time one image costs one process;
* ``bound`` — processes / stage sum: what the workers would reach with no queueing, broker or
  database overhead and no contention between processes for the 2 cores.

Figures are printed (and written as JSON), never asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TARGET = 4.0  # images per second (issue 4)


def setup_django(broker_url: str, media_root: str) -> None:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ["SHOP_MEDIA_ROOT"] = media_root
    import django

    django.setup()


def hm_rows(n: int) -> list[dict[str, str]]:
    manifest = SHARED / "hm" / "manifest.csv"
    if not manifest.is_file():
        raise SystemExit(f"{manifest} not found: the bench reads H&M product shots from ../shared/data/hm")
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == "dev"]
    return rows[:n]


def import_images(n: int) -> list[int]:
    from django.conf import settings

    from catalog.models import Product
    from catalog.services import atomic_with_files, product_image_add

    settings.SHOP_PIPELINE = "off"  # imported pending; the bench sends them itself
    ids = []
    for row in hm_rows(n):
        sku = row.get("item_id") or row.get("article_id") or row["file"]
        product, _ = Product.objects.get_or_create(sku=sku, defaults={"title": row.get("title") or sku, "price": 10})
        with atomic_with_files():
            image, _ = product_image_add(product, (SHARED / "hm" / row["file"]).read_bytes(), source_name=row["file"])
        ids.append(image.pk)
    settings.SHOP_PIPELINE = "celery"
    return ids


def start_worker(processes: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "celery", "-A", "shop", "worker", "-l", "info", "--concurrency", str(processes)]
    argv += ["-n", f"bench-{os.getpid()}-{processes}@%h", "--without-gossip", "--without-mingle"]
    log = log_path.open("ab")
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {log_path}")
        time.sleep(0.3)
    return proc


def wait_ready(ids: list[int], timeout: float = 1800) -> None:
    from catalog.models import ProductImage

    deadline = time.monotonic() + timeout
    while ProductImage.objects.filter(pk__in=ids).exclude(status__in=("ready", "failed")).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"images still unfinished after {timeout:.0f} s")
        time.sleep(0.1)


def run_config(processes: int, warmup: list[int], ids: list[int], env: dict[str, str], log_path: Path) -> dict:
    from catalog.models import ProductImage
    from catalog.services import images_reset_for_reprocess
    from workers.services import images_reprocess_enqueue

    images_reset_for_reprocess(warmup + ids)
    worker_env = {**env, "SHOP_TORCH_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    proc = start_worker(processes, worker_env, log_path)
    try:
        images_reprocess_enqueue(warmup)  # one per process: first-task costs out of the measurement
        wait_ready(warmup)
        started = time.perf_counter()
        images_reprocess_enqueue(ids)
        wait_ready(ids)
        wall = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    rows = list(ProductImage.objects.filter(pk__in=ids).values_list("status", "stage_timings"))
    failed = sum(1 for status, _ in rows if status != "ready")
    stage_names = sorted({k for _, t in rows for k in t})
    per_stage = {k: statistics.fmean(t.get(k, 0.0) for _, t in rows) * 1000 for k in stage_names}
    stage_sum = statistics.fmean(sum(t.values()) for _, t in rows)
    return {
        "processes": processes,
        "images": len(ids),
        "failed": failed,
        "wall_s": round(wall, 2),
        "images_per_s": round(len(ids) / wall, 2),
        "stage_sum_ms": round(stage_sum * 1000, 1),
        "bound_images_per_s": round(processes / stage_sum, 2),
        "stage_ms": {k: round(v, 1) for k, v in per_stage.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="images measured per configuration")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "pipeline.json")
    args = parser.parse_args(argv)

    subprocess.run([sys.executable, "-m", "shop.localstack", "start", "postgres", "redis"], cwd=REPO, check=True)
    base_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0").rsplit("/", 1)[0]
    broker = f"{base_url}/2"
    media = tempfile.mkdtemp(prefix="bench-media-")
    setup_django(broker, media)
    import redis
    from django.conf import settings

    from evaluation.search import fresh_database

    redis.Redis.from_url(broker).delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    warm_n = max(args.processes)
    results: list[dict[str, Any]] = []
    with fresh_database() as db_name:
        ids = import_images(args.images + warm_n)
        warmup, measured = ids[:warm_n], ids[warm_n:]
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db_name}",
            "SHOP_MEDIA_ROOT": media,
            "REDIS_URL": broker,
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
        }
        log_path = Path(media) / "worker.log"
        for processes in args.processes:
            print(f"… {processes} worker process(es), {len(measured)} images", flush=True)
            results.append(run_config(processes, warmup[:processes], measured, env, log_path))

    print()
    print(f"{'processes':>9} {'images':>6} {'wall s':>7} {'img/s':>6} {'stage sum ms':>12} {'bound img/s':>11}")
    for r in results:
        print(
            f"{r['processes']:>9} {r['images']:>6} {r['wall_s']:>7.1f} {r['images_per_s']:>6.2f} "
            f"{r['stage_sum_ms']:>12.1f} {r['bound_images_per_s']:>11.2f}"
        )
    for r in results:
        print(f"  {r['processes']} process(es), mean ms per stage: {json.dumps(r['stage_ms'])}")
    best = max(r["images_per_s"] for r in results)
    print(f"target ≥ {TARGET} images/s: {'met' if best >= TARGET else 'missed'} (best {best:.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"target_images_per_s": TARGET, "results": results}, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
