"""The shop's model registry: every version of every kind of model, its model card and its state,
and the background builds that make new versions.

A version moves through ``training → evaluating → ready → active → retired`` (or ``failed``); a
new embedder passes through ``filling`` between ``ready`` and ``active`` while its embedding space is
filled in the background (see :mod:`lifecycle.services`). Exactly one version per kind is active.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ModelKind(models.TextChoices):
    PARSER = "parser", "garment parser"
    # The attribute heads are trained with the embedder, read its image features and live in its
    # checkpoint folder: they are registered, evaluated and promoted as part of the embedder version.
    EMBEDDER = "embedder", "image–text embedder + attribute heads"


class ModelVersion(models.Model):
    class State(models.TextChoices):
        TRAINING = "training"
        EVALUATING = "evaluating"
        READY = "ready"  # evaluated; serves nothing (worse than the active one, or waiting)
        FILLING = "filling"  # an embedder whose space is being filled before it takes over
        ACTIVE = "active"
        RETIRED = "retired"  # served before; kept for a rollback
        FAILED = "failed"

    kind = models.CharField(max_length=20, choices=ModelKind.choices)
    version = models.CharField(max_length=120)
    state = models.CharField(max_length=20, choices=State.choices, default=State.TRAINING, db_index=True)
    # A checkpoint folder under SHOP_MODELS_DIR, an open_clip hub name, or "fallback:<method>".
    location = models.CharField(max_length=500)
    fallback = models.BooleanField(default=False, help_text="built without training: serves until a trained one wins")
    card = models.JSONField(default=dict, blank=True, help_text="the model card: data, licence, settings, time")
    metrics = models.JSONField(default=dict, blank=True, help_text="headline metrics of its evaluation")
    comparison = models.JSONField(default=dict, blank=True, help_text="the promotion gate's verdict")
    checksums = models.JSONField(default=dict, blank=True, help_text="sha256 of every file of the version")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="model_version_unique"),
            models.UniqueConstraint(fields=["kind"], condition=Q(state="active"), name="one_active_version_per_kind"),
            models.UniqueConstraint(fields=["kind"], condition=Q(state="filling"), name="one_filling_version_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.version} ({self.state})"


class ModelBuild(models.Model):
    """One background build of a kind of model. The row is the truth: the Celery message only wakes a
    worker. A running build holds a lease renewed by its heartbeat; a build whose heartbeat stopped (its
    worker died) is resumed by the sweep, never run twice at once."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    kind = models.CharField(max_length=20, choices=ModelKind.choices)
    recipe = models.CharField(max_length=40, default="default")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.CharField(max_length=120, blank=True, help_text="who or what asked for it")
    budget_minutes = models.FloatField(null=True, blank=True, help_text="training time budget (None: the recipe's)")
    stage = models.CharField(max_length=60, blank=True)
    done = models.PositiveIntegerField(default=0, help_text="steps of the stage done (e.g. epochs)")
    total = models.PositiveIntegerField(default=0)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    stages_done = models.JSONField(default=dict, blank=True, help_text="finished stages and what they produced")
    lease_token = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds")
    error = models.TextField(blank=True)
    log = models.TextField(blank=True, help_text="the last lines its training wrote")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status__in=["queued", "running"]), name="one_open_build_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} build {self.pk} ({self.status})"
