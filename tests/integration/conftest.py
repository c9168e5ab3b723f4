"""Integration tests: the real PostgreSQL+pgvector, Redis and Celery workers that bin/test starts.
The service fixtures come from tests/support/services.py (the database one is autouse here)."""

from tests.support.services import (  # noqa: F401 - fixtures, registered for this folder
    celery_worker_process,
    redis_client,
    search_query_threads_closed_before_the_database_goes,
    worker_factory,
)
