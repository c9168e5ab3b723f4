"""The served models exported to ONNX answer as the torch models do (vision/onnx_export.py,
vision/onnx_serving.py): the same vectors for the same words and photos, the same garments from the
same photo, on the test run's real-architecture checkpoints. No database, no services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.support.checkpoints import synthetic_garments
from vision import onnx_serving
from vision.assets import REPO
from vision.clip import load_embedder
from vision.onnx_export import export_embedder, export_parser
from vision.onnx_serving import SERVING_NAME, OnnxEmbedder, OnnxParser, export_current
from vision.parser import GarmentParser

VITON = REPO.parent / "shared" / "data" / "viton" / "image"
TOLERANCE = 1e-4


def photos() -> list[Image.Image]:
    """Real studio photos where the shared data is present (else drawn ones), in several shapes and modes."""
    found = sorted(VITON.glob("*.jpg"))[:3] if VITON.is_dir() else []
    images = [Image.open(path).convert("RGB") for path in found]
    images += synthetic_garments()[0][:2]
    wide = Image.new("RGBA", (420, 150), (0, 0, 0, 0))  # a transparent cut-out: composited on white
    ImageDraw.Draw(wide).ellipse([20, 10, 400, 140], fill=(30, 120, 60, 255))
    images.append(wide)
    images.append(Image.new("L", (64, 64), 90))  # grey, tiny
    return images


@pytest.fixture(scope="module")
def exported(test_models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("onnx")
    parser_folder = GarmentParser.find_latest(test_models / "parser")
    assert parser_folder is not None
    return {
        "embedder_model": test_models / "embedder" / "test-embedder",
        "embedder": export_embedder(test_models / "embedder" / "test-embedder", out / "embedder"),
        "parser_model": parser_folder.parent,
        "parser": export_parser(parser_folder.parent, out / "parser"),
    }


def test_the_exported_embedder_gives_the_torch_vectors_for_words_and_photos(exported):
    torch_model = load_embedder(f"local-dir:{exported['embedder_model']}")
    served = OnnxEmbedder.load(exported["embedder"])
    texts = [
        "black striped t-shirt",
        "  Something WARM for a   cold winter walk ",
        "caf\u00e9 &amp; r\u00e9sum\u00e9 dress",  # an HTML entity and accents: cleaned as open_clip cleans
        "dress " * 80,  # longer than the context: truncated the same way
        "",
    ]
    want_shared, want_sentences = torch_model.encode_texts_and_sentences(texts)
    got_shared, got_sentences = served.encode_texts_and_sentences(texts)
    assert want_sentences is not None and got_sentences is not None
    assert np.abs(want_shared - got_shared).max() < TOLERANCE
    assert np.abs(want_sentences - got_sentences).max() < TOLERANCE
    # a batch pads to its longest text, one text to itself: the same vector either way
    assert np.abs(served.encode_texts([texts[0]])[0] - got_shared[0]).max() < TOLERANCE
    images = photos()
    assert np.abs(torch_model.encode_images(images) - served.encode_images(images)).max() < TOLERANCE
    assert served.encode_images([]).shape == (0, torch_model.dim)
    assert (served.name, served.version, served.dim) == (torch_model.name, torch_model.version, torch_model.dim)


def test_the_word_vectors_are_read_row_by_row_not_mapped(exported):
    """The text tower's word-vector table is read with pread: the rows are the tower's own, and no
    process maps the table (mapped, every row read kept its 64 KB neighbourhood resident)."""
    torch_model = load_embedder(f"local-dir:{exported['embedder_model']}")
    table = torch_model.model.text.transformer.get_input_embeddings().weight.detach().numpy()
    served = OnnxEmbedder.load(exported["embedder"])
    ids = np.array([[0, 5, table.shape[0] - 1], [5, 5, 7]])
    assert np.array_equal(served.token_vectors.lookup(ids), table[ids])
    served.encode_texts([f"word{i} dress {i}" for i in range(300)])
    maps = Path("/proc/self/maps").read_text()
    assert str(exported["embedder"] / "text.weights") in maps  # the transformer's weights: mapped, shared
    assert onnx_serving.TOKENS_NAME not in maps
    with pytest.raises(ValueError, match="outside the table"):
        served.token_vectors.lookup(np.array([[table.shape[0]]]))


def test_a_token_table_of_the_wrong_size_is_refused(exported, tmp_path):
    table = json.loads((exported["embedder"] / SERVING_NAME).read_text())["text"]["tokens"]
    whole = tmp_path / "whole.tokens"
    whole.write_bytes((exported["embedder"] / onnx_serving.TOKENS_NAME).read_bytes())
    assert onnx_serving.TokenVectors(whole, table["rows"], table["width"]).rows == table["rows"]
    short = tmp_path / "short.tokens"  # an interrupted copy
    short.write_bytes(whole.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"not \d+ rows of \d+ float32 values"):
        onnx_serving.TokenVectors(short, table["rows"], table["width"])


def test_the_exported_parser_finds_the_torch_parsers_garments(exported):
    torch_parser = GarmentParser.load(exported["parser_model"])
    served = OnnxParser.load(exported["parser"])
    for image in photos():
        want, got = torch_parser.parse(image), served.parse(image)
        assert got.labels.shape == want.labels.shape
        assert (got.labels == want.labels).mean() > 0.999
        assert [g.label for g in got.garments] == [g.label for g in want.garments]
        for a, b in zip(want.garments, got.garments, strict=True):
            assert np.abs(np.subtract(a.box, b.box)).max() <= 1
            assert abs(a.score - b.score) < 1e-3


def test_a_parser_reads_a_photo_at_a_smaller_working_size_when_asked(exported):
    """A shopper's photo is parsed at a smaller long side than the catalog's (SEARCH_PHOTO_PARSE_SIZE):
    both runtimes read it at that size, and the labels still cover the photo's own pixels."""
    torch_parser = GarmentParser.load(exported["parser_model"])
    served = OnnxParser.load(exported["parser"])
    image = photos()[0]
    small = served.working_size * 5 // 6
    logits, own = served.logits(image, small), served.logits(image)
    assert max(logits.shape[1:]) == small and max(own.shape[1:]) == served.working_size
    want, got = torch_parser.parse(image, small), served.parse(image, small)
    assert got.labels.shape == want.labels.shape == (image.height, image.width)
    assert (got.labels == want.labels).mean() > 0.999
    assert [g.label for g in got.garments] == [g.label for g in want.garments]


