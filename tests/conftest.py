"""Shared fixtures. The suite runs against the real PostgreSQL+pgvector and Redis that bin/test
starts; nothing here mocks the database, the broker or the worker."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from PIL import Image

from catalog.csv_format import KNOWN_COLUMNS

REPO = Path(__file__).resolve().parent.parent


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
    local stack does (SHOP_HTTPS=false). tests/test_settings.py checks the production defaults."""
    names = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER")
    previous = {name: getattr(settings, name) for name in names}
    for name in names:
        setattr(settings, name, None if name == "SECURE_PROXY_SSL_HEADER" else False)
    yield
    for name, value in previous.items():
        setattr(settings, name, value)


@pytest.fixture(autouse=True, scope="session")
def search_query_threads_closed_before_the_database_goes(django_db_setup: None) -> Iterator[None]:
    """Searches outside a transaction (live-server pages, the worker) run their queries on threads
    with connections of their own; those connections are closed before the test database is dropped."""
    yield
    from search.services import search_query_threads_close

    search_query_threads_close()


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (36, 54)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


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
    (see tests/models.py); the shop's own trained models are never touched by the tests."""
    from tests.models import build_test_models
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


def parser_serve(models_root: Path, version: str = "scene-parser") -> None:
    """Register the newest parser checkpoint under ``models_root`` and make the registry serve it (the
    shop serves what its registry has active, never simply the newest folder)."""
    from lifecycle import services as lifecycle_services
    from vision.parser import GarmentParser

    found = GarmentParser.find_latest(Path(models_root) / "parser")
    assert found is not None, f"no parser checkpoint under {models_root}"
    row = lifecycle_services.version_register(kind="parser", version=version, location=str(found.parent))
    lifecycle_services.version_promote(row)


def reset_parser_cache() -> None:
    from vision import parser

    clear = getattr(parser.garment_parser, "cache_clear", None)
    if clear:
        clear()
    parser.parser_at.cache_clear()


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"Redis at {settings.CELERY_BROKER_URL} does not answer; run the suite with bin/test ({exc})")
    return client


class WorkerProcess:
    """A real Celery worker (``celery -A shop worker``) in its own process group, pointed at the
    test database and the given broker."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str, beat: bool = False, queues: str = "") -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "celery", "-A", "shop", "worker", "-l", "info", "--concurrency", "1"]
        if queues:
            argv += ["-Q", queues]
        argv += ["-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
        if beat:
            argv += ["--beat", "--schedule", str(log_path.with_suffix(".beat"))]
        self.marker = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while b"ready." not in self.log_path.read_bytes()[self.marker :]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the Celery worker did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children) at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def worker_factory(
    redis_client: redis.Redis, media_root: Path, tmp_path: Path, test_models: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes: ``worker_factory(broker_url=..., env={...}, beat=False)``."""
    from django.db import connection

    started: list[WorkerProcess] = []
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)

    def start(
        broker_url: str | None = None, env: dict[str, str] | None = None, beat: bool = False, queues: str = ""
    ) -> WorkerProcess:
        db = connection.settings_dict
        broker = broker_url or settings.CELERY_BROKER_URL
        full_env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "SHOP_MEDIA_ROOT": str(media_root),
            "SHOP_MODELS_DIR": str(test_models),
            "REDIS_URL": broker,
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
            **(env or {}),
        }
        worker = WorkerProcess(full_env, tmp_path / f"worker{len(started)}.log", f"test{len(started)}", beat, queues)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_worker_process(worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    """One real Celery worker process on the test broker, pointed at the test database."""
    return worker_factory()
