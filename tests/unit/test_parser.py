"""Garment parser: label mapping, a tiny training run, inference output contract, cutout, baselines.

No test needs a trained checkpoint; nothing touches the database. Tests that read ../shared/data skip
when it is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vision.assets import REPO, AssetMissing
from vision.parser import (
    GARMENT_CLASSES,
    GARMENT_INDICES,
    ITEM_CLASSES,
    PARSER_CLASSES,
    GarmentParser,
    ParserNet,
    cutout,
    mask_box,
    upsample_labels,
)
from vision.parser_train import (
    CCP_GARMENT_CLASS,
    ParserTrainConfig,
    ParserTrainData,
    Sample,
    augment,
    ccp_label_mapping,
    ccp_label_table,
    freeze_early,
    garment_dice_loss,
    parser_loss,
    set_train_mode,
    train_parser,
)

DATA = REPO.parent / "shared" / "data"
TOP = PARSER_CLASSES.index("top")
SKIN = PARSER_CLASSES.index("skin")
BOTTOM = PARSER_CLASSES.index("bottom")
SIZE = (96, 64)  # h, w of the synthetic photos

needs_data = pytest.mark.skipif(not (DATA / "ccp" / "labels.csv").is_file(), reason=f"shared data not found at {DATA}")


@pytest.fixture(autouse=True)
def one_torch_thread() -> object:
    """One intra-op thread: on a busy 2-core machine two threads are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- label mapping


def test_classes_are_the_agreed_tuples() -> None:
    assert PARSER_CLASSES == (
        "background",
        "skin",
        "hair",
        "top",
        "outerwear",
        "dress",
        "bottom",
        "footwear",
        "bag",
        "accessory",
    )
    assert GARMENT_CLASSES == ("top", "outerwear", "dress", "bottom")
    assert set(CCP_GARMENT_CLASS.values()) == set(GARMENT_CLASSES)


@needs_data
def test_ccp_mapping_covers_exactly_the_garment_kind_labels() -> None:
    labels_csv = DATA / "ccp" / "labels.csv"
    mapping = ccp_label_mapping(labels_csv)
    with labels_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(mapping) == {r["name"] for r in rows}
    garment_kind = {r["name"] for r in rows if r["kind"] == "garment"}
    assert {name for name, cls in mapping.items() if cls in GARMENT_CLASSES} == garment_kind
    assert mapping["null"] == "background" and mapping["skin"] == "skin" and mapping["hair"] == "hair"
    assert mapping["purse"] == "bag" and mapping["sunglasses"] == "accessory" and mapping["boots"] == "footwear"
    table = ccp_label_table(labels_csv)
    for r in rows:
        assert PARSER_CLASSES[table[int(r["index"])]] == mapping[r["name"]]


def test_ccp_mapping_rejects_an_unmapped_garment_label(tmp_path: Path) -> None:
    labels_csv = tmp_path / "labels.csv"
    rows = ["index,name,kind", "0,null,background", "1,skin,body", "2,kimono,garment"]
    labels_csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="kimono"):
        ccp_label_mapping(labels_csv)


# ------------------------------------------------------------------------------------ synthetic data


def synthetic_sample(seed: int) -> Sample:
    """A textured background with a 'top' block, a 'bottom' block below it and a 'skin' patch (head)."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    base = rng.integers(60, 200, size=3)
    image = np.clip(base + rng.normal(0, 18, size=(h, w, 3)), 0, 255)
    labels = np.zeros((h, w), dtype=np.uint8)
    x0 = int(rng.integers(8, 20))
    x1 = w - int(rng.integers(8, 20))
    y0 = int(rng.integers(24, 34))
    y1 = y0 + int(rng.integers(22, 30))
    image[y0:y1, x0:x1] = np.clip(rng.integers(0, 255, size=3) * 0.3 + np.array([200, 30, 40]) * 0.7, 0, 255)
    image[y0:y1, x0:x1] += rng.normal(0, 6, size=(y1 - y0, x1 - x0, 3))
    labels[y0:y1, x0:x1] = TOP
    image[y1 : h - 6, x0 + 4 : x1 - 4] = np.array([30, 40, 150]) + rng.normal(0, 6, size=3)
    labels[y1 : h - 6, x0 + 4 : x1 - 4] = BOTTOM
    cx = (x0 + x1) // 2
    image[y0 - 18 : y0 - 2, cx - 7 : cx + 7] = np.array([225, 180, 150])
    labels[y0 - 18 : y0 - 2, cx - 7 : cx + 7] = SKIN
    return Sample(
        image=torch.from_numpy(np.clip(image, 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous(),
        labels=torch.from_numpy(labels),
        source="ccp",
        key=str(seed),
    )


def to_pil(sample: Sample) -> Image.Image:
    return Image.fromarray(sample.image.permute(1, 2, 0).numpy())


def garment_dice(logits: torch.Tensor, target: torch.Tensor) -> float:
    pred = torch.isin(logits.argmax(1), torch.tensor(GARMENT_INDICES))
    truth = torch.isin(target, torch.tensor(GARMENT_INDICES))
    return float(2 * (pred & truth).sum() / (pred.sum() + truth.sum()).clamp(min=1))


TINY = ParserTrainConfig(
    epochs=4,
    batch_size=4,
    lr=3e-3,
    warmup_steps=2,
    crop=(96, 64),
    working_size=96,
    decoder_channels=(32, 24, 16, 16),
    viton_per_epoch=0,
    threads=1,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real training run (train_parser) on synthetic photos; returns its checkpoint folder."""
    data = ParserTrainData(train=[synthetic_sample(i) for i in range(16)], sources=["synthetic"])
    out = tmp_path_factory.mktemp("models")
    return train_parser(data, out, TINY, log=lambda message: None)


