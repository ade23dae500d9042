"""The export job: what the file holds (columns, order, format), the snapshot, cancel,
storage failures and expiry."""

from __future__ import annotations

import errno
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden, Invalid
from racehub.core.models import AuditEntry, Role, Tenant
from racehub.core.rbac import permissions_for
from racehub.events import service as events_service
from racehub.events.models import Event, ParticipantStatus
from racehub.events.service import ParticipantFilter, ParticipantSort
from racehub.exports import service, storage
from racehub.exports.exceptions import ExportExpired, ExportNotReady
from racehub.exports.models import Export
from racehub.exports.schemas import ExportCreate
from racehub.jobs import service as jobs_service
from racehub.jobs.models import JobStatus
from racehub.jobs.runner import JobHandle
from racehub.settings import Settings
from tests.exports.conftest import RunExport, csv_rows, run_export_job, stored_bytes
from tests.factories import (
    make_category,
    make_event,
    make_number_type,
    make_participant,
    make_tenant,
    onboard,
    system_ctx,
)


def start(db: Session, ctx: TenantContext, settings: Settings, **data: object) -> Export:
    exp = service.create_export(db, ctx, settings=settings, data=ExportCreate(**data))
    db.flush()
    return exp


def test_csv_export_has_bom_chosen_column_labels_and_neutralized_formulas(
    db: Session, ctx: TenantContext, settings: Settings, event: Event, run_export: RunExport
) -> None:
    make_participant(db, event, first_name="=HYPERLINK(\"http://x\")", last_name="Attacker",
                     bib="1", team="+SUM(A1)")
    make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="2",
                     team="@cmd", registration_id="-12")
    make_participant(db, event, first_name="Zoë", last_name="Ünal, \"Jr\"", bib="3",
                     team="Club\r\nNord")
    exp = start(db, ctx, settings, view="participants", filters={"eventId": str(event.id)},
                sort="bib", columns=["bib", "first_name", "last_name", "team",
                                     "registration_id"])

    exp = run_export(exp)

    assert exp.job_run.status == JobStatus.COMPLETED, exp.job_run.message
    data = stored_bytes(settings, exp)
    assert b"\r\n" in data  # RFC 4180 rows
    assert csv_rows(data) == [
        ["Bib", "First name", "Last name", "Team", "Registration ID"],
        ["1", "'=HYPERLINK(\"http://x\")", "Attacker", "'+SUM(A1)", ""],
        ["2", "Ada", "Lovelace", "'@cmd", "'-12"],
        ["3", "Zoë", "Ünal, \"Jr\"", "Club\r\nNord", ""],
    ]
    assert (exp.row_count, exp.size_bytes) == (3, len(data))
    assert exp.job_run.percent == 100.0
    assert exp.expires_at == exp.completed_at + timedelta(hours=72)


def test_export_holds_the_filtered_list_in_its_sort_order_across_many_batches(
    db: Session, ctx: TenantContext, settings: Settings, event: Event, run_export: RunExport
) -> None:
    ten_k = make_category(db, event, "10K")
    names = ["martin", "Bernard", "Dubois", "Martin", "thomas", "Petit", "durand", "Leroy"]
    for i in range(23):
        make_participant(db, event, first_name=f"Runner {i % 5}", last_name=names[i % 8],
                         bib=str(100 - i * 3) if i % 4 else None,
                         category_id=ten_k.id if i % 3 else None,
                         status=ParticipantStatus.WITHDRAWN if i == 7 else ParticipantStatus.ACTIVE)
    flt = {"eventId": str(event.id), "categoryId": str(ten_k.id), "status": "active"}
    small_batches = settings.model_copy(update={"export_batch_size": 4})

    for sort, descending in [("last_name", False), ("bib", True), ("created_at", False)]:
        exp = start(db, ctx, settings, view="participants", filters=flt, sort=sort,
                    descending=descending, columns=["id"])
        exp = run_export(exp, with_settings=small_batches)
        listed, cursor = [], None
        while True:
            page, cursor, _ = events_service.list_participants(
                db, ctx, event_id=event.id, flt=ParticipantFilter(
                    status=ParticipantStatus.ACTIVE, category_id=ten_k.id),
                sort=ParticipantSort(sort), descending=descending, cursor=cursor, limit=5)
            listed += [str(p.id) for p in page]
            if cursor is None:
                break
        assert [row[0] for row in csv_rows(stored_bytes(settings, exp))[1:]] == listed
        assert len(listed) == 14


