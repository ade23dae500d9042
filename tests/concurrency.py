"""Two transactions at once, for tests of code that must take turns (db.locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

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
