"""Migrations are reviewed code: they must match the models and undo cleanly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from racehub.db.bootstrap import alembic_config, include_object, migrate
from racehub.db.models import Base
from racehub.db.session import sqlalchemy_url


@pytest.fixture
def empty_database(admin_url: str) -> Iterator[str]:
    name = f"racehub_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield sqlalchemy_url(make_url(admin_url).set(database=name).render_as_string(False))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_match_the_models_and_downgrade_to_nothing(empty_database: str) -> None:
    migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_object": include_object, "compare_type": True}
            )
            assert compare_metadata(context, Base.metadata) == []

        command.downgrade(alembic_config(empty_database), "base")
        with engine.connect() as conn:
            leftovers = set(inspect(conn).get_table_names()) - {"alembic_version"}
            enums = conn.exec_driver_sql(
                "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e'"
            ).scalars().all()
            functions = conn.exec_driver_sql(
                "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            ).scalars().all()
        assert leftovers == set()
        assert enums == []
        assert functions == []

        migrate(empty_database)  # and up again from nothing
    finally:
        engine.dispose()


def _run(conn, tenant: uuid.UUID, kind: str, params: str) -> uuid.UUID:  # type: ignore[no-untyped-def]
    run_id = uuid.uuid4()
    conn.exec_driver_sql(
        "INSERT INTO job_runs (id, tenant_id, kind, requested_by_label, status, stage, "
        "percent, done, counts, message, log, params, checkpoint, cancel_requested, "
        "pause_requested, attempts) VALUES (%s, %s, %s, 'test', 'queued', 'Queued', 0, 0, "
        "'{}', '', '[]', %s, '{}', false, false, 0)", (run_id, tenant, kind, params))
    return run_id


def test_job_subjects_are_backfilled_where_derivable_and_undone(empty_database: str) -> None:
    migrate(empty_database, "0013")
    engine = create_engine(empty_database)
    tenant, category, import_id, export_id = (uuid.uuid4() for _ in range(4))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, slug) VALUES (%s, 't', 't')",
                                 (tenant,))
            import_run = _run(conn, tenant, "imports.run", '{"import_type": "TIMING_RESULTS"}')
            conn.exec_driver_sql(
                "INSERT INTO imports (id, tenant_id, import_type, filename, stored_path, "
                "size_bytes, file_format, header, column_map, params, job_run_id) VALUES "
                "(%s, %s, 'TIMING_RESULTS', 'r.csv', 'x', 1, 'csv', '[]', '{}', '{}', %s)",
                (import_id, tenant, import_run))
            export_run = _run(conn, tenant, "exports.run", "{}")
            conn.exec_driver_sql(
                "INSERT INTO exports (id, tenant_id, view_key, title, filters, descending, "
                "columns, file_format, cutoff_at, job_run_id, storage_backend, filename) "
                "VALUES (%s, %s, 'audit', 'Audit', '{}', false, '[]', 'csv', now(), %s, "
                "'local', 'a.csv')", (export_id, tenant, export_run))
            bibs_run = _run(conn, tenant, "events.assign_bibs",
                            f'{{"category_id": "{category}", "first_bib": 1}}')
            broken_run = _run(conn, tenant, "events.assign_bibs", '{"category_id": "nope"}')
            orphan_run = _run(conn, tenant, "imports.run", "{}")  # its import never written

        migrate(empty_database)
        with engine.connect() as conn:
            subjects: dict[object, object] = dict(conn.exec_driver_sql(
                "SELECT id, (subject_type, subject_id)::text FROM job_runs").all())
        assert subjects == {
            import_run: f"(import,{import_id})", export_run: f"(export,{export_id})",
            bibs_run: f"(category,{category})", broken_run: "(,)", orphan_run: "(,)"}

        command.downgrade(alembic_config(empty_database), "0013")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("job_runs")}
            count = conn.exec_driver_sql("SELECT count(*) FROM job_runs").scalar()
        assert not columns & {"subject_type", "subject_id"} and count == 5
    finally:
        engine.dispose()


def test_connection_event_ids_become_unlinked_event_links(empty_database: str) -> None:
    migrate(empty_database, "0014")
    engine = create_engine(empty_database)
    tenant, listing, other, broken = (uuid.uuid4() for _ in range(4))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, slug) VALUES (%s, 't', 't')",
                                 (tenant,))
            for connection_id, name, settings in (
                    (listing, "a", '{"eventIds": ["123", "456", "123", " "]}'),
                    (other, "b", '{"results_per_page": 50}'),
                    (broken, "c", '{"eventIds": "not a list"}')):
                conn.exec_driver_sql(
                    "INSERT INTO provider_connections (id, tenant_id, provider, name, base_url, "
                    "credentials_encrypted, credentials_key_id, direction, settings, "
                    "field_mapping, status) VALUES (%s, %s, 'RUNSIGNUP', %s, 'http://x', 'x', "
                    "'k', 'registration', %s, '[]', 'UNTESTED')",
                    (connection_id, tenant, name, settings))

        migrate(empty_database)
        with engine.connect() as conn:
            links = sorted(conn.exec_driver_sql(
                "SELECT connection_id, provider, provider_event_ref, event_id, auto_sync "
                "FROM event_links").all())
        assert links == [(listing, "RUNSIGNUP", "123", None, True),
                         (listing, "RUNSIGNUP", "456", None, True)]
    finally:
        engine.dispose()


def test_settings_event_ids_are_dropped_for_link_rows_and_written_back_on_downgrade(
    empty_database: str
) -> None:
    migrate(empty_database, "0015")
    engine = create_engine(empty_database)
    tenant, listing, plain, event = (uuid.uuid4() for _ in range(4))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, slug) VALUES (%s, 't', 't')",
                                 (tenant,))
            conn.exec_driver_sql(
                "INSERT INTO events (id, tenant_id, name, start_at, timezone, location, status) "
                "VALUES (%s, %s, 'Race day', now(), 'UTC', '', 'draft')", (event, tenant))
            # Written by the code of 0015, which still kept eventIds in the settings: "9"
            # has no row yet.
            for connection_id, name, settings in (
                    (listing, "a", '{"eventIds": ["1", "9"], "time_zone": "UTC"}'),
                    (plain, "b", '{"results_per_page": 50}')):
                conn.exec_driver_sql(
                    "INSERT INTO provider_connections (id, tenant_id, provider, name, base_url, "
                    "credentials_encrypted, credentials_key_id, direction, settings, "
                    "field_mapping, status) VALUES (%s, %s, 'RUNSIGNUP', %s, 'http://x', 'x', "
                    "'k', 'registration', %s, '[]', 'UNTESTED')",
                    (connection_id, tenant, name, settings))
            conn.exec_driver_sql(
                "INSERT INTO event_links (id, tenant_id, connection_id, provider, "
                "provider_event_ref, event_id, state, auto_sync, sync_settings) VALUES "
                "(gen_random_uuid(), %s, %s, 'RUNSIGNUP', '1', %s, '{}', true, '{}')",
                (tenant, listing, event))

        migrate(empty_database)
        with engine.connect() as conn:
            stored: dict[str, Any] = dict(conn.exec_driver_sql(
                "SELECT name, settings FROM provider_connections").all())
            links = sorted(conn.exec_driver_sql(
                "SELECT provider_event_ref, event_id FROM event_links").all())
        assert stored == {"a": {"time_zone": "UTC"}, "b": {"results_per_page": 50}}
        assert links == [("1", event), ("9", None)]  # the linked row kept, the new one made

        command.downgrade(alembic_config(empty_database), "0015")
        with engine.connect() as conn:
            stored = dict(conn.exec_driver_sql(
                "SELECT name, settings FROM provider_connections").all())
        assert stored == {"a": {"time_zone": "UTC", "eventIds": ["1", "9"]},
                            "b": {"results_per_page": 50, "eventIds": []}}
    finally:
        engine.dispose()


def test_runs_waiting_for_a_person_are_cancelled_on_downgrade(empty_database: str) -> None:
    migrate(empty_database, "0019")
    engine = create_engine(empty_database)
    tenant = uuid.uuid4()
    statuses = ("held", "awaiting_review", "discarded", "succeeded", "queued")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, slug) VALUES (%s, 't', 't')",
                                 (tenant,))
            for status in statuses:
                conn.exec_driver_sql(
                    "INSERT INTO sync_runs (id, tenant_id, provider, sync_type, trigger, status, "
                    "requested_by_label, full_refresh, attempts, fetched, created, updated, "
                    "unchanged, withdrawn, conflicts, problems, preview, hold_reason) VALUES "
                    "(gen_random_uuid(), %s, 'RUNSIGNUP', 'participants', 'manual', %s, 'x', "
                    "false, 1, 0, 0, 0, 0, 0, 0, 0, true, 'why')", (tenant, status))

        command.downgrade(alembic_config(empty_database), "0018")
        with engine.connect() as conn:
            left = sorted(conn.exec_driver_sql("SELECT status::text FROM sync_runs").scalars())
            columns = {c["name"] for c in inspect(conn).get_columns("sync_runs")}
        assert left == ["cancelled", "cancelled", "cancelled", "queued", "succeeded"]
        assert not columns & {"preview", "hold_reason", "reviewed_at"}

        migrate(empty_database)  # and up again
    finally:
        engine.dispose()


def test_runs_relabelled_retry_get_their_requested_trigger_back(empty_database: str) -> None:
    migrate(empty_database, "0018")
    engine = create_engine(empty_database)
    tenant, manual, scheduled, unknown, once = (uuid.uuid4() for _ in range(5))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, slug) VALUES (%s, 't', 't')",
                                 (tenant,))
            for run_id, trigger, attempts in ((manual, "retry", 3), (scheduled, "retry", 2),
                                              (unknown, "retry", 2), (once, "manual", 1)):
                conn.exec_driver_sql(
                    "INSERT INTO sync_runs (id, tenant_id, provider, sync_type, trigger, status, "
                    "requested_by_label, full_refresh, attempts, fetched, created, updated, "
                    "unchanged, withdrawn, conflicts, problems) VALUES (%s, %s, 'RUNSIGNUP', "
                    "'participants', %s, 'succeeded', 'test', false, %s, 0, 0, 0, 0, 0, 0, 0)",
                    (run_id, tenant, trigger, attempts))
            for run_id, requested in ((manual, "manual"), (scheduled, "schedule"),
                                      (once, "manual")):
                conn.exec_driver_sql(
                    "INSERT INTO audit_log (tenant_id, actor_label, action, target_type, "
                    "target_id, after) VALUES (%s, 'test', 'sync.request', 'sync_run', %s, %s)",
                    (tenant, str(run_id), f'{{"trigger": "{requested}"}}'))

        migrate(empty_database, "0022")
        with engine.connect() as conn:
            triggers: dict[uuid.UUID, str] = dict(
                conn.exec_driver_sql("SELECT id, trigger FROM sync_runs").all())
        # No audit entry: not guessed.
        assert triggers == {manual: "manual", scheduled: "schedule", unknown: "retry",
                            once: "manual"}

        command.downgrade(alembic_config(empty_database), "0018")
        with engine.connect() as conn:
            triggers = dict(conn.exec_driver_sql("SELECT id, trigger FROM sync_runs").all())
        assert triggers == {manual: "retry", scheduled: "retry", unknown: "retry",
                            once: "manual"}
    finally:
        engine.dispose()
