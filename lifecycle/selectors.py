"""Reads of the model registry (see :mod:`lifecycle.models`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from lifecycle.models import ModelBuild, ModelKind, ModelVersion


def version_active(kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, state=ModelVersion.State.ACTIVE).first()


def version_filling() -> ModelVersion | None:
    """The embedder whose space is being filled before it takes over, if any."""
    return ModelVersion.objects.filter(kind=ModelKind.EMBEDDER, state=ModelVersion.State.FILLING).first()


def version_rollback_target(kind: str) -> ModelVersion | None:
    """The retired version that served last (what ``models rollback`` goes back to)."""
    return (
        ModelVersion.objects.filter(kind=kind, state=ModelVersion.State.RETIRED, activated_at__isnull=False)
        .order_by("-activated_at")
        .first()
    )


def version_get(kind: str, version: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, version=version).first()


def version_find(version: str) -> ModelVersion | None:
    """A version by its name alone (names are unique across kinds in practice)."""
    return ModelVersion.objects.filter(version=version).order_by("-created_at").first()


def versions_list(kind: str | None = None) -> list[ModelVersion]:
    rows = ModelVersion.objects.all()
    if kind:
        rows = rows.filter(kind=kind)
    return list(rows.order_by("kind", "-created_at"))


def build_open(kind: str) -> ModelBuild | None:
    return ModelBuild.objects.filter(
        kind=kind, status__in=[ModelBuild.Status.QUEUED, ModelBuild.Status.RUNNING]
    ).first()


def builds_recent(limit: int = 10) -> list[ModelBuild]:
    return list(ModelBuild.objects.select_related("version").order_by("-created_at")[:limit])


def builds_to_resume(lease_s: int, resend_after_s: int) -> list[int]:
    """Running builds whose heartbeat stopped (their worker died) and queued builds whose message was
    probably lost (the broker was down): the sweep sends them again."""
    now = timezone.now()
    rows = ModelBuild.objects.filter(
        Q(status=ModelBuild.Status.RUNNING, heartbeat_at__lt=now - timedelta(seconds=lease_s))
        | Q(status=ModelBuild.Status.QUEUED, created_at__lt=now - timedelta(seconds=resend_after_s))
    )
    return list(rows.order_by("id").values_list("id", flat=True))


def build_failed_recently(kind: str, within_s: int) -> bool:
    since = timezone.now() - timedelta(seconds=within_s)
    return ModelBuild.objects.filter(kind=kind, status=ModelBuild.Status.FAILED, finished_at__gte=since).exists()


def builds_done_count(kind: str) -> int:
    return ModelBuild.objects.filter(kind=kind, status=ModelBuild.Status.DONE).count()


@dataclass(frozen=True)
class TrainingData:
    kind: str
    available: bool
    sources: list[str]
    missing: str  # what is missing and how to provide it; "" when available


def shared_data_dir() -> Path:
    return Path(settings.SHOP_TRAINING_DATA)


def training_data(kind: str) -> TrainingData:
    """What a build of ``kind`` would train on here, or what is missing."""
    data = shared_data_dir()
    ccp, viton = data / "ccp" / "manifest.csv", data / "viton" / "manifest.csv"
    if kind == ModelKind.PARSER:
        if not ccp.is_file():
            return TrainingData(
                kind,
                False,
                [],
                f"no garment-parsing data: {ccp} is missing. Put the CCP set (street photos with pixel labels) and "
                "VITON there, or set SHOP_TRAINING_DATA to a folder holding ccp/ and viton/; until then cut-outs use "
                "the fallback parser.",
            )
        sources = [f"CCP street photos with pixel labels ({data / 'ccp'})"]
        if viton.is_file():
            sources.append(f"VITON product shots and photos of people ({data / 'viton'})")
        return TrainingData(kind, True, sources, "")
    from catalog import selectors as catalog_selectors

    products = catalog_selectors.products_with_ready_images_count()
    if products < settings.SHOP_MIN_TRAINING_PRODUCTS:
        return TrainingData(
            kind,
            False,
            [],
            f"the catalog has {products} product(s) with processed photos; the embedder trains on the shop's own "
            f"catalog and needs at least {settings.SHOP_MIN_TRAINING_PRODUCTS}. Import products with photos "
            "(staff upload or manage.py import_catalog) and let the workers process them.",
        )
    sources = [f"the shop's own catalog ({products} products with processed photos)"]
    if viton.is_file():
        sources.append(f"VITON person↔product pairs ({data / 'viton'})")
    return TrainingData(kind, True, sources, "")
