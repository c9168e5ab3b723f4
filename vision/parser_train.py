"""Training the garment parser (:mod:`vision.parser`) on CCP street photos and VITON product shots.

Data (read at run time from ``../shared/data``, never copied):

- ``ccp/``: Clothing Co-Parsing, split ``train`` only; label maps are mapped onto :data:`PARSER_CLASSES`
  by :func:`ccp_label_table` (every CCP label of kind ``garment`` lands in one of GARMENT_CLASSES).
- ``viton/``: product rows (``role=product``) of split ``train`` with ``mask_quality=ok``: ``cloth/*.jpg``
  with ``cloth-mask/*.jpg`` (≥128 = garment, class ``top``; the rest is background).

Dev rows are only used for the metrics written into the model card at the end of a run.

Training: random scale/crop/flip/colour jitter at the inference scale, class-weighted cross-entropy +
soft Dice on the garment-vs-rest union, AdamW with warm-up and a cosine schedule. The stem and the two
highest-resolution encoder stages stay frozen (ImageNet features; saves most of the backward cost on
CPU). Every epoch writes ``parser.pt`` (inference weights), ``train_state.pt`` (optimiser, schedule,
epoch, RNG: resumable) and ``model_card.json`` into ``<out>/parser/<version>/``.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm import tqdm

from vision.assets import LITE_MEAN, LITE_STD
from vision.parser import (
    CARD_NAME,
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    DEFAULT_DECODER_CHANNELS,
    DEFAULT_WORKING_SIZE,
    GARMENT_CLASSES,
    GARMENT_INDICES,
    PARSER_CLASSES,
    GarmentParser,
    ParserNet,
)
from vision.training import TrainConfig, TrainData, new_version

IGNORE = 255
STATE_NAME = "train_state.pt"

# CCP label name → parser class, for the labels whose class is not implied by their kind.
CCP_GARMENT_CLASS: dict[str, str] = {
    **dict.fromkeys(
        (
            "blouse",
            "bodysuit",
            "bra",
            "hoodie",
            "intimate",
            "jumper",
            "shirt",
            "sweater",
            "sweatshirt",
            "t-shirt",
            "top",
            "vest",
        ),
        "top",
    ),
    **dict.fromkeys(("blazer", "cape", "cardigan", "coat", "jacket", "suit"), "outerwear"),
    **dict.fromkeys(("dress", "romper", "swimwear"), "dress"),
    **dict.fromkeys(
        ("jeans", "leggings", "panties", "pants", "shorts", "skirt", "socks", "stockings", "tights"), "bottom"
    ),
}
CCP_BAG_LABELS: frozenset[str] = frozenset({"bag", "purse", "wallet"})


# ------------------------------------------------------------------------------------------- labels


def read_ccp_labels(labels_csv: Path) -> list[tuple[int, str, str]]:
    """(index, name, kind) rows of CCP's labels.csv."""
    with Path(labels_csv).open(newline="", encoding="utf-8") as fh:
        return [(int(r["index"]), r["name"].strip(), r["kind"].strip()) for r in csv.DictReader(fh)]


def ccp_class_of(name: str, kind: str) -> str:
    """The parser class of one CCP label (ValueError for a label this mapping does not know)."""
    if kind == "background":
        return "background"
    if kind == "body":
        if name not in ("skin", "hair"):
            raise ValueError(f"CCP body label {name!r} has no parser class")
        return name
    if kind == "footwear":
        return "footwear"
    if kind == "accessory":
        return "bag" if name in CCP_BAG_LABELS else "accessory"
    if kind == "garment":
        if name not in CCP_GARMENT_CLASS:
            raise ValueError(f"CCP garment label {name!r} is not mapped to one of {GARMENT_CLASSES}")
        return CCP_GARMENT_CLASS[name]
    raise ValueError(f"CCP label {name!r} has unknown kind {kind!r}")


