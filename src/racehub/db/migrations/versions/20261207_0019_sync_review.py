"""Sync runs stop for a person before applying: a preview to review, a circuit breaker.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

- ``sync_status`` gains ``awaiting_review`` and ``held`` (both active: the link's one run,
  which a second request joins) and ``discarded``. The type is rebuilt rather than
  extended with ``ALTER TYPE ... ADD VALUE``: a value added that way cannot be used in the
  same transaction, and the one-active-run index below names the new values. The index is
  rebuilt around it with the waiting statuses.
- ``sync_runs``: ``preview`` (asked to stop for review), ``hold_reason`` (why the breaker
  held it), ``waiting_since``, and who decided what (``review``, ``reviewed_by_*``,
  ``reviewed_at``).
- ``sync_preview_items``: what applying a waiting run would do, per registration.

Downgrade: runs still waiting for a person become ``cancelled`` (their staged rows go:
the old code has no way to apply them) and discarded ones ``cancelled`` too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')
NEW_STATUSES = OLD_STATUSES + ('awaiting_review', 'held', 'discarded')
OLD_ACTIVE = "status IN ('queued', 'running', 'retrying')"
NEW_ACTIVE = "status IN ('queued', 'running', 'retrying', 'awaiting_review', 'held')"


def _retype_status(values: Sequence[str], active: str) -> None:
    """Rebuild ``sync_status`` with ``values`` (every row's value must be among them) and
    the one-active-run index with ``active`` as its predicate."""
    op.drop_index('uq_sync_runs_link_id_active', table_name='sync_runs')
    op.execute('ALTER TYPE sync_status RENAME TO sync_status_old')
    listed = ", ".join(f"'{v}'" for v in values)
    op.execute(f'CREATE TYPE sync_status AS ENUM ({listed})')
    op.execute('ALTER TABLE sync_runs ALTER COLUMN status TYPE sync_status '
               'USING status::text::sync_status')
    op.execute('DROP TYPE sync_status_old')
    op.create_index('uq_sync_runs_link_id_active', 'sync_runs', ['link_id', 'sync_type'],
                    unique=True, postgresql_where=sa.text(active))


def upgrade() -> None:
    _retype_status(NEW_STATUSES, NEW_ACTIVE)
    op.add_column('sync_runs', sa.Column('preview', sa.Boolean(), server_default='false',
                                         nullable=False))
    op.add_column('sync_runs', sa.Column('hold_reason', sa.String(length=1000), nullable=True))
    op.add_column('sync_runs', sa.Column('waiting_since', sa.DateTime(timezone=True),
                                         nullable=True))
    op.add_column('sync_runs', sa.Column('review', sa.String(length=20), nullable=True))
    op.add_column('sync_runs', sa.Column('reviewed_by_user_id', sa.Uuid(), nullable=True))
    op.add_column('sync_runs', sa.Column('reviewed_by_label', sa.String(length=400),
                                         nullable=True))
    op.add_column('sync_runs', sa.Column('reviewed_at', sa.DateTime(timezone=True),
                                         nullable=True))
    op.create_foreign_key(op.f('fk_sync_runs_reviewed_by_user_id_users'), 'sync_runs', 'users',
                          ['reviewed_by_user_id'], ['id'], ondelete='SET NULL')
    op.create_table(
        'sync_preview_items',
        sa.Column('run_id', sa.Uuid(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('source_ref', sa.String(length=200), nullable=False),
        sa.Column('kind', postgresql.ENUM(name='sync_staged_kind', create_type=False),
                  nullable=False),
        sa.Column('action', sa.Enum('created', 'updated', 'withdrawn', 'conflict', 'unchanged',
                                    name='sync_preview_action'), nullable=False),
        sa.Column('participant_id', sa.Uuid(), nullable=True),
        sa.Column('name', sa.String(length=300), nullable=True),
        sa.Column('fields', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('other_fields', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('message', sa.String(length=1000), nullable=True),
        sa.Column('selected', sa.Boolean(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['participant_id'], ['event_participants.id'],
                                name=op.f('fk_sync_preview_items_participant_id_event_participants'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['run_id'], ['sync_runs.id'],
                                name=op.f('fk_sync_preview_items_run_id_sync_runs'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_sync_preview_items_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', 'seq', name=op.f('pk_sync_preview_items')),
    )
    op.create_index('ix_sync_preview_items_run_id_action_seq', 'sync_preview_items',
                    ['run_id', 'action', 'seq'], unique=False)
    op.create_index(op.f('ix_sync_preview_items_tenant_id'), 'sync_preview_items',
                    ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sync_preview_items_tenant_id'), table_name='sync_preview_items')
    op.drop_index('ix_sync_preview_items_run_id_action_seq', table_name='sync_preview_items')
    op.drop_table('sync_preview_items')
    op.execute('DROP TYPE IF EXISTS sync_preview_action')
    op.drop_constraint(op.f('fk_sync_runs_reviewed_by_user_id_users'), 'sync_runs',
                       type_='foreignkey')
    for column in ('reviewed_at', 'reviewed_by_label', 'reviewed_by_user_id', 'review',
                   'waiting_since', 'hold_reason', 'preview'):
        op.drop_column('sync_runs', column)
    op.execute("DELETE FROM sync_staged_rows WHERE run_id IN (SELECT id FROM sync_runs "
               "WHERE status IN ('awaiting_review', 'held'))")
    op.execute("UPDATE sync_runs SET status = 'cancelled', finished_at = coalesce("
               "finished_at, now()), error = coalesce(error, 'discarded, or waiting for a "
               "review when racehub was downgraded') "
               "WHERE status IN ('awaiting_review', 'held', 'discarded')")
    _retype_status(OLD_STATUSES, OLD_ACTIVE)
