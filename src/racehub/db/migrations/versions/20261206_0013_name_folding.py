"""Names sort and match without regard to accents: racehub_fold().

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

The participants table sorted lower(last_name) in the database's collation, which is byte
order on our servers (C.UTF-8): "Bärer" came after "Burton", "Émile" after "Zoe", and a
search for "aviles" missed "Avilés". ICU collations would fix the order but the embedded
server is built without ICU, so names are folded instead: racehub_fold(x) is
lower(unaccent(x)) (ä -> a, é -> e, ß -> ss, æ -> ae), declared IMMUTABLE so indexes and the
generated search column can use it. The name indexes and persons.search_text are rebuilt
on it; the application folds search words with the same function (never in Python, so the
two can never disagree). unaccent, like pg_trgm, is a trusted extension: a database owner
may create it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_TEXT = "first_name::text || ' ' || last_name::text || ' ' || coalesce(email, '')::text"


def _rebuild(fold: str) -> None:
    """Indexes and the generated search column on ``fold`` (a function name)."""
    op.drop_index('ix_persons_search_text_trgm', table_name='persons')
    op.drop_index('ix_persons_tenant_id_last_first_name', table_name='persons')
    op.drop_index('ix_persons_tenant_id_first_last_name', table_name='persons')
    op.drop_column('persons', 'search_text')
    op.add_column('persons', sa.Column(
        'search_text', sa.Text(), sa.Computed(f"{fold}({SEARCH_TEXT})", persisted=True),
        nullable=False))
    op.create_index('ix_persons_search_text_trgm', 'persons', ['search_text'],
                    postgresql_using='gin', postgresql_ops={'search_text': 'gin_trgm_ops'})
    op.create_index('ix_persons_tenant_id_last_first_name', 'persons', [
        'tenant_id', sa.text(f'{fold}(last_name)'), sa.text(f'{fold}(first_name)'), 'id'])
    op.create_index('ix_persons_tenant_id_first_last_name', 'persons', [
        'tenant_id', sa.text(f'{fold}(first_name)'), sa.text(f'{fold}(last_name)'), 'id'])


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    # unaccent() is STABLE (its dictionary could change); naming the dictionary makes the
    # result depend on the text alone, so IMMUTABLE holds for as long as the dictionary
    # file is not edited (a rebuild of the indexes would then be due, as for a collation).
    op.execute(
        """
        CREATE FUNCTION racehub_fold(value text) RETURNS text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            RETURN lower(public.unaccent('public.unaccent'::regdictionary, value));
        """
    )
    _rebuild("racehub_fold")


def downgrade() -> None:
    _rebuild("lower")
    op.execute("DROP FUNCTION racehub_fold(text)")
    op.execute("DROP EXTENSION IF EXISTS unaccent")