def ccp_label_mapping(labels_csv: Path) -> dict[str, str]:
    """CCP label name → parser class, checked: a label is of kind ``garment`` exactly when its class is in
    GARMENT_CLASSES, and every name of the garment table exists in labels.csv as a garment."""
    rows = read_ccp_labels(labels_csv)
    mapping: dict[str, str] = {}
    for _, name, kind in rows:
        cls = ccp_class_of(name, kind)
        assert cls in PARSER_CLASSES, cls
        assert (kind == "garment") == (cls in GARMENT_CLASSES), f"CCP {name!r} ({kind}) maps to {cls!r}"
        mapping[name] = cls
    garment_names = {name for _, name, kind in rows if kind == "garment"}
    assert garment_names == set(CCP_GARMENT_CLASS), (
        f"garment table and labels.csv differ: {sorted(garment_names ^ set(CCP_GARMENT_CLASS))}"
    )
    return mapping


def ccp_label_table(labels_csv: Path) -> np.ndarray:
    """uint8 lookup table (256,) from CCP label-map values to PARSER_CLASSES indices (unknown → background)."""
    mapping = ccp_label_mapping(labels_csv)
    table = np.zeros(256, dtype=np.uint8)
    for index, name, _ in read_ccp_labels(labels_csv):
        table[index] = PARSER_CLASSES.index(mapping[name])
    return table


# --------------------------------------------------------------------------------------------- data


@dataclass
class Sample:
    image: torch.Tensor  # uint8 3 × H × W
    labels: torch.Tensor  # uint8 H × W, PARSER_CLASSES indices
    source: str  # "ccp" or "viton"
    key: str


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def _manifest(folder: Path) -> list[dict[str, str]]:
    path = Path(folder) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def ccp_rows(ccp_dir: Path, split: str) -> list[dict[str, str]]:
    return [r for r in _manifest(ccp_dir) if r["split"] == split]


def viton_product_rows(viton_dir: Path, split: str) -> list[dict[str, str]]:
    return [
        r for r in _manifest(viton_dir) if r["split"] == split and r["role"] == "product" and r["mask_quality"] == "ok"
    ]


def ccp_gt(ccp_dir: Path, row: dict[str, str], table: np.ndarray) -> np.ndarray:
    """The row's label map as PARSER_CLASSES indices (uint8 H × W)."""
    with Image.open(Path(ccp_dir) / row["mask_file"]) as im:
        return table[np.asarray(im.convert("L") if im.mode not in ("L", "P") else im, dtype=np.uint8)]


def viton_gt(viton_dir: Path, row: dict[str, str]) -> np.ndarray:
    """Garment mask (bool H × W) of a VITON product row (grayscale JPEG, ≥128 = garment)."""
    with Image.open(Path(viton_dir) / row["mask_file"]) as im:
        return np.asarray(im.convert("L")) >= 128


def _fit(image: Image.Image, labels: np.ndarray, long_side: int | None) -> tuple[Image.Image, np.ndarray]:
    if labels.shape != (image.height, image.width):
        # A few label maps are a pixel or two off their photo: bring the labels to the photo's size.
        labels = np.asarray(Image.fromarray(labels).resize(image.size, Image.Resampling.NEAREST))
    if long_side is not None and max(image.size) > long_side:
        scale = long_side / max(image.size)
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.BILINEAR)
        labels = np.asarray(Image.fromarray(labels).resize(size, Image.Resampling.NEAREST))
    return image, labels


def _sample(image: Image.Image, labels: np.ndarray, source: str, key: str) -> Sample:
    return Sample(
        image=torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous(),
        labels=torch.from_numpy(np.array(labels, dtype=np.uint8)),
        source=source,
        key=key,
    )


def load_ccp_samples(ccp_dir: Path, split: str = "train", long_side: int | None = 480) -> list[Sample]:
    table = ccp_label_table(Path(ccp_dir) / "labels.csv")
    samples = []
    for row in tqdm(ccp_rows(ccp_dir, split), desc=f"ccp {split}", mininterval=5):
        image, labels = _fit(open_rgb(Path(ccp_dir) / row["file"]), ccp_gt(ccp_dir, row, table), long_side)
        samples.append(_sample(image, labels, "ccp", row["item_id"]))
    return samples


