"""The garment parser: photo in, per-garment masks out.

A U-Net-style segmentation net on the pretrained EfficientNet-Lite0 encoder (timm ``features_only``,
five levels at strides 2…32) with a light decoder (depthwise-separable blocks) and a 10-class head
(:data:`PARSER_CLASSES`). It is trained on Clothing Co-Parsing street photos plus VITON studio product
shots by :mod:`vision.parser_train` (``python manage.py train_parser``).

Inference resizes the photo to a fixed working size (long side ``working_size``, aspect kept, padded to
a multiple of 32), runs the net once and upsamples the logits to the original resolution, strip by
strip so that large photos do not need a full-resolution C × H × W tensor.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vision.assets import AssetMissing, models_dir
from vision.parsing import FALLBACK_PARSER as FALLBACK_PARSER
from vision.parsing import FALLBACK_PREFIX as FALLBACK_PREFIX
from vision.parsing import GARMENT_CLASSES as GARMENT_CLASSES
from vision.parsing import GARMENT_INDICES as GARMENT_INDICES
from vision.parsing import ITEM_CLASSES as ITEM_CLASSES
from vision.parsing import PARSER_CLASSES as PARSER_CLASSES
from vision.parsing import Garment as Garment
from vision.parsing import Parser as Parser
from vision.parsing import ParseResult as ParseResult
from vision.parsing import cutout as cutout
from vision.parsing import mask_box as mask_box
from vision.parsing import parse_result, round_up, working_pixels
from vision.parsing import parser_at as parser_at

CHECKPOINT_NAME = "parser.pt"
CARD_NAME = "model_card.json"
CHECKPOINT_FORMAT = "shop-garment-parser/1"
DEFAULT_WORKING_SIZE = 384
DEFAULT_DECODER_CHANNELS: tuple[int, int, int, int] = (96, 64, 40, 24)
TRAIN_COMMAND = "python manage.py train_parser"


# --------------------------------------------------------------------------------------------- network


class _ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class _DecoderBlock(nn.Module):
    """Upsample ×2, concatenate the skip, mix (1×1), then a depthwise-separable 3×3 with a residual."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.mix = _ConvBNAct(cin + cskip, cout, 1)
        self.spatial = nn.Sequential(_ConvBNAct(cout, cout, 3, groups=cout), _ConvBNAct(cout, cout, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.mix(torch.cat([x, skip], dim=1))
        return x + self.spatial(x)


class ParserNet(nn.Module):
    """EfficientNet-Lite0 encoder (5 levels) + light U-Net decoder; returns logits at input resolution."""

    def __init__(
        self,
        num_classes: int = len(PARSER_CLASSES),
        decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        from timm.models import FeatureInfo

        from vision.backbone import efficientnet_lite0

        self.encoder = efficientnet_lite0(pretrained=pretrained, features_only=True)
        info = self.encoder.feature_info
        if not isinstance(info, FeatureInfo):
            raise TypeError("the parser's encoder must be a timm features_only model (it describes its levels)")
        skips: list[int] = list(info.channels())  # [16, 24, 40, 112, 320]
        if len(skips) != 5 or len(decoder_channels) != 4:
            raise ValueError("the parser expects 5 encoder levels and 4 decoder widths")
        deep = skips[-1]
        context = decoder_channels[0]
        # Bottleneck with global context: local 1×1 projection plus an image-level pooled branch.
        self.local = _ConvBNAct(deep, context, 1)
        self.pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(deep, context, 1), nn.ReLU(inplace=True))
        widths = [context, *decoder_channels]
        self.blocks = nn.ModuleList(
            _DecoderBlock(widths[i], skips[3 - i], widths[i + 1]) for i in range(4)
        )  # strides 16, 8, 4, 2
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = self.encoder(x)
        deep = feats[-1]
        y = self.local(deep) + self.pooled(deep)
        for block, skip in zip(self.blocks, reversed(feats[:-1]), strict=True):
            y = block(y, skip)
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------ results


# ---------------------------------------------------------------------------------------- inference


def to_input(image: Image.Image, working_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Normalised 3 × h × w tensor of the image resized to long side ``working_size`` (unpadded), and (h, w)."""
    pixels, size = working_pixels(image, working_size)
    return torch.from_numpy(pixels), size


def upsample_labels(
    logits: torch.Tensor, height: int, width: int, max_elements: int = 8_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinearly upsample C × h × w logits to height × width (exactly as ``F.interpolate`` with
    ``align_corners=False``; in strips of rows when C × height × width exceeds ``max_elements``); returns
    (uint8 argmax labels, per-class sum of the winning softmax probability, per-class pixel count)."""
    c = logits.shape[0]
    src = logits.unsqueeze(0).float()
    labels = np.empty((height, width), dtype=np.uint8)
    prob_sum = torch.zeros(c, dtype=torch.float64)
    counts = torch.zeros(c, dtype=torch.float64)
    strips: Iterable[tuple[int, int, torch.Tensor]]
    if c * height * width <= max_elements:
        strips = [(0, height, F.interpolate(src, size=(height, width), mode="bilinear", align_corners=False)[0])]
    else:
        strips = _grid_strips(src, height, width, max(1, max_elements // max(1, c * width)))
    for r0, r1, strip in strips:
        # Channel-by-channel running maximum: much faster on CPU than argmax over the channel dimension.
        best = strip[0].clone()
        lab = torch.zeros(best.shape, dtype=torch.uint8)
        for k in range(1, c):
            lab[strip[k] > best] = k
            torch.maximum(best, strip[k], out=best)
        denom = torch.zeros_like(best)
        for k in range(c):
            denom += torch.exp(strip[k] - best)
        conf = denom.reciprocal_()  # softmax probability of the winning class
        labels[r0:r1] = lab.numpy()
        flat = lab.flatten().long()
        prob_sum += torch.bincount(flat, weights=conf.flatten().double(), minlength=c)[:c]
        counts += torch.bincount(flat, minlength=c)[:c].double()
    return labels, prob_sum.numpy(), counts.numpy()


def _grid_strips(src: torch.Tensor, height: int, width: int, rows: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Row strips of the bilinear upsampling of ``src`` (1 × C × h × w) via ``grid_sample``, which samples
    at the same source coordinates as ``F.interpolate(align_corners=False)``."""
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * (2.0 / width) - 1.0
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        ys = (torch.arange(r0, r1, dtype=torch.float32) + 0.5) * (2.0 / height) - 1.0
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).unsqueeze(0)
        yield r0, r1, F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


class GarmentParser:
    """A trained parser checkpoint ready for inference on CPU."""

    def __init__(
        self,
        model: ParserNet,
        version: str,
        working_size: int = DEFAULT_WORKING_SIZE,
        classes: tuple[str, ...] = PARSER_CLASSES,
        min_area_fraction: float = 0.005,
    ) -> None:
        if tuple(classes) != PARSER_CLASSES:
            raise ValueError(f"checkpoint classes {classes} differ from PARSER_CLASSES {PARSER_CLASSES}")
        self.model = model.eval()
        self.version = version
        self.working_size = int(working_size)
        self.min_area_fraction = float(min_area_fraction)
        self.path: Path | None = None

    # -------------------------------------------------------------------------------- loading
    @staticmethod
    def find_latest(root: Path | None = None) -> Path | None:
        """Newest ``parser.pt`` under ``<models_dir()>/parser/``; finished runs (model card status
        ``complete`` or ``stopped_early``) are preferred over runs still training or interrupted."""
        root = root if root is not None else models_dir() / "parser"
        if not root.is_dir():
            return None
        found = [p for p in root.glob(f"*/{CHECKPOINT_NAME}") if p.is_file()]
        if not found:
            return None

        def complete(path: Path) -> bool:
            card = path.parent / CARD_NAME
            try:
                return json.loads(card.read_text()).get("status") in ("complete", "stopped_early")
            except (OSError, ValueError):
                return False

        return max(found, key=lambda p: (complete(p), p.stat().st_mtime, p.parent.name))

    @classmethod
    def load(cls, path: Path | None = None) -> GarmentParser:
        """Load a checkpoint (a ``parser.pt`` or the folder holding it); by default the newest one
        under ``models_dir()/parser/``."""
        if path is None:
            found = cls.find_latest()
            if found is None:
                raise AssetMissing(
                    f"no garment parser checkpoint under {models_dir() / 'parser'}; run `{TRAIN_COMMAND}` "
                    "(it trains on ../shared/data/ccp and viton) or pass a checkpoint path"
                )
            path = found
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_NAME
        if not path.is_file():
            raise AssetMissing(f"garment parser checkpoint {path} does not exist; run `{TRAIN_COMMAND}`")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a garment parser checkpoint (format {CHECKPOINT_FORMAT})")
        config: dict[str, Any] = payload["config"]
        model = ParserNet(
            num_classes=len(config["classes"]),
            decoder_channels=tuple(config["decoder_channels"]),
            pretrained=False,
        )
        model.load_state_dict(payload["model"])
        # channels-last convolutions: 19 % faster on the CPU for the same logits (within 1e-5)
        model.to(memory_format=torch.channels_last)
        parser = cls(
            model,
            version=str(payload["version"]),
            working_size=int(config["working_size"]),
            classes=tuple(config["classes"]),
        )
        parser.path = path
        return parser

    # ------------------------------------------------------------------------------ inference
    @torch.inference_mode()
    def logits_batch(self, images: list[Image.Image], working_size: int | None = None) -> list[torch.Tensor]:
        """Per image, C × h × w logits at the working resolution (padding removed); ``working_size``:
        another long side than the parser's own."""
        if not images:
            return []
        inputs = [to_input(im, working_size or self.working_size) for im in images]
        hmax = round_up(max(s[0] for _, s in inputs))
        wmax = round_up(max(s[1] for _, s in inputs))
        batch = torch.zeros(len(inputs), 3, hmax, wmax)  # 0 = mid-grey after normalisation
        for i, (x, (h, w)) in enumerate(inputs):
            batch[i, :, :h, :w] = x
        out = self.model(batch.contiguous(memory_format=torch.channels_last))
        return [out[i, :, :h, :w] for i, (_, (h, w)) in enumerate(inputs)]

    def parse(self, image: Image.Image, working_size: int | None = None) -> ParseResult:
        return self.parse_batch([image], working_size)[0]

    @torch.inference_mode()
    def parse_batch(self, images: list[Image.Image], working_size: int | None = None) -> list[ParseResult]:
        results = []
        for image, logits in zip(images, self.logits_batch(images, working_size), strict=True):
            labels, prob_sum, counts = upsample_labels(logits, image.height, image.width)
            results.append(parse_result(labels, prob_sum, counts, self.min_area_fraction))
        return results


def parser_newest_or_fallback() -> Parser:
    """The newest parser checkpoint under the models folder, else the fallback parser — what the
    evaluation tools measure without a database (the shop serves its registry's active parser)."""
    found = GarmentParser.find_latest()
    return parser_at(str(found.parent) if found is not None else FALLBACK_PARSER)


@functools.lru_cache(maxsize=1)
def garment_parser() -> GarmentParser:
    """The newest parser checkpoint under the models folder (evaluation and training tools; the shop
    serves the version its model registry has active, see ``lifecycle.selectors``)."""
    return GarmentParser.load()
