"""Alerts: what the rules found, each tenant's alert settings, the delivery log of their
notices, and when each credential key id was first seen.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07

- ``alerts``: one occurrence of a rule on a subject (its fingerprint), pending, firing or
  resolved, with its evidence and who acknowledged it. At most one open alert per tenant
  and fingerprint (a partial unique index, NULLS NOT DISTINCT: a platform alert has no
  tenant).
- ``alert_settings``: a tenant's rule overrides, repeat interval, e-mail recipients and
  webhook (its secret encrypted with the credential keyring).
- ``alert_deliveries``: each notice on each channel with its attempts.
- ``credential_keys``: keys carry no date, so a key's age counts from when racehub first saw
  its id.
- Two partial indexes on ``sync_runs`` for the rules: failing runs by end (the last hour),
  and each link's newest finished run of a type. Small (failed/finished runs only) but built
  under a write lock on sync_runs: run the upgrade outside race hours on a large history.

New tables only otherwise. Downgrade drops them, their enum types and the two indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0029'
down_revision: str | None = '0028'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('credential_keys',
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_credential_keys'))
    )
    op.create_table('alert_settings',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('repeat_hours', sa.Integer(), nullable=False),
    sa.Column('email_recipients', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('webhook_url', sa.String(length=1000), nullable=True),
    sa.Column('webhook_secret_encrypted', sa.Text(), nullable=True),
    sa.Column('webhook_secret_key_id', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_alert_settings_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_alert_settings'))
    )
    op.create_table('alerts',
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=200), nullable=False),
    sa.Column('subject_type', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=120), nullable=False),
    sa.Column('subject_label', sa.String(length=400), nullable=False),
    sa.Column('subject_url', sa.String(length=400), nullable=True),
    sa.Column('status', sa.Enum('pending', 'firing', 'resolved', name='alert_status'), nullable=False),
    sa.Column('summary', sa.String(length=1000), nullable=False),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('active_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notices', sa.Integer(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_user_id', sa.Uuid(), nullable=True),
    sa.Column('acknowledged_by_label', sa.String(length=400), nullable=True),
    sa.Column('acknowledge_comment', sa.String(length=500), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['acknowledged_by_user_id'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_alerts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_open', 'alerts', ['rule'], unique=False, postgresql_where=sa.text('resolved_at IS NULL'))
    op.create_index('ix_alerts_tenant_id_resolved_at', 'alerts', ['tenant_id', 'resolved_at'], unique=False)
    op.create_index('uq_alerts_tenant_id_fingerprint_open', 'alerts', ['tenant_id', 'fingerprint'], unique=True, postgresql_where=sa.text('resolved_at IS NULL'), postgresql_nulls_not_distinct=True)
    op.create_table('alert_deliveries',
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.Enum('firing', 'repeat', 'resolved', name='alert_notice_kind'), nullable=False),
    sa.Column('target', sa.String(length=2000), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sent', 'failed', 'refused', name='alert_delivery_status'), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('log', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_deliveries_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_alert_deliveries_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_deliveries'))
    )
    op.create_index('ix_alert_deliveries_alert_id', 'alert_deliveries', ['alert_id'], unique=False)
    op.create_index('ix_alert_deliveries_due', 'alert_deliveries', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index(op.f('ix_alert_deliveries_tenant_id'), 'alert_deliveries', ['tenant_id'], unique=False)
    op.create_index('ix_sync_runs_failing', 'sync_runs', ['finished_at'], unique=False, postgresql_where=sa.text("status IN ('failed', 'retrying')"))
    op.create_index('ix_sync_runs_link_id_sync_type_finished_at', 'sync_runs', ['link_id', 'sync_type', 'finished_at'], unique=False, postgresql_where=sa.text("status IN ('succeeded', 'failed')"))


def downgrade() -> None:
    op.drop_index('ix_sync_runs_link_id_sync_type_finished_at', table_name='sync_runs', postgresql_where=sa.text("status IN ('succeeded', 'failed')"))
    op.drop_index('ix_sync_runs_failing', table_name='sync_runs', postgresql_where=sa.text("status IN ('failed', 'retrying')"))
    op.drop_index(op.f('ix_alert_deliveries_tenant_id'), table_name='alert_deliveries')
    op.drop_index('ix_alert_deliveries_due', table_name='alert_deliveries', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_alert_deliveries_alert_id', table_name='alert_deliveries')
    op.drop_table('alert_deliveries')
    op.drop_index('uq_alerts_tenant_id_fingerprint_open', table_name='alerts', postgresql_where=sa.text('resolved_at IS NULL'), postgresql_nulls_not_distinct=True)
    op.drop_index('ix_alerts_tenant_id_resolved_at', table_name='alerts')
    op.drop_index('ix_alerts_open', table_name='alerts', postgresql_where=sa.text('resolved_at IS NULL'))
    op.drop_table('alerts')
    op.drop_table('alert_settings')
    op.drop_table('credential_keys')
    for name in ('alert_delivery_status', 'alert_notice_kind', 'alert_status'):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
