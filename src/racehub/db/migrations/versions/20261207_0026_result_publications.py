"""Results publication to the registration platform: versions and their rows.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07

- ``result_publications``: one version of an event's results for one link (numbered per
  event), its validation, its diff counts against the link's last published version, who
  approved it and when (or that it was auto-approved), the platform's result set and what
  the publish did.
- ``result_publication_rows``: the version's rows (each with its change against the base
  version, its validation codes and the platform's answer, row by row).

New tables only: nothing existing is rewritten. Downgrade drops both and their enum types.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0026'
down_revision: str | None = '0025'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('result_publications',
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('link_id', sa.Uuid(), nullable=True),
    sa.Column('connection_id', sa.Uuid(), nullable=True),
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('provider_event_ref', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('invalid', 'ready', 'approved', 'publishing', 'published', 'failed', 'superseded', name='publication_status'), nullable=False),
    sa.Column('sync_run_id', sa.Uuid(), nullable=True),
    sa.Column('prepared_by_label', sa.String(length=400), nullable=False),
    sa.Column('base_version', sa.Integer(), nullable=True),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Integer(), nullable=False),
    sa.Column('validation', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('approved_by_user_id', sa.Uuid(), nullable=True),
    sa.Column('approved_by_label', sa.String(length=400), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_warnings', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('auto_approved', sa.Boolean(), nullable=False),
    sa.Column('result_set_id', sa.String(length=100), nullable=True),
    sa.Column('result_set_name', sa.String(length=200), nullable=True),
    sa.Column('result_set_requested', sa.Boolean(), nullable=False),
    sa.Column('publish_job_run_id', sa.Uuid(), nullable=True),
    sa.Column('publish_attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['approved_by_user_id'], ['users.id'], name=op.f('fk_result_publications_approved_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['connection_id'], ['provider_connections.id'], name=op.f('fk_result_publications_connection_id_provider_connections'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_result_publications_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['link_id'], ['event_links.id'], name=op.f('fk_result_publications_link_id_event_links'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['publish_job_run_id'], ['job_runs.id'], name=op.f('fk_result_publications_publish_job_run_id_job_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sync_run_id'], ['sync_runs.id'], name=op.f('fk_result_publications_sync_run_id_sync_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_result_publications_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_publications')),
    sa.UniqueConstraint('event_id', 'version', name='uq_result_publications_event_id_version')
    )
    op.create_index('ix_result_publications_link_id_version', 'result_publications', ['link_id', 'version'], unique=False)
    op.create_index(op.f('ix_result_publications_tenant_id'), 'result_publications', ['tenant_id'], unique=False)
    op.create_table('result_publication_rows',
    sa.Column('publication_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=True),
    sa.Column('registration_ref', sa.String(length=200), nullable=True),
    sa.Column('bib', sa.String(length=20), nullable=True),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('category', sa.String(length=120), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('place', sa.Integer(), nullable=True),
    sa.Column('chip_ms', sa.BigInteger(), nullable=True),
    sa.Column('gun_ms', sa.BigInteger(), nullable=True),
    sa.Column('gender', sa.String(length=10), nullable=True),
    sa.Column('age', sa.Integer(), nullable=True),
    sa.Column('change', sa.Enum('added', 'changed', 'unchanged', 'removed', name='publication_row_change'), nullable=False),
    sa.Column('previous', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('problems', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('sendable', sa.Boolean(), nullable=False),
    sa.Column('answer', sa.Enum('pending', 'accepted', 'refused', 'not_sent', name='publication_row_answer'), nullable=False),
    sa.Column('answer_message', sa.String(length=1000), nullable=True),
    sa.Column('provider_row_id', sa.String(length=100), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['event_participants.id'], name=op.f('fk_result_publication_rows_participant_id_event_participants'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['publication_id'], ['result_publications.id'], name=op.f('fk_result_publication_rows_publication_id_result_publications'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_result_publication_rows_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('publication_id', 'seq', name=op.f('pk_result_publication_rows'))
    )
    op.create_index('ix_result_publication_rows_publication_id_change_seq', 'result_publication_rows', ['publication_id', 'change', 'seq'], unique=False)
    op.create_index(op.f('ix_result_publication_rows_tenant_id'), 'result_publication_rows', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_result_publication_rows_tenant_id'), table_name='result_publication_rows')
    op.drop_index('ix_result_publication_rows_publication_id_change_seq', table_name='result_publication_rows')
    op.drop_table('result_publication_rows')
    op.drop_index(op.f('ix_result_publications_tenant_id'), table_name='result_publications')
    op.drop_index('ix_result_publications_link_id_version', table_name='result_publications')
    op.drop_table('result_publications')
    for name in ('publication_row_answer', 'publication_row_change', 'publication_status'):
        op.execute(f'DROP TYPE {name}')
