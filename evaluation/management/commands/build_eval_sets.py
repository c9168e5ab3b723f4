"""python manage.py build_eval_sets [--data ../shared/data] [--out var/eval/sets] — see evaluation.evalsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.evalsets import DataMissing, build_eval_sets
from vision.assets import REPO


class Command(BaseCommand):
    help = (
        "Write the evaluation sets (catalog CSVs, query JSONL, segmentation and attribute CSVs, CCP garment masks) "
        "from the shared data folder, read at run time. Manifest-style files hold absolute paths; the catalog "
        "CSVs' images are relative to the roots listed in <out>/index.json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data folder")
        parser.add_argument("--out", type=Path, default=None, help="output folder (default var/eval/sets)")
        parser.add_argument("--max-queries", type=int, default=400, help="attribute queries, all families together")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"] or Path(settings.DATA_DIR) / "eval" / "sets"
        try:
            result = build_eval_sets(
                options["data"], out, max_queries=options["max_queries"], seed=options["seed"], log=self.stdout.write
            )
        except DataMissing as exc:
            raise CommandError(str(exc)) from exc
        for name, count in result.counts.items():
            root = result.images_roots.get(name)
            self.stdout.write(f"  {name}: {count} rows" + (f" (images root {root})" if root else ""))
        hm_root = result.images_roots["hm_dev_catalog.csv"]
        self.stdout.write(
            self.style.SUCCESS(f"evaluation sets written to {result.out}")
            + "\ne.g. python manage.py evaluate search --catalog "
            + f"{result.out / 'hm_dev_catalog.csv'} --images-root {hm_root} "
            + f"--queries {result.out / 'hm_dev_attribute_queries.jsonl'}"
        )
