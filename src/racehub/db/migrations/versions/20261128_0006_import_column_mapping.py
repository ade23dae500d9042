"""Column mapping for imports whose files do not follow a fixed schema: how Stage 1 got
its column map, and a sample of the first rows for the mapping form.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing imports are all fixed-schema ones: their map was auto-applied.
    op.add_column('imports', sa.Column('mapping_state', sa.String(length=20),
                                       server_default='auto_applied', nullable=False))
    op.add_column('imports', sa.Column('sample_rows', postgresql.JSONB(astext_type=sa.Text()),
                                       server_default='[]', nullable=False))


def downgrade() -> None:
    op.drop_column('imports', 'sample_rows')
    op.drop_column('imports', 'mapping_state')
