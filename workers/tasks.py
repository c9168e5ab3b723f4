"""Celery tasks: thin wrappers around ``workers.services``."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from workers.services import image_pipeline_run


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError, ConnectionError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def image_process(self: Task, image_id: int) -> str:
    return image_pipeline_run(image_id)
