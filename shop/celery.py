"""The Celery application: Redis broker, settings from Django's ``CELERY_*`` names."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _limit_torch_threads(**_: object) -> None:
    """Each worker process uses ``SHOP_TORCH_THREADS`` threads (default 1): with one process per core,
    more threads only fight over the same cores."""
    from django.conf import settings

    try:
        import torch
    except ImportError:  # a web-only image without torch
        return
    torch.set_num_threads(max(1, settings.SHOP_TORCH_THREADS))
    if settings.SHOP_PRELOAD_MODELS:
        from workers.services import models_preload

        models_preload()
