"""Active registrations per link and active entries per event counted from an index.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07

The unified events view (``GET /api/events/unified``) and participant tracking count, for
a page of events, each link's registrations not withdrawn and each event's active
entries. Both counts read every row from the table to test ``withdrawn_at`` / ``status``
(5,000 heap rows for a page of 50 events at 100 entries each: most of the view's
database time). A partial index on exactly those rows lets Postgres count them from the
index alone (an index-only scan while the table's visibility map is current). Each
costs one more index entry per active entry or registration written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0028'
down_revision: str | None = '0027'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_synced_records_link_id_active', 'synced_records', ['link_id'],
                    unique=False, postgresql_where=sa.text('withdrawn_at IS NULL'))
    op.create_index('ix_event_participants_event_id_active', 'event_participants',
                    ['event_id'], unique=False, postgresql_where=sa.text("status = 'active'"))


def downgrade() -> None:
    op.drop_index('ix_event_participants_event_id_active', table_name='event_participants')
    op.drop_index('ix_synced_records_link_id_active', table_name='synced_records')
