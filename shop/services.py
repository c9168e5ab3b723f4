"""Shop-wide set-up writes: the staff account the run command prints."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model


@dataclass(frozen=True)
class StaffCredentials:
    username: str
    password: str
    created: bool


def staff_user_ensure(username: str, credentials_file: Path) -> StaffCredentials:
    """Make sure a staff superuser exists. Its password is generated once and kept in
    ``credentials_file`` (mode 0600) so that every run can print it; a password changed in the
    admin afterwards is not overwritten."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    stored = credentials_file.read_text().strip().split(":", 1) if credentials_file.exists() else []
    if user is not None and len(stored) == 2 and stored[0] == username:
        return StaffCredentials(username, stored[1], created=False)
    password = secrets.token_urlsafe(12)
    if user is None:
        user = user_model.objects.create_superuser(username=username, email="", password=password)
        created = True
    else:
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        created = False
    credentials_file.parent.mkdir(parents=True, exist_ok=True)
    credentials_file.write_text(f"{username}:{password}\n")
    credentials_file.chmod(0o600)
    return StaffCredentials(username, password, created=created)
