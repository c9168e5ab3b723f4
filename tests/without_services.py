"""Do-nothing stand-ins for conftest's autouse fixtures, which need pytest-django and the test
database. A test module that needs neither imports them (names and all), so that it runs in seconds
without PostgreSQL or Redis, also with ``-p no:django``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def vectors_in_memory_always_current() -> Iterator[None]:
    yield


@pytest.fixture(autouse=True, scope="session")
def plain_http_like_the_local_stack() -> Iterator[None]:
    yield


@pytest.fixture(autouse=True, scope="session")
def search_query_threads_closed_before_the_database_goes() -> Iterator[None]:
    yield
