"""What the staff page and ``models status`` show: per kind, the active version, every version with
its state and gate verdict, the open build with its progress, and what training data is missing."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from catalog import selectors as catalog_selectors
from lifecycle import selectors
from lifecycle.models import ModelBuild, ModelKind


def build_eta_seconds(build: ModelBuild) -> float | None:
    """Seconds left in the build's current stage, from the pace of its steps so far."""
    if not build.stage_started_at or not build.total or not build.done or build.done >= build.total:
        return None
    elapsed = (timezone.now() - build.stage_started_at).total_seconds()
    return elapsed / build.done * (build.total - build.done)


def overview() -> dict[str, Any]:
    kinds = []
    for kind, label in ModelKind.choices:
        kinds.append(
            {
                "kind": kind,
                "label": label,
                "active": selectors.version_active(kind),
                "versions": selectors.versions_list(kind),
                "build": selectors.build_open(kind),
                "data": selectors.training_data(kind),
            }
        )
    filling = selectors.version_filling()
    filling_info = None
    if filling is not None:
        space = catalog_selectors.embedding_space_get(filling.version)
        if space is not None:
            filling_info = {"version": filling, "coverage": catalog_selectors.embedding_space_coverage(space)}
    builds = selectors.builds_recent(10)
    return {
        "kinds": kinds,
        "filling": filling_info,
        "builds": [{"build": b, "eta": build_eta_seconds(b)} for b in builds],
        "images_by_parser": catalog_selectors.images_by_parser(),
    }
