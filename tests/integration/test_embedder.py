"""The image–text embedder: building, saving/loading through open_clip, the hub-model switch, and a
tiny real training run (real towers, cached features) that improves retrieval. Real model weights and
training runs (seconds to minutes each): the quick checks of the embedder are tests/unit/test_embedder.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vision.attributes import AttributeHeads, train_attribute_heads
from vision.clip import create_shop_model, latest_checkpoint, load_embedder, save_checkpoint, shop_preprocess
from vision.colour import DESCRIPTOR_SIZE, SIZE
from vision.embedder_train import (
    CatalogItem,
    EmbedderTrainConfig,
    EmbedderTrainData,
    build_features,
    heldout_metrics,
    pooled_features,
    train_heads,
    trunk_features,
)

COLOURS = {"red": (200, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 200), "yellow": (230, 210, 30)}
SHAPES = ("dress", "trousers")


def synthetic_items(folder: Path, per_kind: int, seed: int) -> list[CatalogItem]:
    """Flat-colour garments on white: a dress is a trapezoid, trousers two legs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for colour, rgb in COLOURS.items():
        for shape in SHAPES:
            for i in range(per_kind):
                img = Image.new("RGB", (120, 180), (255, 255, 255))
                draw = ImageDraw.Draw(img)
                jitter = tuple(int(c + rng.integers(-20, 20)) for c in rgb)
                dx = int(rng.integers(-8, 8))
                if shape == "dress":
                    draw.polygon([(45 + dx, 20), (75 + dx, 20), (100 + dx, 160), (20 + dx, 160)], fill=jitter)
                else:
                    draw.rectangle([30 + dx, 20, 58 + dx, 165], fill=jitter)
                    draw.rectangle([62 + dx, 20, 90 + dx, 165], fill=jitter)
                path = folder / f"{colour}-{shape}-{i}.png"
                img.save(path)
                items.append(
                    CatalogItem(
                        key=f"{colour}-{shape}-{seed}-{i}",
                        image=path,
                        title=f"{shape} {i}",
                        description=f"A {shape}.",
                        category=shape,
                        colour=colour,
                        pattern="solid",
                    )
                )
    return items


@pytest.fixture(scope="module")
def shop_model():
    return create_shop_model()


def test_save_and_load_through_open_clip_local_dir(shop_model, tmp_path):
    model, config = shop_model
    folder = save_checkpoint(model, config, tmp_path / "embedder" / "v-test", {"version": "v-test"})
    assert latest_checkpoint(tmp_path) == folder
    embedder = load_embedder(f"local-dir:{folder}")
    assert embedder.version == "v-test" and embedder.dim == config["model_cfg"]["embed_dim"]
    images = embedder.encode_images([Image.new("RGB", (90, 140), (200, 0, 0)), Image.new("RGBA", (50, 50))])
    texts = embedder.encode_texts(["red dress", "blue jeans", ""])
    assert images.shape == (2, 256) and texts.shape == (3, 256)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-4)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-4)
    # The saved weights are the ones loaded (trunk and text tower alike).
    saved = model.state_dict()
    loaded = embedder.model.state_dict()
    assert all(np.array_equal(saved[k].numpy(), loaded[k].numpy()) for k in saved)


def test_a_hub_model_name_goes_through_the_same_code_path():
    """Here no hub is reachable, so the architecture is built without its pretrained weights; with
    SHOP_CLIP_PRETRAINED=laion2b_s34b_b79k on a machine with a hub the same call downloads them."""
    embedder = load_embedder("ViT-B-32", pretrained=None)
    vectors = embedder.encode_texts(["a red dress"])
    assert embedder.dim == 512 and vectors.shape == (1, 512)
    assert embedder.encode_images([Image.new("RGB", (64, 64))]).shape == (1, 512)


