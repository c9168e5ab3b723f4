"""Awkward and broken image files decoded by the worker's validate stage (catalog.image_checks), without
the database: what is stored, refused or processed is in tests/integration/test_bad_input.py."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.image_checks import ImageRejected, image_decode, to_rgb8
from tests.support import bad_images as bad
from tests.support.bad_images import ACCEPTED, FAILING


@pytest.mark.parametrize("kind", list(ACCEPTED))
def test_awkward_images_decode_to_upright_8bit_rgb(kind, tmp_path):
    make, size = ACCEPTED[kind]
    path = tmp_path / "img"
    path.write_bytes(make())
    image = image_decode(str(path))
    assert image.mode == "RGB" and image.size == size


@pytest.mark.parametrize("kind", list(FAILING))
def test_broken_images_fail_decoding_with_a_reason(kind, tmp_path):
    make, words = FAILING[kind]
    path = tmp_path / "img"
    path.write_bytes(make())
    with pytest.raises(ImageRejected, match=words):
        image_decode(str(path))


def test_decoding_takes_the_first_frame_scales_16_bit_and_whitens_transparency(tmp_path):
    def decode(content: bytes) -> np.ndarray:
        path = tmp_path / "x"
        path.write_bytes(content)
        return np.asarray(image_decode(str(path)), dtype=int)

    gif = decode(bad.animated_gif())
    assert gif[75, 50, 0] > 150 and gif[75, 50, 1] < 100  # the first frame is the red one
    grey = decode(bad.png16())
    assert 40 <= grey[80, 50, 0] <= 55 and 210 <= grey[5, 5, 0] <= 222  # 12,000 and 56,000 of 65,535, not clipped
    assert (decode(bad.rgba_png())[5, 5] == 255).all()  # transparent → white
    assert (decode(bad.palette_png_with_transparency())[5, 5] == 255).all()
    rotated = decode(bad.exif_rotated_jpeg())
    assert rotated.shape[:2] == (180, 120) and rotated[90, 60, 0] > 150  # upright: garment in the middle


def test_to_rgb8_keeps_plain_rgb_untouched():
    image = bad.garment_photo()
    assert np.array_equal(np.asarray(to_rgb8(image)), np.asarray(image))
