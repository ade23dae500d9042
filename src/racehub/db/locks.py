"""Transaction-scoped advisory locks: writers of one key take turns.

Two imports at once (a double-clicked upload, two operators, two workers) would each find
a row missing and both insert it, and one would fail on the unique index. A batch that
first takes its key's turn holds it until it commits, so the next one finds the rows
already written.
"""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session


class Turn(enum.IntEnum):
    """What is serialized (the lock's first key); the second key is the id it is per."""

    NUMBER_ONBOARDING = 60_601  # per tenant: race numbers and tags (tags are tenant-wide)
    RESULTS_IMPORT = 60_801  # per event: one result per participant


def take_turn(db: Session, turn: Turn, key: uuid.UUID) -> None:
    """Wait until no other transaction holds ``turn`` for ``key``; held until commit or
    rollback."""
    db.execute(select(func.pg_advisory_xact_lock(int(turn), func.hashtext(str(key)))))