def test_tiny_training_run_improves_attribute_retrieval(shop_model, tmp_path):
    import open_clip

    from vision.assets import minilm_dir

    model, config = shop_model
    preprocess = shop_preprocess(config)
    tokenizer = open_clip.tokenizer.HFTokenizer(str(minilm_dir()), context_length=64)
    train = EmbedderTrainData(items=synthetic_items(tmp_path / "train", 4, seed=1))
    held = EmbedderTrainData(items=synthetic_items(tmp_path / "held", 3, seed=2))
    feats = build_features(model, preprocess, tokenizer, train, tmp_path / "cache")
    held_feats = build_features(model, preprocess, tokenizer, held, tmp_path / "cache")
    before = heldout_metrics(model, held_feats, min_relevant=3)
    history = train_heads(model, feats, EmbedderTrainConfig(epochs=60, batch_size=32, lr=3e-3))
    after = heldout_metrics(model, held_feats, min_relevant=3)
    assert history[-1] < history[0]
    # attr3 queries ("red solid dress") have 3 relevant items each: P@10 is at most 0.3.
    assert after["attr3_p@10"] > before["attr3_p@10"] + 0.1, (before, after)
    assert after["attr3_p@10"] >= 0.25

    train_pooled = pooled_features(model, feats.image[0])
    held_pooled = pooled_features(model, held_feats.image[0])
    assert train_pooled.shape == (len(train.items), 1280)
    assert feats.colour.shape == (len(train.items), DESCRIPTOR_SIZE)
    heads = train_attribute_heads(
        train_pooled,
        feats.colour,
        train.items,
        held_pooled,
        held_feats.colour,
        held.items,
        train_whole=pooled_features(model, feats.whole),
        held_whole=pooled_features(model, held_feats.whole),
        min_examples=2,
    )
    assert heads.metrics["colour_top1"] >= 0.9 and heads.metrics["category_top1"] >= 0.9, heads.metrics
    heads.save(tmp_path)
    again = AttributeHeads.load(tmp_path)
    assert again.uses_whole and again.colour_size == DESCRIPTOR_SIZE
    held_whole = pooled_features(model, held_feats.whole)
    prediction = again.predict(held_pooled[:1], held_feats.colour[:1], held_whole[:1])[0]
    assert prediction["colour"].value == held.items[0].colour
    assert 0 < prediction["colour"].confidence <= 1
    with pytest.raises(ValueError, match="whole photo"):
        again.predict(held_pooled[:1], held_feats.colour[:1])
    with pytest.raises(ValueError, match="colour_descriptor"):
        again.predict(held_pooled[:1], held_feats.colour[:1, :SIZE], held_whole[:1])


def test_heads_fitted_on_the_histogram_alone_still_load_and_predict(tmp_path):
    """Heads saved before the whole photo and the Lab figures were read (cutout trunk + the 79-value
    histogram) take the full colour descriptor and ignore what they were not fitted on."""
    rng = np.random.default_rng(0)
    items = [
        CatalogItem(f"k{i}", Path("."), "t", "", ("dress", "skirt")[i % 2], ("red", "blue")[i % 2], "solid")
        for i in range(20)
    ]
    trunk = rng.normal(size=(20, 16)).astype(np.float32)
    trunk[:, 0] += np.array([4.0 * (i % 2) for i in range(20)])
    colour = rng.random((20, DESCRIPTOR_SIZE)).astype(np.float32)
    heads = train_attribute_heads(trunk, colour[:, :SIZE], items, min_examples=1)
    heads.save(tmp_path)
    old = AttributeHeads.load(tmp_path)
    assert old.colour_size == SIZE and not old.uses_whole
    whole = rng.normal(size=(20, 16)).astype(np.float32)
    full = old.predict(trunk, colour, whole)
    assert [p["category"].value for p in full] == [p["category"].value for p in old.predict(trunk, colour[:, :SIZE])]
    assert sum(p["category"].value == it.category for p, it in zip(full, items, strict=True)) >= 18


def test_training_views_are_the_pipelines_cutouts(test_models, tmp_path):
    """Photos without a mask are cut out by the garment parser before training (the view the
    pipeline embeds), the masks cached per photo and parser version; a given mask is kept."""
    from vision.embedder_train import product_view, with_parser_masks
    from vision.parser import garment_parser

    items = synthetic_items(tmp_path / "photos", 1, seed=3)[:3]
    given = tmp_path / "given-mask.png"
    mask = np.zeros((180, 120), np.uint8)
    mask[30:150, 40:80] = 255
    Image.fromarray(mask).save(given)
    items[0].mask = given
    cache = tmp_path / "cache"
    masked = with_parser_masks(items, cache)
    assert masked[0].mask == given and all(it.mask is None for it in items[1:])  # the inputs are not changed
    stored = sorted((cache / "parser-masks").iterdir())
    assert len(stored) == 2 and {p.suffix for p in stored} <= {".png", ".none"}
    for item, out in zip(items[1:], masked[1:], strict=True):
        parsed = garment_parser().parse(Image.open(item.image).convert("RGB")).item_mask()
        found = parsed.sum() > 0.002 * parsed.size
        assert (out.mask is not None) == found
        if found:
            assert np.array_equal(np.asarray(Image.open(out.mask)) >= 128, parsed)
    stamps = [p.stat().st_mtime_ns for p in stored]
    again = with_parser_masks(items, cache)
    assert [it.mask for it in again] == [it.mask for it in masked]
    assert [p.stat().st_mtime_ns for p in sorted((cache / "parser-masks").iterdir())] == stamps
    view = product_view(masked[0])
    assert view.size == (40 + 8, 120 + 8)  # the mask's box and the pipeline's 4 px margin
    assert view.getpixel((0, 0)) == (255, 255, 255)
    assert product_view(items[1]).size == (120, 180)  # no mask: the whole photo


