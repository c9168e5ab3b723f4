"""Django settings for the shop.

Every setting that differs between machines comes from the environment (see the README's
"Configuration" table); the defaults run the local shop started by ``bin/run`` on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import dj_database_url

T = TypeVar("T", int, float)

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default: T, cast: Callable[[str], T], what: str) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} must be {what}") from exc


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def database_from_url(url: str) -> dict[str, object]:
    """Turn ``postgres://user:pass@host:port/name?option=value&...`` into a Django DATABASES entry,
    parsed by dj-database-url: percent-escapes in the user, password, host and name are decoded, and
    the query's parameters (``sslmode=require``, ``connect_timeout=5``, ...) become ``OPTIONS``, which
    Django hands to libpq (digit-only values as integers, ``true``/``false`` as booleans). The host
    defaults to 127.0.0.1, the port to 5432 and the database to ``shop``."""
    if urlsplit(url).scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"database URL {url!r} must start with postgres://")
    entry: dict[str, object] = dict(
        dj_database_url.parse(
            url,
            conn_max_age=env_int("SHOP_DB_CONN_MAX_AGE", 60),
            conn_health_checks=True,
            test_options={"NAME": env_str("SHOP_TEST_DB_NAME", "test_shop")},
        )
    )
    entry["NAME"] = entry["NAME"] or "shop"
    entry["HOST"] = entry["HOST"] or "127.0.0.1"
    entry["PORT"] = str(entry["PORT"] or 5432)
    return entry


def replica_with_fallback(replica: dict[str, object], primary: dict[str, object]) -> dict[str, object]:
    """The replica's DATABASES entry, made to fall back to the primary: libpq tries the hosts of a
    multi-host connection in order, so search reads connect to the replica while it answers and to the
    primary when it cannot be reached (each host given ``SHOP_REPLICA_CONNECT_TIMEOUT`` seconds). Only
    when both have the same database, user and password, as a streaming replica does."""
    if any(replica[key] != primary[key] for key in ("NAME", "USER", "PASSWORD")):
        return replica
    options = {**replica.get("OPTIONS", {}), "connect_timeout": env_int("SHOP_REPLICA_CONNECT_TIMEOUT", 2)}  # type: ignore[dict-item]
    return {
        **replica,
        "HOST": f"{replica['HOST']},{primary['HOST']}",
        "PORT": f"{replica['PORT']},{primary['PORT']}",
        "OPTIONS": options,
    }


# --- where things live -------------------------------------------------------------------------
DATA_DIR = Path(env_str("SHOP_DATA_DIR", str(BASE_DIR / "var"))).resolve()
MEDIA_ROOT = Path(env_str("SHOP_MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_ROOT = Path(env_str("SHOP_STATIC_ROOT", str(DATA_DIR / "static")))
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve app static files straight from their folders too, so a missing collectstatic never breaks pages.
WHITENOISE_USE_FINDERS = True
# Trained models and caches live outside the repository (never committed).
MODELS_DIR = Path(env_str("SHOP_MODELS_DIR", str(Path.home() / ".cache" / "fashion-shop" / "models")))
# The PAN skin/clothes/hair segmentation baseline (evaluation only); empty = ../shared/models.
SHOP_PAN_ONNX = Path(
    env_str("SHOP_PAN_ONNX", "") or BASE_DIR.parent / "shared" / "models" / "pan_mnv3s_skin_clothes_hair.onnx"
)
# No model hub is reachable from the shop's machines: Hugging Face names resolve from the local cache
# only. SHOP_HF_OFFLINE=0 where a hub-pretrained model (SHOP_CLIP_MODEL) should be downloaded.
SHOP_HF_OFFLINE = env_str("SHOP_HF_OFFLINE", "1") == "1"

# --- security ----------------------------------------------------------------------------------
DEBUG = env_bool("SHOP_DEBUG", False)
SECRET_KEY = env_str("SHOP_SECRET_KEY", "local-dev-only-insecure-key-change-me-in-production")
ALLOWED_HOSTS = env_list("SHOP_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("SHOP_CSRF_TRUSTED_ORIGINS", "")
# HTTPS: on by default unless SHOP_DEBUG — production sits behind a proxy that ends TLS and says so in
# X-Forwarded-Proto. The local stack (bin/run, bin/test) serves plain HTTP on 127.0.0.1 and sets
# SHOP_HTTPS=false; so does anyone trying the compose file without a TLS proxy.
SHOP_HTTPS = env_bool("SHOP_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = SHOP_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # health checks call the container over plain HTTP
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SHOP_BEHIND_PROXY", SHOP_HTTPS) else None
SECURE_HSTS_SECONDS = env_int("SHOP_HSTS_SECONDS", 31_536_000 if SHOP_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SHOP_HSTS_INCLUDE_SUBDOMAINS", SHOP_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SHOP_HSTS_PRELOAD", SHOP_HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SHOP_HTTPS
# While the database is down pages and the API answer 503 with this Retry-After (seconds).
SHOP_RETRY_AFTER_S = env_int("SHOP_RETRY_AFTER_S", 30)
# Serve uploaded media from Django itself (local runs). In production a web server or object
# storage serves /media/ and this is off.
SERVE_MEDIA = env_bool("SHOP_SERVE_MEDIA", True)

# --- applications --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "corsheaders",
    "shop",
    "catalog",
    "search",
    "lifecycle",
    "workers",
    "staff",
    "evaluation",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- database ----------------------------------------------------------------------------------
# The local stack (bin/run) starts PostgreSQL 18 + pgvector 0.8 on 127.0.0.1:55432 with trust auth.
DATABASE_URL = env_str("DATABASE_URL", "postgres://shop@127.0.0.1:55432/shop")
DATABASES: dict[str, dict[str, object]] = {"default": database_from_url(DATABASE_URL)}
# Optional read replica: search reads go there (SEARCH_DB_ALIAS), falling back to the primary while it
# does not answer (SHOP_REPLICA_FALLBACK; see replica_with_fallback above).
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = database_from_url(DATABASE_REPLICA_URL)
    if env_bool("SHOP_REPLICA_FALLBACK", True):
        DATABASES["replica"] = replica_with_fallback(DATABASES["replica"], DATABASES["default"])
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
SEARCH_DB_ALIAS = "replica" if DATABASE_REPLICA_URL else "default"
# Filtered searches score the matching products' vectors in this process's memory (search/vector_memory.py)
# while the active space holds at most this many product vector rows (0: always in the database);
# changes are looked for at most every REFRESH seconds, everything is reloaded every RELOAD seconds.
SEARCH_MEMORY_VECTORS_MAX = env_int("SHOP_SEARCH_MEMORY_VECTORS_MAX", 500_000)
SEARCH_MEMORY_REFRESH_S = env_float("SHOP_SEARCH_MEMORY_REFRESH_S", 1.0)
SEARCH_MEMORY_RELOAD_S = env_float("SHOP_SEARCH_MEMORY_RELOAD_S", 600.0)
# HNSW ef_search of unfiltered vector lookups (the candidate list the index walks); 0: by the index's
# size (search.services.hnsw_ef_search and photo_ef_search): a shopper's words 200 up to a million
# vector rows, 800 above; a photo's garments 100, 800 above. Recall@10 of real product photos against
# exact search (bench.search, a catalog copied from real articles): 0.986–0.999 at 100 and 0.995–1.000 at
# 200 on 100,000 products (three runs); on a million 0.957 / 0.900 at 200, 0.982 / 0.945 at 400, 0.993 /
# 0.989 at 800 (two embedders: the catalog's spread depends on the model a machine trained).
SEARCH_HNSW_EF_SEARCH = env_int("SHOP_SEARCH_HNSW_EF_SEARCH", 0)
# A shopper's photo is parsed and its garments cut out with its long side scaled down to at most this many
# pixels (boxes are given in the photo's own pixels). The parser reads 384 pixels and the image tower 224
# per garment; a 12-megapixel phone photo parsed whole took 4.6 s and 430 MB more memory on 2 cores.
SEARCH_PHOTO_MAX_SIDE = env_int("SHOP_SEARCH_PHOTO_MAX_SIDE", 1024)
# The long side at which the parser reads a shopper's photo (the catalog's photos keep the parser's own,
# 384); 0, or more than the parser's own: its own. Chosen on VITON train photos (docs/search.md): at 320 the
# parse took 40 ms against 64 at 384 on 2 cores, with the same R@10 and an MRR 0.004 lower.
SEARCH_PHOTO_PARSE_SIZE = env_int("SHOP_SEARCH_PHOTO_PARSE_SIZE", 320)
# A text search runs its signals' database queries on this many threads of its process (each with a
# database connection of its own) beside the vector scoring; 0 runs everything in the request's thread.
SEARCH_QUERY_THREADS = env_int("SHOP_SEARCH_QUERY_THREADS", 2)
# A query word is a real word (never "corrected") when its English Zipf frequency (wordfreq) is at least
# this: 2.0 = once in 10 million words (the ~95,000 most frequent). Lower keeps rarer words as written
# and corrects fewer typos ("blak" is 1.9: online text holds it).
SEARCH_REAL_WORD_ZIPF = env_float("SHOP_SEARCH_REAL_WORD_ZIPF", 2.0)
# Query understanding (search/understanding.py): "cheap" means the cheapest this share of the catalog;
# departments are read from this key of the products' attributes (H&M's index group in the demo), and
# a query naming one of a department's words keeps to its values.
SEARCH_CHEAP_QUANTILE = env_float("SHOP_SEARCH_CHEAP_QUANTILE", 0.33)
SEARCH_DEPARTMENT_ATTRIBUTE = env_str("SHOP_SEARCH_DEPARTMENT_ATTRIBUTE", "index_group")
SEARCH_DEPARTMENTS: dict[str, dict[str, list[str]]] = {
    "men": {
        "words": ["men", "mens", "men's", "man", "man's", "male", "gents", "menswear", "him"],
        "values": ["Menswear"],
    },
    "women": {
        "words": [
            "women",
            "womens",
            "women's",
            "woman",
            "woman's",
            "ladies",
            "ladies'",
            "lady",
            "female",
            "womenswear",
            "her",
        ],
        "values": ["Ladieswear", "Divided"],
    },
    "kids": {
        "words": [
            "kids",
            "kid",
            "kids'",
            "kid's",
            "children",
            "children's",
            "childrens",
            "child",
            "child's",
            "baby",
            "babies",
            "baby's",
            "toddler",
            "toddlers",
            "boys",
            "boys'",
            "girls",
            "girls'",
        ],
        "values": ["Baby/Children"],
    },
    "sport": {"words": ["sport", "sports", "sportswear", "gym", "fitness", "workout"], "values": ["Sport"]},
}
# Words a shopper uses for a catalog category or colour (the catalog's own names are understood as
# written, in the singular and the plural).
SEARCH_SYNONYMS: dict[str, list[str]] = {
    "jeans": ["trousers"], "pants": ["trousers"], "slacks": ["trousers"], "chinos": ["trousers"],
    "jumper": ["sweater"], "pullover": ["sweater"], "sweatshirt": ["sweater", "hoodie"],
    "tee": ["t-shirt"], "tshirt": ["t-shirt"], "tees": ["t-shirt"],
    "trainers": ["sneakers"], "sneaker": ["sneakers"], "runners": ["sneakers"],
    "hat": ["hat/beanie", "hat/brim", "beanie", "felt hat"], "cap": ["cap/peaked", "cap"],
    "tights": ["leggings/tights", "underwear tights"], "leggings": ["leggings/tights"],
    "bikini": ["bikini top", "swimwear bottom"], "swimming costume": ["swimsuit"], "bathing suit": ["swimsuit"],
    "pyjamas": ["pyjama set", "pyjama bottom"], "pajamas": ["pyjama set", "pyjama bottom"],
    "jumpsuit": ["jumpsuit/playsuit"], "playsuit": ["jumpsuit/playsuit"],
    "earrings": ["earring", "earrings"], "knickers": ["underwear bottom"], "briefs": ["underwear bottom"],
    "panties": ["underwear bottom"], "tank top": ["vest top"], "vest": ["vest top"], "camisole": ["vest top"],
    "gown": ["dress"], "frock": ["dress"], "heels": ["heels", "pumps", "heeled sandals"],
    "grey": ["grey"], "gray": ["grey"],
}  # fmt: skip
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery ----------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:56379/0")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("SHOP_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("SHOP_TASK_SOFT_TIME_LIMIT", 240)
# Must exceed the hard time limit so that a task still running is never handed out twice.
# A message whose worker died (unacknowledged) is handed out again once it is older than the
# visibility timeout, by a scan every interval × throttle seconds (kombu's Redis transport).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("SHOP_VISIBILITY_TIMEOUT", 900),
    "unacked_restore_interval": env_int("SHOP_UNACKED_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": env_int("SHOP_UNACKED_RESTORE_THROTTLE", 10),
}
CELERY_TASK_ALWAYS_EAGER = env_bool("SHOP_CELERY_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "shop"
# Worker processes load the models when they start (SHOP_PRELOAD_MODELS): give them time to say "up".
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_int("SHOP_WORKER_START_TIMEOUT", 120)
CELERY_TASK_IGNORE_RESULT = True  # state lives on the rows (ProductImage.status), not in the result backend
# With the broker down an upload must not hang: a short publish retry, then the image stays
# pending and the sweep (below) sends it once Redis is back.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("SHOP_BROKER_CONNECTION_TIMEOUT", 3)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}

# --- shop --------------------------------------------------------------------------------------
SHOP_DEFAULT_CURRENCY = env_str("SHOP_DEFAULT_CURRENCY", "EUR")
SHOP_MAX_IMAGE_BYTES = env_int("SHOP_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
SHOP_MAX_IMAGE_PIXELS = env_int("SHOP_MAX_IMAGE_PIXELS", 60_000_000)
SHOP_MIN_IMAGE_SIDE = env_int("SHOP_MIN_IMAGE_SIDE", 32)
SHOP_MAX_ASPECT_RATIO = env_int("SHOP_MAX_ASPECT_RATIO", 12)
# The pipeline gives up on an image after this many starts that never finished (a worker killed
# by it each time: a poison image), and re-sends pending images the broker never got.
SHOP_MAX_ATTEMPTS = env_int("SHOP_MAX_ATTEMPTS", 3)
SHOP_SWEEP_INTERVAL = env_int("SHOP_SWEEP_INTERVAL", 60)
SHOP_FAULT_INJECTION = env_str("SHOP_FAULT_INJECTION", "")  # tests and drills only; see workers.services
# Products whose text changed (the database marks them, whoever wrote the row) get their text
# vectors again by a task sent this often; keyword search sees the change at once. The task waits its
# turn behind photos already queued (never dropped: a run with nothing to do costs one index lookup).
SHOP_TEXT_REFRESH_INTERVAL = env_int("SHOP_TEXT_REFRESH_INTERVAL", 5)
CELERY_BEAT_SCHEDULE = {
    "images-sweep": {"task": "workers.tasks.images_sweep", "schedule": SHOP_SWEEP_INTERVAL},
    "products-text-refresh": {"task": "workers.tasks.products_text_refresh", "schedule": SHOP_TEXT_REFRESH_INTERVAL},
}
# --- the model lifecycle (lifecycle/) -------------------------------------------------------------
# Model builds run on their own queue, one at a time, in a worker of their own (bin/run starts it
# with a lower CPU priority than image processing).
SHOP_MODELS_QUEUE = env_str("SHOP_MODELS_QUEUE", "models")
CELERY_TASK_ROUTES = {"lifecycle.tasks.model_build": {"queue": SHOP_MODELS_QUEUE}}
# Where the training data for the default builds lives (ccp/, viton/ with manifest.csv).
SHOP_TRAINING_DATA = env_str("SHOP_TRAINING_DATA", str(BASE_DIR.parent / "shared" / "data"))
# Start building a kind by itself while the shop serves that kind with a fallback.
SHOP_AUTO_BUILD = env_bool("SHOP_AUTO_BUILD", True)
# Automatic builds wait while more photos than this wait for the workers (a new shop's catalog first).
SHOP_BUILD_WAIT_FOR_IMAGES = env_int("SHOP_BUILD_WAIT_FOR_IMAGES", 20)
# The embedder trains on the shop's own catalog: at least this many products with processed photos.
SHOP_MIN_TRAINING_PRODUCTS = env_int("SHOP_MIN_TRAINING_PRODUCTS", 20)
# A running build renews its lease (heartbeat) every SHOP_BUILD_HEARTBEAT_S; one silent for
# SHOP_BUILD_LEASE_S has lost its worker and is resumed by the sweep.
SHOP_BUILD_HEARTBEAT_S = env_int("SHOP_BUILD_HEARTBEAT_S", 20)
SHOP_BUILD_LEASE_S = env_int("SHOP_BUILD_LEASE_S", 120)
# Training time budget of an automatic or staff-started build, in minutes (the recipe splits it).
SHOP_BUILD_BUDGET_MINUTES = {
    "parser": env_float("SHOP_PARSER_BUDGET_MINUTES", 36.0),
    "embedder": env_float("SHOP_EMBEDDER_BUDGET_MINUTES", 18.0),
}
# VITON person↔product pairs an embedder build trains on (0: all of the train split).
SHOP_BUILD_VITON_PAIRS = env_int("SHOP_BUILD_VITON_PAIRS", 0)
# After search switches to a new embedder, the previous one's space stays this many hours for an
# instant `models rollback`; then the sweep drops it (older spaces go at once).
SHOP_ROLLBACK_KEEP_HOURS = env_float("SHOP_ROLLBACK_KEEP_HOURS", 72.0)
# Images re-embedded into a new embedder's space, or re-processed for a new parser, per sweep.
SHOP_REDO_BATCH = env_int("SHOP_REDO_BATCH", 200)
# Demo catalog: an H&M-style folder with manifest.csv (catalog/hm.py) or the CC0 set (catalog/cc0.py),
# imported by `manage.py load_demo`. Empty = no demo.
SHOP_DEMO_SOURCE = env_str("SHOP_DEMO_SOURCE", str(BASE_DIR.parent / "shared" / "data" / "hm"))
SHOP_DEMO_LIMIT = env_int("SHOP_DEMO_LIMIT", 400)
# How new images reach the pipeline: "celery" (queued to the workers) or "off" (left pending, e.g.
# while the evaluation command processes them itself).
SHOP_PIPELINE = env_str("SHOP_PIPELINE", "celery")
# The embedder (see vision/clip.py): empty = the newest checkpoint the shop trained itself. These, MODELS_DIR,
# SHOP_PAN_ONNX and SHOP_HF_OFFLINE reach vision/ through vision.configure (shop/apps.py).
SHOP_CLIP_MODEL = env_str("SHOP_CLIP_MODEL", "")
SHOP_CLIP_PRETRAINED = env_str("SHOP_CLIP_PRETRAINED", "")
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("SHOP_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- REST API v1: DRF, OpenAPI schema, CORS --------------------------------------------
INSTALLED_APPS += ["drf_spectacular_sidecar"]  # Swagger UI assets served locally (no CDN)
# Refuse oversized API bodies from Content-Length alone (api/middleware.py), after CORS so the
# refusal still carries the CORS headers the app needs to read it.
MIDDLEWARE.insert(
    MIDDLEWARE.index("corsheaders.middleware.CorsMiddleware") + 1, "api.middleware.ApiBodyLimitMiddleware"
)
# Every /api/ error in the API's JSON body with a request id (X-Request-ID), unexpected exceptions
# included (api/middleware.py): right below CORS, so its answers carry the CORS headers, and above the
# body limit and everything else, so it sees their errors too.
MIDDLEWARE.insert(MIDDLEWARE.index("corsheaders.middleware.CorsMiddleware") + 1, "api.middleware.ApiErrorMiddleware")
# A multipart API request (photos) may declare at most this many bytes; other API bodies at most
# DATA_UPLOAD_MAX_MEMORY_SIZE. Uploaded files over FILE_UPLOAD_MAX_MEMORY_SIZE stream to disk.
SHOP_API_MAX_UPLOAD_BYTES = env_int("SHOP_API_MAX_UPLOAD_BYTES", 30 * 1024 * 1024)
SHOP_API_MAX_FILES = env_int("SHOP_API_MAX_FILES", 20)  # photos per staff upload request
# Staff bulk imports (CSV + images ZIP): the largest upload, and what a ZIP may hold.
SHOP_IMPORT_MAX_UPLOAD_BYTES = env_int("SHOP_IMPORT_MAX_UPLOAD_BYTES", 1024**3)
SHOP_IMPORT_ZIP_MAX_MEMBERS = env_int("SHOP_IMPORT_ZIP_MAX_MEMBERS", 5000)
SHOP_IMPORT_ZIP_MAX_BYTES = env_int("SHOP_IMPORT_ZIP_MAX_BYTES", 2 * 1024**3)
SHOP_IMPORT_ZIP_MAX_RATIO = env_int("SHOP_IMPORT_ZIP_MAX_RATIO", 100)  # unpacked / packed, per member
# Worker and web processes load the models they serve before their first task or request; the torch
# threads of each worker process (one process per core: more threads only fight over the cores).
SHOP_PRELOAD_MODELS = env_bool("SHOP_PRELOAD_MODELS", True)
SHOP_TORCH_THREADS = env_int("SHOP_TORCH_THREADS", 1)
# A web process maps memory blocks of at least this many bytes on their own, so a photo's buffers go back
# to the system when freed (shop/gunicorn_conf.py); 0 leaves glibc's own threshold, which grows to 32 MB.
SHOP_WEB_MMAP_THRESHOLD = env_int("SHOP_WEB_MMAP_THRESHOLD", 4 * 1024 * 1024)
# onnxruntime threads of each model a web process serves (parser, image and text towers), without
# spinning: on 2 cores of an AMD EPYC, 2 threads parsed a photo in 76 ms against 102 with 1, encoded its
# garments in 43 against 58 and a shopper's words in 9.8 against 14.2 (docs/search.md, section 7).
SHOP_QUERY_MODEL_THREADS = env_int("SHOP_QUERY_MODEL_THREADS", min(2, os.cpu_count() or 1))
# What answers a shopper's words and photos in a web process: "onnx" (the served models exported to
# ONNX and run by onnxruntime: no torch in the web process) or "torch" (lifecycle/serving.py).
SHOP_QUERY_RUNTIME = env_str("SHOP_QUERY_RUNTIME", "onnx").strip().lower()
if SHOP_QUERY_RUNTIME not in ("onnx", "torch"):
    raise ValueError(f"environment variable SHOP_QUERY_RUNTIME={SHOP_QUERY_RUNTIME!r} must be onnx or torch")
# Throttle counts must be shared by every web worker process: a Redis cache on the app's Redis.
SHOP_API_THROTTLE_CACHE = "api"
# Answers shoppers ask for again (API bodies, result pages) are kept in the shared "api" cache, keyed
# on the catalog's version, for this many seconds; 0 switches it off (search/answers.py).
SHOP_ANSWER_CACHE = "api"
SHOP_ANSWER_CACHE_S = env_int("SHOP_ANSWER_CACHE_S", 600)
CACHES: dict[str, dict[str, object]] = globals().get(
    "CACHES", {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
)
CACHES["api"] = {
    # Redis, failing open to a per-process memory cache while Redis is down (shop/outages.py)
    "BACKEND": "shop.outages.FailOpenRedisCache",
    "LOCATION": env_str("SHOP_API_CACHE_URL", REDIS_URL),
    "KEY_PREFIX": "shop-api",
    "TIMEOUT": 3600,
}
REST_FRAMEWORK: dict[str, object] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Token first: an anonymous request to a staff endpoint gets 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttles.ApiScopedRateThrottle"],
    # Per client (user, else IP address) and scope; "N/second|minute|hour|day".
    "DEFAULT_THROTTLE_RATES": {
        "catalog": env_str("SHOP_API_RATE_CATALOG", "1200/minute"),
        "search": env_str("SHOP_API_RATE_SEARCH", "600/minute"),
        "photo_search": env_str("SHOP_API_RATE_PHOTO", "30/minute"),
        "auth": env_str("SHOP_API_RATE_AUTH", "10/minute"),
    },
    # Behind a reverse proxy: how many proxies append to X-Forwarded-For (0 = use REMOTE_ADDR).
    "NUM_PROXIES": env_int("SHOP_API_NUM_PROXIES", 0) or None,
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS: dict[str, object] = {
    "TITLE": "Fashion shop API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "The shop's catalog, text and photo search, similar items and in-stock alternatives for the mobile "
        "app, and catalog writes for staff.\n\n"
        "**Authentication**: `POST /api/v1/auth/token` with a username and password returns a token; send it "
        "as `Authorization: Token <token>`. Reads need none; writes and image status are for staff only. "
        "The browser may use its admin session instead.\n\n"
        '**Errors** always have one shape: `{"error": {"code": "validation_error", "message": "…", '
        '"fields": {"price": ["…"]}}}`.\n\n'
        "**Pages**: `limit` and `offset`; `next` / `previous` are the neighbouring pages' URLs; the order is "
        "stable (ties broken by product id).\n\n"
        "**Caching**: product and category reads carry an `ETag`; send it back as `If-None-Match` for a `304`.\n\n"
        "**Throttling**: per user (or address) and scope; photo search is the strictest. A `429` carries "
        "`Retry-After`."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayOperationId": False, "tryItOutEnabled": True},
    "TAGS": [
        {"name": "catalog", "description": "categories and products (public, read-only)"},
        {"name": "search", "description": "text and photo search, similar items, alternatives (public)"},
        {"name": "staff", "description": "catalog writes, photo uploads and processing (staff only)"},
        {"name": "auth", "description": "API tokens"},
    ],
}
CORS_ALLOWED_ORIGINS = env_list("SHOP_CORS_ORIGINS", "")  # the mobile app's web origins, comma-separated
CORS_URLS_REGEX = r"^/(api/v1|widget)/.*$"
CORS_EXPOSE_HEADERS = ["ETag", "Retry-After", "Location", "X-Request-ID"]
