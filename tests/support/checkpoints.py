"""Small but real model checkpoints for the pipeline tests (the ``test_models`` fixture of tests/conftest.py).

The tests must not depend on the long training runs (a fresh CI machine has no trained models),
so they build checkpoints with the real architectures and the real pretrained towers in a
temporary models folder: the embedder with its projection heads as initialised, attribute heads
fitted on a few synthetic garments, and the garment parser with the ImageNet encoder and an
untrained decoder. Quality is measured by ``manage.py evaluate``, not by these tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vision.attributes import train_attribute_heads
from vision.clip import create_shop_model, encode_with_trunk, save_checkpoint, shop_preprocess
from vision.colour import colour_histogram
from vision.embedder_train import CatalogItem


def synthetic_garments() -> tuple[list[Image.Image], list[CatalogItem]]:
    images, items = [], []
    for i, (colour, rgb) in enumerate({"red": (200, 30, 30), "blue": (30, 60, 200), "black": (20, 20, 20)}.items()):
        for j, shape in enumerate(("dress", "trousers")):
            img = Image.new("RGB", (120, 180), (255, 255, 255))
            ImageDraw.Draw(img).rectangle([30 + 5 * j, 20, 90 - 5 * j, 160 - 20 * j], fill=rgb)
            images.append(img)
            items.append(
                CatalogItem(
                    key=f"s{i}{j}",
                    image=Path("."),
                    title=shape,
                    description="",
                    category=shape,
                    colour=colour,
                    pattern=("solid", "striped")[(i + j) % 2],
                )
            )
    return images, items


def build_test_models(root: Path) -> Path:
    """Write an embedder and a parser checkpoint under ``root`` (a models folder); returns root."""
    from vision.parser import CHECKPOINT_FORMAT, DEFAULT_DECODER_CHANNELS, PARSER_CLASSES, ParserNet

    torch.manual_seed(0)
    model, config = create_shop_model()
    folder = save_checkpoint(model, config, root / "embedder" / "test-embedder", {"version": "test-embedder"})
    images, items = synthetic_garments()

    preprocess = shop_preprocess(config)
    trunk, _ = encode_with_trunk(model.eval(), preprocess, images)
    colour = np.stack([colour_histogram(im) for im in images])
    # no input dropout here: the parser's untrained decoder below is drawn from the random stream
    # after this fit, and the photo-search tests' catalogs were made for that draw (linear heads, as then)
    train_attribute_heads(trunk, colour, items, hidden={}, min_examples=1, input_dropout=0.0).save(folder)

    net = ParserNet(pretrained=True).eval()
    parser_dir = root / "parser" / "test-parser"
    parser_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": "test-parser",
            "config": {
                "classes": list(PARSER_CLASSES),
                "decoder_channels": list(DEFAULT_DECODER_CHANNELS),
                "working_size": 256,
            },
            "model": net.state_dict(),
        },
        parser_dir / "parser.pt",
    )
    (parser_dir / "model_card.json").write_text('{"status": "complete", "version": "test-parser"}')
    return root


def parser_serve(models_root: Path, version: str = "scene-parser") -> None:
    """Register the newest parser checkpoint under ``models_root`` and make the registry serve it (the
    shop serves what its registry has active, never simply the newest folder). Needs the database."""
    from lifecycle import services as lifecycle_services
    from vision.parser import GarmentParser

    found = GarmentParser.find_latest(Path(models_root) / "parser")
    assert found is not None, f"no parser checkpoint under {models_root}"
    row = lifecycle_services.version_register(kind="parser", version=version, location=str(found.parent))
    lifecycle_services.version_promote(row)


def reset_parser_cache() -> None:
    from vision import parser

    clear = getattr(parser.garment_parser, "cache_clear", None)
    if clear:
        clear()
    parser.parser_at.cache_clear()
