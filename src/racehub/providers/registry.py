"""Builds the adapter of one connection to a provider listed in ``providers.catalog``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from racehub.providers import catalog
from racehub.providers.base import ProviderAdapter
from racehub.providers.errors import NotSupported
from racehub.providers.ratelimit import RateLimiter


def build_adapter(
    provider: str,
    *,
    base_url: str | None = None,
    credentials: Mapping[str, str],
    settings: Mapping[str, Any] | None = None,
    limiter: RateLimiter | None = None,
    rate_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ProviderAdapter:
    """An adapter for one connection. ``rate_key`` should be the connection id, so every
    process using the connection shares one budget; ``base_url`` None means the provider's
    production URL."""
    spec = catalog.get_spec(provider.upper())
    if spec is None:
        raise NotSupported(f"unknown provider {provider!r}; known: "
                           f"{', '.join(catalog.PROVIDERS)}")
    cls = spec.adapter_class()
    return cls(base_url=base_url or spec.base_url, credentials=credentials,
               settings=settings, limiter=limiter, rate_key=rate_key, clock=clock, sleep=sleep)
