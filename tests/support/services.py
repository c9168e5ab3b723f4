"""Fixtures that need the running services: the test database (PostgreSQL+pgvector), Redis and real
Celery worker processes. tests/integration/conftest.py and tests/functional/conftest.py import them;
tests/unit cannot ask for them (see tests/unit/conftest.py)."""

from __future__ import annotations

import contextlib
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

from tests.support import REPO


@pytest.fixture(autouse=True, scope="session")
def search_query_threads_closed_before_the_database_goes(django_db_setup: None) -> Iterator[None]:
    """Searches outside a transaction (live-server pages, the worker) run their queries on threads
    with connections of their own; those connections are closed before the test database is dropped."""
    yield
    from search.services import search_query_threads_close

    search_query_threads_close()


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
