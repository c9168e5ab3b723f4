"""Faults the upload pipeline survives, each with the real Redis broker and real worker processes:
a worker SIGKILLed mid-task, Redis down while staff upload, PostgreSQL restarted under a running
worker, and poison images (one that makes a model raise, one that kills its worker each time)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import connections
from django.utils import timezone

from catalog.models import ImageVector, Product, ProductImage
from catalog.services import atomic_with_files, product_image_add
from tests.integration.test_localstack import stack
from tests.support import bad_images as bad
from tests.support.factories import ProductFactory
from workers.services import image_processing_enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, so it can be stopped without touching anything else."""

    def __init__(self, folder: Path) -> None:
        from shop.localstack import redis_server_binary

        self.binary = redis_server_binary()
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@contextmanager
def producer_broker(url: str) -> Iterator[None]:
    """Point this process's Celery producer (what uploads use) at another broker."""
    from shop.celery import app

    def reset() -> None:
        # kombu keeps one pool per broker URL in a process-wide registry: forget the app's handles
        # (never close them: the registry would hand the closed pool back for that URL later)
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url = previous
        reset()


@pytest.fixture
def product() -> Product:
    return ProductFactory(sku="FAULT-1", title="Red top", price=10)


def upload_many(product: Product, n: int, size: tuple[int, int] = (240, 360)) -> list[int]:
    ids = []
    for i in range(n):
        colour = (40 + 20 * i % 200, 200 - 15 * i % 180, 60 + 31 * i % 190)
        with atomic_with_files():
            image, created = product_image_add(product, bad.jpeg(size, colour), source_name=f"photo-{i}.jpg")
            image_processing_enqueue([image.pk])
        assert created
        ids.append(image.pk)
    return ids


def statuses(ids: list[int]) -> dict[int, tuple[str, str]]:
    return {
        pk: (status, stage)
        for pk, status, stage in ProductImage.objects.filter(pk__in=ids).values_list("pk", "status", "stage")
    }


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def all_settled(ids: list[int]) -> bool:
    return all(s in ("ready", "failed") for s, _ in statuses(ids).values())


def assert_ready_exactly_once(ids: list[int], media_root: Path) -> None:
    rows = list(ProductImage.objects.filter(pk__in=ids))
    assert [(r.pk, r.status, r.error) for r in rows if r.status != "ready"] == []
    for row in rows:
        kinds = sorted(ImageVector.objects.filter(image=row).values_list("kind", flat=True))
        assert kinds == ["cutout", "full"], (row.pk, kinds)
        assert Path(row.cutout.path).is_file() and not row.claim_token
    cutouts = [p for p in media_root.rglob("*") if p.is_file() and "cutouts" in p.parts]
    assert len(cutouts) == len(ids)  # one cutout per image, never a second


def test_worker_killed_mid_task_then_a_new_worker_finishes_every_image_once(product, worker_factory, media_root):
    # A short visibility timeout lets the new worker take back the killed worker's unacknowledged
    # message within seconds instead of the production 15 minutes.
    env = {"SHOP_VISIBILITY_TIMEOUT": "4", "SHOP_UNACKED_RESTORE_INTERVAL": "2", "SHOP_UNACKED_RESTORE_THROTTLE": "1"}
    first = worker_factory(env=env)
    ids = upload_many(product, 8, size=(600, 900))
    wait_for(
        lambda: any(s == "processing" and stage != "validate" for s, stage in statuses(ids).values()),
        120,
        "an image in a model stage",
    )
    first.kill()
    caught = [pk for pk, (s, _) in statuses(ids).items() if s == "processing"]
    assert caught, "the kill should interrupt an image mid-task"
    assert not all_settled(ids)

    second = worker_factory(env=env)
    wait_for(lambda: all_settled(ids), 240, "every image to settle after the restart")
    assert_ready_exactly_once(ids, media_root)
    attempts = dict(ProductImage.objects.filter(pk__in=ids).values_list("pk", "attempts"))
    assert all(attempts[pk] == 2 for pk in caught), attempts  # taken over once, by the same message
    assert "workers.tasks.image_process" in second.log()


