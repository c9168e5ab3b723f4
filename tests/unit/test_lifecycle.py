"""The model lifecycle's rules that need no service: the build task's limits and the promotion gate (the
lifecycle with PostgreSQL, Redis and workers: tests/integration/test_lifecycle.py)."""

from __future__ import annotations

from django.conf import settings

from lifecycle import services
from lifecycle.models import ModelKind


def test_a_build_task_is_not_bound_by_the_image_tasks_time_limits():
    """A build runs for its budget (tens of minutes): the image tasks' limits (minutes) must not stop it,
    and its message is acknowledged at once (the lease, not the broker, hands it on)."""
    from lifecycle.tasks import model_build

    assert model_build.soft_time_limit >= 6 * 3600 > settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert model_build.time_limit > model_build.soft_time_limit
    assert model_build.acks_late is False


def test_the_gate_never_promotes_over_an_active_version_it_could_not_measure():
    verdict = services.gate_compare(ModelKind.EMBEDDER, {"person_r@1": 0.9}, {})
    assert verdict["promote"] is False and "promote by hand" in verdict["reason"]
    assert services.gate_compare(ModelKind.EMBEDDER, {"person_r@1": 0.9}, None)["promote"] is True
    tie = services.gate_compare(ModelKind.PARSER, {"ccp_dev_dice": 0.9}, {"ccp_dev_dice": 0.9})
    assert tie["promote"] is True  # at least as good
