"""The image–text embedder's quick checks: the loss, the learning-rate schedule, the colour descriptor,
the shop's preprocessing and the refusals; no model weights loaded, no training run (those are in
tests/integration/test_embedder.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vision.clip import load_embedder, shop_preprocess
from vision.colour import DESCRIPTOR_SIZE, LAB_QUANTILES, SIZE, colour_descriptor, colour_histogram
from vision.embedder_train import multi_positive_nce, one_cycle


def test_multi_positive_loss_prefers_the_right_pairs():
    import torch

    positives = torch.tensor([[1, 0], [0, 1]], dtype=torch.bool)
    good = multi_positive_nce(torch.tensor([[5.0, 0.0], [0.0, 5.0]]), positives)
    bad = multi_positive_nce(torch.tensor([[0.0, 5.0], [5.0, 0.0]]), positives)
    assert good < 0.05 < 4.0 < bad


def test_missing_checkpoint_says_how_to_get_one(tmp_path, settings):
    from vision.assets import AssetMissing

    settings.MODELS_DIR = tmp_path
    settings.SHOP_CLIP_MODEL = ""
    with pytest.raises(AssetMissing, match="train_embedder"):
        load_embedder()


def test_colour_descriptor_reads_lab_figures_of_the_garment_pixels():
    """Pure sRGB red (CIE Lab 53.2, 80.1, 67.2) on white: the histogram part is the histogram, every
    Lab quantile sits at red's value, all pixels fall in the middle-lightness, vivid, red-hue cell."""
    image = Image.new("RGB", (60, 90), (255, 255, 255))
    ImageDraw.Draw(image).rectangle([10, 10, 49, 79], fill=(255, 0, 0))
    d = colour_descriptor(image)
    assert d.shape == (DESCRIPTOR_SIZE,)
    np.testing.assert_allclose(d[:SIZE], colour_histogram(image))
    nq = len(LAB_QUANTILES)
    quantiles = d[SIZE : SIZE + 3 * nq].reshape(3, nq) * 50
    np.testing.assert_allclose(quantiles, np.repeat([[53.24], [80.09], [67.20]], nq, axis=1), atol=0.05)
    cells = d[SIZE + 3 * nq :].reshape(3, 8, 2)
    hue = int((np.arctan2(67.20, 80.09) + np.pi) / (2 * np.pi) * 8)
    assert cells[1, hue, 1] == pytest.approx(1.0) and cells.sum() == pytest.approx(1.0)
    blank = colour_descriptor(Image.new("RGBA", (40, 40), (0, 0, 0, 0)))
    assert not blank.any()


def test_the_shop_preprocessing_keeps_a_tall_garment_whole():
    from vision.clip import shop_model_config

    # A tall cutout (90×300, like a pair of trousers): black hem bands at the top and bottom.
    image = Image.new("RGB", (90, 300), (200, 30, 30))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 89, 19), fill=(0, 0, 0))
    draw.rectangle((0, 280, 89, 299), fill=(0, 0, 0))
    config = shop_model_config()
    mean = np.array(config["preprocess_cfg"]["mean"])[:, None, None]
    std = np.array(config["preprocess_cfg"]["std"])[:, None, None]

    def pixels(preprocess) -> np.ndarray:
        return (preprocess(image).numpy() * std + mean) * 255  # back to 0..255

    whole = pixels(shop_preprocess(config))
    assert whole.shape == (3, 224, 224)
    assert whole[:, :8, 112].max() < 40 and whole[:, -8:, 112].max() < 40  # both hems are in view
    assert whole[:, 112, :10].min() > 245 and whole[:, 112, -10:].min() > 245  # letterboxed on white
    cropped = pixels(shop_preprocess(config, resize_mode="shortest"))  # the old centre crop lost the hems
    assert cropped[0, :8, 112].min() > 150 and cropped[0, -8:, 112].min() > 150


def test_train_embedder_refuses_a_negative_attribute_weight(tmp_path):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="attribute-weight must be 0 or more"):
        call_command("train_embedder", "--attribute-weight", "-1", "--out", str(tmp_path))
    assert not (tmp_path / "embedder").exists()


def test_learning_rate_schedule_warms_up_and_anneals():
    assert one_cycle(0.0) == pytest.approx(0.04)
    assert one_cycle(0.1) == pytest.approx(1.0)
    assert one_cycle(0.55) == pytest.approx(0.5005)
    assert one_cycle(1.0) == pytest.approx(0.001)
    assert one_cycle(3.0) == pytest.approx(0.001)  # past the time budget: stays at the floor
    rising = [one_cycle(x / 100) for x in range(11)]
    falling = [one_cycle(x / 100) for x in range(10, 101)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
