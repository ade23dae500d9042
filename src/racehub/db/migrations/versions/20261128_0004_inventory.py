"""Number and tag inventory: number types, tags, race numbers and their state log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

(number_type_id, sequence) is a race number's natural key: imports upsert by it. A tag is
paired to at most one race number (partial unique index). The state log is append-only,
like the audit log: a trigger refuses UPDATE and DELETE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('number_types',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('prefix', sa.String(length=20), nullable=True),
    sa.Column('range_start', sa.BigInteger(), nullable=True),
    sa.Column('range_end', sa.BigInteger(), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('range_end IS NULL OR range_start IS NULL OR range_end >= range_start', name=op.f('ck_number_types_range_ordered')),
    sa.CheckConstraint('range_start IS NULL OR range_start >= 1', name=op.f('ck_number_types_range_start_positive')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_number_types_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_number_types')),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_number_types_tenant_id_name')
    )
    op.create_index(op.f('ix_number_types_tenant_id'), 'number_types', ['tenant_id'], unique=False)
    op.create_table('tags',
    sa.Column('code', sa.String(length=128), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tags_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('tenant_id', 'code', name='uq_tags_tenant_id_code')
    )
    op.create_index(op.f('ix_tags_tenant_id'), 'tags', ['tenant_id'], unique=False)
    op.create_table('race_numbers',
    sa.Column('number_type_id', sa.Uuid(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('state', sa.Enum('MANUFACTURED', 'ASSIGNED', 'RETIRED', 'LOST', name='race_number_state'), nullable=False),
    sa.Column('tag_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('sequence >= 1', name=op.f('ck_race_numbers_sequence_positive')),
    sa.ForeignKeyConstraint(['number_type_id'], ['number_types.id'], name=op.f('fk_race_numbers_number_type_id_number_types'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_race_numbers_tag_id_tags'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_race_numbers_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_race_numbers')),
    sa.UniqueConstraint('number_type_id', 'sequence', name='uq_race_numbers_number_type_id_sequence')
    )
    op.create_index(op.f('ix_race_numbers_tenant_id'), 'race_numbers', ['tenant_id'], unique=False)
    op.create_index('ix_race_numbers_tenant_id_number', 'race_numbers', ['tenant_id', 'number'], unique=False)
    op.create_index('ix_race_numbers_tenant_id_sequence', 'race_numbers', ['tenant_id', 'sequence', 'id'], unique=False)
    op.create_index('uq_race_numbers_tag_id', 'race_numbers', ['tag_id'], unique=True, postgresql_where=sa.text('tag_id IS NOT NULL'))
    op.create_table('race_number_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('race_number_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('from_state', sa.Enum('MANUFACTURED', 'ASSIGNED', 'RETIRED', 'LOST', name='race_number_state'), nullable=True),
    sa.Column('to_state', sa.Enum('MANUFACTURED', 'ASSIGNED', 'RETIRED', 'LOST', name='race_number_state'), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('actor_user_id', sa.Uuid(), nullable=True),
    sa.Column('actor_label', sa.String(length=400), nullable=False),
    sa.Column('job_run_id', sa.Uuid(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['race_number_id'], ['race_numbers.id'], name=op.f('fk_race_number_log_race_number_id_race_numbers'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_race_number_log_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_race_number_log'))
    )
    op.create_index(op.f('ix_race_number_log_job_run_id'), 'race_number_log', ['job_run_id'], unique=False)
    op.create_index('ix_race_number_log_race_number_id_id', 'race_number_log', ['race_number_id', 'id'], unique=False)
    op.create_index(op.f('ix_race_number_log_tenant_id'), 'race_number_log', ['tenant_id'], unique=False)
    op.execute(
        """
        CREATE FUNCTION race_number_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'race_number_log is append-only (% refused)', TG_OP;
        END $$;
        CREATE TRIGGER race_number_log_append_only BEFORE UPDATE OR DELETE ON race_number_log
            FOR EACH ROW EXECUTE FUNCTION race_number_log_append_only();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS race_number_log_append_only ON race_number_log")
    op.execute("DROP FUNCTION IF EXISTS race_number_log_append_only()")
    op.drop_index(op.f('ix_race_number_log_tenant_id'), table_name='race_number_log')
    op.drop_index('ix_race_number_log_race_number_id_id', table_name='race_number_log')
    op.drop_index(op.f('ix_race_number_log_job_run_id'), table_name='race_number_log')
    op.drop_table('race_number_log')
    op.drop_index('uq_race_numbers_tag_id', table_name='race_numbers', postgresql_where=sa.text('tag_id IS NOT NULL'))
    op.drop_index('ix_race_numbers_tenant_id_sequence', table_name='race_numbers')
    op.drop_index('ix_race_numbers_tenant_id_number', table_name='race_numbers')
    op.drop_index(op.f('ix_race_numbers_tenant_id'), table_name='race_numbers')
    op.drop_table('race_numbers')
    op.drop_index(op.f('ix_tags_tenant_id'), table_name='tags')
    op.drop_table('tags')
    op.drop_index(op.f('ix_number_types_tenant_id'), table_name='number_types')
    op.drop_table('number_types')
    sa.Enum(name='race_number_state').drop(op.get_bind(), checkfirst=True)
