"""Garment-mask baselines the shop's parser is compared with (evaluation only).

- :class:`U2NetPBaseline`: rembg's ``u2netp`` salient-object cut-out (everything salient, person included).
- :class:`PanBaseline`: the PAN skin/clothes/hair net from ``../shared/models``; its clothes channel.
- :class:`U2NetPMinusPanBaseline`: the u2netp cut-out minus PAN's skin and hair (a cheap combination).

Each has ``garment_mask(image) -> np.ndarray`` (bool, image H × W).

:class:`FallbackParser` serves the best of them as a parser (``parse(image) -> ParseResult``) while the
shop has no trained garment parser: u2netp minus PAN's skin and hair (CCP dev Dice 0.857 against
u2netp's 0.781), or u2netp alone where the PAN file is not installed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from vision.assets import IMAGENET_MEAN, IMAGENET_STD, AssetMissing, pan_onnx, u2netp_onnx

logger = logging.getLogger(__name__)


def _session_options(threads: int | None, arena: bool = True) -> Any:
    """``arena=False``: no memory arena, which keeps the largest photo's buffers for the life of the
    process (the fallback parser after 15 VITON photos: 602 MB resident with it, 85 MB without), at
    10–20 % more time per photo — what a web process wants; a worker keeps the arena's speed."""
    from vision.ort_runtime import onnxruntime

    ort = onnxruntime()

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    if not arena:  # a web process: its threads do not spin between runs (see vision.onnx_serving)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


class U2NetPBaseline:
    """rembg's ``u2netp`` salient-object net, run by onnxruntime exactly as ``rembg.remove(image,
    session=new_session("u2netp"), only_mask=True)`` runs it (the same steps, checked against rembg by
    tests/unit/test_baselines.py) without importing rembg, whose numba and scikit-image cost a web
    process serving the fallback parser about 220 MB."""

    name = "u2netp"
    SIZE = (320, 320)
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, model_path: Path | None = None, threads: int | None = None, arena: bool = True) -> None:
        from vision.ort_runtime import onnxruntime

        ort = onnxruntime()

        path = Path(model_path) if model_path is not None else u2netp_onnx()
        self.session = ort.InferenceSession(
            str(path), sess_options=_session_options(threads, arena), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def probability(self, image: Image.Image) -> np.ndarray:
        """Saliency in [0, 1], image H × W."""
        rgb = ImageOps.exif_transpose(image.convert("RGB"))  # as rembg.remove does first
        pixels = np.array(rgb.resize(self.SIZE, Image.Resampling.LANCZOS))
        pixels = pixels / max(np.max(pixels), 1e-6)
        x = (pixels - np.asarray(self.MEAN)) / np.asarray(self.STD)
        pred = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None].astype(np.float32)})[0][:, 0]
        pred = np.squeeze((pred - np.min(pred)) / (np.max(pred) - np.min(pred)))
        mask = Image.fromarray((pred * 255).astype("uint8"), mode="L").resize(rgb.size, Image.Resampling.LANCZOS)
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.Resampling.BILINEAR)
        return np.asarray(mask, dtype=np.float32) / 255.0

    def garment_mask(self, image: Image.Image) -> np.ndarray:
        return self.probability(image) >= 0.5


class PanBaseline:
    """PAN (MobileNetV3-small) with three sigmoid channels: skin, clothes, hair (input 512 × 512, ImageNet norm)."""

    name = "pan"
    SIZE = 512
    CHANNELS = ("skin", "clothes", "hair")

    def __init__(self, model_path: Path | None = None, threads: int | None = None, arena: bool = True) -> None:
        from vision.ort_runtime import onnxruntime

        ort = onnxruntime()

        path = Path(model_path) if model_path is not None else pan_onnx()
        self.session = ort.InferenceSession(
            str(path), sess_options=_session_options(threads, arena), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, image: Image.Image) -> dict[str, np.ndarray]:
        """Per channel, the probability map resized back to the image (H × W float32)."""
        rgb = image.convert("RGB").resize((self.SIZE, self.SIZE), Image.Resampling.BILINEAR)
        x = (np.asarray(rgb, dtype=np.float32) / 255.0 - np.array(IMAGENET_MEAN, np.float32)) / np.array(
            IMAGENET_STD, np.float32
        )
        out = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})[0][0]
        maps = {}
        for name, channel in zip(self.CHANNELS, out, strict=True):
            prob = Image.fromarray(channel.astype(np.float32), mode="F").resize(image.size, Image.Resampling.BILINEAR)
            maps[name] = np.asarray(prob, dtype=np.float32)
        return maps

    def masks(self, image: Image.Image) -> dict[str, np.ndarray]:
        return {name: prob >= 0.5 for name, prob in self.probabilities(image).items()}

    def garment_mask(self, image: Image.Image) -> np.ndarray:
        return self.masks(image)["clothes"]


class U2NetPMinusPanBaseline:
    """u2netp's salient object minus PAN's skin and hair: a person's clothes without their body."""

    name = "u2netp-minus-pan-skin-hair"

    def __init__(self, u2netp: U2NetPBaseline | None = None, pan: PanBaseline | None = None) -> None:
        self.u2netp = u2netp or U2NetPBaseline()
        self.pan = pan or PanBaseline()

    @staticmethod
    def combine(salient: np.ndarray, pan_masks: dict[str, np.ndarray]) -> np.ndarray:
        return salient & ~(pan_masks["skin"] | pan_masks["hair"])

    def garment_mask(self, image: Image.Image) -> np.ndarray:
        return self.combine(self.u2netp.garment_mask(image), self.pan.masks(image))


class FallbackParser:
    """A parser that needs no training: one class-less item per photo (all garments together), never
    the person's skin or hair when PAN is installed. Its ``version`` names the method, so images it
    processed are known and redone when a trained parser becomes active."""

    MIN_SHARE = 0.004  # an item smaller than this share of the photo is noise

    def __init__(self, threads: int | None = None, arena: bool = True) -> None:
        from vision.parsing import FALLBACK_PREFIX

        self.u2netp = U2NetPBaseline(threads=threads, arena=arena)
        try:
            self.pan: PanBaseline | None = PanBaseline(threads=threads, arena=arena)
            self.method = U2NetPMinusPanBaseline.name
        except AssetMissing as exc:
            logger.warning("fallback parser without PAN (%s): u2netp alone keeps skin and hair", exc)
            self.pan = None
            self.method = U2NetPBaseline.name
        self.version = FALLBACK_PREFIX + self.method

    def parse(self, image: Image.Image, working_size: int | None = None) -> Any:
        """One item mask; ``working_size`` is ignored (u2netp and PAN read fixed input sizes)."""
        from vision.parsing import PARSER_CLASSES, Garment, ParseResult, mask_box

        rgb = image.convert("RGB")
        probability = self.u2netp.probability(rgb)
        salient = probability >= 0.5
        labels = np.zeros(salient.shape, dtype=np.uint8)
        if self.pan is not None:
            masks = self.pan.masks(rgb)
            labels[masks["skin"]] = PARSER_CLASSES.index("skin")
            labels[masks["hair"]] = PARSER_CLASSES.index("hair")
            items = U2NetPMinusPanBaseline.combine(salient, masks)
        else:
            items = salient
        garments = []
        if items.sum() >= max(1.0, self.MIN_SHARE * items.size):
            score = float(probability[items].mean())
            garments.append(Garment("item", mask_box(items), items, score))
        return ParseResult(labels=labels, garments=garments, items=items)
