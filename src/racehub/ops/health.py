"""Readiness checks: what a load balancer or orchestrator asks before sending traffic."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from racehub.db.bootstrap import MIGRATIONS_DIR


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The revisions the code expects the database at (read once: they ship with the code)."""
    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def readiness(db: Session, *, worker_within_seconds: float) -> list[Check]:
    """Database reachable, migrations current, a worker heard from recently.

    One round trip: every check is a column of one statement, so a probe every few
    seconds costs the database next to nothing.
    """
    try:
        row = db.execute(text(
            "SELECT (SELECT array_agg(version_num) FROM alembic_version) AS versions, "
            "       (SELECT extract(epoch FROM now() - max(last_heartbeat)) "
            "          FROM procrastinate_workers) AS worker_silent_s"
        )).one()
    except SQLAlchemyError as exc:
        reason = type(getattr(exc, "orig", None) or exc).__name__
        return [Check("database", False, f"unreachable ({reason})")]
    checks = [Check("database", True, "reachable")]

    versions = frozenset(row.versions or ())
    expected = migration_heads()
    if versions == expected:
        checks.append(Check("migrations", True, "current"))
    else:
        checks.append(Check(
            "migrations", False,
            f"database at {', '.join(sorted(versions)) or 'nothing'}, code expects "
            f"{', '.join(sorted(expected))}: run racehub migrate",
        ))

    silent = row.worker_silent_s
    if silent is None:
        checks.append(Check("worker", False, "no worker is running"))
    elif float(silent) > worker_within_seconds:
        checks.append(Check("worker", False, f"last worker heartbeat {float(silent):.0f} s ago"))
    else:
        checks.append(Check("worker", True, f"heartbeat {float(silent):.0f} s ago"))
    return checks
