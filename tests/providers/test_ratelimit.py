"""Token buckets: the in-memory one with a fake clock, the Postgres one shared across
connections, threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, text

from racehub.providers.errors import Throttled
from racehub.providers.ratelimit import InMemoryRateLimiter, PostgresRateLimiter, RateLimit
from tests.providers.clock import FakeClock


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


@pytest.mark.parametrize("rate", [7, 9, 500])
def test_a_token_short_only_by_rounding_is_taken_without_another_wait(rate: float) -> None:
    # After sleeping the computed wait, float rounding can leave 0.99999999999 tokens; a
    # second wait of ~1e-14 s would not even move a clock, so the loop would spin.
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        assert seconds > 1e-6, f"a wait of {seconds!r} s"
        clock.sleep(seconds)

    limiter = InMemoryRateLimiter(clock=clock, sleep=sleep)
    limit = RateLimit(per_second=rate, burst=1)
    for _ in range(20):
        limiter.acquire("k", limit)
    assert clock.sleeps == [pytest.approx(1 / rate)] * 19


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
    clock = FakeClock()
    limiter = PostgresRateLimiter(engine, sleep=clock.sleep, clock=clock.at)
    limit = RateLimit(per_second=2, burst=2)
    key = _key()
    assert limiter.acquire(key, limit) == 0
    assert limiter.acquire(key, limit) == 0
    # No time passed: half a second for the next token, slept once.
    assert limiter.acquire(key, limit) == pytest.approx(0.5)
    assert clock.sleeps == [pytest.approx(0.5)]
    with engine.connect() as conn:
        tokens = conn.execute(text("SELECT tokens FROM provider_rate_limits WHERE key = :k"),
                              {"k": key}).scalar_one()
    assert tokens == pytest.approx(0)
    # A quiet period refills only up to the burst.
    clock.now += 60
    assert [limiter.acquire(key, limit, max_wait=0) for _ in range(2)] == [0, 0]
    with pytest.raises(Throttled) as info:
        limiter.acquire(key, limit, max_wait=0)
    assert info.value.retry_after == pytest.approx(0.5)


def test_an_attempt_that_read_the_time_before_waiting_for_the_row_never_moves_it_back(
        engine: Engine) -> None:
    # Each attempt reads "now" before the row lock is granted, so a late one may carry an
    # earlier time than the attempt that held the lock: it must not rewind the bucket's
    # stamp, or the time in between would refill it a second time.
    key = _key()
    limit = RateLimit(per_second=1, burst=1)
    times = {"on_time": 1000.0, "late": 1000.0}
    on_time = PostgresRateLimiter(engine, clock=lambda: datetime.fromtimestamp(
        times["on_time"], UTC))
    late = PostgresRateLimiter(engine, clock=lambda: datetime.fromtimestamp(times["late"], UTC))
    assert on_time.acquire(key, limit) == 0
    times["on_time"] = 1001.0
    assert on_time.acquire(key, limit, max_wait=0) == 0  # the refilled token
    times["late"] = 1000.5
    with pytest.raises(Throttled):
        late.acquire(key, limit, max_wait=0)
    with pytest.raises(Throttled) as info:
        on_time.acquire(key, limit, max_wait=0)
    assert info.value.retry_after == pytest.approx(1.0)  # not 0.5: no second refill


def test_postgres_bucket_without_a_clock_uses_the_database_clock(engine: Engine) -> None:
    sleeps: list[float] = []
    limiter = PostgresRateLimiter(engine, sleep=sleeps.append)
    key = _key()
    limit = RateLimit(per_second=0.001, burst=1)  # the next token in 1000 s
    assert limiter.acquire(key, limit) == 0
    with pytest.raises(Throttled):
        limiter.acquire(key, limit, max_wait=10)
    assert sleeps == []
    with engine.connect() as conn:
        stamped = conn.execute(text(
            "SELECT abs(EXTRACT(EPOCH FROM clock_timestamp() - updated_at)) "
            "FROM provider_rate_limits WHERE key = :k"), {"k": key}).scalar_one()
    assert stamped < 3600  # stamped by the server's clock, not some injected time


def test_threads_with_separate_connections_share_one_budget(engine: Engine) -> None:
    key = _key()
    limit = RateLimit(per_second=20, burst=2)
    per_thread = 8
    clock = FakeClock()
    started = clock.now
    engines = [create_engine(engine.url, pool_size=1) for _ in range(2)]
    granted: list[float] = []
    lock = threading.Lock()

    def spend(own: Engine) -> None:
        limiter = PostgresRateLimiter(own, sleep=clock.sleep, clock=clock.at)
        for _ in range(per_thread):
            limiter.acquire(key, limit, max_wait=10)
            with lock:
                granted.append(clock.now)  # at or after the grant: never earlier

    threads = [threading.Thread(target=spend, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for e in engines:
        e.dispose()
    assert len(granted) == 2 * per_thread
    # By any moment t the shared bucket has granted at most burst + rate * t tokens; two
    # separate budgets would have granted 4 at once at the start.
    granted.sort()
    for i, at in enumerate(granted):
        assert i + 1 <= limit.burst + limit.per_second * (at - started) + 1e-6, granted
    # So the 16 tokens took at least (16 - 2) / 20 s of the clock, all of it slept.
    assert clock.now - started >= (2 * per_thread - limit.burst) / limit.per_second - 1e-6


def _spend_in_process(url: str, key: str, at: float, count: int,
                      queue: multiprocessing.Queue[int]) -> None:
    """Try ``count`` tokens at one frozen moment without waiting; put how many were had."""
    engine = create_engine(url, pool_size=1)
    limiter = PostgresRateLimiter(engine, clock=lambda: datetime.fromtimestamp(at, UTC))
    granted = 0
    for _ in range(count):
        try:
            limiter.acquire(key, RateLimit(per_second=20, burst=2), max_wait=0)
            granted += 1
        except Throttled:
            pass
    engine.dispose()
    queue.put(granted)


def test_processes_share_one_budget(engine: Engine) -> None:
    key = _key()
    url = engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    granted = 0
    # Two processes at the same frozen moment, then both again half a second later.
    for at in (1000.0, 1000.5):
        procs = [ctx.Process(target=_spend_in_process, args=(url, key, at, 4, queue))
                 for _ in range(2)]
        for p in procs:
            p.start()
        round_granted = sum(queue.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=30)
        # One bucket: its burst, then (10 tokens refilled, capped) the burst again. Two
        # separate budgets would have granted 4 each time.
        assert round_granted == 2
        granted += round_granted
    assert granted == 4


def test_hold_off_in_one_process_makes_the_others_wait(engine: Engine) -> None:
    key = _key()
    clock = FakeClock()
    other = create_engine(engine.url, pool_size=1)
    try:
        PostgresRateLimiter(engine, clock=clock.at).hold_off(key, 0.5)
        clock.now += 0.2
        waiting = PostgresRateLimiter(other, sleep=clock.sleep, clock=clock.at)
        # The other limiter sleeps out what is left of the hold-off, then takes a token.
        assert waiting.acquire(key, RateLimit(per_second=50, burst=5)) == pytest.approx(0.3)
        assert clock.sleeps == [pytest.approx(0.3)]
        # A shorter hold-off never shortens a longer one.
        PostgresRateLimiter(engine, clock=clock.at).hold_off(key, 10)
        PostgresRateLimiter(engine, clock=clock.at).hold_off(key, 1)
        with pytest.raises(Throttled) as info:
            waiting.acquire(key, RateLimit(per_second=50, burst=5), max_wait=5)
        assert info.value.retry_after == pytest.approx(10)
    finally:
        other.dispose()


def test_rate_limit_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimit(per_second=0, burst=1)
    with pytest.raises(ValueError):
        RateLimit(per_second=1, burst=0)
