"""A run's changes are read in their page order (``at``, ``id``) from an index.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07

The run page and ``GET /api/sync/runs/{id}`` page a run's changes by (at, id), but the
index was (run_id, id): every page of a 50,000-change run sorted all of them first. The
new index serves the order directly (and still the run_id lookups of the old one).
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_sync_changes_run_id_at_id', 'sync_changes', ['run_id', 'at', 'id'])
    op.drop_index('ix_sync_changes_run_id_id', table_name='sync_changes')


def downgrade() -> None:
    op.create_index('ix_sync_changes_run_id_id', 'sync_changes', ['run_id', 'id'])
    op.drop_index('ix_sync_changes_run_id_at_id', table_name='sync_changes')
