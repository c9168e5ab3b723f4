"""Synthetic "person" photos (head, top, bottom, two shoes on a textured background) and a tiny garment
parser really trained on them, so photo-search tests run with a parser that finds garments (the
shared test parser has an untrained decoder). Quality is measured by ``evaluate``, not here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vision.parser import PARSER_CLASSES
from vision.parser_train import ParserTrainConfig, ParserTrainData, Sample, train_parser

SIZE = (128, 80)  # h, w
TOP, BOTTOM, FOOTWEAR, SKIN = (PARSER_CLASSES.index(c) for c in ("top", "bottom", "footwear", "skin"))
TOP_RGB, BOTTOM_RGB, SHOE_RGB = np.array([200, 30, 40]), np.array([30, 40, 150]), np.array([25, 25, 25])


def scene(seed: int, garments: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 h×w×3, labels uint8 h×w); ``garments=False`` gives the background alone."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    image = np.clip(rng.integers(140, 230, size=3) + rng.normal(0, 14, size=(h, w, 3)), 0, 255)
    labels = np.zeros((h, w), dtype=np.uint8)
    if garments:
        x0, x1 = int(rng.integers(14, 22)), w - int(rng.integers(14, 22))
        y0 = int(rng.integers(22, 28))
        y1 = y0 + int(rng.integers(34, 42))
        cx = (x0 + x1) // 2
        image[y0 - 18 : y0 - 2, cx - 7 : cx + 7] = np.array([225, 180, 150])
        labels[y0 - 18 : y0 - 2, cx - 7 : cx + 7] = SKIN
        image[y0:y1, x0:x1] = TOP_RGB + rng.normal(0, 6, size=(y1 - y0, x1 - x0, 3))
        labels[y0:y1, x0:x1] = TOP
        y2 = h - 16
        image[y1:y2, x0 + 4 : x1 - 4] = BOTTOM_RGB + rng.normal(0, 6, size=3)
        labels[y1:y2, x0 + 4 : x1 - 4] = BOTTOM
        for sx in (x0 + 2, cx + 3):
            image[y2 + 2 : h - 4, sx : sx + 14] = SHOE_RGB
            labels[y2 + 2 : h - 4, sx : sx + 14] = FOOTWEAR
    return np.clip(image, 0, 255).astype(np.uint8), labels


def scene_photo(seed: int, garments: bool = True, scale: int = 3) -> Image.Image:
    image, _ = scene(seed, garments)
    photo = Image.fromarray(image)
    return photo.resize((photo.width * scale, photo.height * scale), Image.Resampling.NEAREST)


def train_scene_parser(root: Path) -> Path:
    """A real ``train_parser`` run on 32 synthetic scenes; returns its checkpoint folder under root."""
    samples = []
    for i in range(32):
        image, labels = scene(i, garments=i % 8 != 0)
        samples.append(
            Sample(
                image=torch.from_numpy(image).permute(2, 0, 1).contiguous(),
                labels=torch.from_numpy(labels),
                source="ccp",
                key=str(i),
            )
        )
    config = ParserTrainConfig(
        epochs=8,
        batch_size=4,
        lr=3e-3,
        warmup_steps=4,
        crop=(128, 80),
        working_size=128,
        decoder_channels=(32, 24, 16, 16),
        viton_per_epoch=0,
        threads=1,
    )
    return train_parser(ParserTrainData(train=samples, sources=["synthetic scenes"]), root, config, log=lambda m: None)
