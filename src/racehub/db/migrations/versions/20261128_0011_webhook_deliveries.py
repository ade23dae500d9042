"""Copernico webhook deliveries per provider connection.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28

Append-only: one row per delivery, shown newest first on the connection page (hence the
(connection_id, received_at) index). Deleting a connection deletes its deliveries.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('provider_webhook_deliveries',
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('participant_id', sa.Text(), nullable=True),
    sa.Column('participant_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('point', sa.Text(), nullable=True),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('raw_time', sa.Text(), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['provider_connections.id'], name=op.f('fk_provider_webhook_deliveries_connection_id_provider_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_provider_webhook_deliveries_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_webhook_deliveries'))
    )
    op.create_index('ix_provider_webhook_deliveries_connection_id_received_at', 'provider_webhook_deliveries', ['connection_id', 'received_at'], unique=False)
    op.create_index(op.f('ix_provider_webhook_deliveries_tenant_id'), 'provider_webhook_deliveries', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_provider_webhook_deliveries_tenant_id'), table_name='provider_webhook_deliveries')
    op.drop_index('ix_provider_webhook_deliveries_connection_id_received_at', table_name='provider_webhook_deliveries')
    op.drop_table('provider_webhook_deliveries')
