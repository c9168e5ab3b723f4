"""The bodies of the public read endpoints, shared between requests through ``search.answers``: only
for anonymous callers and shoppers (staff see inactive products) and only for GET."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.request import Request

from api.permissions import is_staff
from search.answers import answer_cached, answer_key


def cached_body(request: Request, compute: Callable[[], Any]) -> Any:
    """The body of this request's answer: the shared one when there is one, else ``compute()``
    (then shared with the next request for the same URL while the catalog is unchanged)."""
    shared = request.method == "GET" and not is_staff(request)  # staff see inactive products
    key = answer_key("api", request.build_absolute_uri()) if shared else None
    return answer_cached(key, compute)
