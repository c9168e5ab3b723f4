"""python manage.py staff_bootstrap [--username staff] — create the staff user and print it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from shop.services import staff_user_ensure


class Command(BaseCommand):
    help = "Create the staff superuser once (password kept in $SHOP_DATA_DIR/staff-credentials.txt) and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="staff")

    def handle(self, *args: Any, **options: Any) -> None:
        creds = staff_user_ensure(options["username"], settings.DATA_DIR / "staff-credentials.txt")
        state = "created" if creds.created else "exists"
        self.stdout.write(f"staff user ({state}): username {creds.username}  password {creds.password}")