# ------------------------------------------------------------------------------------------ training


def test_augment_keeps_image_and_labels_aligned() -> None:
    sample = synthetic_sample(0)
    x, y = augment(sample, (80, 80), 96, np.random.default_rng(0))
    assert x.shape == (3, 80, 80) and y.shape == (80, 80) and y.dtype == torch.int64
    assert set(y.unique().tolist()) <= {0, SKIN, TOP, BOTTOM, 255}
    assert (y == 255).any()  # the 64-wide photo is padded to 80 with ignored pixels


def test_a_few_training_steps_lower_the_loss_and_raise_garment_dice() -> None:
    torch.manual_seed(0)
    model = ParserNet(decoder_channels=(32, 24, 16, 16), pretrained=True)
    frozen = freeze_early(model, 2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    rng = np.random.default_rng(0)
    train = [synthetic_sample(i) for i in range(12)]
    held = [augment(synthetic_sample(100 + i), (96, 64), 96, rng, (1.0, 1.0)) for i in range(4)]
    held_x, held_y = torch.stack([h[0] for h in held]), torch.stack([h[1] for h in held])

    def measure() -> tuple[float, float]:
        set_train_mode(model, frozen)  # batch statistics, as during training
        with torch.no_grad():
            logits = model(held_x)
            return float(parser_loss(logits, held_y, None)[0]), garment_dice(logits, held_y)

    loss_before, dice_before = measure()
    for step in range(24):
        batch = [augment(train[(step * 4 + k) % len(train)], (96, 64), 96, rng) for k in range(4)]
        x, y = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
        loss, _ = parser_loss(model(x), y, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loss_after, dice_after = measure()
    assert loss_after < 0.7 * loss_before, (loss_before, loss_after)
    assert dice_after > dice_before + 0.1, (dice_before, dice_after)
    assert dice_after > 0.6


def test_garment_dice_loss_ignores_padding() -> None:
    target = torch.full((1, 4, 4), 255, dtype=torch.long)
    target[0, :2] = TOP
    target[0, 2] = 0
    logits = torch.full((1, len(PARSER_CLASSES), 4, 4), -20.0)
    logits[0, TOP, :2] = 20.0
    logits[0, 0, 2:] = 20.0  # row 3 is ignored: background there costs nothing
    assert float(garment_dice_loss(logits, target)) < 1e-3


def test_train_parser_writes_a_loadable_checkpoint_and_card(tiny_run: Path) -> None:
    import json

    assert (tiny_run / "parser.pt").is_file() and (tiny_run / "train_state.pt").is_file()
    card = json.loads((tiny_run / "model_card.json").read_text())
    assert card["status"] == "complete" and card["epochs_done"] == TINY.epochs
    assert card["classes"] == list(PARSER_CLASSES) and card["garment_classes"] == list(GARMENT_CLASSES)
    assert card["history"][-1]["loss"] < card["history"][0]["loss"]
    parser = GarmentParser.load(tiny_run)
    assert parser.version == card["version"] and parser.version.startswith("parser-effl0-unet-")
    assert parser.working_size == TINY.working_size


def test_an_interrupted_run_resumes_to_completion(tmp_path: Path) -> None:
    import json

    from vision.parser_train import find_resumable

    data = ParserTrainData(train=[synthetic_sample(i) for i in range(8)], sources=["synthetic"])
    config = ParserTrainConfig(**{**TINY.__dict__, "epochs": 2})
    first = train_parser(data, tmp_path, config, log=lambda message: None, max_steps=1)
    card = json.loads((first / "model_card.json").read_text())
    assert card["status"] == "stopped_early" and card["epochs_done"] == 1
    assert find_resumable(tmp_path) == first
    again = train_parser(data, tmp_path, config, resume_from=first, log=lambda message: None)
    card = json.loads((again / "model_card.json").read_text())
    assert again == first and card["status"] == "complete" and card["epochs_done"] == 2
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    assert find_resumable(tmp_path) is None


# ----------------------------------------------------------------------------------------- inference


def test_parse_output_is_consistent(tiny_run: Path) -> None:
    parser = GarmentParser.load(tiny_run / "parser.pt")
    image = to_pil(synthetic_sample(7)).resize((70, 103))  # not a multiple of 32, other aspect
    result = parser.parse(image)
    assert result.labels.shape == (103, 70) and result.labels.dtype == np.uint8
    assert int(result.labels.max()) < len(PARSER_CLASSES)
    assert result.garments, "the tiny model should find the synthetic garments"
    areas = [g.area for g in result.garments]
    assert areas == sorted(areas, reverse=True)
    assert len({g.label for g in result.garments}) == len(result.garments)
    for g in result.garments:
        assert g.label in ITEM_CLASSES
        assert g.mask.dtype == bool and g.mask.shape == result.labels.shape
        assert np.array_equal(g.mask, result.labels == PARSER_CLASSES.index(g.label))
        x0, y0, x1, y1 = g.box
        assert 0 <= x0 < x1 <= 70 and 0 <= y0 < y1 <= 103
        assert g.box == mask_box(g.mask)
        assert not g.mask[:, :x0].any() and not g.mask[:, x1:].any()
        assert not g.mask[:y0].any() and not g.mask[y1:].any()
        assert 0.0 <= g.score <= 1.0
        assert g.area >= 0.005 * result.labels.size
    union = np.isin(result.labels, [PARSER_CLASSES.index(c) for c in GARMENT_CLASSES])
    assert np.array_equal(result.garment_mask(), union)
    assert result.garment_mask().any()

    batch = parser.parse_batch([image, image.resize((40, 30)), image.convert("L")])
    assert [r.labels.shape for r in batch] == [(103, 70), (30, 40), (103, 70)]
    assert parser.parse_batch([]) == []


@pytest.mark.parametrize("max_elements", [len(PARSER_CLASSES) * 23 * 3, 10_000_000])  # strips / one piece
def test_upsampling_matches_interpolate(max_elements: int) -> None:
    torch.manual_seed(0)
    logits = torch.randn(len(PARSER_CLASSES), 7, 5) * 3
    labels, prob_sum, counts = upsample_labels(logits, 41, 23, max_elements=max_elements)
    full = F.interpolate(logits[None], size=(41, 23), mode="bilinear", align_corners=False)[0]
    probs = full.softmax(0)
    winner = full.argmax(0)
    assert np.array_equal(labels, winner.numpy())
    assert np.array_equal(counts, np.bincount(winner.flatten().numpy(), minlength=len(PARSER_CLASSES)))
    expected = [float(probs.max(0).values[winner == c].sum()) for c in range(len(PARSER_CLASSES))]
    assert np.allclose(prob_sum, expected, atol=1e-4)


def test_load_without_checkpoint_says_how_to_train(settings, tmp_path: Path) -> None:
    settings.MODELS_DIR = tmp_path
    with pytest.raises(AssetMissing, match="train_parser"):
        GarmentParser.load()
    with pytest.raises(AssetMissing, match="train_parser"):
        GarmentParser.load(tmp_path / "nowhere" / "parser.pt")


def test_load_picks_the_newest_checkpoint(settings, tmp_path: Path, tiny_run: Path) -> None:
    import shutil

    settings.MODELS_DIR = tmp_path
    shutil.copytree(tiny_run, tmp_path / "parser" / tiny_run.name)
    assert GarmentParser.load().path == tmp_path / "parser" / tiny_run.name / "parser.pt"


# -------------------------------------------------------------------------------------------- cutout


def test_cutout_is_rgba_cropped_to_the_mask() -> None:
    image = Image.new("RGB", (50, 40), (10, 200, 30))
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:20, 15:30] = True
    mask[12, 15] = False
    out = cutout(image, mask, pad=4)
    assert out.mode == "RGBA" and out.size == (15 + 8, 10 + 8)
    alpha = np.asarray(out)[..., 3]
    assert alpha[4:14, 4:19].sum() == 255 * (mask.sum())
    assert alpha[0].max() == 0 and alpha[:, 0].max() == 0  # padding is transparent
    assert alpha[4 + 2, 4] == 0  # the hole stays transparent
    assert tuple(np.asarray(out)[8, 8, :3]) == (10, 200, 30)
    edge = cutout(image, np.pad(np.ones((3, 3), bool), ((0, 37), (0, 47))), pad=4)
    assert edge.size == (7, 7)  # the padded box is clipped at the image border


def test_cutout_rejects_empty_and_mismatched_masks() -> None:
    image = Image.new("RGB", (8, 6))
    with pytest.raises(ValueError, match="empty"):
        cutout(image, np.zeros((6, 8), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        cutout(image, np.ones((8, 6), dtype=bool))


# ----------------------------------------------------------------------------------------- baselines


def test_u2netp_baseline_returns_a_bool_mask_of_the_image_size() -> None:
    from vision.assets import u2netp_onnx

    try:
        u2netp_onnx()
    except AssetMissing as exc:
        pytest.skip(f"u2netp.onnx not installed: {exc}")
    from vision.baselines import U2NetPBaseline

    image = to_pil(synthetic_sample(3)).resize((75, 110))
    mask = U2NetPBaseline(threads=1).garment_mask(image)
    assert mask.dtype == bool and mask.shape == (110, 75)
