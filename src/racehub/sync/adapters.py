"""The bridge from a stored connection to a ``racehub.providers`` adapter."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from racehub.providers import registry
from racehub.providers.base import ProviderAdapter
from racehub.providers.ratelimit import PostgresRateLimiter
from racehub.sync import links
from racehub.sync.models import ProviderConnection

_limiters: weakref.WeakKeyDictionary[Engine, PostgresRateLimiter] = weakref.WeakKeyDictionary()
_limiters_lock = threading.Lock()


def rate_limiter_for(db: Session) -> PostgresRateLimiter:
    """The process's limiter on the session's database. Budgets live in
    ``provider_rate_limits`` rows, so every web and worker process calling one connection
    draws from the same bucket; each take is its own short transaction (never the caller's)."""
    bind = db.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    with _limiters_lock:
        limiter = _limiters.get(engine)
        if limiter is None:
            limiter = _limiters[engine] = PostgresRateLimiter(engine)
        return limiter


def build_adapter(
    connection: ProviderConnection, credentials: Mapping[str, str], *,
    chosen_only: bool = True,
) -> ProviderAdapter:
    """The connection's adapter; its request budget is keyed by the connection id and kept
    in Postgres, so every process calling this connection shares one. ``chosen_only=False``
    leaves the connection's chosen events out of its settings, so ``list_events`` lists
    every event the account sees (discovery), not only the races of those chosen."""
    db = Session.object_session(connection)
    if db is None:
        raise RuntimeError("build_adapter needs a connection loaded in a session")
    # The paths the connection's mapping reads: a provider may send some fields only when
    # asked (RunSignUp's question responses).
    sources = [str(path) for rule in connection.field_mapping or [] if isinstance(rule, dict)
               for path in rule.get("sources") or []]
    # The provider events chosen on the connection are link rows; adapters read them as
    # their ``eventIds`` setting (RunSignUp's check, ChronoTrack's and Copernico's events).
    settings = {**(connection.settings or {}), "mapping_sources": sources,
                "eventIds": links.chosen_refs(db, connection) if chosen_only else []}
    return registry.build_adapter(connection.provider, base_url=connection.base_url,
                                  credentials=credentials, settings=settings,
                                  limiter=rate_limiter_for(db), rate_key=str(connection.id))


def build_listing_adapter(
    connection: ProviderConnection, credentials: Mapping[str, str]
) -> ProviderAdapter:
    """The connection's adapter for discovering its provider events (see ``build_adapter``)."""
    return build_adapter(connection, credentials, chosen_only=False)
