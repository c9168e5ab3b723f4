"""Files of every awkward kind a shop receives, made in memory (no data files in the repo)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def garment_photo(size: tuple[int, int] = (120, 180), colour: tuple[int, int, int] = (180, 40, 50)) -> Image.Image:
    """A plain product shot: a coloured garment-like block on a light background."""
    w, h = size
    arr = np.full((h, w, 3), 238, dtype=np.uint8)
    arr[h // 6 : h - h // 8, w // 5 : w - w // 5] = colour
    return Image.fromarray(arr)


def jpeg(size: tuple[int, int] = (120, 180), colour: tuple[int, int, int] = (180, 40, 50)) -> bytes:
    return _save(garment_photo(size, colour), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    data = _save(garment_photo((300, 400)).convert("RGB"), "JPEG", quality=95)
    return data[: len(data) * 3 // 5]


def decompression_bomb() -> bytes:
    """A valid 1-bit PNG of 30,000 × 30,000 pixels (900 megapixels) in about 100 kB."""
    width = height = 30_000
    row = b"\x00" + b"\x00" * (width // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is rewritten to claim ``width`` × ``height`` pixels."""
    data = bytearray(jpeg((64, 64)))
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


def animated_gif() -> bytes:
    frames = [garment_photo((100, 150), c).convert("P") for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def cmyk_jpeg() -> bytes:
    return _save(garment_photo().convert("CMYK"), "JPEG", quality=90)


def png16() -> bytes:
    """16-bit greyscale PNG: a dark-grey garment on a light background (values up to 60,000)."""
    arr = np.full((150, 100), 56_000, dtype=np.uint16)
    arr[30:130, 20:80] = 12_000
    return _save(Image.fromarray(arr), "PNG")


def palette_png_with_transparency() -> bytes:
    image = garment_photo((100, 150)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    background = image.getpixel((0, 0))
    return _save(image, "PNG", transparency=background)


def rgba_png() -> bytes:
    rgba = garment_photo((100, 150)).convert("RGBA")
    alpha = np.zeros((150, 100), dtype=np.uint8)
    alpha[25:130, 20:80] = 255
    rgba.putalpha(Image.fromarray(alpha))
    return _save(rgba, "PNG")


def exif_rotated_jpeg() -> bytes:
    """Stored 180 × 120 (landscape) with EXIF orientation 6: shown upright it is 120 × 180."""
    stored = garment_photo((120, 180)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(stored, "JPEG", quality=90, exif=exif)


def avif() -> bytes:
    return _save(garment_photo(), "AVIF", quality=70)


def webp() -> bytes:
    return _save(garment_photo(), "WEBP", quality=80)


def greyscale_jpeg() -> bytes:
    return _save(garment_photo().convert("L"), "JPEG", quality=90)


def damaged_png() -> bytes:
    """Header intact, image data garbage."""
    good = bytearray(_save(garment_photo(), "PNG"))
    start = good.index(b"IDAT") + 4
    for i in range(start + 10, min(len(good) - 20, start + 400)):
        good[i] = (good[i] * 7 + 13) % 256
    return bytes(good)


def heic_header() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200


def zip_archive() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photo.jpg", b"not really")
    return buf.getvalue()


# What the worker's decoding makes of each awkward upload (tests/unit/test_bad_input.py decodes them
# alone, tests/integration/test_bad_input.py through the real worker).
ACCEPTED: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {
    # kind: (bytes, upright size after decoding)
    "animated GIF": (animated_gif, (100, 150)),
    "CMYK JPEG": (cmyk_jpeg, (120, 180)),
    "16-bit PNG": (png16, (100, 150)),
    "palette PNG with transparency": (palette_png_with_transparency, (100, 150)),
    "RGBA PNG": (rgba_png, (100, 150)),
    "EXIF-rotated photo": (exif_rotated_jpeg, (120, 180)),
    "AVIF": (avif, (120, 180)),
    "WebP": (webp, (120, 180)),
    "greyscale JPEG": (greyscale_jpeg, (120, 180)),
}
FAILING: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated JPEG": (truncated_jpeg, "cut short"),
    "damaged PNG data": (damaged_png, "damaged and cannot be decoded"),
}