# LIP 20-class human parsing (VITON's person label maps) → parser classes.
LIP_TO_PARSER: dict[int, str] = {
    0: "background", 1: "accessory", 2: "hair", 3: "accessory", 4: "accessory", 5: "top", 6: "dress",
    7: "outerwear", 8: "accessory", 9: "bottom", 10: "dress", 11: "accessory", 12: "bottom", 13: "skin",
    14: "skin", 15: "skin", 16: "skin", 17: "skin", 18: "footwear", 19: "footwear",
}  # fmt: skip


def lip_label_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for lip, name in LIP_TO_PARSER.items():
        table[lip] = PARSER_CLASSES.index(name)
    return table


def viton_person_rows(viton_dir: Path, split: str) -> list[dict[str, str]]:
    return [r for r in _manifest(viton_dir) if r["split"] == split and r["role"] == "person" and r["mask_file"]]


def load_viton_person_samples(viton_dir: Path, split: str = "train", long_side: int | None = 480) -> list[Sample]:
    """VITON photos of people with their LIP label maps (pseudo labels) mapped onto the parser classes."""
    table = lip_label_table()
    samples = []
    for row in tqdm(viton_person_rows(viton_dir, split), desc=f"viton persons {split}", mininterval=5):
        with Image.open(Path(viton_dir) / row["mask_file"]) as im:
            labels = table[np.asarray(im, dtype=np.uint8)]
        image, labels = _fit(open_rgb(Path(viton_dir) / row["file"]), labels, long_side)
        samples.append(_sample(image, labels, "vitonperson", row["item_id"]))
    return samples


def load_viton_samples(viton_dir: Path, split: str = "train", long_side: int | None = 480) -> list[Sample]:
    top = PARSER_CLASSES.index("top")
    samples = []
    for row in tqdm(viton_product_rows(viton_dir, split), desc=f"viton {split}", mininterval=5):
        labels = viton_gt(viton_dir, row).astype(np.uint8) * top
        image, labels = _fit(open_rgb(Path(viton_dir) / row["file"]), labels, long_side)
        samples.append(_sample(image, labels, "viton", row["item_id"]))
    return samples


# ------------------------------------------------------------------------------------- augmentation

_MEAN = torch.tensor(LITE_MEAN).view(3, 1, 1)
_STD = torch.tensor(LITE_STD).view(3, 1, 1)


def augment(
    sample: Sample,
    crop_hw: tuple[int, int],
    working_size: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.6, 1.3),
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random view of ``sample``: scaled around the inference scale (long side ``working_size``), random
    crop (padding is mid-grey with IGNORE labels), horizontal flip, colour jitter; returns the normalised
    3 × h × w input and the int64 h × w target."""
    image = sample.image.float().div_(255.0)
    labels = sample.labels
    h, w = labels.shape
    scale = working_size / max(h, w) * float(rng.uniform(*scale_range))
    nh, nw = max(8, round(h * scale)), max(8, round(w * scale))
    image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)[0]
    labels = F.interpolate(labels[None, None].float(), size=(nh, nw), mode="nearest")[0, 0].to(torch.uint8)
    if rng.random() < 0.5:
        image, labels = image.flip(-1), labels.flip(-1)

    ch, cw = crop_hw
    out = _MEAN.expand(3, ch, cw).clone()
    target = torch.full((ch, cw), IGNORE, dtype=torch.uint8)

    def window(size: int, crop: int) -> tuple[int, int, int]:
        """(source start, target start, length)."""
        if size >= crop:
            return int(rng.integers(0, size - crop + 1)), 0, crop
        return 0, int(rng.integers(0, crop - size + 1)), size

    sy, ty, ly = window(nh, ch)
    sx, tx, lx = window(nw, cw)
    out[:, ty : ty + ly, tx : tx + lx] = image[:, sy : sy + ly, sx : sx + lx]
    target[ty : ty + ly, tx : tx + lx] = labels[sy : sy + ly, sx : sx + lx]

    # Colour jitter on the photo pixels (brightness, contrast, saturation, per-channel gain; rare greyscale).
    region = out[:, ty : ty + ly, tx : tx + lx]
    grey = region.mean(dim=0, keepdim=True)
    region = region * float(rng.uniform(0.75, 1.25))
    region = (region - region.mean()) * float(rng.uniform(0.75, 1.3)) + region.mean()
    sat = 0.0 if rng.random() < 0.05 else float(rng.uniform(0.6, 1.4))
    region = grey + (region - grey) * sat if sat else grey.expand_as(region) * float(rng.uniform(0.8, 1.2))
    region = region * torch.from_numpy(rng.uniform(0.92, 1.08, size=(3, 1, 1))).float()
    out[:, ty : ty + ly, tx : tx + lx] = region.clamp_(0.0, 1.0)
    return (out - _MEAN) / _STD, target.long()


# --------------------------------------------------------------------------------------------- loss


def garment_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − soft Dice of the garment-vs-rest union (sum of the GARMENT_CLASSES probabilities), over the batch."""
    valid = (target != IGNORE).float()
    prob = logits.softmax(dim=1)[:, list(GARMENT_INDICES)].sum(dim=1) * valid
    truth = torch.isin(target, torch.tensor(GARMENT_INDICES, device=target.device)).float() * valid
    inter = (prob * truth).sum()
    return 1.0 - (2.0 * inter + 1.0) / (prob.sum() + truth.sum() + 1.0)


