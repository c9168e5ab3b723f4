"""Static checks of the production files: docker-compose.yml, Dockerfile and .dockerignore.

Docker cannot run on the development machines, so these tests read the files instead of starting
them. They need neither the database nor Redis and also run with ``-p no:django``. When the
``docker compose`` CLI is installed, the file is additionally validated with ``docker compose config``
(which needs no Docker engine).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SETTINGS_FILE = REPO / "shop" / "settings.py"

# Environment variables the application reads (shop/settings.py); the compose file may set no others
# for the app containers, so a typo in a name cannot silently leave a setting at its default.
KNOWN_APP_ENV: frozenset[str] = frozenset(
    {
        "DATABASE_URL",
        "DATABASE_REPLICA_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "SHOP_SECRET_KEY",
        "SHOP_DEBUG",
        "SHOP_ALLOWED_HOSTS",
        "SHOP_CSRF_TRUSTED_ORIGINS",
        "SHOP_DATA_DIR",
        "SHOP_MEDIA_ROOT",
        "SHOP_STATIC_ROOT",
        "SHOP_SERVE_MEDIA",
        "SHOP_MODELS_DIR",
        "SHOP_DEMO_SOURCE",
        "SHOP_LOG_LEVEL",
        "SHOP_TASK_TIME_LIMIT",
        "SHOP_TASK_SOFT_TIME_LIMIT",
        "SHOP_VISIBILITY_TIMEOUT",
        "SHOP_ANSWER_CACHE_S",
        "SHOP_QUERY_RUNTIME",
        "SHOP_HTTPS",
        "SHOP_BEHIND_PROXY",
        "SHOP_HSTS_SECONDS",
    }
)
# Read by the image's command (gunicorn) rather than by Django.
KNOWN_PROCESS_ENV: frozenset[str] = frozenset({"WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT"})

REQUIRED_SERVICES = ("db", "redis", "migrate", "web", "worker")
APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING_APP_SERVICES = ("web", "worker", "beat")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    """A ``${NAME:?message}`` variable was unset, as ``docker compose`` would report."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Resolve compose-style ``${...}`` references in ``value`` the way ``docker compose`` does."""

    def resolve(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if unset_or_empty else str(current)
        if op in (":?", "?"):
            if unset_or_empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _INTERPOLATION.sub(resolve, value)


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Path:
    """Replaces conftest's media fixture, which needs pytest-django: these tests only read files."""
    return tmp_path


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """Dependency name -> condition (the short list form means ``service_started``)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def named_volume_sources(service: Mapping[str, Any]) -> Iterator[str]:
    """Sources of the named volumes a service mounts (bind mounts and anonymous volumes skipped)."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type", "volume") == "volume" and volume.get("source"):
                yield str(volume["source"])
            continue
        parts = str(volume).split(":")
        if len(parts) >= 2 and not parts[0].startswith((".", "/", "~", "$")):
            yield parts[0]


def image_reference(service: Mapping[str, Any]) -> str | None:
    image = service.get("image")
    return interpolate(str(image), {}) if image else None


# --- the compose file --------------------------------------------------------------------------


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no top-level version key"
    assert set(REQUIRED_SERVICES) <= set(compose["services"])


