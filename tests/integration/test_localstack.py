"""The local service manager: a real PostgreSQL+pgvector and Redis of their own, stopped and
started again, keep their data. Runs on separate ports and folders from the suite's services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from shop import localstack

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    pg_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "SHOP_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"postgres://shop@127.0.0.1:{pg_port}/stacktest",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    yield env
    subprocess.run([sys.executable, "-m", "shop.localstack", "stop", "postgres", "redis"], env=env, cwd=REPO)
    localstack.stack_data_remove(env)


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env`` (a stack of a test's own); its output, or the test fails with it."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def stack(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "shop.localstack", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_services_start_stop_and_keep_their_data(stack_env: dict[str, str]):
    out = stack(stack_env, "start", "postgres", "redis")
    assert "postgres: up" in out and "redis: up" in out
    db_url = stack_env["DATABASE_URL"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE kept (v vector(3))")
        conn.execute("INSERT INTO kept VALUES ('[1,2,3]')")
        user = conn.execute("SELECT current_setting('is_superuser'), usename FROM pg_user LIMIT 1").fetchone()
    assert user is not None
    redis.Redis.from_url(stack_env["REDIS_URL"]).set("kept", "yes")

    status = stack(stack_env, "status")
    assert "postgres  running" in status and "redis     running" in status and "worker    stopped" in status

    out = stack(stack_env, "stop", "postgres", "redis")
    assert "postgres: stopped" in out and "redis: stopped" in out
    assert "postgres  stopped" in stack(stack_env, "status", "postgres")

    stack(stack_env, "start", "postgres", "redis")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT v::text FROM kept").fetchone() == ("[1,2,3]",)
    assert redis.Redis.from_url(stack_env["REDIS_URL"]).get("kept") == b"yes"
    logs = Path(stack_env["SHOP_DATA_DIR"]) / "log"
    assert (logs / "postgres.log").stat().st_size > 0 and (logs / "redis.log").exists()


def test_postgres_runs_unprivileged(stack_env: dict[str, str]):
    stack(stack_env, "start", "postgres")
    pid = int((Path(stack_env["SHOP_DATA_DIR"]) / "run" / "postgres.pid").read_text())
    uid = os.stat(f"/proc/{pid}").st_uid
    assert uid != 0, "PostgreSQL must never run as root"
    if os.geteuid() == 0:
        import pwd

        assert pwd.getpwuid(uid).pw_name == localstack.DB_SYSTEM_USER


def test_unknown_service_is_refused(stack_env: dict[str, str]):
    result = subprocess.run(
        [sys.executable, "-m", "shop.localstack", "start", "mysql"],
        env=stack_env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "unknown service" in result.stderr


def test_postgres_starts_again_after_a_crash(stack_env: dict[str, str]):
    import signal
    import time

    stack(stack_env, "start", "postgres")
    db_url = stack_env["DATABASE_URL"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survived (n int)")
        conn.execute("INSERT INTO survived VALUES (42)")
    pid = int((Path(stack_env["SHOP_DATA_DIR"]) / "run" / "postgres.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # an unclean stop: the next start runs crash recovery
    deadline = time.monotonic() + 30
    while localstack.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    out = stack(stack_env, "start", "postgres")
    assert "postgres: up" in out
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT n FROM survived").fetchone() == (42,)


def test_postgres_follows_a_changed_port_in_database_url(stack_env: dict[str, str]):
    first = int(stack_env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
    stack(stack_env, "start", "postgres")
    stack(stack_env, "stop", "postgres")
    second = free_port()
    moved = {**stack_env, "DATABASE_URL": f"postgres://shop@127.0.0.1:{second}/stacktest"}
    try:
        out = stack(moved, "start", "postgres")
        assert f"postgres: up on 127.0.0.1:{second}" in out
        with psycopg.connect(f"host=127.0.0.1 port={second} user=shop dbname=postgres", autocommit=True) as conn:
            assert conn.execute("SHOW port").fetchone() == (str(second),)
        assert not localstack.port_open(first)
    finally:
        subprocess.run([sys.executable, "-m", "shop.localstack", "stop", "postgres"], env=moved, cwd=REPO)