def test_a_large_photo_is_labelled_in_strips_as_a_whole(exported, monkeypatch):
    served = OnnxParser.load(exported["parser"])
    logits = np.random.RandomState(1).randn(10, 40, 30).astype(np.float32) * 3
    whole = served.upsample_labels(logits, 333, 250)
    monkeypatch.setattr(onnx_serving, "MAX_UPSAMPLE_ELEMENTS", 10 * 250 * 17)  # strips of 17 rows
    strips = served.upsample_labels(logits, 333, 250)
    assert (whole[0] == strips[0]).mean() > 0.9999
    assert np.allclose(whole[1], strips[1], rtol=1e-4)
    assert whole[2].sum() == strips[2].sum() == 333 * 250
    from vision.parser import upsample_labels

    want = upsample_labels(torch.from_numpy(logits), 333, 250)
    assert (want[0] == strips[0]).mean() > 0.9999


def test_an_export_is_current_until_the_weights_change(exported, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "parser.pt").write_bytes(b"weights")
    out = tmp_path / "export"
    out.mkdir()
    serving = json.loads((exported["parser"] / SERVING_NAME).read_text())
    serving["source"] = onnx_serving.source_fingerprint(model)
    (out / SERVING_NAME).write_text(json.dumps(serving))
    assert export_current(model, out)
    os.utime(model / "parser.pt", ns=(1, 1))  # new weights
    assert not export_current(model, out)
    serving["source"] = onnx_serving.source_fingerprint(model)
    (out / SERVING_NAME).write_text(json.dumps(serving))
    assert export_current(model, out)
    (out / SERVING_NAME).write_text(json.dumps({**serving, "format": "shop-onnx/1"}))  # an earlier layout
    assert not export_current(model, out)
    assert not export_current(model, tmp_path / "missing")


def test_a_model_the_runtime_cannot_serve_is_refused_and_nothing_is_written(tmp_path):
    folder = tmp_path / "hub-like"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "vision.onnx_export", "embedder", str(folder), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 2
    assert "no tokenizer.json" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_runtime_modules_import_without_torch():
    code = "import sys, vision.onnx_serving, vision.parsing, lifecycle.serving;print('torch' in sys.modules)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_a_model_that_cannot_be_exported_is_tried_once_and_left_to_torch(tmp_path, settings, monkeypatch):
    from lifecycle import serving

    settings.MODELS_DIR = tmp_path / "models"
    folder = tmp_path / "hub-like"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").write_bytes(b"weights")
    tries = []
    real = serving._export_now
    monkeypatch.setattr(serving, "_export_now", lambda *args: tries.append(args) or real(*args))
    monkeypatch.setattr(serving, "_unexportable", set())
    assert serving._export_ensure("embedder", str(folder)) is None  # no tokenizer.json: refused
    assert serving._export_ensure("embedder", str(folder)) is None
    assert len(tries) == 1
    os.utime(folder / "open_clip_model.safetensors", ns=(5, 5))  # new weights: worth another try
    assert serving._export_ensure("embedder", str(folder)) is None
    assert len(tries) == 2