def parser_loss(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None, dice_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    ce = F.cross_entropy(logits, target, weight=class_weights, ignore_index=IGNORE)
    dice = garment_dice_loss(logits, target)
    return ce + dice_weight * dice, {"ce": float(ce.detach()), "dice_loss": float(dice.detach())}


def class_weights_from(
    samples: list[Sample], power: float = 0.5, clip: tuple[float, float] = (0.5, 3.0)
) -> torch.Tensor:
    """Inverse-frequency class weights (median-normalised, ``power``-softened, clipped)."""
    counts = torch.zeros(len(PARSER_CLASSES), dtype=torch.float64)
    for s in samples:
        counts += torch.bincount(s.labels.flatten().long(), minlength=256)[: len(PARSER_CLASSES)].double()
    freq = counts / counts.sum().clamp(min=1)
    present = freq > 0
    median = freq[present].median() if present.any() else torch.tensor(1.0)
    weights = torch.where(present, (median / freq.clamp(min=1e-12)) ** power, torch.ones_like(freq))
    return weights.clamp(*clip).float()


# ---------------------------------------------------------------------------------------- training


@dataclass
class ParserTrainConfig(TrainConfig):
    epochs: int = 8
    batch_size: int = 8
    lr: float = 1.5e-3
    encoder_lr_scale: float = 0.3
    weight_decay: float = 1e-2
    warmup_steps: int = 40
    crop: tuple[int, int] = (320, 224)  # h, w of training crops
    working_size: int = DEFAULT_WORKING_SIZE
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS
    freeze_levels: int = 2  # encoder stem + this many first stages stay frozen
    dice_weight: float = 1.0
    viton_per_epoch: int = 650  # product shots drawn (without replacement) per epoch; CCP train is used whole
    person_per_epoch: int = 0  # VITON photos of people drawn per epoch (0: none loaded)
    init_from: str = ""  # a parser checkpoint folder to start from (fine-tuning) instead of ImageNet weights
    cache_long_side: int = 480
    seed: int = 0
    threads: int = 1  # on a shared 2-core machine one thread is far faster than two
    max_minutes: float | None = None

    def time_limit_s(self) -> float | None:
        return None if self.max_minutes is None else self.max_minutes * 60.0


@dataclass
class ParserTrainData(TrainData):
    train: list[Sample] = field(default_factory=list)


VERSION_PREFIX = "parser-effl0-unet-"


def freeze_early(model: ParserNet, levels: int) -> list[torch.nn.Module]:
    """Freeze the encoder stem and its first ``levels`` stages; returns the frozen modules (kept in eval mode)."""
    enc: Any = model.encoder
    frozen = [enc.conv_stem, enc.bn1, *list(enc.blocks)[:levels]] if levels > 0 else []
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def set_train_mode(model: ParserNet, frozen: list[torch.nn.Module]) -> None:
    model.train()
    for module in frozen:
        module.eval()


def make_optimizer(model: ParserNet, config: ParserTrainConfig) -> torch.optim.Optimizer:
    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    dec = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    return torch.optim.AdamW(
        [{"params": enc, "lr": config.lr * config.encoder_lr_scale}, {"params": dec, "lr": config.lr}],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )


def make_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_order(data: ParserTrainData, config: ParserTrainConfig, epoch: int) -> list[int]:
    """Sample indices of one epoch: all CCP rows plus ``viton_per_epoch`` product shots and
    ``person_per_epoch`` photos of people, shuffled."""
    rng = np.random.default_rng([config.seed, epoch, 1])
    chosen = [i for i, s in enumerate(data.train) if s.source == "ccp"]
    for source, wanted in (("viton", config.viton_per_epoch), ("vitonperson", config.person_per_epoch)):
        pool = [i for i, s in enumerate(data.train) if s.source == source]
        take = min(len(pool), wanted)
        if take:
            chosen += [pool[i] for i in rng.choice(len(pool), size=take, replace=False)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def batches(
    data: ParserTrainData, config: ParserTrainConfig, epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = epoch_order(data, config, epoch)
    rng = np.random.default_rng([config.seed, epoch, 2])
    for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
        views = []
        for i in order[start : start + config.batch_size]:
            sample = data.train[i]
            scale_range = (0.5, 1.15) if sample.source == "viton" else (0.6, 1.3)
            views.append(augment(sample, config.crop, config.working_size, rng, scale_range))
        yield torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])


def steps_per_epoch(data: ParserTrainData, config: ParserTrainConfig) -> int:
    return len(epoch_order(data, config, 0)) // config.batch_size


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_card(folder: Path, card: dict[str, Any]) -> None:
    tmp = folder / (CARD_NAME + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / CARD_NAME)


def save_inference_checkpoint(model: ParserNet, folder: Path, version: str, config: ParserTrainConfig) -> Path:
    """``parser.pt``: what :meth:`GarmentParser.load` needs (weights-only loadable)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": version,
        "config": {
            "classes": list(PARSER_CLASSES),
            "garment_classes": list(GARMENT_CLASSES),
            "working_size": config.working_size,
            "decoder_channels": list(config.decoder_channels),
            "encoder": "tf_efficientnet_lite0 (timm features_only, 5 levels)",
        },
        "model": model.state_dict(),
    }
    path = folder / CHECKPOINT_NAME
    _atomic_save(payload, path)
    return path


def find_resumable(out_root: Path) -> Path | None:
    """Newest run folder under ``<out_root>/parser`` that has not run all its epochs (status ``training`` after
    an interruption, or ``stopped_early`` after a time limit)."""
    candidates = []
    for state in (Path(out_root) / "parser").glob(f"*/{STATE_NAME}"):
        try:
            card = json.loads((state.parent / CARD_NAME).read_text())
        except (OSError, ValueError):
            card = {}
        if card.get("status") != "complete":
            candidates.append(state.parent)
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def train_parser(
    data: ParserTrainData,
    out_root: Path,
    config: ParserTrainConfig,
    *,
    resume_from: Path | None = None,
    dev_eval: Callable[[GarmentParser], dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
    max_steps: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    version: str | None = None,
) -> Path:
    """Train (or resume) a parser run; returns its folder ``<out_root>/parser/<version>``.
    ``progress(stage, done, total)`` hears of every finished epoch; ``version`` names a new run."""
    if not data.train:
        raise ValueError("no training samples")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(max(1, config.threads))
    try:
        return _train(data, out_root, config, resume_from, dev_eval, log, max_steps, progress, version)
    finally:
        torch.set_num_threads(threads_before)


@dataclass
class Run:
    """A run's place between epochs: what its checkpoint (``train_state.pt``) carries over a restart."""

    version: str
    folder: Path
    first_epoch: int = 0
    elapsed_before: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Trainer:
    """The model and what steps it: built the same way for a new run and a resumed one."""

    model: ParserNet
    frozen: list[torch.nn.Module]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    class_weights: torch.Tensor
    per_epoch: int


def train_one_epoch(
    trainer: Trainer,
    data: ParserTrainData,
    config: ParserTrainConfig,
    epoch: int,
    stop: Callable[[], bool],
) -> tuple[dict[str, float], int, bool]:
    """One epoch of steps: (summed losses, steps taken, whether ``stop()`` cut it short)."""
    set_train_mode(trainer.model, trainer.frozen)
    sums = {"loss": 0.0, "ce": 0.0, "dice_loss": 0.0}
    n = 0
    stopped = False
    desc = f"epoch {epoch + 1}/{config.epochs}"
    bar = tqdm(batches(data, config, epoch), total=trainer.per_epoch, desc=desc, mininterval=15)
    for inputs, target in bar:
        loss, parts = parser_loss(trainer.model(inputs), target, trainer.class_weights, config.dice_weight)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        trainer.schedule.step()
        n += 1
        sums["loss"] += float(loss.detach())
        for k, v in parts.items():
            sums[k] += v
        bar.set_postfix(loss=f"{sums['loss'] / n:.4f}", dice_loss=f"{sums['dice_loss'] / n:.4f}", refresh=False)
        if stop():
            stopped = True
            break
    bar.close()
    return sums, n, stopped


def _trainer(data: ParserTrainData, config: ParserTrainConfig, fresh: bool, log: Callable[[str], None]) -> Trainer:
    """Model (ImageNet or ``init_from`` weights when ``fresh``), frozen stem, optimizer and schedule."""
    model = ParserNet(decoder_channels=config.decoder_channels, pretrained=fresh and not config.init_from)
    if fresh and config.init_from:
        start = torch.load(Path(config.init_from) / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
        model.load_state_dict(start["model"])
        log(f"starting from the weights of {start.get('version', config.init_from)}")
    frozen = freeze_early(model, config.freeze_levels)
    optimizer = make_optimizer(model, config)
    per_epoch = steps_per_epoch(data, config)
    if per_epoch < 1:
        raise ValueError(f"{len(data.train)} samples do not fill one batch of {config.batch_size}")
    total = per_epoch * config.epochs
    schedule = make_schedule(optimizer, total, min(config.warmup_steps, max(1, total // 10)))
    return Trainer(model, frozen, optimizer, schedule, class_weights_from(data.train), per_epoch)


def _resume(trainer: Trainer, folder: Path, config: ParserTrainConfig, log: Callable[[str], None]) -> Run:
    """Load a run's last epoch into ``trainer`` (weights, optimizer, schedule, random states)."""
    state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=False)
    weights = torch.load(folder / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    trainer.model.load_state_dict(weights["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    run = Run(
        version=str(state["version"]),
        folder=folder,
        first_epoch=int(state["epoch"]) + 1,
        elapsed_before=float(state["elapsed_s"]),
        history=list(state["history"]),
    )
    log(f"resuming {run.version} after epoch {run.first_epoch} of {config.epochs}")
    return run


def _save_epoch(
    trainer: Trainer, run: Run, config: ParserTrainConfig, epoch: int, elapsed: float, card: dict[str, Any]
) -> None:
    """After each epoch: the inference checkpoint, the resumable state and the model card."""
    save_inference_checkpoint(trainer.model, run.folder, run.version, config)
    _atomic_save(
        {
            "version": run.version,
            "epoch": epoch,
            "optimizer": trainer.optimizer.state_dict(),
            "schedule": trainer.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "elapsed_s": elapsed,
            "history": run.history,
            "config": config.to_json(),
        },
        run.folder / STATE_NAME,
    )
    _write_card(
        run.folder, {**card, "epochs_done": epoch + 1, "history": run.history, "train_seconds": round(elapsed, 1)}
    )


def _card(run: Run, data: ParserTrainData, config: ParserTrainConfig, class_weights: torch.Tensor) -> dict[str, Any]:
    return {
        "version": run.version,
        "status": "training",
        "task": "garment parser: per-pixel classes, garment-vs-rest mask, per-class items",
        "architecture": "U-Net: EfficientNet-Lite0 encoder (ImageNet, timm features_only, 5 levels) + "
        f"depthwise-separable decoder {list(config.decoder_channels)} with global-context bottleneck",
        "classes": list(PARSER_CLASSES),
        "garment_classes": list(GARMENT_CLASSES),
        "data": data.sources,
        "train_samples": {
            "ccp": sum(s.source == "ccp" for s in data.train),
            "viton": sum(s.source == "viton" for s in data.train),
            "vitonperson": sum(s.source == "vitonperson" for s in data.train),
        },
        "class_weights": {c: round(float(w), 4) for c, w in zip(PARSER_CLASSES, class_weights, strict=True)},
        "settings": config.to_json(),
        "epochs_planned": config.epochs,
    }


def _train(
    data: ParserTrainData,
    out_root: Path,
    config: ParserTrainConfig,
    resume_from: Path | None,
    dev_eval: Callable[[GarmentParser], dict[str, Any]] | None,
    log: Callable[[str], None],
    max_steps: int | None,
    progress: Callable[[str, int, int], None] | None = None,
    new_name: str | None = None,
) -> Path:
    """The run: start or resume, one :func:`train_one_epoch` after another with a checkpoint after each,
    then the dev scores and the finished model card."""
    started = time.monotonic()
    if resume_from is None:
        random.seed(config.seed)
        torch.manual_seed(config.seed)
    trainer = _trainer(data, config, resume_from is None, log)
    if resume_from is not None:
        run = _resume(trainer, Path(resume_from), config, log)
    else:
        version = new_name or new_version(VERSION_PREFIX, "%Y%m%d-%H%M")
        run = Run(version=version, folder=Path(out_root) / "parser" / version)
        run.folder.mkdir(parents=True, exist_ok=True)
    card = _card(run, data, config, trainer.class_weights)

    limit = config.time_limit_s()
    deadline = None if limit is None else limit - run.elapsed_before
    steps_done = 0

    def stop() -> bool:
        nonlocal steps_done
        steps_done += 1
        if max_steps is not None and steps_done >= max_steps:
            return True
        return deadline is not None and time.monotonic() - started > deadline

    step_limit_hit = False
    epoch = run.first_epoch - 1
    for epoch in range(run.first_epoch, config.epochs):
        sums, n, step_limit_hit = train_one_epoch(trainer, data, config, epoch, stop)
        elapsed = run.elapsed_before + time.monotonic() - started
        record: dict[str, Any] = {k: round(v / max(1, n), 5) for k, v in sums.items()}
        record.update(epoch=epoch + 1, steps=n, elapsed_s=round(elapsed, 1), lr=trainer.schedule.get_last_lr()[-1])
        run.history.append(record)
        log(f"epoch {epoch + 1}/{config.epochs}: {json.dumps(record)}")
        if progress is not None:
            progress("training", epoch + 1, config.epochs)
        _save_epoch(trainer, run, config, epoch, elapsed, card)
        if step_limit_hit:
            log("stopping early: time or step limit reached")
            break

    train_seconds = run.elapsed_before + time.monotonic() - started
    card.update(
        epochs_done=epoch + 1,
        stopped_early=step_limit_hit,
        history=run.history,
        train_seconds=round(train_seconds, 1),
        train_minutes=round(train_seconds / 60, 1),
    )
    if dev_eval is not None:
        log("scoring on the dev splits …")
        trainer.model.eval()
        parser = GarmentParser(trainer.model, version=run.version, working_size=config.working_size)
        t0 = time.monotonic()
        card["dev_metrics"] = dev_eval(parser)
        card["dev_eval_seconds"] = round(time.monotonic() - t0, 1)
        log(f"dev metrics: {json.dumps(card['dev_metrics'])}")
    # A run cut short by --max-minutes is usable but can still be resumed (at the next epoch).
    card["status"] = "stopped_early" if step_limit_hit and epoch + 1 < config.epochs else "complete"
    card["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    _write_card(run.folder, card)
    return run.folder


# ------------------------------------------------------------------------------------------ dev data


def _ccp_garment_mask(ccp_dir: Path, row: dict[str, str], table: np.ndarray) -> np.ndarray:
    return np.isin(ccp_gt(ccp_dir, row, table), GARMENT_INDICES)


def dev_pairs(data_dir: Path) -> dict[str, list[tuple[Path, Callable[[], np.ndarray]]]]:
    """Dev sets for garment-vs-rest scoring: (image path, ground-truth bool mask loader) per image."""
    data_dir = Path(data_dir)
    sets: dict[str, list[tuple[Path, Callable[[], np.ndarray]]]] = {}
    ccp = data_dir / "ccp"
    if (ccp / "manifest.csv").is_file():
        table = ccp_label_table(ccp / "labels.csv")
        sets["ccp_dev"] = [
            (ccp / r["file"], functools.partial(_ccp_garment_mask, ccp, r, table)) for r in ccp_rows(ccp, "dev")
        ]
    viton = data_dir / "viton"
    if (viton / "manifest.csv").is_file():
        sets["viton_dev_products_ok"] = [
            (viton / r["file"], functools.partial(viton_gt, viton, r)) for r in viton_product_rows(viton, "dev")
        ]
    return sets


def score_dev(parser: GarmentParser, data_dir: Path, limit: int | None = None) -> dict[str, Any]:
    """Mean per-image garment-vs-rest Dice / IoU of ``parser`` on each dev set."""
    from vision.metrics import dice, iou

    results: dict[str, Any] = {}
    for name, pairs in dev_pairs(data_dir).items():
        pairs = pairs[:limit] if limit else pairs
        dices, ious = [], []
        t0 = time.monotonic()
        for path, gt_loader in tqdm(pairs, desc=f"dev {name}", mininterval=15):
            image = open_rgb(path)
            gt = gt_loader()
            if gt.shape != (image.height, image.width):
                gt = np.asarray(Image.fromarray(gt).resize(image.size, Image.Resampling.NEAREST))
            pred = parser.parse(image).garment_mask()
            dices.append(dice(pred, gt))
            ious.append(iou(pred, gt))
        results[name] = {
            "dice": round(float(np.mean(dices)), 4) if dices else None,
            "iou": round(float(np.mean(ious)), 4) if ious else None,
            "n": len(dices),
            "seconds_per_image": round((time.monotonic() - t0) / max(1, len(dices)), 3),
        }
    return results


def load_train_data(
    data_dir: Path, cache_long_side: int = 480, use_viton: bool = True, use_persons: bool = False
) -> ParserTrainData:
    data_dir = Path(data_dir)
    data = ParserTrainData()
    ccp = data_dir / "ccp"
    if not (ccp / "manifest.csv").is_file():
        raise FileNotFoundError(f"{ccp}/manifest.csv not found: pass --data pointing at the shared data folder")
    data.train += load_ccp_samples(ccp, "train", cache_long_side)
    data.sources.append(f"CCP {ccp} split=train ({len(data.train)} street photos, label maps → parser classes)")
    viton = data_dir / "viton"
    if use_viton and (viton / "manifest.csv").is_file():
        products = load_viton_samples(viton, "train", cache_long_side)
        data.train += products
        data.sources.append(
            f"VITON {viton} role=product split=train mask_quality=ok ({len(products)} product shots, mask → 'top')"
        )
    if use_persons and (viton / "manifest.csv").is_file():
        persons = load_viton_person_samples(viton, "train", cache_long_side)
        data.train += persons
        data.sources.append(
            f"VITON {viton} role=person split=train ({len(persons)} photos of people, "
            "LIP pseudo-label maps → parser classes)"
        )
    return data
