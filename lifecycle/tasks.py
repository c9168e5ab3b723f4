"""Celery tasks of the model lifecycle: thin wrappers around ``lifecycle.services``.

A build runs far longer than the broker's visibility timeout, so its message is acknowledged when
the task starts (never handed out again by Redis) and the build row's lease is the truth: a worker
that dies stops the heartbeat, and the sweep (``workers.tasks.images_sweep``) sends the build again,
which resumes where it stopped. A message delivered twice finds the lease held and does nothing.
"""

from __future__ import annotations

from celery import shared_task

from lifecycle import services

# The image tasks' time limits (minutes) do not apply: a build runs for as long as its budget says,
# bounded by its own time limits, and one day at most.
BUILD_TIME_LIMIT_S = 24 * 3600


@shared_task(
    acks_late=False, ignore_result=True, time_limit=BUILD_TIME_LIMIT_S, soft_time_limit=BUILD_TIME_LIMIT_S - 60
)
def model_build(build_id: int) -> str:
    # Training yields the cores to image processing: the models worker itself runs under `nice`
    # (shop.localstack, docker-compose's trainer service).
    return services.build_run(build_id)


@shared_task(acks_late=True, ignore_result=True, max_retries=3, default_retry_delay=30)
def serving_export(version_id: int) -> str:
    """Export an activated model version for query serving; idempotent (a current export is kept)."""
    return services.version_serving_export(version_id)
