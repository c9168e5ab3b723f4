"""The default build recipes: what a background build of each kind trains on, how it splits its time
budget, and how it is evaluated against the active version before the gate decides.

* **parser**: the garment parser on CCP train street photos + VITON train product shots, then
  fine-tuned on VITON train photos of people; scored (garment-vs-rest Dice) on CCP dev and VITON dev
  product shots, and so is the active parser (the fallback included) in the same run.
* **embedder**: the shop's embedder on the shop's own catalog (its processed cut-outs; a tenth of the
  designs held out) plus VITON train person↔product pairs when that data is there; scored on the
  held-out designs and VITON dev pairs, and so is the active embedder.

Each stage resumes after a worker or machine restart: the parser trainer from its last finished
epoch, the embedder from its cached features; finished stages are recorded on the build row.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from lifecycle import selectors
from lifecycle.models import ModelBuild, ModelKind, ModelVersion
from vision.assets import models_dir

if TYPE_CHECKING:
    from vision.embedder_train import CatalogItem

logger = logging.getLogger(__name__)

# Shares of the build's time budget: parser training on CCP + VITON products, then on people.
PARSER_SHARES = {"base": 0.55, "people": 0.36}
PARSER_GATE_IMAGES = 60  # dev photos per set the gate scores both parsers on (the fallback's 0.5 s each)
EMBEDDER_TRAIN_SHARE = 0.7  # of the budget: features come first and are cached


class BuildContext:
    """A running build: its row, its lease token, progress reporting and the heartbeat thread."""

    def __init__(self, build: ModelBuild, token: str) -> None:
        self.build = build
        self.token = token
        self._fields: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.lost: Exception | None = None
        self.lines: list[str] = build.log.splitlines()[-40:]

    @property
    def budget_minutes(self) -> float:
        default = settings.SHOP_BUILD_BUDGET_MINUTES[self.build.kind]
        return float(self.build.budget_minutes or default)

    def progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            if self._fields.get("stage") != stage:
                self._fields["stage_started_at"] = timezone.now()
            self._fields.update(stage=stage[:60], done=done, total=total)
        if self.lost is not None:
            raise self.lost

    def log(self, line: str) -> None:
        logger.info("model build %s: %s", self.build.pk, line)
        with self._lock:
            self.lines = [*self.lines, str(line)[:300]][-40:]
            self._fields["log"] = "\n".join(self.lines)

    def stage_done(self, name: str, value: str) -> None:
        self.build.stages_done = {**self.build.stages_done, name: value}
        self._beat(stages_done=self.build.stages_done)

    def _beat(self, **extra: Any) -> None:
        from lifecycle.services import build_heartbeat

        with self._lock:
            fields = {**self._fields, **extra}
        build_heartbeat(self.build.pk, self.token, **fields)

    @contextlib.contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the lease every SHOP_BUILD_HEARTBEAT_S seconds while the body runs."""

        def loop() -> None:
            try:
                while not self._stop.wait(settings.SHOP_BUILD_HEARTBEAT_S):
                    try:
                        self._beat()
                    except Exception as exc:  # lease lost or the database is away for a moment
                        from lifecycle.services import LeaseLost

                        if isinstance(exc, LeaseLost):
                            self.lost = exc
                            return
                        logger.warning("model build %s: heartbeat failed (%s)", self.build.pk, exc)
            finally:
                connection.close()

        thread = threading.Thread(target=loop, name=f"build-{self.build.pk}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
            self._beat()
        finally:
            self._stop.set()
            thread.join(timeout=10)
            close_old_connections()


def run_recipe(context: BuildContext) -> ModelVersion:
    if context.build.kind == ModelKind.PARSER:
        return build_parser(context)
    return build_embedder(context)


def _stage_version(context: BuildContext, key: str, make: str) -> str:
    """A stage's version name, chosen once and kept on the row so a resumed build continues the same run."""
    name = context.build.stages_done.get(f"name:{key}")
    if not name:
        name = make
        context.stage_done(f"name:{key}", name)
    return name


def _register_candidate(kind: str, version: str, folder: Path, card: dict[str, Any]) -> ModelVersion:
    from lifecycle.services import version_register

    row = version_register(
        kind=kind, version=version, location=str(folder), state=ModelVersion.State.EVALUATING, card=card
    )
    if row.state != ModelVersion.State.EVALUATING:
        row.state = ModelVersion.State.EVALUATING
        row.save(update_fields=["state", "updated_at"])
    return row


# --- parser -----------------------------------------------------------------------------------------


def build_parser(context: BuildContext) -> ModelVersion:
    import json

    from vision.parser_train import STATE_NAME, ParserTrainConfig, load_train_data, score_dev, train_parser

    data_dir = selectors.shared_data_dir()
    budget = context.budget_minutes
    stamp = time.strftime("%Y%m%d-%H%M")
    base_name = _stage_version(context, "base", f"parser-b{context.build.pk}-base-{stamp}")
    final_name = _stage_version(context, "final", f"parser-effl0-unet-{stamp}-b{context.build.pk}")
    work = models_dir() / "builds" / str(context.build.pk)
    base_folder = work / "parser" / base_name
    final_folder = models_dir() / "parser" / final_name

    # 5 epochs fit the default 36-minute budget (about 3.7 min an epoch on 2 cores), so the learning rate
    # schedule runs to its end; the time limits only guard a slower machine
    base = ParserTrainConfig(epochs=5, max_minutes=budget * PARSER_SHARES["base"])
    people = ParserTrainConfig(
        epochs=3,
        lr=0.0006,
        viton_per_epoch=300,
        person_per_epoch=500,
        init_from=str(base_folder),
        max_minutes=budget * PARSER_SHARES["people"],
    )
    stages = (
        ("base", "parser: CCP + VITON products", base, work, base_folder, base_name),
        ("people", "parser: fine-tune on people", people, models_dir(), final_folder, final_name),
    )
    for key, label, config, out_root, folder, name in stages:
        if key in context.build.stages_done:
            continue
        context.progress(label, 0, 1)
        data = load_train_data(
            data_dir, config.cache_long_side, use_viton=True, use_persons=config.person_per_epoch > 0
        )
        context.log(f"{label}: {len(data.train)} samples; " + "; ".join(data.sources))

        def stage_progress(stage: str, done: int, total: int, label: str = label) -> None:
            context.progress(label, done, total)  # reported under this build stage's label

        train_parser(
            data,
            out_root,
            config,
            resume_from=folder if (folder / STATE_NAME).is_file() else None,  # an interrupted run goes on
            log=context.log,
            progress=stage_progress,
            version=name,
        )
        context.stage_done(key, str(folder))
    card = json.loads((final_folder / "model_card.json").read_text())
    card["recipe"] = "default: CCP train + VITON train products, then VITON train people (fine-tune)"
    card["licence"] = (
        "trained on CCP and VITON (research and evaluation use only): do not ship this version in a shop; "
        "train on data you may use"
    )
    card["build"] = context.build.pk
    row = _register_candidate(ModelKind.PARSER, final_name, final_folder, card)
    context.progress("evaluate: candidate and active parser on dev photos", 0, 2)
    from lifecycle.services import version_evaluated
    from vision.parser import GarmentParser, parser_at

    candidate = _parser_metrics(score_dev(GarmentParser.load(final_folder), data_dir, limit=PARSER_GATE_IMAGES))
    context.progress("evaluate: candidate and active parser on dev photos", 1, 2)
    active = selectors.version_active(ModelKind.PARSER)
    active_metrics = None
    if active is not None:
        active_metrics = _parser_metrics(score_dev(parser_at(active.location), data_dir, limit=PARSER_GATE_IMAGES))  # type: ignore[arg-type]
    context.progress("evaluate: candidate and active parser on dev photos", 2, 2)
    candidate["gate_images_per_set"] = PARSER_GATE_IMAGES
    return version_evaluated(row, candidate, active_metrics, active)


def _parser_metrics(scores: dict[str, Any]) -> dict[str, Any]:
    return {f"{name}_dice": values["dice"] for name, values in scores.items() if values.get("dice") is not None}


# --- embedder -----------------------------------------------------------------------------------------


EMBEDDER_STEPS = 160  # optimiser steps a build aims at, whatever the catalog's size


def embedder_epochs(items: int, pairs: int) -> int:
    """Epochs for about EMBEDDER_STEPS steps: a small catalog makes short epochs (one step per 256
    products), and the person↔product pairs are only seen 128 a step — so it needs more of them."""
    per_epoch = math.ceil(items / 256) if items else math.ceil(pairs / 128)
    return max(8, min(200, math.ceil(EMBEDDER_STEPS / max(1, per_epoch))))


def catalog_db_items() -> list[CatalogItem]:
    """The shop's own catalog (products with at least one stored image that has not failed),
    read through selectors. A processed image's garment mask is used when there is one."""
    from catalog import selectors as catalog_selectors
    from vision.embedder_train import CatalogItem

    items = []
    for product in catalog_selectors.product_list():
        images = [i for i in product.images.all() if i.status != "failed" and i.file]
        if not images:
            continue
        items.append(
            CatalogItem(
                key=product.sku,
                image=Path(images[0].file.path),
                title=product.title,
                description=product.description,
                category=product.category.name if product.category else "",
                colour=product.colour,
                pattern=product.pattern,
                group=product.design_group,
                mask=Path(images[0].mask.path) if images[0].mask else None,
            )
        )
    return items


def heldout_design(group: str, key: str, share: float = 0.1) -> bool:
    """A stable tenth of the catalog's designs (by design group, else SKU) is held out for evaluation."""
    digest = hashlib.sha256((group or key).encode()).digest()
    return int.from_bytes(digest[:4], "big") < share * 2**32


def build_embedder(context: BuildContext) -> ModelVersion:
    from lifecycle.services import version_evaluated
    from vision.embedder_train import (
        EmbedderTrainConfig,
        EmbedderTrainData,
        evaluate_checkpoint,
        train_embedder,
        viton_pairs,
    )

    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = _stage_version(context, "final", f"shop-clip-effl0-minilm-{stamp}-b{context.build.pk}")
    cache = Path(settings.DATA_DIR) / "cache" / "embedder"
    items = catalog_db_items()
    train = EmbedderTrainData(sources=["the shop's own catalog (processed cut-outs), nine tenths of its designs"])
    held = EmbedderTrainData(sources=["the shop's own catalog, a tenth of its designs (held out)"])
    for item in items:
        (held if heldout_design(item.group, item.key) else train).items.append(item)
    viton = selectors.shared_data_dir() / "viton"
    limit = settings.SHOP_BUILD_VITON_PAIRS or None
    if (viton / "manifest.csv").is_file():
        train.pairs = viton_pairs(viton, "train")[:limit]
        held.pairs = viton_pairs(viton, "dev")[: limit and max(20, limit // 4)]
        train.sources.append(f"VITON {viton} split=train ({len(train.pairs)} person↔product pairs)")
        held.sources.append(f"VITON {viton} split=dev ({len(held.pairs)} pairs)")
    context.log(
        f"embedder: {len(train.items)} catalog items + {len(train.pairs)} pairs; "
        f"held out {len(held.items)} + {len(held.pairs)}"
    )
    folder = models_dir() / "embedder" / name
    if "train" not in context.build.stages_done:
        run = EmbedderTrainConfig(
            epochs=embedder_epochs(len(train.items), len(train.pairs)),
            max_seconds=context.budget_minutes * 60 * EMBEDDER_TRAIN_SHARE,
        )
        folder = train_embedder(
            train,
            held if (held.items or held.pairs) else None,
            models_dir(),
            cache,
            run,
            log=context.log,
            progress=context.progress,
            version=name,
        )
        context.stage_done("train", str(folder))
    from lifecycle.services import card_read

    card = card_read(folder)
    card["recipe"] = "default: the shop's catalog cut-outs + VITON person↔product pairs"
    card["licence"] = "the shop's own catalog" + (
        " + VITON (research and evaluation use only: do not ship a version trained on it)" if train.pairs else ""
    )
    card["build"] = context.build.pk
    row = _register_candidate(ModelKind.EMBEDDER, name, folder, card)
    context.progress("evaluate: candidate and active embedder on held-out data", 0, 2)
    metrics = evaluate_checkpoint(folder, held, cache)
    context.progress("evaluate: candidate and active embedder on held-out data", 1, 2)
    active = selectors.version_active(ModelKind.EMBEDDER)
    # nothing measured on an active version that cannot be measured here (a hub model): the gate then
    # finds no shared metric and leaves the candidate ready — never "nothing to compare with"
    active_metrics: dict[str, Any] | None = None if active is None else {}
    if active is not None and Path(active.location).is_dir():
        try:
            active_metrics = evaluate_checkpoint(Path(active.location), held, cache)
        except ValueError as exc:  # a hub model: not comparable on these features
            context.log(f"active embedder not comparable: {exc}")
    context.progress("evaluate: candidate and active embedder on held-out data", 2, 2)
    metrics["heldout_items"] = len(held.items)
    metrics["heldout_pairs"] = len(held.pairs)
    return version_evaluated(row, metrics, active_metrics, active)
