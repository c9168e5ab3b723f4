from pathlib import Path

from django.apps import AppConfig

from vision.config import VisionConfig


def vision_config() -> VisionConfig:
    """vision/'s configuration, read from the settings at each use (a test that changes MODELS_DIR is seen)."""
    from django.conf import settings

    return VisionConfig(
        models_dir=Path(settings.MODELS_DIR),
        clip_model=settings.SHOP_CLIP_MODEL,
        clip_pretrained=settings.SHOP_CLIP_PRETRAINED,
        pan_onnx=Path(settings.SHOP_PAN_ONNX),
        hf_offline=settings.SHOP_HF_OFFLINE,
    )


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        import vision

        vision.configure(vision_config)
