"""Per-connection request budgets shared by every worker process.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

One token-bucket row per key (a provider connection id), updated under SELECT ... FOR
UPDATE in short transactions. No foreign key: the key is plain text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('provider_rate_limits',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_provider_rate_limits'))
    )


def downgrade() -> None:
    op.drop_table('provider_rate_limits')
