"""Indexes that keep the participants table fast at 50k EPs, and trigram name search.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Each sort of the participants table gets an index on its exact sort expressions
(events.models), so that a page is read off the index instead of sorting the event.
Name/e-mail search matches words with LIKE '%word%' on a generated ``persons.search_text``
through a pg_trgm GIN index. pg_trgm is a trusted extension: a database owner may create it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.add_column('persons', sa.Column(
        'search_text', sa.Text(),
        sa.Computed("lower(first_name::text || ' ' || last_name::text || ' ' "
                    "|| coalesce(email, '')::text)", persisted=True),
        nullable=False))
    op.create_index('ix_persons_search_text_trgm', 'persons', ['search_text'],
                    postgresql_using='gin', postgresql_ops={'search_text': 'gin_trgm_ops'})
    op.drop_index('ix_persons_tenant_id_last_name', table_name='persons')
    op.create_index('ix_persons_tenant_id_last_first_name', 'persons',
                    ['tenant_id', sa.text('lower(last_name)'), sa.text('lower(first_name)'), 'id'])
    op.create_index('ix_persons_tenant_id_first_last_name', 'persons',
                    ['tenant_id', sa.text('lower(first_name)'), sa.text('lower(last_name)'), 'id'])
    op.create_index('ix_event_participants_event_id_bib_order', 'event_participants', [
        'event_id',
        sa.text('(bib IS NULL)'),
        sa.text("length(coalesce(bib, ''))"),
        sa.text("coalesce(bib, '')"),
        'id',
    ])
    op.create_index('ix_event_participants_event_id_bib', 'event_participants',
                    ['event_id', 'bib'])
    op.create_index('ix_event_participants_event_id_registration_order', 'event_participants',
                    ['event_id', sa.text("coalesce(registration_id, '')"), 'id'])


def downgrade() -> None:
    op.drop_index('ix_event_participants_event_id_registration_order',
                  table_name='event_participants')
    op.drop_index('ix_event_participants_event_id_bib_order', table_name='event_participants')
    op.drop_index('ix_event_participants_event_id_bib', table_name='event_participants')
    op.drop_index('ix_persons_tenant_id_first_last_name', table_name='persons')
    op.drop_index('ix_persons_tenant_id_last_first_name', table_name='persons')
    op.create_index('ix_persons_tenant_id_last_name', 'persons', ['tenant_id', 'last_name'])
    op.drop_index('ix_persons_search_text_trgm', table_name='persons')
    op.drop_column('persons', 'search_text')
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
