"""What racehub last pushed to a timing system, per linked timing event and external id.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07

A start list push (sync/timing_push.py) sends a timing system (ChronoTrack Live, Copernico)
the event's active participants under the external id of the event's timing identifier
mode, and only what changed since the last push. ``timing_push_states`` keeps, per link and
external id the timing system holds: the EP it stands for, the hash and the values of what
was sent, when, and whether the id was withdrawn there since (removed or marked DNS, per
provider). Rows are written only for what the provider accepted. A new table: nothing
existing is read or rewritten.

Downgrade drops the table (the next push after an upgrade would then send everything
again, as a first push does).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'timing_push_states',
        sa.Column('link_id', sa.Uuid(), nullable=False),
        sa.Column('participant_id', sa.Uuid(), nullable=True),
        sa.Column('external_id', sa.String(length=200), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('pushed_values', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_run_id', sa.Uuid(), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['event_links.id'],
                                name=op.f('fk_timing_push_states_link_id_event_links'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(
            ['participant_id'], ['event_participants.id'],
            name=op.f('fk_timing_push_states_participant_id_event_participants'),
            ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['last_run_id'], ['sync_runs.id'],
                                name=op.f('fk_timing_push_states_last_run_id_sync_runs'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_timing_push_states_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_timing_push_states')),
        sa.UniqueConstraint('link_id', 'external_id',
                            name='uq_timing_push_states_link_id_external_id'),
    )
    op.create_index(op.f('ix_timing_push_states_tenant_id'), 'timing_push_states',
                    ['tenant_id'], unique=False)
    op.create_index('ix_timing_push_states_participant_id', 'timing_push_states',
                    ['participant_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_timing_push_states_participant_id', table_name='timing_push_states')
    op.drop_index(op.f('ix_timing_push_states_tenant_id'), table_name='timing_push_states')
    op.drop_table('timing_push_states')
