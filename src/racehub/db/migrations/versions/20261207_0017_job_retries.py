"""A job run records its retries and its priority.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

A kind may retry failures that pass (a provider down or throttling) after a backoff: the
run counts the failed attempts retried so far (``retries``, which caps them across
pauses, resumes and worker restarts, unlike the queue's own attempt count) and, while it
waits, when the next attempt is due (``retry_at``). ``priority`` is the queue priority
it was started with (higher runs first), so a resumed run keeps it. Existing runs: no
retries, priority 0 (the queue's default).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('job_runs', sa.Column('retries', sa.Integer(), server_default='0',
                                        nullable=False))
    op.add_column('job_runs', sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('job_runs', sa.Column('priority', sa.Integer(), server_default='0',
                                        nullable=False))


def downgrade() -> None:
    op.drop_column('job_runs', 'priority')
    op.drop_column('job_runs', 'retry_at')
    op.drop_column('job_runs', 'retries')
