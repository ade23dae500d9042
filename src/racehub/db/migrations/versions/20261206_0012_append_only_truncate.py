"""The append-only logs refuse TRUNCATE too.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

0002 and 0004 refuse UPDATE and DELETE on audit_log and race_number_log with row triggers;
TRUNCATE fires no row trigger, so one statement could still empty either log. A statement
trigger on TRUNCATE (reusing each table's refusing function) closes that. Truncating the
tenants with CASCADE reaches both logs and is refused the same way.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_TABLES = ("audit_log", "race_number_log")


def upgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
