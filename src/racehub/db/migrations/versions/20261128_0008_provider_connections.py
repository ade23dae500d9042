"""Provider connections with encrypted credentials.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

One row per tenant connection to a provider. The credentials are a single Fernet token
(``credentials_encrypted``); ``credentials_key_id`` names the key that wrote it, so an
operator can see when a key rotation has reached every row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROVIDERS = ('RUNSIGNUP', 'RACE_ROSTER', 'HAKU', 'CHRONOTRACK', 'COPERNICO')


def upgrade() -> None:
    op.create_table('provider_connections',
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('base_url', sa.String(length=500), nullable=False),
    sa.Column('credentials_encrypted', sa.Text(), nullable=False),
    sa.Column('credentials_key_id', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.Enum('registration', 'scoring', name='connection_direction'), nullable=False),
    sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('field_mapping', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.Enum('UNTESTED', 'OK', 'FAILED', name='connection_status'), nullable=False),
    sa.Column('last_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_check_message', sa.String(length=500), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("provider IN (" + ", ".join(f"'{p}'" for p in PROVIDERS) + ")",
                       name=op.f('ck_provider_connections_provider_known')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_provider_connections_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_connections')),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_provider_connections_tenant_id_name')
    )
    op.create_index(op.f('ix_provider_connections_tenant_id'), 'provider_connections', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_provider_connections_tenant_id'), table_name='provider_connections')
    op.drop_table('provider_connections')
    sa.Enum(name='connection_status').drop(op.get_bind(), checkfirst=True)
    sa.Enum(name='connection_direction').drop(op.get_bind(), checkfirst=True)
