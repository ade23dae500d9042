"""Events can be archived; deleting an event or a category is refused by the database while
entries (or results) are in it.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07

``events.archived_at``: an archived event leaves the default lists (pages and API) and
comes back with a filter; unarchiving clears it.

The foreign keys from entries and results to their event, and from entries to their
category, cascaded (or set NULL): deleting an event would have taken its entries and
results with it, and deleting a category would have left its entries without one, silently.
The services now refuse both, naming why; these keys make the database refuse too
(NO ACTION, checked at the end of the statement, so a tenant's cascaded delete still
works), whatever a future caller forgets to check.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0027'
down_revision: str | None = '0026'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

import sqlalchemy as sa  # noqa: E402

# (table, column, referred table, ondelete before)
KEYS = [
    ("event_participants", "event_id", "events", "CASCADE"),
    ("event_participants", "category_id", "categories", "SET NULL"),
    ("results", "event_id", "events", "CASCADE"),
]


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    op.add_column('events', sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True))
    for table, column, referred, _ in KEYS:
        name = _name(table, column, referred)
        op.drop_constraint(name, table, type_='foreignkey')
        op.create_foreign_key(name, table, referred, [column], ['id'])


def downgrade() -> None:
    for table, column, referred, ondelete in KEYS:
        name = _name(table, column, referred)
        op.drop_constraint(name, table, type_='foreignkey')
        op.create_foreign_key(name, table, referred, [column], ['id'], ondelete=ondelete)
    op.drop_column('events', 'archived_at')
