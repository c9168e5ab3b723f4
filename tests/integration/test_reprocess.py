"""``manage.py reprocess`` and ``manage.py sweep_images`` against the real database, broker and
(where the workers do the work) a real worker process."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import ImageVector, ProductImage
from catalog.services import atomic_with_files, product_image_add
from tests.support import bad_images as bad
from tests.support.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pending_images(settings, test_models) -> list[int]:
    """Three images of two products, stored with the pipeline off (pending, never sent)."""
    settings.SHOP_PIPELINE = "off"
    ids = []
    for sku, colours in (("RP-1", [(200, 20, 20), (20, 200, 20)]), ("RP-2", [(20, 20, 200)])):
        product = ProductFactory(sku=sku, title=f"Top {sku}", price=10)
        for colour in colours:
            with atomic_with_files():
                image, _ = product_image_add(product, bad.jpeg((120, 180), colour), source_name=f"{sku}.jpg")
            ids.append(image.pk)
    settings.SHOP_PIPELINE = "celery"
    return ids


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("reprocess", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_reprocess_needs_a_selection_and_known_skus(pending_images):
    with pytest.raises(CommandError, match="say what to reprocess"):
        run()
    with pytest.raises(CommandError, match="no product with SKU NOPE"):
        run("--sku", "NOPE", "--inline")


def test_reprocess_model_must_be_an_embedder_the_workers_write(pending_images):
    with pytest.raises(CommandError, match="the workers write the embedder"):
        run("--model", "some-other-model", "--inline")


def test_reprocess_model_fills_in_what_that_space_lacks_and_is_idempotent(pending_images, media_root):
    from lifecycle.services import models_ensure

    name = models_ensure()["embedder"].version  # the registry's active embedder
    out = run("--model", name, "--inline")
    assert "3 image(s) to process" in out and "3 ready" in out
    assert ImageVector.objects.filter(space__name=name, kind="cutout").count() == 3
    assert "nothing to reprocess" in run("--model", name, "--inline")


def test_reprocess_all_replaces_outputs_without_adding(pending_images, media_root):
    assert "3 ready" in run("--all", "--inline")
    first = {i.pk: i.processed_at for i in ProductImage.objects.all()}
    out = run("--sku", "RP-1", "--inline")
    assert "2 image(s) to process" in out
    again = {i.pk: i.processed_at for i in ProductImage.objects.all()}
    changed = [pk for pk in first if again[pk] != first[pk]]
    assert sorted(changed) == sorted(ProductImage.objects.filter(product__sku="RP-1").values_list("pk", flat=True))
    assert [(i.status, i.error) for i in ProductImage.objects.all()] == [("ready", "")] * 3
    assert ImageVector.objects.count() == 6
    assert len([p for p in Path(media_root).rglob("*.png") if "cutouts" in p.parts]) == 3


def test_reprocess_failed_only_takes_failed_images(pending_images):
    run("--all", "--inline")
    ProductImage.objects.filter(pk=pending_images[0]).update(status="failed", error="old failure")
    out = run("--failed", "--inline")
    assert "1 image(s) to process" in out and "1 ready" in out
    assert ProductImage.objects.get(pk=pending_images[0]).status == "ready"


def test_an_interrupted_reprocess_resumes_where_it_stopped(pending_images, celery_worker_process):
    """First run on the workers is cut off (the worker is stopped before it finishes); the same
    command then resumes with only what is left."""
    run("--all", "--inline")
    celery_worker_process.stop()  # no worker: the run below cannot finish
    with pytest.raises(CommandError, match="still unfinished"):
        run("--all", "--wait", "1")
    assert set(ProductImage.objects.values_list("status", flat=True)) == {"pending"}
    ProductImage.objects.filter(pk=pending_images[0]).update(status="ready", processed_at="2999-01-01T00:00:00Z")
    out = run("--all", "--inline")
    assert "resuming the run started" in out
    assert "2 image(s) to process" in out  # the one finished since the first run is skipped
    assert set(ProductImage.objects.values_list("status", flat=True)) == {"ready"}
    assert "resuming" not in run("--all", "--inline")  # the finished run was forgotten: a new one starts


def test_reprocess_on_the_workers_follows_them_to_the_end(pending_images, celery_worker_process):
    out = run("--sku", "RP-2", "--wait", "180")
    assert "1 image(s) to process" in out and "1 ready" in out
    assert "workers.tasks.image_process" in celery_worker_process.log()


def test_sweep_sends_pending_images_once(pending_images, redis_client, settings):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    redis_client.delete(queue)
    out = io.StringIO()
    call_command("sweep_images", stdout=out)
    assert "3 pending and 0 stuck image(s) found; 3 sent" in out.getvalue()
    assert redis_client.llen(queue) == 3
    assert all(i.enqueued_at for i in ProductImage.objects.all())
    out = io.StringIO()
    call_command("sweep_images", stdout=out)  # sent a moment ago: not sent again
    assert "0 pending and 0 stuck" in out.getvalue() and redis_client.llen(queue) == 3
    redis_client.delete(queue)


def test_sweep_takes_back_images_a_dead_worker_left_processing(pending_images, redis_client, settings):
    from django.utils import timezone

    long_ago = timezone.now() - timezone.timedelta(hours=2)
    ProductImage.objects.filter(pk=pending_images[0]).update(
        status="processing", claim_token="dead-task", claimed_at=long_ago, enqueued_at=timezone.now()
    )
    ProductImage.objects.exclude(pk=pending_images[0]).update(enqueued_at=timezone.now())
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    out = io.StringIO()
    call_command("sweep_images", stdout=out)
    assert "0 pending and 1 stuck image(s) found; 1 sent" in out.getvalue()
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)


def test_sweep_sends_again_a_pending_image_whose_message_died_with_its_worker(pending_images, redis_client, settings):
    """Queued longer ago than a lease (the task time limit + 60 s) and still pending: its message was
    held by a worker that was killed. It is sent again without waiting out the broker's visibility
    timeout; one queued a moment ago is not."""
    from django.utils import timezone

    from workers.services import lease_seconds

    lost = timezone.now() - timezone.timedelta(seconds=lease_seconds() + 5)
    assert lease_seconds() + 5 < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    ProductImage.objects.filter(pk=pending_images[0]).update(enqueued_at=lost)
    ProductImage.objects.exclude(pk=pending_images[0]).update(enqueued_at=timezone.now())
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    out = io.StringIO()
    call_command("sweep_images", stdout=out)
    assert "1 pending and 0 stuck image(s) found; 1 sent" in out.getvalue()
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
