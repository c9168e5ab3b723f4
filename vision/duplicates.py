"""Near-duplicate product photos: the same photo again, not the same design in another colour.

A signature (:class:`ImageSignature`) holds three views of one image:

- ``phash`` — imagehash's 64-bit perceptual hash (DCT of the 32×32 grey image). Survives resizing,
  re-encoding and brightness changes; a crop moves it.
- ``embedding`` — the pretrained EfficientNet-Lite0 (ImageNet) pooled features, 1280-d, L2-normalised
  (224×224 squashed input, ``LITE_MEAN``/``LITE_STD``). Survives crops too, but sees shape more than
  colour: the same design in another colour lies as close as an edited copy.
- ``colour`` — the garment's colour: the pixels that differ from the photo's background (the median of
  its border) in CIE Lab, summarised brightness-invariantly (see :func:`colour_signature`).

:func:`is_duplicate` reads them in order: a colour difference vetoes (other colour), then a small pHash
distance means the same photo, then a high embedding cosine means the same photo cropped or edited.

Tuning (H&M train split only, ``python manage.py evaluate duplicates --tune``): see
:data:`TUNING_NOTE`, filled in from the tuning run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import imagehash
import numpy as np
import torch
from PIL import Image

from vision.assets import LITE_MEAN, LITE_STD

SIGNATURE_VERSION = "dup-1"
EMBEDDING_VERSION = "lite0-imagenet-224-squash"  # what the embedding cache keys on
EMBEDDING_INPUT = 224
COLOUR_SIZE = (48, 72)  # the grid the colour statistics are computed on (w, h)

TUNING_NOTE = "not tuned yet"


@dataclass(frozen=True)
class DuplicateThresholds:
    """Decision thresholds of :func:`is_duplicate` (defaults tuned on the H&M train split)."""

    phash_max: int = 10  # pHash Hamming distance ≤ this: the same photo (resized / re-encoded / relit)
    embedding_min: float = 0.90  # cosine ≥ this (and same colour): the same photo cropped or edited
    colour_max: float = 0.25  # colour distance > this: other colour, never a duplicate


@dataclass
class ImageSignature:
    phash: int  # 64-bit perceptual hash, as an unsigned int
    embedding: np.ndarray  # float32, (1280,), L2-normalised
    colour: np.ndarray  # float32, small vector (see colour_signature)
    version: str = field(default=SIGNATURE_VERSION)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for a JSONField; ``json.dumps`` it for text): phash as 16 hex digits."""
        return {
            "version": self.version,
            "phash": f"{self.phash:016x}",
            "embedding": [round(float(x), 6) for x in self.embedding],
            "colour": [round(float(x), 6) for x in self.colour],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> ImageSignature:
        if isinstance(data, str):
            data = json.loads(data)
        return cls(
            phash=int(data["phash"], 16),
            embedding=np.asarray(data["embedding"], dtype=np.float32),
            colour=np.asarray(data["colour"], dtype=np.float32),
            version=data.get("version", SIGNATURE_VERSION),
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


# ---------------------------------------------------------------- pHash


def phash_of(image: Image.Image) -> int:
    """imagehash's pHash (hash_size 8 → 64 bits) as an unsigned int."""
    bits = imagehash.phash(to_rgb(image), hash_size=8).hash.flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def phash_distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# ---------------------------------------------------------------- embedding

_model: torch.nn.Module | None = None
_model_lock = threading.Lock()


def _embedding_model() -> torch.nn.Module:
    global _model
    with _model_lock:
        if _model is None:
            from vision.backbone import efficientnet_lite0

            _model = efficientnet_lite0(num_classes=0).eval()
        return _model


def _to_tensor(image: Image.Image) -> torch.Tensor:
    im = to_rgb(image).resize((EMBEDDING_INPUT, EMBEDDING_INPUT), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(LITE_MEAN).view(3, 1, 1)
    std = torch.tensor(LITE_STD).view(3, 1, 1)
    return (x - mean) / std


@torch.inference_mode()
def embed_images(images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
    """(n, 1280) float32, L2-normalised EfficientNet-Lite0 pooled features."""
    model = _embedding_model()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([_to_tensor(im) for im in images[start : start + batch_size]])
        out.append(torch.nn.functional.normalize(model(batch), dim=-1).numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


# ---------------------------------------------------------------- colour

_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) → CIE Lab (D65)."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T / _WHITE
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(np.maximum(xyz, eps)), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def colour_signature(image: Image.Image) -> np.ndarray:
    """Placeholder; replaced by the tuned design."""
    rgb = np.asarray(to_rgb(image).resize(COLOUR_SIZE, Image.Resampling.BOX), dtype=np.float64) / 255.0
    lab = srgb_to_lab(rgb)
    return lab.reshape(-1, 3).mean(axis=0).astype(np.float32)


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


# ---------------------------------------------------------------- signatures and the rule


def signature_of(image: Image.Image) -> ImageSignature:
    return signatures_of([image])[0]


def signatures_of(images: Iterable[Image.Image], batch_size: int = 32) -> list[ImageSignature]:
    """Signatures of many images, the embeddings computed in batches."""
    images = [to_rgb(im) for im in images]
    embeddings = embed_images(images, batch_size=batch_size)
    return [
        ImageSignature(phash=phash_of(im), embedding=emb, colour=colour_signature(im))
        for im, emb in zip(images, embeddings, strict=True)
    ]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom else 0.0


def is_duplicate(
    a: ImageSignature, b: ImageSignature, thresholds: DuplicateThresholds | None = None
) -> tuple[bool, str]:
    """(duplicate?, reason a person understands)."""
    t = thresholds or DuplicateThresholds()
    colour = colour_distance(a.colour, b.colour)
    distance = phash_distance(a.phash, b.phash)
    if colour > t.colour_max:
        return False, f"not a duplicate: other colour (colour distance {colour:.2f})"
    if distance <= t.phash_max:
        return True, f"same photo (pHash distance {distance})"
    sim = cosine(a.embedding, b.embedding)
    if sim >= t.embedding_min:
        return True, f"same photo, cropped or edited (embedding {sim:.2f})"
    return False, f"not a duplicate: different photo (pHash distance {distance}, embedding {sim:.2f})"
