"""Token buckets: the in-memory one with a fake clock, the Postgres one shared across
connections, threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import pytest
from sqlalchemy import Engine, create_engine, text

from racehub.providers.errors import Throttled
from racehub.providers.ratelimit import InMemoryRateLimiter, PostgresRateLimiter, RateLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_in_memory_bucket_allows_a_burst_then_the_refill_rate() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock, sleep=clock.sleep)
    limit = RateLimit(per_second=2, burst=3)
    for _ in range(3):
        assert limiter.acquire("k", limit) == 0
    assert limiter.acquire("k", limit) == pytest.approx(0.5)
    assert limiter.acquire("k", limit) == pytest.approx(0.5)
    clock.now += 10  # a quiet period refills only up to the burst
    for _ in range(3):
        assert limiter.acquire("k", limit) == 0
    assert limiter.acquire("k", limit) > 0
    assert limiter.acquire("other-key", limit) == 0  # buckets are per key


def test_in_memory_bucket_refuses_waits_beyond_max_wait_with_the_wait() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock, sleep=clock.sleep)
    limit = RateLimit(per_second=0.1, burst=1)
    limiter.acquire("k", limit)
    with pytest.raises(Throttled) as info:
        limiter.acquire("k", limit, max_wait=5)
    assert info.value.retry_after == pytest.approx(10)
    assert clock.sleeps == []


def test_hold_off_blocks_the_key_until_it_passes() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock, sleep=clock.sleep)
    limit = RateLimit(per_second=10, burst=10)
    limiter.hold_off("k", 4)
    assert limiter.acquire("k", limit) == pytest.approx(4)
    assert limiter.acquire("k", limit) == 0


def _key() -> str:
    return f"test-{uuid.uuid4()}"


def test_postgres_bucket_grants_the_burst_then_waits(engine: Engine) -> None:
    sleeps: list[float] = []
    limiter = PostgresRateLimiter(engine, sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    limit = RateLimit(per_second=2, burst=2)
    key = _key()
    assert limiter.acquire(key, limit) == 0
    assert limiter.acquire(key, limit) == 0
    waited = limiter.acquire(key, limit)
    # Half a second for the next token, less whatever refilled while the first two ran.
    assert 0.3 <= waited <= 0.5
    with engine.connect() as conn:
        tokens = conn.execute(text("SELECT tokens FROM provider_rate_limits WHERE key = :k"),
                              {"k": key}).scalar_one()
    assert 0 <= tokens < 1


def test_threads_with_separate_connections_share_one_budget(engine: Engine) -> None:
    key = _key()
    limit = RateLimit(per_second=20, burst=2)
    per_thread = 8
    engines = [create_engine(engine.url, pool_size=1) for _ in range(2)]
    granted: list[float] = []
    lock = threading.Lock()

    def spend(own: Engine) -> None:
        limiter = PostgresRateLimiter(own)
        for _ in range(per_thread):
            limiter.acquire(key, limit, max_wait=10)
            with lock:
                granted.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=spend, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    elapsed = time.monotonic() - started
    for e in engines:
        e.dispose()
    assert len(granted) == 2 * per_thread
    # 16 tokens, 2 at once then 20/s: at least (16 - 2) / 20 = 0.7 s for both together.
    # Two separate budgets would have finished in about half that.
    assert elapsed >= 0.65
    # Never more than burst + rate * t granted within any window starting at the start.
    granted.sort()
    for i, at in enumerate(granted):
        assert i + 1 <= limit.burst + limit.per_second * (at - started) + 1


def _spend_in_process(url: str, key: str, count: int, queue: multiprocessing.Queue) -> None:
    engine = create_engine(url, pool_size=1)
    limiter = PostgresRateLimiter(engine)
    times = []
    for _ in range(count):
        limiter.acquire(key, RateLimit(per_second=20, burst=2), max_wait=10)
        times.append(time.time())
    engine.dispose()
    queue.put(times)


def test_processes_share_one_budget(engine: Engine) -> None:
    key = _key()
    url = engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_spend_in_process, args=(url, key, 8, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    granted = sorted(t for times in results for t in times)
    assert len(granted) == 16
    # The processes start at different moments; after the first grant the shared bucket
    # hands out at most burst + rate * t tokens.
    span = granted[-1] - granted[0]
    assert span >= (16 - 2) / 20 - 0.05


def test_hold_off_in_one_process_makes_the_others_wait(engine: Engine) -> None:
    key = _key()
    other = create_engine(engine.url, pool_size=1)
    try:
        started = time.monotonic()
        PostgresRateLimiter(engine).hold_off(key, 0.5)
        waited = PostgresRateLimiter(other).acquire(key, RateLimit(per_second=50, burst=5))
        # The other process slept out what was left of the hold-off (on the DB clock).
        assert 0 < waited <= 0.6
        assert time.monotonic() - started >= 0.49
    finally:
        other.dispose()


def test_rate_limit_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimit(per_second=0, burst=1)
    with pytest.raises(ValueError):
        RateLimit(per_second=1, burst=0)
