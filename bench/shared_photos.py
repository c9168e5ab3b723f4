"""Photos the benches read from the shared data folder beside the repository (``../shared/data``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image

from vision.images import resized_to_long_side

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def dev_rows(folder: str, count: int, role: str | None = None) -> list[dict[str, str]] | str:
    """The first ``count`` dev rows (of ``role``, where given) of a shared data set's manifest, or why
    there are none."""
    manifest = SHARED / folder / "manifest.csv"
    if count <= 0:
        return "skipped (--photos 0)"
    if not manifest.is_file():
        return f"no {folder.upper()} photos under ../shared/data"
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == "dev" and role in (None, r.get("role"))][:count]


def phone_sized(folder: str, count: int, side: int) -> list[Image.Image]:
    """The first ``count`` dev photos of a shared data set, scaled to ``side`` pixels on their long side
    (as large as a phone's photo); none when the set is missing."""
    rows = dev_rows(folder, count)
    if isinstance(rows, str):
        return []
    return [resized_to_long_side(Image.open(SHARED / folder / r["file"]).convert("RGB"), side) for r in rows]


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
