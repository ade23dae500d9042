"""Results pulled from a timing system: a run counts the athletes still on the course.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07

A results pull (sync type "results_pull", sync/results_pull.py) reads rows of athletes
who started and have not finished yet: they are not results, so they are not stored, but
the run says how many there were (``sync_runs.on_course``) rather than drop them silently.
Existing runs read 0 (none of them was a pull).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_runs", sa.Column("on_course", sa.Integer(), server_default="0",
                                         nullable=False))


def downgrade() -> None:
    op.drop_column("sync_runs", "on_course")