def test_xlsx_export_writes_labels_text_and_numbers(
    db: Session, ctx: TenantContext, settings: Settings, tenant: Tenant,
    run_export: RunExport, tmp_path: Path
) -> None:
    number_type = make_number_type(db, tenant, name="Road bibs")
    onboard(db, number_type, ("1", "0001", "=CHIP"), ("2", "0002", ""), ("3", "0003", "E3"))
    exp = start(db, ctx, settings, view="race_numbers", format="xlsx",
                filters={"numberTypeId": str(number_type.id)},
                columns=["sequence", "number", "tag", "state"])

    exp = run_export(exp)

    assert exp.job_run.status == JobStatus.COMPLETED, exp.job_run.message
    assert exp.filename.endswith(".xlsx") and exp.title == "Race numbers — Road bibs"
    path = tmp_path / "out.xlsx"
    path.write_bytes(stored_bytes(settings, exp))
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert rows == [["Sequence", "Number", "Tag", "State"],
                    [1.0, "0001", "=CHIP", "MANUFACTURED"],  # text, never a formula
                    [2.0, "0002", "", "MANUFACTURED"],
                    [3.0, "0003", "E3", "MANUFACTURED"]]


def test_audit_export_serializes_json_cells_newest_first(
    db: Session, ctx: TenantContext, settings: Settings, run_export: RunExport
) -> None:
    from racehub.core import audit

    for n in range(3):
        audit.record(db, ctx, action="test.thing", target_type="thing", target_id=n,
                     after={"n": n, "text": "=1+1"})
    exp = start(db, ctx, settings, view="audit", filters={"action": "test."},
                columns=["action", "target_id", "after"])

    exp = run_export(exp)

    assert csv_rows(stored_bytes(settings, exp)) == [
        ["Action", "Target ID", "After"],
        ["test.thing", "2", '{"n": 2, "text": "=1+1"}'],
        ["test.thing", "1", '{"n": 1, "text": "=1+1"}'],
        ["test.thing", "0", '{"n": 0, "text": "=1+1"}'],
    ]


def test_rows_created_during_the_export_are_left_out_and_none_repeats_or_is_skipped(
    committed_db: sessionmaker[Session], settings: Settings
) -> None:
    with committed_db() as db:
        tenant = make_tenant(db)
        event = make_event(db, tenant)
        for i in range(30):
            make_participant(db, event, first_name="P", last_name=f"M{i:02d}")
        db.commit()
        exp = start(db, system_ctx(tenant), settings, view="participants",
                    filters={"eventId": str(event.id)}, sort="last_name", columns=["last_name"])
        db.commit()
        export_id = exp.id
    added: list[str] = []

    def others_write(handle: JobHandle) -> None:
        # Another request commits new participants between two pages of the export: names
        # before and after the export's position in the sort order.
        with committed_db() as other:
            n = len(added)
            for name in (f"A{n:02d}", f"M{n:02d}x", f"Z{n:02d}"):
                make_participant(other, event, first_name="Late", last_name=name)
                added.append(name)
            other.commit()

    run_export_job(committed_db, export_id, settings.model_copy(
        update={"export_batch_size": 7}), hook=others_write)

    with committed_db() as db:
        exp = db.get(Export, export_id)
        assert exp.job_run.status == JobStatus.COMPLETED, exp.job_run.message
        rows = [r[0] for r in csv_rows(stored_bytes(settings, exp))[1:]]
        total = events_service.list_participants(db, system_ctx(tenant), event_id=event.id)[2]
    assert len(added) == 18  # others wrote after the count and after each of 5 pages
    assert rows == [f"M{i:02d}" for i in range(30)]  # each once, in order, none added
    assert exp.row_count == 30 and exp.job_run.total == 30
    assert total == 48  # the list itself has them all


