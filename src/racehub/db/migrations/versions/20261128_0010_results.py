"""E08 results per event participant.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('results',
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_participant_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.Enum('finished', 'DNF', 'DNS', 'DQ', name='result_status'), nullable=False),
    sa.Column('chip_ms', sa.BigInteger(), nullable=True),
    sa.Column('gun_ms', sa.BigInteger(), nullable=True),
    sa.Column('file_bib', sa.String(length=20), nullable=True),
    sa.Column('file_overall_place', sa.Integer(), nullable=True),
    sa.Column('file_gender_place', sa.Integer(), nullable=True),
    sa.Column('file_category_place', sa.Integer(), nullable=True),
    sa.Column('overall_place', sa.Integer(), nullable=True),
    sa.Column('gender_place', sa.Integer(), nullable=True),
    sa.Column('category_place', sa.Integer(), nullable=True),
    sa.Column('splits', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('warning', sa.Text(), server_default='', nullable=False),
    sa.Column('import_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_results_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_participant_id'], ['event_participants.id'], name=op.f('fk_results_event_participant_id_event_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_results_import_id_imports'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_results_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_results'))
    )
    op.create_index('ix_results_event_id_status_overall_place', 'results', ['event_id', 'status', 'overall_place'], unique=False)
    op.create_index(op.f('ix_results_import_id'), 'results', ['import_id'], unique=False)
    op.create_index(op.f('ix_results_tenant_id'), 'results', ['tenant_id'], unique=False)
    op.create_index('uq_results_event_participant_id', 'results', ['event_participant_id'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_results_event_participant_id', table_name='results')
    op.drop_index(op.f('ix_results_tenant_id'), table_name='results')
    op.drop_index(op.f('ix_results_import_id'), table_name='results')
    op.drop_index('ix_results_event_id_status_overall_place', table_name='results')
    op.drop_table('results')
    sa.Enum(name='result_status').drop(op.get_bind(), checkfirst=True)