def test_redis_down_during_upload_then_the_sweep_sends_what_was_missed(
    product, worker_factory, private_redis, media_root
):
    worker = worker_factory(broker_url=private_redis.url, env={"SHOP_SWEEP_INTERVAL": "2"}, beat=True)
    with producer_broker(private_redis.url):
        private_redis.stop()
        ids = upload_many(product, 3)  # staff upload while the broker is down
        rows = list(ProductImage.objects.filter(pk__in=ids))
        assert [r.status for r in rows] == ["pending"] * 3  # saved and pending, not lost
        assert all(r.enqueued_at is None and Path(r.file.path).is_file() for r in rows)
        time.sleep(3)
        assert [r.status for r in ProductImage.objects.filter(pk__in=ids)] == ["pending"] * 3

        private_redis.start()  # Redis is back (empty): the periodic sweep in the worker sends the three
        wait_for(lambda: all_settled(ids), 180, "the sweep and the worker to process the missed uploads")
    assert_ready_exactly_once(ids, media_root)
    assert "workers.tasks.images_sweep" in worker.log()


def test_postgres_restarted_while_the_worker_runs(product, worker_factory, media_root):
    worker_factory()
    ids = upload_many(product, 6, size=(600, 900))
    wait_for(lambda: any(s == "ready" for s, _ in statuses(ids).values()), 120, "the first image")
    unfinished = [pk for pk, (s, _) in statuses(ids).items() if s != "ready"]
    assert unfinished, "the restart should come while the worker still has images to do"
    connections.close_all()
    for action in ("stop", "start"):
        stack({**os.environ}, action, "postgres")
    connections.close_all()
    restarted = timezone.now()
    wait_for(lambda: all_settled(ids), 300, "every image after the database restart")
    assert_ready_exactly_once(ids, media_root)
    # the worker carried on after the restart, on new connections
    assert ProductImage.objects.filter(pk__in=unfinished, processed_at__gt=restarted).exists()


def test_a_poison_image_fails_alone_with_its_reason(product, worker_factory, media_root):
    """One image makes the parser raise; another kills its worker process every time it is tried.
    Both end ``failed`` with a reason; every other image is processed."""
    raising, killing = bad.jpeg((200, 300), (1, 2, 3)), bad.jpeg((200, 300), (3, 2, 1))
    rules = f"raise:{hashlib.sha256(raising).hexdigest()[:16]},exit:{hashlib.sha256(killing).hexdigest()[:16]}"
    worker = worker_factory(env={"SHOP_FAULT_INJECTION": rules})
    good = upload_many(product, 2)
    with atomic_with_files():
        raise_image, _ = product_image_add(product, raising, source_name="raises.jpg")
        kill_image, _ = product_image_add(product, killing, source_name="kills.jpg")
        image_processing_enqueue([raise_image.pk, kill_image.pk])
    good += upload_many(ProductFactory(sku="FAULT-2", title="Blue top", price=10), 2)
    every = [*good, raise_image.pk, kill_image.pk]
    wait_for(lambda: all_settled(every), 240, "all images, poison included, to settle")

    assert_ready_exactly_once(good, media_root)  # the others are processed, one cutout each
    raised = ProductImage.objects.get(pk=raise_image.pk)
    assert raised.status == "failed" and raised.stage == "parse"
    assert "the parse step crashed on this image" in raised.error and raised.attempts == 1
    killed = ProductImage.objects.get(pk=kill_image.pk)
    assert killed.status == "failed" and "never finished" in killed.error
    assert killed.attempts == 4  # three starts that killed the worker, then set aside
    assert not ImageVector.objects.filter(image__in=[raised, killed]).exists()
    assert worker.proc.poll() is None  # the worker itself is still serving