def test_a_training_run_on_cut_out_photos_fits_heads_on_cutout_and_whole_photo(tmp_path):
    """The whole run, as bin/run starts it on the shop's catalog: items with garment masks train on
    their cutouts, and the attribute heads read the whole photos' trunk features too."""
    from vision.embedder_train import train_embedder

    items = synthetic_items(tmp_path / "photos", 2, seed=4)
    for item in items:
        with Image.open(item.image) as im:
            mask = (np.asarray(im.convert("L")) < 250).astype(np.uint8) * 255
        item.mask = item.image.with_suffix(".mask.png")
        Image.fromarray(mask).save(item.mask)
    folder = train_embedder(
        EmbedderTrainData(items=items, sources=["synthetic"]),
        None,
        tmp_path / "models",
        tmp_path / "cache",
        EmbedderTrainConfig(epochs=2, batch_size=8, parser_views=False),
        log=lambda message: None,
    )
    heads = AttributeHeads.load(folder)
    assert heads.uses_whole and heads.colour_size == DESCRIPTOR_SIZE
    assert heads.mean.shape == (2 * 1280 + DESCRIPTOR_SIZE - SIZE,)
    assert sorted(heads.vocab["colour"]) == sorted(COLOURS)
    assert heads.summary()["hidden_units"] == {"category": 512}  # a hidden layer for the category head
    assert len(heads.predict(heads.mean[None, :1280], np.zeros((1, DESCRIPTOR_SIZE)), heads.mean[None, 1280:2560])) == 1
    assert latest_checkpoint(tmp_path / "models") == folder


def test_cached_trunk_maps_are_keyed_by_the_preprocessing(shop_model, tmp_path):
    model, config = shop_model
    image = Image.new("RGB", (90, 300), (30, 30, 200))
    ImageDraw.Draw(image).rectangle((0, 0, 89, 60), fill=(250, 220, 0))
    loaders, keys = [lambda: image], ["tall.png|None"]
    cache = tmp_path / "cache"
    longest = trunk_features(model, shop_preprocess(config), loaders, keys, cache, "product")
    assert len(list(cache.glob("stem-product-*.npy"))) == 1
    shortest = trunk_features(model, shop_preprocess(config, resize_mode="shortest"), loaders, keys, cache, "product")
    assert len(list(cache.glob("stem-product-*.npy"))) == 2  # a new preprocessing never reads the old maps
    assert not np.array_equal(longest, shortest)
    again = trunk_features(model, shop_preprocess(config), loaders, keys, cache, "product")
    assert np.array_equal(again, longest) and len(list(cache.glob("stem-product-*.npy"))) == 2


def test_cached_trunk_maps_are_keyed_by_the_trunk_split(shop_model, tmp_path, monkeypatch):
    from vision import embedder_train

    model, config = shop_model
    image = Image.new("RGB", (120, 160), (30, 160, 40))
    loaders, keys = [lambda: image], ["split.png|None"]
    cache = tmp_path / "cache"
    at_split = trunk_features(model, shop_preprocess(config), loaders, keys, cache, "product")
    monkeypatch.setattr(embedder_train, "SPLIT_BLOCK", embedder_train.SPLIT_BLOCK + 1)
    later = trunk_features(model, shop_preprocess(config), loaders, keys, cache, "product")
    assert len(list(cache.glob("stem-product-*.npy"))) == 2  # a moved split never reads the old maps
    assert not np.array_equal(at_split, later)


def test_training_under_a_time_budget_stops_early(shop_model, tmp_path):
    """A budget far below the planned epochs ends the run early (the schedule runs on the budget)."""
    import open_clip

    from vision.assets import minilm_dir

    model, config = shop_model
    tokenizer = open_clip.tokenizer.HFTokenizer(str(minilm_dir()), context_length=64)
    train = EmbedderTrainData(items=synthetic_items(tmp_path / "train", 2, seed=3))
    feats = build_features(model, shop_preprocess(config), tokenizer, train, tmp_path / "cache")
    history = train_heads(model, feats, EmbedderTrainConfig(epochs=10_000, batch_size=8, max_seconds=2.0))
    assert 1 <= len(history) < 10_000
