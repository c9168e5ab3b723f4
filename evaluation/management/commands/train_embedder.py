"""python manage.py train_embedder — train the shop's image–text embedder (see vision.embedder_train)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle.builds import catalog_db_items
from vision.assets import models_dir
from vision.clip import latest_checkpoint
from vision.embedder_train import EmbedderTrainConfig, EmbedderTrainData, hm_items, train_embedder, viton_pairs


class Command(BaseCommand):
    help = (
        "Train the shop's open_clip embedder (EfficientNet-Lite0 + MiniLM towers, trained projections) and its "
        "attribute heads. Default data: the shop's own catalog (products with ready images). With --hm/--viton: "
        "their train splits, reporting metrics on their dev splits. Writes a versioned checkpoint folder with a "
        "model card under $SHOP_MODELS_DIR/embedder/. Image features are cached, so an interrupted run resumes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hm", type=Path, default=None, help="H&M folder (manifest.csv): train on its train split")
        parser.add_argument("--viton", type=Path, default=None, help="VITON folder: person↔product pairs (train split)")
        parser.add_argument("--epochs", type=int, default=40)
        parser.add_argument("--batch-size", type=int, default=256)
        parser.add_argument("--lr", type=float, default=2e-3)
        parser.add_argument("--pair-weight", type=float, default=1.0)
        parser.add_argument(
            "--attribute-weight",
            type=float,
            default=EmbedderTrainConfig.attribute_weight,
            help="weight of the auxiliary category/colour/pattern loss while the trunk top is fine-tuned",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--views", type=int, choices=[1, 2], default=EmbedderTrainConfig.views, help="1: no mirrored training views"
        )
        parser.add_argument(
            "--whole-photos",
            action="store_true",
            help="train on whole product photos instead of the garment parser's cutouts (what the pipeline embeds)",
        )
        parser.add_argument("--freeze-trunk", action="store_true", help="train the projection heads only")
        parser.add_argument("--out", type=Path, default=None, help="models folder (default $SHOP_MODELS_DIR)")
        parser.add_argument("--if-missing", action="store_true", help="do nothing when a checkpoint already exists")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["attribute_weight"] < 0:
            raise CommandError(f"--attribute-weight must be 0 or more, not {options['attribute_weight']}")
        out_root: Path = options["out"] or models_dir()
        if options["if_missing"] and latest_checkpoint(out_root) is not None:
            self.stdout.write(f"embedder checkpoint present: {latest_checkpoint(out_root)}")
            return
        train, heldout = EmbedderTrainData(), EmbedderTrainData()
        if options["hm"]:
            if not (options["hm"] / "manifest.csv").is_file():
                raise CommandError(f"{options['hm']} has no manifest.csv")
            train.items = hm_items(options["hm"], "train")
            heldout.items = hm_items(options["hm"], "dev")
            train.sources.append(f"H&M {options['hm']} split=train")
            heldout.sources.append(f"H&M {options['hm']} split=dev")
        else:
            train.items = catalog_db_items()
            train.sources.append("the shop's own catalog (database)")
        if options["viton"]:
            if not (options["viton"] / "manifest.csv").is_file():
                raise CommandError(f"{options['viton']} has no manifest.csv")
            train.pairs = viton_pairs(options["viton"], "train")
            heldout.pairs = viton_pairs(options["viton"], "dev")
            train.sources.append(f"VITON {options['viton']} split=train")
            heldout.sources.append(f"VITON {options['viton']} split=dev")
        if not train.items and not train.pairs:
            raise CommandError(
                "nothing to train on: the catalog has no products with ready images. Import a catalog and let the "
                "worker process it, or pass --hm/--viton folders."
            )
        run_settings = EmbedderTrainConfig(
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            lr=options["lr"],
            pair_weight=options["pair_weight"],
            attribute_weight=options["attribute_weight"],
            seed=options["seed"],
            views=options["views"],
            tune_trunk=not options["freeze_trunk"],
            parser_views=not options["whole_photos"],
        )
        cache = Path(settings.DATA_DIR) / "cache" / "embedder"
        folder = train_embedder(
            train,
            heldout if (heldout.items or heldout.pairs) else None,
            out_root,
            cache,
            run_settings,
            log=self.stdout.write,
        )
        self.stdout.write(f"embedder checkpoint: {folder}")
