"""What the library is told from outside: where models live, which CLIP model to serve, where the PAN
baseline is, and whether Hugging Face libraries may reach a hub.

``vision`` reads no environment variable and no application settings. An application calls
:func:`configure` once at start-up, with a :class:`VisionConfig` or a function returning one (the shop
passes a function reading its Django settings, so a setting changed later — as tests do — is seen at
the next use); until then the defaults below apply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = Path.home() / ".cache" / "fashion-shop" / "models"
DEFAULT_PAN_ONNX = REPO.parent / "shared" / "models" / "pan_mnv3s_skin_clothes_hair.onnx"


@dataclass(frozen=True)
class VisionConfig:
    # trained models and the unpacked pretrained pieces (``parser/``, ``embedder/``, ``u2net/`` …)
    models_dir: Path = field(default_factory=lambda: DEFAULT_MODELS_DIR)
    # an open_clip model to serve instead of the newest trained one (e.g. ``ViT-B-32``, ``hf-hub:…``)
    clip_model: str = ""
    clip_pretrained: str = ""  # its pretrained tag (e.g. ``laion2b_s34b_b79k``)
    pan_onnx: Path = field(default_factory=lambda: DEFAULT_PAN_ONNX)  # the PAN segmentation baseline
    # resolve Hugging Face names from the local cache only (no hub is reachable from the shop's machines)
    hf_offline: bool = True


ConfigSource = VisionConfig | Callable[[], VisionConfig]

_source: ConfigSource = VisionConfig()


def configure(source: ConfigSource) -> None:
    """Set the library's configuration: a :class:`VisionConfig`, or a function that returns the current
    one (called at each use). Applies ``hf_offline`` at once, before any Hugging Face library is imported."""
    global _source
    _source = source
    if current().hf_offline:
        hub_offline()


def current() -> VisionConfig:
    """The configuration in force."""
    return _source() if callable(_source) else _source


def hub_offline() -> None:
    """Tell the Hugging Face libraries to resolve names from the local cache only (they read these
    variables when first imported). Leaves a value the process was started with alone."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
