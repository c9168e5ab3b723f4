"""Run the image pipeline again for a selection of images, e.g. after switching models."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone
from tqdm import tqdm

from catalog import selectors as catalog_selectors
from workers import services


class Command(BaseCommand):
    help = (
        "Re-run every pipeline stage for the selected images (criteria combine): --all, --failed, --sku, "
        "--model NAME (images without vectors of that embedding space, e.g. after setting SHOP_CLIP_MODEL). "
        "By default the Celery workers do the work and this command follows their progress; --inline runs it "
        "here. Interrupted, the same command resumes where it stopped (--restart starts over)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="every image")
        parser.add_argument("--failed", action="store_true", help="images whose processing failed")
        parser.add_argument("--sku", nargs="+", default=[], help="the images of these products")
        parser.add_argument(
            "--model",
            default="",
            help="images lacking vectors of this embedding space (must be the embedder the workers load now)",
        )
        parser.add_argument("--inline", action="store_true", help="process in this process, not on the workers")
        parser.add_argument("--restart", action="store_true", help="forget an interrupted run with these options")
        parser.add_argument("--wait", type=float, default=3600.0, help="seconds to follow the workers (default 1 h)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["all"] or options["failed"] or options["sku"] or options["model"]):
            raise CommandError("say what to reprocess: --all, --failed, --sku SKU [SKU ...] or --model NAME")
        space = None
        if options["model"]:
            from lifecycle.serving import embedders_writing

            writing = {w.version.version: w.space for w in embedders_writing()}
            if options["model"] not in writing:
                raise CommandError(
                    f"the workers write the embedder(s) {', '.join(sorted(writing))}, not {options['model']!r}: "
                    "promote it first (manage.py models activate VERSION; `models status` lists the versions)"
                )
            space = writing[options["model"]]
        missing = set(options["sku"]) - set(catalog_selectors.product_skus_existing(options["sku"]))
        if missing:
            raise CommandError(f"no product with SKU {', '.join(sorted(missing))}")

        key = json.dumps([options["all"], options["failed"], sorted(options["sku"]), options["model"]])
        state_path = settings.DATA_DIR / "run" / f"reprocess-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
        started = self._run_start(state_path, key, restart=options["restart"])
        selection = catalog_selectors.images_for_reprocess(
            everything=options["all"], failed=options["failed"], skus=options["sku"], missing_space=space
        )
        todo = list(
            selection.filter(Q(processed_at__isnull=True) | Q(processed_at__lt=started)).values_list("id", flat=True)
        )
        if not todo:
            self.stdout.write("nothing to reprocess")
            state_path.unlink(missing_ok=True)
            return
        self.stdout.write(f"{len(todo)} image(s) to process")
        outcomes = self._inline(todo) if options["inline"] else self._on_workers(todo, started, options["wait"])
        state_path.unlink(missing_ok=True)
        self.stdout.write(self.style.SUCCESS("done: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))))

    def _run_start(self, state_path: Any, key: str, *, restart: bool) -> datetime:
        if state_path.is_file() and not restart:
            state = json.loads(state_path.read_text())
            started = datetime.fromisoformat(state["started"])
            self.stdout.write(f"resuming the run started {started:%Y-%m-%d %H:%M:%S} (--restart starts over)")
            return started
        started = timezone.now()
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps({"options": key, "started": started.isoformat()}))
        return started

    def _inline(self, todo: list[int]) -> dict[str, int]:
        from catalog import services as catalog_services

        outcomes: dict[str, int] = {}
        try:
            for image_id in tqdm(todo, desc="reprocess", unit="img"):
                catalog_services.images_reset_for_reprocess([image_id])
                outcome = services.image_pipeline_run(image_id, token=f"reprocess-{image_id}-{time.time_ns()}")
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        except KeyboardInterrupt:
            raise CommandError("interrupted; run the same command again to resume") from None
        return outcomes

    def _on_workers(self, todo: list[int], started: datetime, wait: float) -> dict[str, int]:
        sent = services.images_reprocess_enqueue(todo)
        if sent < len(todo):
            raise CommandError(
                f"the broker took {sent} of {len(todo)} images; the rest are pending and the sweep sends them when "
                "Redis is back (or run again with --inline)"
            )
        deadline = time.monotonic() + wait
        bar = tqdm(total=len(todo), desc="reprocess (workers)", unit="img")
        try:
            while True:
                counts = catalog_selectors.image_status_counts(todo, since=started)
                finished = counts.get("ready", 0) + counts.get("failed", 0)
                bar.update(finished - bar.n)
                if finished >= len(todo):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"{len(todo) - finished} image(s) still unfinished after {wait:.0f} s; are the workers "
                        "running? The same command resumes."
                    )
                time.sleep(1.0)
        except KeyboardInterrupt:
            raise CommandError("stopped following; the workers carry on, and the same command resumes") from None
        finally:
            bar.close()
        return counts
