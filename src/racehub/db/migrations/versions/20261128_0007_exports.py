"""Async list-view exports: one row per export, its progress on a job run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'exports',
        sa.Column('view_key', sa.String(length=60), nullable=False),
        sa.Column('title', sa.String(length=300), nullable=False),
        sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('sort', sa.String(length=60), nullable=True),
        sa.Column('descending', sa.Boolean(), nullable=False),
        sa.Column('columns', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('file_format', sa.String(length=10), nullable=False),
        sa.Column('cutoff_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('requested_by_user_id', sa.Uuid(), nullable=True),
        sa.Column('requested_by_token_id', sa.Uuid(), nullable=True),
        sa.Column('retry_of_id', sa.Uuid(), nullable=True),
        sa.Column('job_run_id', sa.Uuid(), nullable=False),
        sa.Column('storage_backend', sa.String(length=20), nullable=False),
        sa.Column('storage_key', sa.String(length=500), nullable=True),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('row_count', sa.Integer(), nullable=True),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['job_run_id'], ['job_runs.id'],
                                name=op.f('fk_exports_job_run_id_job_runs'), ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['requested_by_token_id'], ['api_tokens.id'],
                                name=op.f('fk_exports_requested_by_token_id_api_tokens'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['requested_by_user_id'], ['users.id'],
                                name=op.f('fk_exports_requested_by_user_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['retry_of_id'], ['exports.id'],
                                name=op.f('fk_exports_retry_of_id_exports'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_exports_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exports')),
    )
    op.create_index(op.f('ix_exports_tenant_id'), 'exports', ['tenant_id'], unique=False)
    op.create_index('ix_exports_tenant_id_requested_by_user_id_created_at', 'exports',
                    ['tenant_id', 'requested_by_user_id', 'created_at'], unique=False)
    op.create_index('ix_exports_expires_at_live', 'exports', ['expires_at'], unique=False,
                    postgresql_where=sa.text('expired_at IS NULL AND expires_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_exports_expires_at_live', table_name='exports',
                  postgresql_where=sa.text('expired_at IS NULL AND expires_at IS NOT NULL'))
    op.drop_index('ix_exports_tenant_id_requested_by_user_id_created_at', table_name='exports')
    op.drop_index(op.f('ix_exports_tenant_id'), table_name='exports')
    op.drop_table('exports')
