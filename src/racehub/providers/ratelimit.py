"""Per-connection request budgets (token buckets).

``PostgresRateLimiter`` keeps each bucket in a ``provider_rate_limits`` row updated under
``SELECT ... FOR UPDATE`` in its own short transaction, with the database clock, so every
web and worker process spends one shared budget per key (a connection id). A provider's
"slow down" (429 / RunSignUp code 14) is recorded on the row with ``hold_off`` so the other
processes wait too. ``InMemoryRateLimiter`` is the same algorithm for one process (adapter
unit tests, scripts).

Both take their clock and their sleep as arguments, so tests check the waits exactly with a
fake clock instead of measuring time. The Postgres one reads the database's clock unless
given one (every process then sees the same time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, text

from racehub.providers.errors import Throttled


@dataclass(frozen=True)
class RateLimit:
    per_second: float  # refill rate
    burst: int  # bucket size: requests allowed back to back after a quiet period

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


class RateLimiter(Protocol):
    def acquire(self, key: str, limit: RateLimit, *, max_wait: float = 60.0) -> float:
        """Take one token for ``key``, sleeping as needed; returns the seconds waited.

        Raises :class:`Throttled` (with ``retry_after``) when the wait would exceed
        ``max_wait``: the caller should reschedule rather than block a worker.
        """
        ...

    def hold_off(self, key: str, seconds: float) -> None:
        """Nobody spends ``key``'s budget for ``seconds`` (the provider asked us to wait)."""
        ...


# A token short by less than this is a whole one: rounding must not cause a wait too short
# to move a clock (a fake clock's sleep would then spin for ever).
_EPSILON = 1e-9


def _take(tokens: float, elapsed: float, blocked_for: float,
          limit: RateLimit) -> tuple[float, float]:
    """Refill then try to take one token. Returns (tokens left, seconds to wait; 0 = taken)."""
    tokens = min(float(limit.burst), tokens + max(elapsed, 0.0) * limit.per_second)
    if blocked_for > 0:
        return tokens, blocked_for
    if tokens >= 1.0 - _EPSILON:
        return max(tokens - 1.0, 0.0), 0.0
    return tokens, (1.0 - tokens) / limit.per_second


def _acquire(attempt: Callable[[], float], sleep: Callable[[float], None],
             max_wait: float) -> float:
    """Call ``attempt`` (one try at a token: the seconds to wait, 0 when taken) until it
    takes one, sleeping in between; the seconds waited, or Throttled past ``max_wait``."""
    waited = 0.0
    while True:
        wait = attempt()
        if wait <= 0:
            return waited
        if waited + wait > max_wait:
            raise Throttled(f"request budget exhausted; next request in {wait:.1f}s",
                            retry_after=wait)
        sleep(wait)
        waited += wait


class InMemoryRateLimiter:
    """Thread-safe token buckets in this process only."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._blocked_until: dict[str, float] = {}

    def acquire(self, key: str, limit: RateLimit, *, max_wait: float = 60.0) -> float:
        return _acquire(lambda: self._attempt(key, limit), self._sleep, max_wait)

    def _attempt(self, key: str, limit: RateLimit) -> float:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(limit.burst), now))
            blocked_for = self._blocked_until.get(key, now) - now
            tokens, wait = _take(tokens, now - at, blocked_for, limit)
            self._buckets[key] = (tokens, now)
        return wait

    def hold_off(self, key: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._blocked_until[key] = max(until, self._blocked_until.get(key, until))


# "Now" in each statement: :now, the limiter's clock, when it has one, else the database's.
_TAKE_SQL = text("""
    SELECT tokens, now_ts,
           EXTRACT(EPOCH FROM now_ts - updated_at)::float8 AS elapsed,
           COALESCE(EXTRACT(EPOCH FROM blocked_until - now_ts), 0)::float8 AS blocked
      FROM provider_rate_limits,
           (SELECT COALESCE(CAST(:now AS timestamptz), clock_timestamp()) AS now_ts) AS clock
     WHERE key = :key
       FOR UPDATE OF provider_rate_limits
""")


class PostgresRateLimiter:
    """Token buckets in Postgres rows: one budget per key across every process.

    Each attempt is one short transaction on its own connection (never the caller's
    session, so a long sync transaction does not hold the row lock). Sleeping happens
    outside the transaction. ``clock`` (aware datetimes) replaces the database's clock:
    for tests, where it must be one clock shared by every limiter on the key.
    """

    def __init__(self, engine: Engine, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._sleep = sleep
        self._clock = clock

    def _now(self) -> datetime | None:
        return self._clock() if self._clock is not None else None

    def acquire(self, key: str, limit: RateLimit, *, max_wait: float = 60.0) -> float:
        return _acquire(lambda: self._attempt(key, limit), self._sleep, max_wait)

    def _attempt(self, key: str, limit: RateLimit) -> float:
        now = self._now()
        with self._engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO provider_rate_limits (key, tokens, updated_at) "
                "VALUES (:key, :burst, COALESCE(CAST(:now AS timestamptz), clock_timestamp())) "
                "ON CONFLICT (key) DO NOTHING"
            ), {"key": key, "burst": float(limit.burst), "now": now})
            row = conn.execute(_TAKE_SQL, {"key": key, "now": now}).one()
            tokens, wait = _take(row.tokens, row.elapsed, row.blocked, limit)
            # "Now" was read before the row lock was granted: a concurrent attempt may have
            # stamped a later time meanwhile. Never move the stamp back, or the refill of
            # the time in between would be counted twice.
            conn.execute(text(
                "UPDATE provider_rate_limits SET tokens = :tokens, "
                "updated_at = GREATEST(updated_at, :now) WHERE key = :key"
            ), {"key": key, "tokens": tokens, "now": row.now_ts})
        return wait

    def hold_off(self, key: str, seconds: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO provider_rate_limits (key, tokens, updated_at, blocked_until) "
                "VALUES (:key, 0, COALESCE(CAST(:now AS timestamptz), clock_timestamp()), "
                "        COALESCE(CAST(:now AS timestamptz), clock_timestamp())"
                "        + make_interval(secs => :secs)) "
                "ON CONFLICT (key) DO UPDATE SET blocked_until = GREATEST("
                "  COALESCE(provider_rate_limits.blocked_until, EXCLUDED.blocked_until), "
                "  EXCLUDED.blocked_until)"
            ), {"key": key, "secs": float(seconds), "now": self._now()})
