"""The sync engine's model: links, synced records, runs, changes, conflicts, staging.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Nothing moved between providers: a connection kept the provider events to sync as an
``eventIds`` list inside its settings JSON, with no racehub event behind them. Now:

- ``event_links``: connection -> provider event -> racehub event (NULL until linked), and
  the stream's state (cursor, last success, schedule). The stored ``eventIds`` become
  unlinked rows here (the key itself is dropped from the settings by the code that stops
  reading it).
- ``category_links``: a provider race/distance -> a racehub category.
- ``synced_records``: each registration as last synced, keyed by (tenant, provider, the
  provider's registration id), with its payload, content hash and last-synced values.
- ``sync_runs`` (one active run per link and type: a partial unique index),
  ``sync_changes`` (per record, old -> new), ``sync_conflicts`` (one open per EP and field),
  ``sync_staged_rows`` (a run's read, applied only once complete).
- ``event_participants``: the fields racehub owns once edited locally, a soft withdrawal's
  time and reason, and the EP a transfer came from.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('event_links',
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('provider_event_ref', sa.String(length=200), nullable=False),
    sa.Column('provider_event_name', sa.String(length=300), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cursor', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('auto_sync', sa.Boolean(), nullable=False),
    sa.Column('sync_settings', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['provider_connections.id'], name=op.f('fk_event_links_connection_id_provider_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_links_event_id_events'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_event_links_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_links')),
    sa.UniqueConstraint('connection_id', 'provider_event_ref', name='uq_event_links_connection_id_provider_event_ref')
    )
    op.create_index(op.f('ix_event_links_tenant_id'), 'event_links', ['tenant_id'], unique=False)
    op.create_index('ix_event_links_tenant_id_event_id', 'event_links', ['tenant_id', 'event_id'], unique=False)
    op.create_table('category_links',
    sa.Column('link_id', sa.Uuid(), nullable=False),
    sa.Column('provider_ref', sa.String(length=200), nullable=False),
    sa.Column('provider_name', sa.String(length=300), nullable=True),
    sa.Column('category_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_category_links_category_id_categories'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['link_id'], ['event_links.id'], name=op.f('fk_category_links_link_id_event_links'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_category_links_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_category_links')),
    sa.UniqueConstraint('link_id', 'provider_ref', name='uq_category_links_link_id_provider_ref')
    )
    op.create_index(op.f('ix_category_links_tenant_id'), 'category_links', ['tenant_id'], unique=False)
    op.create_table('sync_runs',
    sa.Column('connection_id', sa.Uuid(), nullable=True),
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('link_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('sync_type', sa.String(length=40), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', name='sync_status'), nullable=False),
    sa.Column('job_run_id', sa.Uuid(), nullable=True),
    sa.Column('requested_by_user_id', sa.Uuid(), nullable=True),
    sa.Column('requested_by_label', sa.String(length=400), nullable=False),
    sa.Column('full_refresh', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cursor_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cursor_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fetched', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('withdrawn', sa.Integer(), nullable=False),
    sa.Column('conflicts', sa.Integer(), nullable=False),
    sa.Column('problems', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('retryable', sa.Boolean(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['provider_connections.id'], name=op.f('fk_sync_runs_connection_id_provider_connections'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_sync_runs_event_id_events'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_run_id'], ['job_runs.id'], name=op.f('fk_sync_runs_job_run_id_job_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['link_id'], ['event_links.id'], name=op.f('fk_sync_runs_link_id_event_links'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['requested_by_user_id'], ['users.id'], name=op.f('fk_sync_runs_requested_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_sync_runs_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    op.create_index('ix_sync_runs_connection_id_created_at', 'sync_runs', ['connection_id', 'created_at'], unique=False)
    op.create_index('ix_sync_runs_link_id_created_at', 'sync_runs', ['link_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_sync_runs_tenant_id'), 'sync_runs', ['tenant_id'], unique=False)
    op.create_index('ix_sync_runs_tenant_id_created_at', 'sync_runs', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_index('uq_sync_runs_link_id_active', 'sync_runs', ['link_id', 'sync_type'], unique=True, postgresql_where=sa.text("status IN ('queued', 'running', 'retrying')"))
    op.create_table('sync_staged_rows',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('participant', 'withdrawal', 'problem', name='sync_staged_kind'), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['sync_runs.id'], name=op.f('fk_sync_staged_rows_run_id_sync_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_sync_staged_rows_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'seq', name=op.f('pk_sync_staged_rows'))
    )
    op.create_index(op.f('ix_sync_staged_rows_tenant_id'), 'sync_staged_rows', ['tenant_id'], unique=False)
    op.create_table('synced_records',
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=False),
    sa.Column('ref_is_fallback', sa.Boolean(), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=True),
    sa.Column('link_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=True),
    sa.Column('provider_person_ref', sa.String(length=200), nullable=True),
    sa.Column('synced_values', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('payload_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_modified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('person_match', sa.String(length=30), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_reason', sa.String(length=300), nullable=True),
    sa.Column('transferred_to_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['provider_connections.id'], name=op.f('fk_synced_records_connection_id_provider_connections'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_synced_records_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['link_id'], ['event_links.id'], name=op.f('fk_synced_records_link_id_event_links'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['participant_id'], ['event_participants.id'], name=op.f('fk_synced_records_participant_id_event_participants'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_synced_records_tenant_id_tenants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['transferred_to_id'], ['synced_records.id'], name=op.f('fk_synced_records_transferred_to_id_synced_records'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_synced_records')),
    sa.UniqueConstraint('tenant_id', 'provider', 'source_ref', name='uq_synced_records_tenant_id_provider_source_ref')
    )
    op.create_index('ix_synced_records_link_id', 'synced_records', ['link_id'], unique=False)
    op.create_index('ix_synced_records_participant_id', 'synced_records', ['participant_id'], unique=False)
    op.create_index('ix_synced_records_payload_synced_at', 'synced_records', ['payload_synced_at'], unique=False, postgresql_where=sa.text('payload IS NOT NULL'))
    op.create_index(op.f('ix_synced_records_tenant_id'), 'synced_records', ['tenant_id'], unique=False)
    op.create_table('sync_changes',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=True),
    sa.Column('participant_id', sa.Uuid(), nullable=True),
    sa.Column('source_ref', sa.String(length=200), nullable=True),
    sa.Column('action', sa.Enum('created', 'updated', 'withdrawn', 'restored', 'transferred', 'conflict', 'problem', name='sync_change_action'), nullable=False),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('message', sa.String(length=1000), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['event_participants.id'], name=op.f('fk_sync_changes_participant_id_event_participants'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['record_id'], ['synced_records.id'], name=op.f('fk_sync_changes_record_id_synced_records'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['sync_runs.id'], name=op.f('fk_sync_changes_run_id_sync_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_sync_changes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_changes'))
    )
    op.create_index('ix_sync_changes_participant_id', 'sync_changes', ['participant_id'], unique=False)
    op.create_index('ix_sync_changes_run_id_id', 'sync_changes', ['run_id', 'id'], unique=False)
    op.create_index(op.f('ix_sync_changes_tenant_id'), 'sync_changes', ['tenant_id'], unique=False)
    op.create_table('sync_conflicts',
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=True),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('field', sa.String(length=40), nullable=False),
    sa.Column('local_value', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('provider_value', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('status', sa.Enum('open', 'kept', 'taken', name='sync_conflict_status'), nullable=False),
    sa.Column('resolved_by_user_id', sa.Uuid(), nullable=True),
    sa.Column('resolved_by_label', sa.String(length=400), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_sync_conflicts_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['event_participants.id'], name=op.f('fk_sync_conflicts_participant_id_event_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['record_id'], ['synced_records.id'], name=op.f('fk_sync_conflicts_record_id_synced_records'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resolved_by_user_id'], ['users.id'], name=op.f('fk_sync_conflicts_resolved_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['sync_runs.id'], name=op.f('fk_sync_conflicts_run_id_sync_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_sync_conflicts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_conflicts'))
    )
    op.create_index(op.f('ix_sync_conflicts_tenant_id'), 'sync_conflicts', ['tenant_id'], unique=False)
    op.create_index('ix_sync_conflicts_tenant_id_event_id_status', 'sync_conflicts', ['tenant_id', 'event_id', 'status'], unique=False)
    op.create_index('uq_sync_conflicts_participant_id_field_open', 'sync_conflicts', ['participant_id', 'field'], unique=True, postgresql_where=sa.text("status = 'open'"))
    op.add_column('event_participants', sa.Column('local_fields', postgresql.ARRAY(sa.String(length=40)), server_default=sa.text("'{}'"), nullable=False))
    op.add_column('event_participants', sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('event_participants', sa.Column('withdrawn_reason', sa.String(length=300), nullable=True))
    op.add_column('event_participants', sa.Column('transferred_from_id', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_event_participants_transferred_from_id_event_participants'), 'event_participants', 'event_participants', ['transferred_from_id'], ['id'], ondelete='SET NULL')
    # Each provider event a connection was told to sync becomes a link row, unlinked: which
    # racehub event it feeds was never recorded.
    op.execute(
        "INSERT INTO event_links (id, tenant_id, connection_id, provider, provider_event_ref, "
        "state, auto_sync, sync_settings) "
        "SELECT DISTINCT ON (c.id, ref.value) gen_random_uuid(), c.tenant_id, c.id, "
        "c.provider, left(ref.value, 200), '{}'::jsonb, true, '{}'::jsonb "
        "FROM provider_connections c, "
        "jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.settings->'eventIds') = 'array' "
        "THEN c.settings->'eventIds' ELSE '[]'::jsonb END) AS ref(value) "
        "WHERE btrim(ref.value) <> ''"
    )


def downgrade() -> None:
    op.drop_constraint(op.f('fk_event_participants_transferred_from_id_event_participants'), 'event_participants', type_='foreignkey')
    op.drop_column('event_participants', 'transferred_from_id')
    op.drop_column('event_participants', 'withdrawn_reason')
    op.drop_column('event_participants', 'withdrawn_at')
    op.drop_column('event_participants', 'local_fields')
    op.drop_index('uq_sync_conflicts_participant_id_field_open', table_name='sync_conflicts', postgresql_where=sa.text("status = 'open'"))
    op.drop_index('ix_sync_conflicts_tenant_id_event_id_status', table_name='sync_conflicts')
    op.drop_index(op.f('ix_sync_conflicts_tenant_id'), table_name='sync_conflicts')
    op.drop_table('sync_conflicts')
    op.drop_index(op.f('ix_sync_changes_tenant_id'), table_name='sync_changes')
    op.drop_index('ix_sync_changes_run_id_id', table_name='sync_changes')
    op.drop_index('ix_sync_changes_participant_id', table_name='sync_changes')
    op.drop_table('sync_changes')
    op.drop_index(op.f('ix_synced_records_tenant_id'), table_name='synced_records')
    op.drop_index('ix_synced_records_payload_synced_at', table_name='synced_records', postgresql_where=sa.text('payload IS NOT NULL'))
    op.drop_index('ix_synced_records_participant_id', table_name='synced_records')
    op.drop_index('ix_synced_records_link_id', table_name='synced_records')
    op.drop_table('synced_records')
    op.drop_index(op.f('ix_sync_staged_rows_tenant_id'), table_name='sync_staged_rows')
    op.drop_table('sync_staged_rows')
    op.drop_index('uq_sync_runs_link_id_active', table_name='sync_runs', postgresql_where=sa.text("status IN ('queued', 'running', 'retrying')"))
    op.drop_index('ix_sync_runs_tenant_id_created_at', table_name='sync_runs')
    op.drop_index(op.f('ix_sync_runs_tenant_id'), table_name='sync_runs')
    op.drop_index('ix_sync_runs_link_id_created_at', table_name='sync_runs')
    op.drop_index('ix_sync_runs_connection_id_created_at', table_name='sync_runs')
    op.drop_table('sync_runs')
    op.drop_index(op.f('ix_category_links_tenant_id'), table_name='category_links')
    op.drop_table('category_links')
    op.drop_index('ix_event_links_tenant_id_event_id', table_name='event_links')
    op.drop_index(op.f('ix_event_links_tenant_id'), table_name='event_links')
    op.drop_table('event_links')
    for enum_type in ('sync_conflict_status', 'sync_change_action', 'sync_staged_kind',
                      'sync_status'):
        op.execute(f'DROP TYPE IF EXISTS {enum_type}')
