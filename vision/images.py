"""Image helpers shared by the torch models and their ONNX exports (no torch here)."""

from __future__ import annotations

from PIL import Image


def to_rgb_on_white(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white (cutouts are RGBA)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def resized_to_long_side(
    image: Image.Image, side: int, resample: Image.Resampling = Image.Resampling.LANCZOS
) -> Image.Image:
    """A copy of ``image`` scaled (down or up, aspect kept) so that its long side is ``side`` pixels."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, resample, reducing_gap=2.0 if scale < 1 else None)
