"""procrastinate's job-queue schema (tables, functions, triggers) at version 3.10.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

The SQL is procrastinate's own (``SchemaManager.get_schema()``). When procrastinate is
upgraded, copy its SQL migrations (``procrastinate schema --migrations-path``) into new
revisions of ours.
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # psycopg treats % as a placeholder marker: double them in raw SQL.
    op.get_bind().exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        """
        DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
            procrastinate_jobs, procrastinate_workers CASCADE;
        DO $$
        DECLARE fn record;
        BEGIN
            FOR fn IN SELECT oid::regprocedure AS sig FROM pg_proc
                      WHERE proname LIKE 'procrastinate\\_%%' LOOP
                EXECUTE 'DROP FUNCTION IF EXISTS ' || fn.sig || ' CASCADE';
            END LOOP;
        END $$;
        DROP TYPE IF EXISTS procrastinate_job_status, procrastinate_job_event_type,
            procrastinate_job_to_defer_v1 CASCADE;
        """
    )
