"""A colour descriptor of a garment: where its pixels fall in hue, saturation and lightness.

ImageNet features are largely colour-invariant by training, so colour is read directly from the
pixels: a normalised histogram over 12 hues × 2 saturation levels × 3 lightness levels for
chromatic pixels, plus 5 grey levels for achromatic ones (79 values). Near-white pixels of a
cutout's background (or transparent ones) are ignored.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HUES, SATS, LIGHTS, GREYS = 12, 2, 3, 5
SIZE = HUES * SATS * LIGHTS + GREYS


def garment_pixels(image: Image.Image, max_side: int = 96) -> np.ndarray:
    """RGB pixels of the garment (alpha > 0 for cutouts; not pure-white background), as float 0..1."""
    small = image.copy()
    small.thumbnail((max_side, max_side))
    if small.mode in ("RGBA", "LA"):
        rgba = np.asarray(small.convert("RGBA")).reshape(-1, 4)
        pixels = rgba[rgba[:, 3] > 127, :3]
    else:
        pixels = np.asarray(small.convert("RGB")).reshape(-1, 3)
        pixels = pixels[~(pixels.min(axis=1) > 245)]
    return pixels.astype(np.float32) / 255.0


def colour_histogram(image: Image.Image) -> np.ndarray:
    px = garment_pixels(image)
    hist = np.zeros(SIZE, np.float32)
    if len(px) == 0:
        return hist
    mx, mn = px.max(1), px.min(1)
    light = (mx + mn) / 2
    chroma = mx - mn
    sat = np.where(light < 0.5, chroma / np.maximum(mx + mn, 1e-6), chroma / np.maximum(2 - mx - mn, 1e-6))
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    grey = (chroma < 0.08) | (sat < 0.12)
    grey_bin = np.minimum((light[grey] * GREYS).astype(int), GREYS - 1)
    np.add.at(hist, HUES * SATS * LIGHTS + grey_bin, 1)
    c = ~grey
    h = np.minimum((hue[c] * HUES).astype(int), HUES - 1)
    s = np.minimum((sat[c] * SATS).astype(int), SATS - 1)
    li = np.minimum((light[c] * LIGHTS).astype(int), LIGHTS - 1)
    np.add.at(hist, (h * SATS + s) * LIGHTS + li, 1)
    return hist / hist.sum()
