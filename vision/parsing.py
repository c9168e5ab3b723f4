"""What a garment parser gives and what is done with it, without torch: the classes, a parse result
and its items, cut-outs. The trained net is in :mod:`vision.parser` (torch); the exported net that a web
process serves with is in :mod:`vision.onnx_serving`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from vision.assets import LITE_MEAN, LITE_STD

PARSER_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "hair",
    "top",
    "outerwear",
    "dress",
    "bottom",
    "footwear",
    "bag",
    "accessory",
)
GARMENT_CLASSES: tuple[str, ...] = ("top", "outerwear", "dress", "bottom")
# Classes that become items in ParseResult.garments (footwear, bags and accessories are items too, but
# not part of the garment mask).
ITEM_CLASSES: tuple[str, ...] = tuple(c for c in PARSER_CLASSES if c not in ("background", "skin", "hair"))
GARMENT_INDICES: tuple[int, ...] = tuple(PARSER_CLASSES.index(c) for c in GARMENT_CLASSES)


@dataclass
class Garment:
    label: str  # one of PARSER_CLASSES except background/skin/hair, or "item" (the fallback parser)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in original-image pixels (x1, y1 exclusive)
    mask: np.ndarray  # bool, original image H x W
    score: float  # mean class probability inside the mask

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def is_garment(self) -> bool:
        return self.label in GARMENT_CLASSES


@dataclass
class ParseResult:
    labels: np.ndarray  # uint8 H x W, index into PARSER_CLASSES
    garments: list[Garment] = field(default_factory=list)  # largest first
    # A baseline that cannot tell garments apart (the fallback parser) gives one class-less item mask
    # instead of class labels; ``labels`` then only marks skin and hair.
    items: np.ndarray | None = None

    def garment_mask(self) -> np.ndarray:
        """Boolean union of the GARMENT_CLASSES pixels (footwear, bags, accessories, skin, hair excluded)."""
        if self.items is not None:
            return self.items
        return np.isin(self.labels, GARMENT_INDICES)

    def item_mask(self) -> np.ndarray:
        """Boolean union of every item class (garments, footwear, bag, accessory): all but
        background, skin and hair — what a product photo's cutout keeps."""
        if self.items is not None:
            return self.items
        return np.isin(self.labels, [PARSER_CLASSES.index(c) for c in ITEM_CLASSES])

    def mask_of(self, label: str) -> np.ndarray:
        return self.labels == PARSER_CLASSES.index(label)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a non-empty boolean mask, x1/y1 exclusive; ValueError when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask is empty")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def cutout(image: Image.Image, mask: np.ndarray, pad: int = 4) -> Image.Image:
    """RGBA copy of ``image`` with alpha = ``mask``, cropped to the mask's box grown by ``pad`` pixels."""
    mask = np.asarray(mask).astype(bool)
    if mask.shape != (image.height, image.width):
        raise ValueError(f"mask shape {mask.shape} does not match the image ({image.height}, {image.width})")
    if not mask.any():
        raise ValueError("cannot cut out an empty mask")
    x0, y0, x1, y1 = mask_box(mask)
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(image.width, x1 + pad), min(image.height, y1 + pad)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(mask.astype(np.uint8) * 255, mode="L"))
    return rgba.crop((x0, y0, x1, y1))


def parse_result(labels: np.ndarray, prob_sum: np.ndarray, counts: np.ndarray, min_area_fraction: float) -> ParseResult:
    """The items of a label map: each item class covering at least ``min_area_fraction`` of the
    photo, largest first, with its box, mask and mean winning probability (``prob_sum / counts``)."""
    min_area = min_area_fraction * labels.size
    garments = []
    for label in ITEM_CLASSES:
        index = PARSER_CLASSES.index(label)
        if counts[index] < max(1.0, min_area):
            continue
        mask = labels == index
        garments.append(Garment(label, mask_box(mask), mask, float(prob_sum[index] / counts[index])))
    garments.sort(key=lambda g: g.area, reverse=True)
    return ParseResult(labels=labels, garments=garments)


class Parser(Protocol):
    """What the pipeline and photo search need of a parser: the trained one or the fallback."""

    version: str

    def parse(self, image: Image.Image, working_size: int | None = None) -> ParseResult:
        """The photo's label map and items; ``working_size``: the long side the parser reads the photo at
        (None: its own; a parser with a fixed input ignores it)."""
        ...


FALLBACK_PREFIX = "fallback:"


# the untrained baseline (:class:`vision.baselines.FallbackParser`)
FALLBACK_PARSER = FALLBACK_PREFIX + "u2netp-minus-pan-skin-hair"


@functools.lru_cache(maxsize=2)
def fallback_parser(lean: bool = False) -> Parser:
    """The untrained baseline parser, loaded once per process (u2netp and PAN through onnxruntime);
    ``lean``: without onnxruntime's memory arena (a web process: less memory, a little slower)."""
    from vision.baselines import FallbackParser

    return FallbackParser(arena=not lean)


@functools.lru_cache(maxsize=4)
def parser_at(path: str) -> Parser:
    """A parser by location, loaded once per process: a checkpoint folder (:class:`vision.parser.
    GarmentParser`, torch, imported only then), or ``fallback:`` for the untrained baseline."""
    if path.startswith(FALLBACK_PREFIX):
        return fallback_parser()
    from vision.parser import GarmentParser

    return GarmentParser.load(Path(path))


def working_pixels(image: Image.Image, working_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The parser's input: the image resized to long side ``working_size`` (aspect kept, unpadded),
    normalised as EfficientNet-Lite expects, 3 × h × w float32; and (h, w)."""
    rgb = image.convert("RGB")
    scale = working_size / max(rgb.width, rgb.height)
    w, h = max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))
    if (w, h) != rgb.size:
        rgb = rgb.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    x = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    mean = np.asarray(LITE_MEAN, np.float32).reshape(3, 1, 1)
    std = np.asarray(LITE_STD, np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x - mean) / std), (h, w)


def round_up(value: int, multiple: int = 32) -> int:
    """``value`` rounded up to a multiple of ``multiple`` (the parser's input sides: its stride)."""
    return -(-value // multiple) * multiple
