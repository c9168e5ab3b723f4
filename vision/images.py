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
