"""The import pipeline (C05): uploaded files and the result of each of their rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

A row result is unique per (import, row number), so a batch retried after a crash cannot
record a row twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('imports',
    sa.Column('import_type', sa.String(length=60), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_path', sa.String(length=500), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('file_format', sa.String(length=10), nullable=False),
    sa.Column('encoding', sa.String(length=20), nullable=True),
    sa.Column('delimiter', sa.String(length=2), nullable=True),
    sa.Column('header', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('column_map', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('job_run_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['job_run_id'], ['job_runs.id'], name=op.f('fk_imports_job_run_id_job_runs'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_imports_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imports'))
    )
    op.create_index(op.f('ix_imports_tenant_id'), 'imports', ['tenant_id'], unique=False)
    op.create_index('ix_imports_tenant_id_import_type_created_at', 'imports', ['tenant_id', 'import_type', 'created_at'], unique=False)
    op.create_table('import_row_results',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('import_id', sa.Uuid(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=40), nullable=False),
    sa.Column('values', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('target_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_import_row_results_import_id_imports'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_import_row_results_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_row_results'))
    )
    op.create_index('ix_import_row_results_import_id_bucket_row_number', 'import_row_results', ['import_id', 'bucket', 'row_number'], unique=False)
    op.create_index(op.f('ix_import_row_results_tenant_id'), 'import_row_results', ['tenant_id'], unique=False)
    op.create_index('uq_import_row_results_import_id_row_number', 'import_row_results', ['import_id', 'row_number'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_import_row_results_import_id_row_number', table_name='import_row_results')
    op.drop_index(op.f('ix_import_row_results_tenant_id'), table_name='import_row_results')
    op.drop_index('ix_import_row_results_import_id_bucket_row_number', table_name='import_row_results')
    op.drop_table('import_row_results')
    op.drop_index('ix_imports_tenant_id_import_type_created_at', table_name='imports')
    op.drop_index(op.f('ix_imports_tenant_id'), table_name='imports')
    op.drop_table('imports')
