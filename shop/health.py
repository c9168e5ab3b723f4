"""Checks that the services the shop depends on answer."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection


def health_check() -> dict[str, object]:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        checks["database"] = f"ok (pgvector {row[0]})" if row else "ok (pgvector missing: run migrate)"
    except Exception as exc:
        checks["database"] = f"error: {exc}"
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc}"
    return {"ok": all(v.startswith("ok") for v in checks.values()), **checks}
