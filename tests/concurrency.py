"""Two transactions at once, for tests of code that must take turns (db.locks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

T = TypeVar("T")


def second_waits_for_first(first: Session, second: Callable[[], T], *,
                           wait_s: float = 1.0, timeout_s: float = 10.0) -> T:
    """Run ``second`` in a thread while ``first`` holds its transaction open: assert it is
    still waiting after ``wait_s``, commit ``first``, and return what ``second`` returned
    (or raise what it raised)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = second()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    racer = threading.Thread(target=run, daemon=True)
    racer.start()
    racer.join(timeout=wait_s)
    waited = racer.is_alive()
    first.commit()
    racer.join(timeout=timeout_s)
    assert not racer.is_alive(), "the second transaction never finished"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    assert waited, "the second transaction did not wait for the first one's commit"
    return outcome["value"]  # type: ignore[return-value]


def loser_of_a_race(engine: Engine, winner: Session, name: str,
                    loser: Callable[[Session], T]) -> T:
    """Run ``loser`` on a connection of its own (``application_name`` ``name``) while
    ``winner`` holds an uncommitted write it will collide with: once the loser waits on that
    lock, commit ``winner``; return what ``loser`` returned (or raise what it raised).
    ``loser`` commits or rolls back its own session."""
    outcome: dict[str, object] = {}

    def run() -> None:
        loser_engine = create_engine(engine.url, connect_args={"application_name": name})
        try:
            with Session(loser_engine) as db:
                outcome["value"] = loser(db)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            loser_engine.dispose()

    racer = threading.Thread(target=run, daemon=True)
    racer.start()
    try:
        _wait_until_blocked(engine, name)
    finally:
        winner.commit()
        winner.close()
        racer.join(timeout=30)
    assert not racer.is_alive(), f"{name} never finished"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _wait_until_blocked(engine: Engine, application_name: str) -> None:
    """Bounded wait until the session named ``application_name`` waits on a lock."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = :name AND wait_event_type = 'Lock'"
            ), {"name": application_name}).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError(f"{application_name} never waited on the other transaction")
