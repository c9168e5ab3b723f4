"""The fallback parser's salient-object net (vision/baselines.py) gives what rembg gives, without rembg."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vision.assets import REPO, AssetMissing, u2netp_onnx
from vision.baselines import U2NetPBaseline

VITON = REPO.parent / "shared" / "data" / "viton" / "image"


def photos() -> list[Image.Image]:
    images = [Image.open(path) for path in sorted(VITON.glob("*.jpg"))[:3]] if VITON.is_dir() else []
    drawn = Image.new("RGB", (240, 360), (230, 230, 230))
    ImageDraw.Draw(drawn).ellipse([40, 60, 200, 330], fill=(30, 50, 160))
    images.append(drawn)
    # a phone photo taken sideways: the EXIF orientation tag, which rembg honours first
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    drawn.save(buffer, "JPEG", exif=exif.tobytes())
    images.append(Image.open(io.BytesIO(buffer.getvalue())))
    return images


def test_u2netp_saliency_is_rembgs_and_rembg_is_not_imported():
    try:
        path = u2netp_onnx()
    except AssetMissing as exc:
        pytest.skip(str(exc))
    had_rembg = "rembg" in sys.modules
    ours = U2NetPBaseline(path)
    got = [ours.probability(image) for image in photos()]
    assert had_rembg or "rembg" not in sys.modules
    os.environ["U2NET_HOME"] = str(path.parent)  # rembg reads the same file, never downloads
    import rembg

    session = rembg.new_session("u2netp")
    for image, mine in zip(photos(), got, strict=True):
        mask = rembg.remove(image.convert("RGB"), session=session, only_mask=True)
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.Resampling.BILINEAR)
        want = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
        assert mine.shape == want.shape == (image.height, image.width)
        assert np.abs(mine - want).max() <= 1.0 / 255.0 + 1e-6
