"""Links keep how their next run was planned, and the tick finds due links by an index.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

The schedule's tick (sync/schedule.py) reads the linked, auto-synced links whose
``next_run_at`` has come, every minute; the partial index keeps that a short range read
however many links are unlinked or off. ``schedule_plan`` is what the status API shows
beside the next run: the cadence's phase and interval, and whether the provider's request
budget stretched it and why. Both are new; nothing is rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('event_links', sa.Column('schedule_plan',
                                           postgresql.JSONB(astext_type=sa.Text()),
                                           nullable=True))
    op.create_index('ix_event_links_next_run_at', 'event_links', ['next_run_at'],
                    unique=False, postgresql_where=sa.text('auto_sync AND event_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_event_links_next_run_at', table_name='event_links',
                  postgresql_where=sa.text('auto_sync AND event_id IS NOT NULL'))
    op.drop_column('event_links', 'schedule_plan')
