"""Unit tests: no PostgreSQL, no Redis, no Celery worker, no browser (``bin/test unit`` runs them without
starting any service). pytest-django stays loaded for the settings; the database is never set up.

A test here that asks for the database (a ``django_db`` mark, ``db``, ``live_server`` …) stops the run
at collection with a message saying where it belongs; the Redis and worker fixtures of
tests/support/services.py are not even visible here."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# pytest-django's fixtures that set up (or need) the test database
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_setup",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
        "admin_user",
        "admin_client",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        if not item.path.resolve().is_relative_to(HERE):
            continue
        needs = sorted(DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("django_db") is not None:
            needs.append("the django_db mark")
        if needs:
            wrong.append(f"  {item.nodeid}: {', '.join(needs)}")
    if wrong:
        raise pytest.UsageError(
            "unit tests run without PostgreSQL; these need the database, move them to tests/integration:\n"
            + "\n".join(wrong)
        )
