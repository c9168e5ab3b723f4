"""Send again every image the broker never got or a dead worker left behind (also runs every
``SHOP_SWEEP_INTERVAL`` seconds from Celery beat)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from workers.services import images_sweep


class Command(BaseCommand):
    help = "Enqueue pending images the broker never received and images stuck in processing past their lease."

    def handle(self, *args: Any, **options: Any) -> None:
        report = images_sweep()
        self.stdout.write(
            f"{report.pending} pending and {report.stuck} stuck image(s) found; {report.sent} sent to the workers; "
            f"{report.texts} product text(s) without a vector sent"
        )
        if report.sent < report.pending + report.stuck:
            self.stderr.write("the broker could not be reached for the rest; is Redis running? (bin/run starts it)")
