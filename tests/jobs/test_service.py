"""The job service, below HTTP: a run and its queued task are created together, the
control verbs (cancel, pause, resume) move only between the states they are meant for, and
a tenant never reaches another tenant's runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden
from racehub.core.models import AuditEntry, Role, Tenant
from racehub.core.rbac import ROLE_PERMISSIONS
from racehub.events import service as events_service
from racehub.events.models import Category, Event
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.jobs import service
from racehub.jobs.exceptions import JobNotFound, JobStateConflict
from racehub.jobs.models import JobRun, JobStatus
from tests.factories import make_tenant, system_ctx
from tests.jobs.helpers import RECORD_ITEMS_KIND, log_messages, make_run


def queued_task(db: Session, job_id: int | None) -> dict[str, Any]:
    row = db.execute(text(
        "SELECT task_name, status::text AS status, lock, queueing_lock, args "
        "FROM procrastinate_jobs WHERE id = :id"
    ), {"id": job_id}).mappings().one()
    return dict(row)


def count_tasks(db: Session, run: JobRun) -> int:
    return db.scalar(text(
        "SELECT count(*) FROM procrastinate_jobs WHERE args->>'job_run_id' = :run_id"
    ), {"run_id": str(run.id)})


def viewer_ctx(tenant: Tenant) -> TenantContext:
    return TenantContext(tenant_id=tenant.id, permissions=ROLE_PERMISSIONS[Role.VIEWER],
                         role=Role.VIEWER, actor_label="viewer")


@pytest.fixture
def other_ctx(db: Session) -> TenantContext:
    return system_ctx(make_tenant(db))


# --- start --------------------------------------------------------------------------------


def test_start_bib_assignment_creates_a_queued_run_and_its_task_with_the_event_lock(
    db: Session, ctx: TenantContext, event: Event, category: Category
) -> None:
    run = events_service.start_bib_assignment(db, ctx, event_id=event.id,
                                              category_id=category.id, first_bib=100)

    assert (run.status, run.stage, run.percent, run.done, run.attempts) == (
        JobStatus.QUEUED, "Queued", 0.0, 0, 0)
    assert run.kind == ASSIGN_BIBS_KIND and run.tenant_id == ctx.tenant_id
    assert run.params == {"event_id": str(event.id), "category_id": str(category.id),
                          "first_bib": 100}
    assert run.message == "Assign bibs from 100 in 21K"
    assert log_messages(run) == ["queued"] and run.log[0]["by"] == "test"
    assert run.queue_job_id is not None
    assert queued_task(db, run.queue_job_id) == {
        "task_name": "events:assign_bibs", "status": "todo",
        "lock": f"assign-bibs:{event.id}", "queueing_lock": None,
        "args": {"job_run_id": str(run.id)},
    }
    (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "job.start",
                                                   AuditEntry.target_id == str(run.id)))
    assert entry.after == {"kind": ASSIGN_BIBS_KIND, "params": run.params}


def test_start_of_a_kind_without_lock_queues_its_task_without_one(
    db: Session, ctx: TenantContext
) -> None:
    run = service.start_job(db, ctx, kind=RECORD_ITEMS_KIND, params={"items": 3, "batch": 2})

    task = queued_task(db, run.queue_job_id)
    assert (task["task_name"], task["lock"], task["queueing_lock"]) == (
        "tests:record_items", None, None)


def test_run_and_task_are_written_in_the_callers_transaction(
    db: Session, ctx: TenantContext, event: Event, category: Category
) -> None:
    savepoint = db.begin_nested()
    run = events_service.start_bib_assignment(db, ctx, event_id=event.id,
                                              category_id=category.id, first_bib=None)
    run_id, queue_job_id = run.id, run.queue_job_id
    assert queued_task(db, queue_job_id)["status"] == "todo"  # same connection sees it

    savepoint.rollback()  # the caller's transaction fails: neither the run nor its task stay

    assert db.get(JobRun, run_id) is None
    assert db.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"),
                     {"id": queue_job_id}) == 0


def test_unknown_kind_is_refused_before_anything_is_written(
    db: Session, ctx: TenantContext
) -> None:
    with pytest.raises(KeyError):
        service.start_job(db, ctx, kind="events.nope", params={})
    assert db.scalar(select(func.count()).select_from(JobRun)) == 0


# --- cancel -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.PAUSED])
def test_cancel_of_a_run_not_running_anywhere_ends_it_at_once(
    db: Session, ctx: TenantContext, tenant: Tenant, status: JobStatus
) -> None:
    run = make_run(db, tenant, status=status)

    service.cancel_job(db, ctx, job_id=run.id)

    assert (run.status, run.stage, run.cancel_requested) == (
        JobStatus.CANCELLED, "Cancelled", True)
    assert run.finished_at is not None
    assert log_messages(run) == ["cancel requested"]
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "job.cancel", AuditEntry.target_id == str(run.id))) == 1


def test_cancel_of_a_running_run_only_asks_it_to_stop_at_the_next_batch(
    db: Session, ctx: TenantContext, tenant: Tenant
) -> None:
    run = make_run(db, tenant, status=JobStatus.RUNNING, stage="Assigning")

    service.cancel_job(db, ctx, job_id=run.id)

    assert (run.status, run.stage, run.cancel_requested) == (
        JobStatus.RUNNING, "Assigning", True)
    assert run.finished_at is None


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_cancel_of_a_finished_run_is_a_conflict(
    db: Session, ctx: TenantContext, tenant: Tenant, status: JobStatus
) -> None:
    run = make_run(db, tenant, status=status)

    with pytest.raises(JobStateConflict, match=f"the job is already {status.value}"):
        service.cancel_job(db, ctx, job_id=run.id)
    assert run.cancel_requested is False and run.log == []


# --- pause and resume ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_pause_asks_a_queued_or_running_run_to_stop_at_the_next_batch(
    db: Session, ctx: TenantContext, tenant: Tenant, status: JobStatus
) -> None:
    run = make_run(db, tenant, status=status)

    service.pause_job(db, ctx, job_id=run.id)

    assert (run.status, run.pause_requested) == (status, True)  # the task itself pauses
    assert log_messages(run) == ["pause requested"]


@pytest.mark.parametrize("status", [JobStatus.PAUSED, JobStatus.COMPLETED, JobStatus.FAILED,
                                    JobStatus.CANCELLED])
def test_pause_of_a_run_neither_queued_nor_running_is_a_conflict(
    db: Session, ctx: TenantContext, tenant: Tenant, status: JobStatus
) -> None:
    run = make_run(db, tenant, status=status)

    with pytest.raises(JobStateConflict, match=f"not a {status.value} one"):
        service.pause_job(db, ctx, job_id=run.id)
    assert run.pause_requested is False


def test_resume_of_a_paused_run_queues_its_task_again(
    db: Session, ctx: TenantContext, event: Event, category: Category
) -> None:
    run = events_service.start_bib_assignment(db, ctx, event_id=event.id,
                                              category_id=category.id, first_bib=1)
    first_task = run.queue_job_id
    service.pause_job(db, ctx, job_id=run.id)
    # What the runner does when it reaches a batch boundary with the pause requested:
    run.status, run.stage, run.checkpoint = JobStatus.PAUSED, "Paused", {"next_bib": 41}

    service.resume_job(db, ctx, job_id=run.id)

    assert (run.status, run.stage, run.pause_requested) == (JobStatus.QUEUED, "Queued", False)
    assert run.checkpoint == {"next_bib": 41}  # the next run continues from here
    assert run.queue_job_id not in (None, first_task)
    task = queued_task(db, run.queue_job_id)
    assert (task["status"], task["lock"], task["args"]) == (
        "todo", f"assign-bibs:{event.id}", {"job_run_id": str(run.id)})
    assert count_tasks(db, run) == 2
    assert log_messages(run) == ["queued", "pause requested", "resumed"]


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_resume_before_the_pause_took_effect_withdraws_the_request(
    db: Session, ctx: TenantContext, tenant: Tenant, status: JobStatus
) -> None:
    run = make_run(db, tenant, status=status, pause_requested=True, queue_job_id=7)

    service.resume_job(db, ctx, job_id=run.id)

    # The task that is queued (or running) carries on; nothing is queued a second time.
    assert (run.status, run.pause_requested, run.queue_job_id) == (status, False, 7)
    assert count_tasks(db, run) == 0


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED,
                                    JobStatus.FAILED, JobStatus.CANCELLED])
def test_resume_of_a_run_that_is_not_paused_is_a_conflict(
    db: Session, ctx: TenantContext, tenant: Tenant, status: JobStatus
) -> None:
    run = make_run(db, tenant, status=status)

    with pytest.raises(JobStateConflict) as error:
        service.resume_job(db, ctx, job_id=run.id)

    assert str(error.value) == (f"only a paused job can be resumed, not a {status.value} one")
    assert run.status == status and count_tasks(db, run) == 0


@pytest.mark.parametrize("verb", [service.cancel_job, service.pause_job, service.resume_job])
def test_control_needs_the_permission_of_the_jobs_kind(
    db: Session, tenant: Tenant, verb: Any
) -> None:
    run = make_run(db, tenant, status=JobStatus.PAUSED)

    with pytest.raises(Forbidden, match="events:participant:write"):
        verb(db, viewer_ctx(tenant), job_id=run.id)
    assert run.status == JobStatus.PAUSED and run.log == []


# --- reading, and tenant scoping ----------------------------------------------------------


def listed(db: Session, ctx: TenantContext, **filters: Any) -> list[JobRun]:
    return service.page_jobs(db, ctx, filters=service.JobFilters(**filters))[0]


def test_page_jobs_is_newest_first_filtered_by_kind_and_keyset_paged(
    db: Session, ctx: TenantContext, tenant: Tenant
) -> None:
    base = datetime(2026, 5, 1, tzinfo=UTC)
    runs = [make_run(db, tenant, kind=kind, created_at=base + timedelta(minutes=i))
            for i, kind in enumerate([ASSIGN_BIBS_KIND, RECORD_ITEMS_KIND, ASSIGN_BIBS_KIND])]

    assert listed(db, ctx) == runs[::-1]
    assert listed(db, ctx, kind=ASSIGN_BIBS_KIND) == [runs[2], runs[0]]
    first, cursor = service.page_jobs(db, ctx, filters=service.JobFilters(), limit=1)
    assert first == [runs[2]] and cursor is not None
    rest, end = service.page_jobs(db, ctx, filters=service.JobFilters(), cursor=cursor,
                                  limit=2)
    assert (rest, end) == ([runs[1], runs[0]], None)


def test_another_tenants_runs_are_not_found_by_any_verb(
    db: Session, ctx: TenantContext, other_ctx: TenantContext, tenant: Tenant
) -> None:
    run = make_run(db, tenant, status=JobStatus.PAUSED)

    assert listed(db, other_ctx) == []
    for verb in (service.get_job_or_raise, service.cancel_job, service.pause_job,
                 service.resume_job):
        with pytest.raises(JobNotFound):
            verb(db, other_ctx, job_id=run.id)
    assert (run.status, run.cancel_requested, run.log) == (JobStatus.PAUSED, False, [])
    assert service.get_job_or_raise(db, ctx, job_id=run.id) is run


def test_unknown_job_id_is_not_found(db: Session, ctx: TenantContext) -> None:
    with pytest.raises(JobNotFound, match="job not found"):
        service.get_job_or_raise(db, ctx, job_id=uuid.uuid4())


# --- who may read and control a run ------------------------------------------------------


def test_a_run_records_the_subject_its_kind_works_on(
    db: Session, ctx: TenantContext, event: Event, category: Category
) -> None:
    run = events_service.start_bib_assignment(db, ctx, event_id=event.id,
                                              category_id=category.id, first_bib=None)

    assert (run.subject_type, run.subject_id) == ("category", category.id)
    with pytest.raises(ValueError, match="needs its subject"):
        service.start_job(db, ctx, kind=ASSIGN_BIBS_KIND, params={})
    with pytest.raises(ValueError, match="has no subject"):
        service.start_job(db, ctx, kind=RECORD_ITEMS_KIND, params={}, subject_id=uuid.uuid4())


def test_a_run_of_a_kind_no_code_declares_is_only_for_those_holding_everything(
    db: Session, ctx: TenantContext, tenant: Tenant
) -> None:
    run = make_run(db, tenant, kind="events.gone")
    officer = TenantContext(tenant_id=tenant.id, role=Role.EVENT_MANAGER,
                            permissions=ROLE_PERMISSIONS[Role.EVENT_MANAGER])

    assert service.access_of(db, ctx, run).can_control
    assert not service.access_of(db, officer, run).can_read
    assert listed(db, ctx) == [run]
    assert listed(db, officer) == []
    with pytest.raises(Forbidden, match="reading this job needs the permissions"):
        service.get_job_or_raise(db, officer, job_id=run.id)


def test_a_job_started_inside_a_worker_goes_on_the_callers_connection(
    db: Session, ctx: TenantContext, database_url: str
) -> None:
    """A worker opens the queue app on an async pool; a job started by a job there (the
    schedule's tick defers runs and discoveries) is still written on our own connection,
    in our transaction, as from the web process."""
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from racehub.db.session import libpq_url
    from racehub.jobs.queue import load_tasks

    async def as_in_a_worker() -> JobRun:
        pool = AsyncConnectionPool(libpq_url(database_url), open=False, min_size=1,
                                   max_size=2)
        await pool.open(wait=True, timeout=30)
        try:
            async with load_tasks().open_async(pool):
                return await asyncio.to_thread(
                    service.start_job, db, ctx, kind=RECORD_ITEMS_KIND,
                    params={"items": 1, "batch": 1})
        finally:
            await pool.close()

    run = asyncio.run(as_in_a_worker())

    assert queued_task(db, run.queue_job_id)["status"] == "todo"  # same connection sees it
