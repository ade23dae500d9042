"""A fake clock for the waits of the provider layer: time passes only when someone sleeps,
so a test checks how long the code waited instead of measuring it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from racehub.providers.base import ProviderAdapter
from racehub.providers.ratelimit import InMemoryRateLimiter


class FakeClock:
    """Seconds (``clock()``) or an aware datetime (``clock.at()``); ``sleep`` records the
    wait and moves the clock on. Safe to share between threads."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def on_fake_time(adapter: ProviderAdapter) -> FakeClock:
    """Make ``adapter`` wait on a fake clock (its retries and its rate limit); that clock."""
    clock = FakeClock()
    adapter.clock = clock
    adapter.sleep = adapter.http.sleep = clock.sleep
    adapter.http.limiter = InMemoryRateLimiter(clock=clock, sleep=clock.sleep)
    return clock
