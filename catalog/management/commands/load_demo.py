"""python manage.py load_demo — import the demo catalog from $SHOP_DEMO_SOURCE, if there is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from catalog.cc0 import cc0_to_catalog_csv, is_cc0_folder
from catalog.hm import hm_to_catalog_csv


class Command(BaseCommand):
    help = (
        "Load the demo catalog from SHOP_DEMO_SOURCE: an H&M-style folder, or the CC0 photo set (told apart by "
        "their manifest columns). Without a source the shop stays empty."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", type=Path, default=None, help="default: $SHOP_DEMO_SOURCE")
        parser.add_argument("--limit", type=int, default=None, help="default: $SHOP_DEMO_LIMIT")

    def handle(self, *args: Any, **options: Any) -> None:
        raw = options["source"] or settings.SHOP_DEMO_SOURCE
        source = Path(raw) if raw else None
        if source is None or not (source / "manifest.csv").is_file():
            self.stdout.write(
                f"no demo catalog source at {source or '(SHOP_DEMO_SOURCE is empty)'}; the shop starts empty. "
                "Set SHOP_DEMO_SOURCE to an H&M-style folder or the CC0 set, or import a CSV with import_catalog."
            )
            return
        limit = options["limit"] or settings.SHOP_DEMO_LIMIT
        out = settings.DATA_DIR / "demo" / "catalog.csv"
        convert = cc0_to_catalog_csv if is_cc0_folder(source) else hm_to_catalog_csv
        count = convert(source, out, limit=limit)
        self.stdout.write(f"demo catalog: {count} products from {source} -> {out}")
        call_command("import_catalog", str(out), images_root=str(source), stdout=self.stdout, stderr=self.stderr)
