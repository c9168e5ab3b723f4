"""python manage.py train_parser — train the garment parser (see vision.parser_train)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vision.assets import models_dir
from vision.parser_train import ParserTrainConfig, find_resumable, load_train_data, score_dev, train_parser


class Command(BaseCommand):
    help = (
        "Train the garment parser (EfficientNet-Lite0 U-Net, classes vision.parser.PARSER_CLASSES) on the CCP "
        "train split plus VITON train product shots (mask_quality=ok). Checkpoints every epoch into "
        "<out>/parser/<version>/ (parser.pt, train_state.pt, model_card.json); --resume continues the newest "
        "unfinished run. At the end the model card gets garment-vs-rest Dice/IoU on CCP dev and VITON dev "
        "product shots."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        default = ParserTrainConfig()
        parser.add_argument(
            "--data",
            type=Path,
            default=Path(settings.BASE_DIR).parent / "shared" / "data",
            help="shared data folder holding ccp/ and viton/ (default ../shared/data)",
        )
        parser.add_argument("--epochs", type=int, default=default.epochs)
        parser.add_argument(
            "--max-minutes",
            type=float,
            default=None,
            help="stop after this many training minutes in all (a resumed run counts its earlier sessions), "
            "then checkpoint and score",
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the newest unfinished run under --out with its saved settings",
        )
        parser.add_argument("--out", type=Path, default=None, help="models folder (default $SHOP_MODELS_DIR)")
        parser.add_argument("--batch-size", type=int, default=default.batch_size)
        parser.add_argument("--lr", type=float, default=default.lr)
        parser.add_argument(
            "--crop", type=int, nargs=2, default=list(default.crop), metavar=("H", "W"), help="training crop size"
        )
        parser.add_argument(
            "--working-size",
            type=int,
            default=default.working_size,
            help="inference long side (training scales are drawn around it)",
        )
        parser.add_argument("--viton-per-epoch", type=int, default=default.viton_per_epoch)
        parser.add_argument("--no-viton", action="store_true", help="train on CCP only")
        parser.add_argument(
            "--person-per-epoch",
            type=int,
            default=default.person_per_epoch,
            help="VITON train photos of people (LIP pseudo-labels) drawn per epoch; 0 leaves them out",
        )
        parser.add_argument(
            "--init-from",
            type=Path,
            default=None,
            help="fine-tune from this parser checkpoint folder instead of starting from ImageNet weights",
        )
        parser.add_argument("--freeze-levels", type=int, default=default.freeze_levels)
        parser.add_argument("--threads", type=int, default=default.threads)
        parser.add_argument("--seed", type=int, default=default.seed)
        parser.add_argument("--skip-dev", action="store_true", help="do not score the dev splits at the end")

    def handle(self, *args: Any, **options: Any) -> None:
        out_root: Path = options["out"] or models_dir()
        data_dir: Path = options["data"]
        if not (data_dir / "ccp" / "manifest.csv").is_file():
            raise CommandError(f"{data_dir}/ccp/manifest.csv not found; pass --data pointing at the shared data")
        resume_from = None
        if options["resume"]:
            resume_from = find_resumable(out_root)
            if resume_from is None:
                raise CommandError(f"nothing to resume under {out_root / 'parser'}")
            saved = json.loads((resume_from / "model_card.json").read_text())["settings"]
            config = ParserTrainConfig.from_json(saved)
            config.max_minutes = options["max_minutes"]
        else:
            config = ParserTrainConfig(
                epochs=options["epochs"],
                batch_size=options["batch_size"],
                lr=options["lr"],
                crop=(options["crop"][0], options["crop"][1]),
                working_size=options["working_size"],
                viton_per_epoch=0 if options["no_viton"] else options["viton_per_epoch"],
                person_per_epoch=0 if options["no_viton"] else options["person_per_epoch"],
                init_from=str(options["init_from"] or ""),
                freeze_levels=options["freeze_levels"],
                threads=options["threads"],
                seed=options["seed"],
                max_minutes=options["max_minutes"],
            )

        def log(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        if config.init_from and not (Path(config.init_from) / "parser.pt").is_file():
            raise CommandError(f"--init-from {config.init_from}: no parser.pt there")
        data = load_train_data(
            data_dir,
            config.cache_long_side,
            use_viton=config.viton_per_epoch > 0,
            use_persons=config.person_per_epoch > 0,
        )
        log(f"training on {len(data.train)} samples: " + "; ".join(data.sources))
        folder = train_parser(
            data,
            out_root,
            config,
            resume_from=resume_from,
            dev_eval=None if options["skip_dev"] else (lambda parser: score_dev(parser, data_dir)),
            log=log,
        )
        self.stdout.write(self.style.SUCCESS(f"garment parser written to {folder}"))