def test_rows_of_a_transaction_open_at_the_cutoff_count_only_if_committed_in_time(
    committed_db: sessionmaker[Session], settings: Settings
) -> None:
    """The documented edge of the snapshot: a row's created_at is its transaction's start.
    Two transactions begin before the export is asked for and commit after its first
    page: the row the pages have not reached yet is exported, the one behind them is not
    (the next export has it). Nothing is doubled either way."""
    with committed_db() as db:
        tenant = make_tenant(db)
        event = make_event(db, tenant)
        for i in range(20):
            make_participant(db, event, first_name="P", last_name=f"M{i:02d}")
        db.commit()
    behind, ahead = committed_db(), committed_db()
    try:
        # Both open (created_at = their start), neither committed yet.
        make_participant(behind, event, first_name="Open", last_name="A-open")
        make_participant(ahead, event, first_name="Open", last_name="Z-open")
        with committed_db() as db:
            exp = start(db, system_ctx(tenant), settings, view="participants",
                        filters={"eventId": str(event.id)}, sort="last_name",
                        columns=["last_name"])
            db.commit()
            export_id = exp.id

        def commit_both_after_the_first_page(handle: JobHandle) -> None:
            if handle.run.done == 7:
                behind.commit()
                ahead.commit()

        run_export_job(committed_db, export_id, settings.model_copy(
            update={"export_batch_size": 7}), hook=commit_both_after_the_first_page)
    finally:
        behind.close()
        ahead.close()

    with committed_db() as db:
        exp = db.get(Export, export_id)
        assert exp.job_run.status == JobStatus.COMPLETED, exp.job_run.message
        rows = [r[0] for r in csv_rows(stored_bytes(settings, exp))[1:]]
        assert exp.job_run.percent == 100.0  # 21 rows of the 20 counted: never above 100
    assert rows == [f"M{i:02d}" for i in range(20)] + ["Z-open"]
    assert exp.row_count == 21


def test_cancel_mid_export_stops_at_the_next_page_and_keeps_no_file(
    db: Session, ctx: TenantContext, settings: Settings, event: Event, run_export: RunExport
) -> None:
    for i in range(10):
        make_participant(db, event, last_name=f"R{i}")
    exp = start(db, ctx, settings, view="participants", filters={"eventId": str(event.id)})
    seen: list[int] = []

    def cancel_after_first_page(handle: JobHandle) -> None:
        seen.append(handle.run.done)
        if handle.run.done == 3:
            jobs_service.cancel_job(db, ctx, job_id=exp.job_run_id)
            db.flush()

    exp = run_export(exp, hook=cancel_after_first_page,
                     with_settings=settings.model_copy(update={"export_batch_size": 3}))

    assert exp.job_run.status == JobStatus.CANCELLED
    assert seen == [0, 3]  # after counting, after the first page
    assert service.stage_of(exp) == "Cancelled"
    assert [st.state for st in service.stages_of(exp)] == [
        "done", "done", "cancelled", "pending", "pending"]
    assert not storage.get_storage(settings).exists(exp.storage_key)
    assert not service.temp_path(settings, exp).exists()
    with pytest.raises(ExportNotReady, match="cancelled"):
        service.open_download(db, ctx, settings=settings, export_id=exp.id)


def test_a_full_export_folder_fails_the_export_with_the_reason_and_no_partial_file(
    db: Session, ctx: TenantContext, settings: Settings, event: Event, run_export: RunExport,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        make_participant(db, event, last_name=f"R{i}")
    exp = start(db, ctx, settings, view="participants", filters={"eventId": str(event.id)})
    real_copy = storage.shutil.copyfileobj

    def disk_full(src: io.BufferedReader, dst: io.BufferedWriter, length: int = 0) -> None:
        dst.write(src.read(40))  # part of the file made it to disk
        dst.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.shutil, "copyfileobj", disk_full)
    exp = run_export(exp)
    monkeypatch.setattr(storage.shutil, "copyfileobj", real_copy)

    run = exp.job_run
    assert run.status == JobStatus.FAILED
    assert service.stage_of(exp) == "Failed"
    assert [(st.name, st.state) for st in service.stages_of(exp)] == [
        ("Queued", "done"), ("Counting", "done"), ("Exporting", "done"),
        ("Uploading", "failed"), ("Completed", "pending")]
    assert run.message == (f"the export folder {settings.data_dir / 'exports'} is full "
                           "(No space left on device)")
    leftovers = [p for p in (settings.data_dir / "exports").rglob("*") if p.is_file()]
    assert leftovers == []
    assert not service.temp_path(settings, exp).exists()
    assert exp.completed_at is None and exp.expires_at is None


