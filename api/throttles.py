"""Rate limits per client (the user when signed in, else the IP address), per scope. Rates come from
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (environment variables, see shop/settings.py), read at
request time; counts live in the shared ``SHOP_API_THROTTLE_CACHE`` cache (Redis), so every web
worker process sees the same counts."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import BaseCache, caches
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class ApiScopedRateThrottle(ScopedRateThrottle):
    @property
    def cache(self) -> BaseCache:  # type: ignore[override]
        return caches[settings.SHOP_API_THROTTLE_CACHE]

    def get_rate(self) -> str | None:
        if self.scope is None:
            return None
        # the stubs type the rates as numbers; they are "N/period" strings (shop/settings.py)
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # type: ignore[return-value]
