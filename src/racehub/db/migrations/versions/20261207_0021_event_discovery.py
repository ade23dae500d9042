"""Provider events discovered on a connection: candidates beside the chosen ones.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

Discovery (sync/discovery.py) lists a connection's provider events and keeps each as an
``event_links`` row, linked or not. Until now every row was a provider event chosen on
the connection (its ``eventIds``, which the adapters read); a discovered row is not chosen
until an operator links or chooses it, so ``chosen`` tells the two apart (every existing
row was chosen: the default). The row keeps what the Provider events page shows of it
(start, the time zone as the provider gave it, location, races) and when the listing had
it: ``discovered_at`` (first), ``last_seen_at`` (last) and ``gone_at`` (a complete
listing no longer had it: marked, never deleted). ``provider_connections.
events_discovered_at`` is the end of the connection's last complete discovery.

Downgrade drops the columns; rows only discovered (not chosen, not linked) are deleted
first, since the code before this revision reads every row as chosen.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('event_links', sa.Column('chosen', sa.Boolean(), nullable=False,
                                           server_default=sa.text('true')))
    op.add_column('event_links', sa.Column('discovered_at', sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column('event_links', sa.Column('last_seen_at', sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column('event_links', sa.Column('gone_at', sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column('event_links', sa.Column('provider_start_at', sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column('event_links', sa.Column('provider_time_zone', sa.String(length=64),
                                           nullable=True))
    op.add_column('event_links', sa.Column(
        'provider_details', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
        server_default=sa.text("'{}'::jsonb")))
    op.create_index('ix_event_links_tenant_id_provider_start_at', 'event_links',
                    ['tenant_id', 'provider_start_at'], unique=False)
    op.add_column('provider_connections', sa.Column(
        'events_discovered_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM event_links WHERE NOT chosen AND event_id IS NULL")
    op.drop_column('provider_connections', 'events_discovered_at')
    op.drop_index('ix_event_links_tenant_id_provider_start_at', table_name='event_links')
    for column in ('provider_details', 'provider_time_zone', 'provider_start_at', 'gone_at',
                   'last_seen_at', 'discovered_at', 'chosen'):
        op.drop_column('event_links', column)
