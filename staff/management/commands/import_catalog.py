"""python manage.py import_catalog FILE.csv [--images-root DIR]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from catalog.csv_format import CatalogFileError
from catalog.services import catalog_import_csv
from workers.services import image_processing_enqueue


class Command(BaseCommand):
    help = (
        "Import or update products from a catalog CSV (columns: "
        "sku,title,description,category,colour,pattern,price,currency,stock,group,images). "
        "Idempotent by SKU; bad rows are reported with their line numbers while good rows import."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv_file", type=Path)
        parser.add_argument(
            "--images-root",
            type=Path,
            default=None,
            help="folder the 'images' paths are relative to (default: the CSV file's folder)",
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        csv_file = Path(options["csv_file"])
        images_root = Path(options["images_root"]) if options["images_root"] else csv_file.resolve().parent
        bar = tqdm(total=0, unit="row", desc="importing", disable=options["no_progress"], file=self.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = catalog_import_csv(csv_file, images_root, on_progress=progress, on_images=image_processing_enqueue)
        except CatalogFileError as exc:
            raise CommandError(f"{csv_file}: {exc}") from exc
        finally:
            bar.close()
        for problem in report.problems:
            self.stderr.write(f"{csv_file}: {problem}")
        self.stdout.write(report.summary())
        if report.problems:
            raise CommandError(
                f"{len(report.problems)} bad row(s) listed above were skipped; the good rows were imported",
                returncode=2,
            )