def test_expiry_deletes_old_files_and_a_download_then_says_it_expired(
    db: Session, ctx: TenantContext, settings: Settings, event: Event, run_export: RunExport
) -> None:
    make_participant(db, event, last_name="Solo")
    old = run_export(start(db, ctx, settings, view="participants",
                           filters={"eventId": str(event.id)}))
    fresh = run_export(start(db, ctx, settings, view="participants",
                             filters={"eventId": str(event.id)}))
    local = storage.get_storage(settings)
    assert local.exists(old.storage_key) and local.exists(fresh.storage_key)
    assert old.expires_at is not None
    old.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.flush()

    assert service.expire_exports(db, settings) == 1
    assert service.expire_exports(db, settings) == 0  # idempotent

    db.expire_all()
    assert old.expired_at is not None and fresh.expired_at is None
    assert not local.exists(old.storage_key) and local.exists(fresh.storage_key)
    assert service.state_of(old) == "expired" and service.stage_of(old) == "Expired"
    with pytest.raises(ExportExpired, match=r"expired on .* UTC and its file was deleted: "
                                            r"files are kept 72 hours"):
        service.open_download(db, ctx, settings=settings, export_id=old.id)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "export.expired"))
    assert entry is not None and entry.target_id == str(old.id)


def test_bad_view_filter_column_or_sort_is_refused_naming_it(
    db: Session, ctx: TenantContext, settings: Settings, event: Event
) -> None:
    cases = [
        ({"view": "tickets"}, "view", "unknown view 'tickets'; one of: audit, imports"),
        ({"view": "participants", "filters": {"eventId": str(event.id), "colour": "red"}},
         "filters.colour", "has no filter 'colour'; it accepts: eventId, q, status"),
        ({"view": "participants", "filters": {}}, "filters.eventId", "Field required"),
        ({"view": "participants", "filters": {"eventId": str(event.id)},
          "columns": ["bib", "shoe_size"]}, "columns", "has no column 'shoe_size'"),
        ({"view": "participants", "filters": {"eventId": str(event.id)}, "sort": "age"},
         "sort", "cannot sort by 'age'"),
        ({"view": "participants", "filters": {"eventId": str(event.id)}, "format": "pdf"},
         "format", "format must be one of: csv, xlsx"),
    ]
    for data, field, message in cases:
        with pytest.raises(Invalid) as caught:
            start(db, ctx, settings, **data)
        assert caught.value.field == field
        assert message in caught.value.detail


def test_each_view_needs_its_own_read_permission(
    db: Session, tenant: Tenant, settings: Settings, event: Event
) -> None:
    officer = TenantContext(tenant_id=tenant.id, role=Role.RESULTS_OFFICER,
                            permissions=permissions_for(Role.RESULTS_OFFICER))
    with pytest.raises(Forbidden, match="'core:audit:read' permission"):
        start(db, officer, settings, view="audit")
    exp = start(db, officer, settings, view="participants", filters={"eventId": str(event.id)})
    assert exp.job_run.status == JobStatus.QUEUED
    # Its run names the export: reading and controlling it need the view's permission too.
    assert (exp.job_run.subject_type, exp.job_run.subject_id) == ("export", exp.id)


def test_another_tenants_event_cannot_be_exported(
    db: Session, ctx: TenantContext, settings: Settings
) -> None:
    other_event = make_event(db, make_tenant(db))
    from racehub.events.exceptions import EventNotFound

    with pytest.raises(EventNotFound):
        start(db, ctx, settings, view="participants", filters={"eventId": str(other_event.id)})
    assert db.scalar(select(Export).where(Export.tenant_id == ctx.tenant_id)) is None
    assert uuid.UUID(str(other_event.id))