def test_db_is_pgvector_with_pg_isready_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    db = services["db"]
    test = db["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test if isinstance(test, list) else [test])
    assert "pgdata18" in set(named_volume_sources(db))
    # PostgreSQL 18 images refuse a volume at the old .../data path: the volume holds the version folders
    assert "pgdata18:/var/lib/postgresql" in db["volumes"]
    env = environment(db)
    assert env["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-shop}"
    assert "ports" not in db, "the database is reached on the compose network only"


def test_db_image_runs_the_embedded_servers_versions(services: dict[str, dict[str, Any]]) -> None:
    """Production's image and the embedded server of bin/run: the same PostgreSQL major version and
    the same pgvector release, so that the code path production takes is the one tests run."""
    from shop.localstack import pg_bin_dir, pg_binaries_major

    found = re.fullmatch(r"pgvector/pgvector:(\d+\.\d+\.\d+)-pg(\d+)", str(services["db"]["image"]))
    assert found, "pin the db image as pgvector/pgvector:<pgvector version>-pg<major>"
    control = (pg_bin_dir().parent / "share" / "postgresql" / "extension" / "vector.control").read_text()
    embedded = re.search(r"default_version = '(\d+\.\d+\.\d+)'", control)
    assert embedded
    assert int(found[2]) == pg_binaries_major()
    assert found[1] == embedded[1]


def test_redis_persists_and_has_ping_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    redis_service = services["redis"]
    assert str(redis_service["image"]).startswith("redis:7")
    command = redis_service["command"]
    command_text = " ".join(command) if isinstance(command, list) else str(command)
    assert "--appendonly yes" in command_text
    test = redis_service["healthcheck"]["test"]
    assert "redis-cli ping" in " ".join(test[1:] if isinstance(test, list) else [test])
    assert set(named_volume_sources(redis_service)), "Redis's append-only file lives on a named volume"
    assert "ports" not in redis_service, "Redis is reached on the compose network only"


def test_services_wait_for_healthy_db_and_redis(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            if dependency in {"db", "redis"}:
                assert condition == "service_healthy", f"{name} must wait for {dependency} to be healthy"
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert depends_on(services["migrate"]).get("db") == "service_healthy"
    for name in LONG_RUNNING_APP_SERVICES:
        if name not in services:
            continue
        deps = depends_on(services[name])
        assert deps.get("db") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        assert deps.get("migrate") == "service_completed_successfully", name


def test_migrate_is_a_one_off(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert str(migrate.get("restart", "no")) == "no", "a finished migration must not be restarted"


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    command = " ".join(worker["command"]) if isinstance(worker["command"], list) else worker["command"]
    assert command.startswith("celery -A shop worker")
    assert "--concurrency ${WORKER_CONCURRENCY:-2}" in command
    test = " ".join(worker["healthcheck"]["test"])
    assert "inspect ping" in test and "$$HOSTNAME" in test


def test_no_container_names_and_only_web_publishes_a_port(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: container_name prevents scaling and reuse"
        if name != "web":
            assert "ports" not in service, f"{name} must not publish host ports"


def test_web_serves_gunicorn_on_8000_with_http_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    web = services["web"]
    assert "command" not in web, "web runs the image's gunicorn command"
    assert any(str(port).endswith(":8000") for port in web["ports"])
    test = web["healthcheck"]["test"]
    test_text = " ".join(test) if isinstance(test, list) else str(test)
    assert "urllib" in test_text and "/healthz" in test_text and "curl" not in test_text


def test_beat_is_single_and_writes_its_schedule_somewhere_writable(services: dict[str, dict[str, Any]]) -> None:
    if "beat" not in services:
        pytest.skip("no beat service")
    beat = services["beat"]
    command = " ".join(beat["command"]) if isinstance(beat["command"], list) else beat["command"]
    assert command.startswith("celery -A shop beat")
    assert "--schedule /tmp/" in command, "the app user cannot write into /app"
    assert "deploy" not in beat or beat["deploy"].get("replicas", 1) == 1


def test_named_volumes_declared_are_the_ones_used(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {source for service in services.values() for source in named_volume_sources(service)}
    assert declared == used
    assert {"pgdata18", "media", "models"} <= declared


def test_web_and_worker_share_media_and_models(services: dict[str, dict[str, Any]]) -> None:
    web, worker = services["web"], services["worker"]
    for volume in ("media:/data/media", "models:/models"):
        assert volume in web["volumes"] and volume in worker["volumes"]
    for service in (web, worker):
        env = environment(service)
        assert env["SHOP_MEDIA_ROOT"] == "/data/media"
        assert env["SHOP_MODELS_DIR"] == "/models"


def test_app_services_reach_db_and_redis_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    host_env = {"SHOP_SECRET_KEY": "test-secret", "POSTGRES_PASSWORD": "p4ss"}
    for name in ("migrate", "web", "worker"):
        env = {key: interpolate(value, host_env) for key, value in environment(services[name]).items()}
        database = urlparse(env["DATABASE_URL"])
        assert database.scheme in {"postgres", "postgresql"}
        assert (database.hostname, database.port, database.path) == ("db", 5432, "/shop"), name
        assert database.password == "p4ss", f"{name}: DATABASE_URL must use POSTGRES_PASSWORD"
        broker = urlparse(env["REDIS_URL"])
        assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379), name


def test_app_services_share_one_image_and_settings(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    shared = environment(compose["x-app"])
    assert shared, "the x-app anchor carries the app environment"
    present = [name for name in APP_SERVICES if name in services]
    images = {image_reference(services[name]) for name in present}
    assert len(images) == 1, f"app services must run one image, got {images}"
    for name in present:
        assert services[name].get("build"), f"{name} must build the Dockerfile"
        env = environment(services[name])
        assert shared.items() <= env.items(), f"{name} must use the x-app environment unchanged"
        extra = set(env) - set(shared)
        assert extra <= KNOWN_PROCESS_ENV, f"{name} adds {extra - KNOWN_PROCESS_ENV}"
        assert not extra or name == "web", f"only web adds gunicorn settings, {name} adds {extra}"


def test_secret_must_be_given_and_debug_is_off(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["web"])
    assert re.fullmatch(r"\$\{SHOP_SECRET_KEY:\?[^}]+\}", env["SHOP_SECRET_KEY"])
    with pytest.raises(MissingVariable):
        interpolate(env["SHOP_SECRET_KEY"], {})
    assert env["SHOP_DEBUG"].lower() == "false"
    assert interpolate(env["SHOP_DEMO_SOURCE"], {}) == "", "no demo catalog in production"
    allowed = interpolate(env["SHOP_ALLOWED_HOSTS"], {"SHOP_ALLOWED_HOSTS": "shop.example.com"})
    assert {"localhost", "shop.example.com"} <= set(allowed.split(",")), "the health check calls localhost"


def test_app_environment_uses_known_names_only(services: dict[str, dict[str, Any]]) -> None:
    settings_text = SETTINGS_FILE.read_text(encoding="utf-8")
    for name in APP_SERVICES:
        if name not in services:
            continue
        for key in environment(services[name]):
            assert key in KNOWN_APP_ENV | KNOWN_PROCESS_ENV, f"{name} sets unknown variable {key}"
            if key in KNOWN_APP_ENV:
                assert f'"{key}"' in settings_text, f"shop/settings.py no longer reads {key}"


def test_no_latest_or_untagged_images(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = image_reference(service)
        assert image, f"{name} needs an image (with an explicit tag)"
        last = image.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in image, f"{name}: {image} has no tag, i.e. latest"
        assert not image.endswith(":latest"), f"{name}: {image} uses latest"


def test_dockerfile_base_image_is_tagged_too() -> None:
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().upper().startswith("FROM "):
            image = line.split()[1]
            assert ":" in image and not image.endswith(":latest"), image


# --- Dockerfile and .dockerignore --------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical]


def test_dockerfile_runs_gunicorn_as_unprivileged_user() -> None:
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    cmd = next(args for kind, args in reversed(instructions) if kind == "CMD")
    assert "gunicorn shop.wsgi:application" in cmd
    assert "0.0.0.0:8000" in cmd
    assert "WEB_CONCURRENCY" in cmd
    assert ("EXPOSE", "8000") in instructions
    runs = " ".join(args for kind, args in instructions if kind == "RUN")
    assert "pip install" in runs and "-r requirements.txt" in runs
    assert "manage.py collectstatic --noinput" in runs
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image must run as an unprivileged user"
    assert kinds.index("USER") > kinds.index("RUN"), "switch user after installing"
    assert kinds.index("USER") < kinds.index("CMD")


def test_dockerfile_paths_match_the_compose_volumes(services: dict[str, dict[str, Any]]) -> None:
    env_lines = " ".join(args for kind, args in dockerfile_instructions() if kind == "ENV")
    compose_env = environment(services["web"])
    for key in ("SHOP_MEDIA_ROOT", "SHOP_STATIC_ROOT", "SHOP_MODELS_DIR"):
        assert f"{key}={compose_env[key]}" in env_lines, f"Dockerfile and compose disagree on {key}"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", "var", ".git", ".pytest_cache", ".ruff_cache", "test-output", "**/__pycache__"):
        assert required in patterns, f".dockerignore must exclude {required}"
    assert ".env" in patterns, "secrets in .env must never reach the build context"


# --- the real parser, when installed ------------------------------------------------------------


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    if not docker_compose_available():
        pytest.skip("docker compose CLI not installed")
    # An empty env file, so that a local .env cannot hide a missing variable.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("", encoding="utf-8")
    base = ["docker", "compose", "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", "-q"]
    env = {key: value for key, value in os.environ.items() if key not in {"SHOP_SECRET_KEY", "POSTGRES_PASSWORD"}}

    def config(extra: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            base, cwd=REPO, env={**env, **extra}, capture_output=True, text=True, timeout=120, check=False
        )

    valid = config({"SHOP_SECRET_KEY": "test-only-secret", "POSTGRES_PASSWORD": "test-only-password"})
    assert valid.returncode == 0, valid.stderr
    missing = config({})
    assert missing.returncode != 0 and "SHOP_SECRET_KEY" in missing.stderr


def test_the_production_settings_pass_the_deploy_check_with_no_warning(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """``manage.py check --deploy`` with the web service's environment as compose sets it (a real
    secret, a real host, nothing else given) fails on any warning."""
    given = {"SHOP_SECRET_KEY": secrets.token_urlsafe(50), "SHOP_ALLOWED_HOSTS": "shop.example.com"}
    env = {key: interpolate(value, given) for key, value in environment(services["web"]).items()}
    # the container's paths, here in a folder of the test's own
    env |= {"SHOP_DATA_DIR": str(tmp_path), "SHOP_MEDIA_ROOT": str(tmp_path / "media"),
            "SHOP_STATIC_ROOT": str(tmp_path / "static"), "SHOP_MODELS_DIR": str(tmp_path / "models")}  # fmt: skip
    # none of the test run's own settings (the browser tests allow async-unsafe calls, for one)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "DATABASE_", "REDIS_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout, result.stdout
