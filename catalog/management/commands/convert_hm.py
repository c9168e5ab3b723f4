"""python manage.py convert_hm --source shared/data/hm --out hm.csv [--limit N] [--split train|dev|all]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.hm import SourceError, hm_to_catalog_csv


class Command(BaseCommand):
    help = "Convert the H&M product set to the shop's catalog CSV (images relative to --source)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", type=Path, required=True, help="folder with manifest.csv and images/")
        parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
        parser.add_argument("--limit", type=int, default=None, help="at most this many products (whole designs)")
        parser.add_argument("--split", choices=["train", "dev", "all"], default="all")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = hm_to_catalog_csv(options["source"], options["out"], split=options["split"], limit=options["limit"])
        except SourceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"wrote {count} products to {options['out']}; import with: python manage.py import_catalog "
            f"{options['out']} --images-root {options['source']}"
        )
