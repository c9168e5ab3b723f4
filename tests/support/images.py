"""Plain, valid photos for tests that need an image file (the awkward and broken ones are in bad_images)."""

from __future__ import annotations

import io

from PIL import Image


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (36, 54)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()
