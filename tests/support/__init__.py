"""Helpers shared by the test folders (catalogs, images, model checkpoints, service fixtures); no tests."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
