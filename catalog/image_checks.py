"""Checks an uploaded image must pass before anything is stored, and the decoding the workers use.

Two steps, both strict about what the bytes really are (never the file name or the client's
content type):

* :func:`image_check_upload` runs in the request or the import, on the bytes alone and the image
  *header* (no pixel is decoded): empty files, size limits, the real type sniffed from the leading
  bytes (PDF, HTML, SVG, text, archives are named as such), formats this shop cannot decode (HEIC),
  pixel-count limits (decompression bombs are told apart from merely huge photos), tiny images.
* :func:`image_decode` runs in the worker's ``validate`` stage: the whole image is decoded (a
  truncated file fails here), EXIF orientation is applied, the first frame of an animation is
  taken, and CMYK, palette, 16-bit, grey and alpha images become 8-bit RGB (transparency on white).

Both raise :class:`ImageRejected` with a reason written for the person who uploaded the file.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats the shop stores and the workers decode, by the type name :func:`sniff_type` gives.
SUPPORTED_TYPES = {"jpeg", "png", "gif", "webp", "bmp", "tiff", "avif"}


class ImageRejected(ValueError):
    """The file cannot be used as a product image; ``str(exc)`` says why, for a person."""


@dataclass(frozen=True)
class ImageInfo:
    kind: str  # sniffed type, one of SUPPORTED_TYPES
    width: int
    height: int
    frames: int


def sniff_type(content: bytes) -> str:
    """What the leading bytes say the file is (``"unknown"`` when nothing matches)."""
    head = content[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "heic"
        return "video"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x7fELF") or head.startswith(b"MZ"):
        return "executable"
    text = content[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in content[:4096].lower()):
        return "svg"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if text.startswith(b"<?xml"):
        return "xml"
    try:
        content[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    return "text"


_NOT_IMAGE = {
    "pdf": "a PDF document",
    "zip": "a ZIP archive",
    "gzip": "a gzip archive",
    "executable": "a program",
    "svg": "an SVG drawing (vector graphics are not accepted: upload a JPEG, PNG or WebP photo)",
    "html": "an HTML page",
    "xml": "an XML document",
    "text": "a text file",
    "video": "a video or other media container",
    "unknown": "not an image format this shop recognises",
}


def _describe_kind(kind: str) -> str:
    return _NOT_IMAGE.get(kind, kind)


def image_check_upload(content: bytes, source_name: str, content_type: str = "") -> ImageInfo:
    """Accept or refuse ``content`` before it is stored. Decodes the header only."""
    name = source_name or "the upload"
    if not content:
        raise ImageRejected(f"{name}: the file is empty (0 bytes)")
    limit = settings.SHOP_MAX_IMAGE_BYTES
    if len(content) > limit:
        raise ImageRejected(f"{name}: {len(content) / 1e6:.1f} MB is over the {limit / 1e6:.1f} MB limit for one image")
    kind = sniff_type(content)
    declared = f" although it was sent as {content_type}" if content_type else ""
    if kind == "heic":
        raise ImageRejected(
            f"{name}: HEIC/HEIF photos are not supported here; "
            "export the photo as JPEG (most phones can) and upload that"
        )
    if kind not in SUPPORTED_TYPES:
        raise ImageRejected(
            f"{name}: the file is {_describe_kind(kind)}, not a photo{declared}; upload a JPEG, PNG, WebP, AVIF or GIF"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as img:
                width, height = img.size
                frames = int(getattr(img, "n_frames", 1) or 1)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared_px = f" ({int(found.group(1)) / 1e6:.0f} megapixels in {len(content) / 1e3:.0f} kB)" if found else ""
        raise ImageRejected(
            f"{name}: the image declares far more pixels than a photo has{declared_px} — "
            f"a decompression bomb or an image far over the {settings.SHOP_MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel "
            "limit; refused"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"{name}: the {kind.upper()} file is damaged and cannot be read ({exc})") from None
    _check_dimensions(name, width, height, len(content))
    return ImageInfo(kind=kind, width=width, height=height, frames=frames)


def _check_dimensions(name: str, width: int, height: int, size: int) -> None:
    pixels = width * height
    max_pixels = settings.SHOP_MAX_IMAGE_PIXELS
    if pixels > max_pixels:
        if size and pixels / size > 1000:  # > 1000 pixels per stored byte: no photo compresses like that
            raise ImageRejected(
                f"{name}: {width} × {height} pixels packed into {size / 1e3:.0f} kB — a decompression bomb; refused"
            )
        raise ImageRejected(
            f"{name}: {width} × {height} pixels ({pixels / 1e6:.0f} megapixels) is over the "
            f"{max_pixels / 1e6:.0f}-megapixel limit; scale the photo down and upload it again"
        )
    min_side = settings.SHOP_MIN_IMAGE_SIDE
    if min(width, height) < min_side:
        raise ImageRejected(
            f"{name}: {width} × {height} pixels is too small to show a garment (at least {min_side} pixels a side)"
        )
    if max(width, height) > settings.SHOP_MAX_ASPECT_RATIO * min(width, height):
        raise ImageRejected(
            f"{name}: {width} × {height} pixels is a strip, not a photo (sides more than "
            f"{settings.SHOP_MAX_ASPECT_RATIO}:1)"
        )


def image_decode(path: str) -> Image.Image:
    """The stored file fully decoded and normalised to 8-bit RGB (the worker's ``validate`` stage)."""
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise ImageRejected(f"the stored file cannot be read ({exc.strerror or exc}); upload the image again") from None
    info = image_check_upload(content, "the image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as img:
                img.seek(0)  # animations: the first frame
                img.load()
                oriented = ImageOps.exif_transpose(img)
                return to_rgb8(oriented)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("the image declares far more pixels than a photo has (a decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
        detail = str(exc)
        if "truncated" in detail.lower() or "premature end" in detail.lower():
            raise ImageRejected(
                f"the {info.kind.upper()} file is cut short (truncated: only part of the photo was uploaded); "
                "upload the whole file again"
            ) from None
        raise ImageRejected(f"the {info.kind.upper()} file is damaged and cannot be decoded ({detail})") from None


def to_rgb8(img: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode: 16-bit scaled (not clipped), CMYK converted, transparency
    composited onto white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        span = max(float(arr.max() - arr.min()), 1e-12)
        return Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8), mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return img.copy()
    return img.convert("RGB")


def image_check_and_decode(content: bytes, source_name: str, content_type: str = "") -> Image.Image:
    """A photo given to the shop in a request (a shopper's search photo): checked exactly like a staff
    upload (:func:`image_check_upload`) and decoded like the workers' validate stage
    (:func:`image_decode`: truncation, EXIF orientation, colour modes). Raises :class:`ImageRejected`
    with the same reasons, prefixed with ``source_name``; nothing is left on disk."""
    image_check_upload(content, source_name, content_type)
    handle, path = tempfile.mkstemp(prefix="shop-photo-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        return image_decode(path)
    except ImageRejected as exc:
        raise ImageRejected(f"{source_name}: {exc}") from None
    finally:
        os.unlink(path)
