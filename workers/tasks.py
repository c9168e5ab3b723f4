"""Celery tasks: thin wrappers around ``workers.services``.

``image_process`` is acknowledged late (a worker killed mid-task leaves the message to be
redelivered), retried with exponential backoff for transient failures (database or broker
unreachable), never retried for bad input (the image is marked failed instead), and bounded by the
hard and soft time limits in settings.
"""

from __future__ import annotations

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from workers import services

# Transient failures (database or broker unreachable) are retried with backoff; bad input never is.
RETRY_TRANSIENT: dict[str, object] = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError, ConnectionError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "max_retries": 8,
}


@shared_task(bind=True, reject_on_worker_lost=True, retry_jitter=True, **RETRY_TRANSIENT)
def image_process(self: Task, image_id: int) -> str:
    try:
        return services.image_pipeline_run(image_id, token=self.request.id or "")
    except SoftTimeLimitExceeded:
        return services.image_mark_timed_out(image_id)


@shared_task(**RETRY_TRANSIENT)
def product_text_embed(product_id: int) -> bool:
    return services.product_text_run(product_id)


@shared_task(ignore_result=True)
def products_text_refresh() -> int:
    """Periodic (``SHOP_TEXT_REFRESH_INTERVAL``): text vectors of the products whose text changed."""
    return services.products_text_refresh()


@shared_task(**RETRY_TRANSIENT)
def image_backfill(image_id: int) -> str:
    """Embed a processed image into a new embedder's space while search still reads the old one."""
    return services.image_backfill_run(image_id)


@shared_task(ignore_result=True)
def images_sweep() -> dict[str, int]:
    report = services.images_sweep()
    return {"pending": report.pending, "stuck": report.stuck, "sent": report.sent, "backfill": report.backfill}


@shared_task(
    **RETRY_TRANSIENT,
    # Below the broker's visibility timeout (900 s), so a running import is never handed out twice.
    time_limit=850,
    soft_time_limit=800,
)
def catalog_import_job(job_id: int) -> str:
    """A staff bulk import (CSV + images ZIP); idempotent: a finished job is left alone, and an
    interrupted one resumes (rows already written are matched by SKU and left unchanged)."""
    return services.import_job_run(job_id)
