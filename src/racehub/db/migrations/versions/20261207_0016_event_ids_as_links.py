"""A connection's chosen provider events live only in event_links: drop settings' eventIds.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

0015 copied each connection's ``eventIds`` into unlinked ``event_links`` rows but left the
key in the settings, which the code kept writing until it read the rows instead. Any ref
written there since 0015 becomes a row first (as 0015 did it, skipping the rows that
exist), then the key goes. Downgrade writes the key back from the rows (linked or not, in
the order the code reads them), as the code before this revision wrote it for every
connection.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO event_links (id, tenant_id, connection_id, provider, provider_event_ref, "
        "state, auto_sync, sync_settings) "
        "SELECT DISTINCT ON (c.id, ref.value) gen_random_uuid(), c.tenant_id, c.id, "
        "c.provider, left(ref.value, 200), '{}'::jsonb, true, '{}'::jsonb "
        "FROM provider_connections c, "
        "jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.settings->'eventIds') = 'array' "
        "THEN c.settings->'eventIds' ELSE '[]'::jsonb END) AS ref(value) "
        "WHERE btrim(ref.value) <> '' "
        "ON CONFLICT ON CONSTRAINT uq_event_links_connection_id_provider_event_ref DO NOTHING"
    )
    op.execute(
        "UPDATE provider_connections SET settings = settings - 'eventIds' "
        "WHERE settings->'eventIds' IS NOT NULL"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE provider_connections c SET settings = coalesce(c.settings, '{}'::jsonb) "
        "|| jsonb_build_object('eventIds', coalesce((SELECT jsonb_agg(l.provider_event_ref "
        "ORDER BY l.created_at, l.provider_event_ref) FROM event_links l "
        "WHERE l.connection_id = c.id), '[]'::jsonb))"
    )
