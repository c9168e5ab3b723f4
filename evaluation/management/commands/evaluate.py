"""python manage.py evaluate MODE [options] [--out DIR]

Modes: search, segmentation, duplicates, attributes, alternatives. Each lives in ``evaluation/<mode>.py``
with ``add_arguments(parser)`` and ``run(options, out_dir, log) -> dict``; modules are imported
lazily, so a mode whose module is missing or broken fails alone with a clear message.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

MODES = ("search", "segmentation", "duplicates", "attributes", "alternatives")


def load_mode(mode: str) -> ModuleType:
    """``evaluation.<mode>``, or CommandError "mode X is not available yet"."""
    if mode not in MODES:
        raise CommandError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    name = f"evaluation.{mode}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name in (name, "evaluation"):
            raise CommandError(f"mode {mode} is not available yet ({name} does not exist)") from exc
        raise CommandError(f"mode {mode} cannot be loaded: {exc}") from exc
    except Exception as exc:  # another mode's broken module must not take this command down
        raise CommandError(f"mode {mode} cannot be loaded: {exc.__class__.__name__}: {exc}") from exc
    if not (hasattr(module, "run") and hasattr(module, "add_arguments")):
        raise CommandError(f"mode {mode} is not available yet ({name} lacks add_arguments/run)")
    return module


def default_out(mode: str) -> Path:
    return Path(settings.DATA_DIR) / "eval" / f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"


class Command(BaseCommand):
    help = (
        "Evaluate a part of the shop against labelled data and write a report (<mode>.json/.md/.png) to --out "
        "(default var/eval/<mode>-<timestamp>). Modes: " + ", ".join(MODES) + ". `evaluate MODE --help` lists a "
        "mode's options."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="mode", required=True, metavar="MODE")
        for mode in MODES:
            sub = subparsers.add_parser(mode, help=f"evaluate {mode}", formatter_class=argparse.HelpFormatter)
            sub.add_argument("--out", type=Path, default=None, help="report folder (default var/eval/<mode>-<time>)")
            try:
                module = load_mode(mode)
            except CommandError as exc:
                sub.description = str(exc)
                continue
            module.add_arguments(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        mode = options["mode"]
        module = load_mode(mode)
        out_dir = Path(options.get("out") or default_out(mode))
        out_dir.mkdir(parents=True, exist_ok=True)

        def log(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        try:
            module.run(options, out_dir, log)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"evaluate {mode}: {exc}") from exc
        written = sorted(p.name for p in out_dir.iterdir() if p.is_file())
        self.stdout.write(self.style.SUCCESS(f"report written to {out_dir.resolve()} ({', '.join(written)})"))
