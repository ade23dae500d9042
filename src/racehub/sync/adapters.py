"""The bridge from a stored connection to a ``racehub.providers`` adapter."""

from __future__ import annotations

from collections.abc import Mapping

from racehub.providers import registry
from racehub.providers.base import ProviderAdapter
from racehub.sync.models import ProviderConnection


def build_adapter(
    connection: ProviderConnection, credentials: Mapping[str, str]
) -> ProviderAdapter:
    """The connection's adapter; its request budget is keyed by the connection id, so every
    process calling this connection shares one."""
    return registry.build_adapter(connection.provider, base_url=connection.base_url,
                                  credentials=credentials, settings=connection.settings or {},
                                  rate_key=str(connection.id))
