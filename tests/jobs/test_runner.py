"""``run_job`` in-process, on real commits: progress, failure, pause/resume from the
checkpoint, cancel, and the restart of a run whose worker died; then the real bib
assignment through the registered task.

Bodies write one row per item in the batch's transaction (``tests.record_items``), so
"nothing repeated, nothing skipped" is checked on the rows themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.models import Tenant
from racehub.events import service as events_service
from racehub.events import tasks as events_tasks
from racehub.events.models import Category, Event, EventParticipant, ParticipantStatus
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.jobs import runner
from racehub.jobs import service as jobs_service
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.registry import get_kind
from racehub.jobs.runner import JobHandle, run_job
from racehub.settings import Settings
from tests.factories import make_category, make_event, make_participant, make_tenant, system_ctx
from tests.jobs.helpers import (
    RECORD_ITEMS_KIND,
    bib_batches,
    free_numbers,
    log_messages,
    make_unnumbered_field,
    numbering_order,
    record_items,
    recorded_items,
)

Factory = sessionmaker[Session]


class WorkerKilled(BaseException):  # noqa: N818 - stands for the process dying
    """Not an Exception: like SIGKILL, nothing in the runner gets to record anything."""


@pytest.fixture
def ctx(committed_db: Factory) -> TenantContext:
    with committed_db() as db:
        tenant = make_tenant(db)
        db.commit()
    return system_ctx(tenant)


def start(factory: Factory, ctx: TenantContext, *, items: int, batch: int) -> uuid.UUID:
    with factory() as db:
        run = jobs_service.start_job(db, ctx, kind=RECORD_ITEMS_KIND,
                                     params={"items": items, "batch": batch})
        db.commit()
        return run.id


def load(factory: Factory, run_id: uuid.UUID) -> JobRun:
    with factory() as db:
        run = db.get(JobRun, run_id)
        assert run is not None
        return run


def items_of(factory: Factory, ctx: TenantContext) -> list[int]:
    with factory() as db:
        return recorded_items(db, ctx.tenant_id)


def control(factory: Factory, verb: Callable[..., JobRun], ctx: TenantContext,
            run_id: uuid.UUID) -> None:
    """What an operator's request does, in its own transaction, while the job runs."""
    with factory() as db:
        verb(db, ctx, job_id=run_id)
        db.commit()


def on_batch(index: int, action: Callable[[], None]) -> Callable[..., None]:
    def hook(handle: JobHandle, batch_index: int, first: int, count: int) -> None:
        if batch_index == index:
            action()
    return hook


# --- a run from start to end --------------------------------------------------------------


def test_run_commits_progress_per_batch_and_completes_at_100_percent(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=7, batch=3)
    seen: list[tuple[Any, ...]] = []

    def watch(handle: JobHandle, index: int, first: int, count: int) -> None:
        run = load(committed_db, run_id)  # as the progress page sees it, mid-run
        seen.append((run.status, run.stage, run.done, run.total, run.percent))

    run_job(None, str(run_id), partial(record_items, hook=watch), factory=committed_db)

    assert seen == [(JobStatus.RUNNING, "Recording", 0, 7, 0.0),
                    (JobStatus.RUNNING, "Recording", 3, 7, 42.9),
                    (JobStatus.RUNNING, "Recording", 6, 7, 85.7)]
    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.percent, run.done, run.total) == (
        JobStatus.COMPLETED, "Done", 100.0, 7, 7)
    assert (run.counts, run.checkpoint, run.attempts, run.error) == (
        {"recorded": 7}, {"next": 7}, 1, None)
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert log_messages(run) == ["queued", "completed"]
    assert items_of(committed_db, ctx) == list(range(7))


def test_run_of_an_unknown_id_does_nothing(committed_db: Factory) -> None:
    def body(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no body may run without its JobRun")

    run_job(None, str(uuid.uuid4()), body, factory=committed_db)


# --- failure ------------------------------------------------------------------------------


def test_failing_body_marks_the_run_failed_keeps_committed_batches_and_reraises(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=7, batch=3)

    def malformed() -> None:
        raise ValueError("item 4 is malformed")

    with pytest.raises(ValueError, match="item 4 is malformed"):
        run_job(None, str(run_id), partial(record_items, hook=on_batch(1, malformed)),
                factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.message) == (
        JobStatus.FAILED, "Failed", "item 4 is malformed")
    assert run.error is not None
    assert run.error.startswith("Traceback")
    assert "ValueError: item 4 is malformed" in run.error
    assert run.finished_at is not None
    # The first batch stays done, the failed one left nothing behind.
    assert (run.checkpoint, run.done, run.percent) == ({"next": 3}, 3, 42.9)
    assert items_of(committed_db, ctx) == [0, 1, 2]
    assert log_messages(run) == ["queued", "failed"]


def test_error_without_text_is_named_by_its_class(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=2, batch=2)

    def boom() -> None:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        run_job(None, str(run_id), partial(record_items, hook=on_batch(0, boom)),
                factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.message) == (JobStatus.FAILED, "RuntimeError")


# --- pause and resume ---------------------------------------------------------------------


def test_pause_stops_after_the_batch_and_resume_continues_from_the_checkpoint(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=10, batch=3)
    pause = partial(control, committed_db, jobs_service.pause_job, ctx, run_id)

    run_job(None, str(run_id), partial(record_items, hook=on_batch(1, pause)),
            factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.pause_requested) == (JobStatus.PAUSED, "Paused", True)
    # The batch in which the pause was asked for is committed with its checkpoint.
    assert (run.checkpoint, run.done, run.percent, run.finished_at) == (
        {"next": 6}, 6, 60.0, None)
    assert run.log[-1]["message"] == "paused" and run.log[-1]["checkpoint"] == {"next": 6}
    assert items_of(committed_db, ctx) == list(range(6))

    control(committed_db, jobs_service.resume_job, ctx, run_id)
    assert load(committed_db, run_id).status == JobStatus.QUEUED
    run_job(None, str(run_id), record_items, factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.done, run.attempts, run.pause_requested) == (
        JobStatus.COMPLETED, 10, 2, False)
    resumed = [e for e in run.log if e["message"] == "resumed from checkpoint"]
    assert [e["checkpoint"] for e in resumed] == [{"next": 6}]
    assert log_messages(run) == ["queued", "pause requested", "paused", "resumed",
                                 "resumed from checkpoint", "completed"]
    assert items_of(committed_db, ctx) == list(range(10))  # each item once, in order


def test_a_paused_run_is_not_run_by_a_task_that_starts_anyway(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=6, batch=3)
    pause = partial(control, committed_db, jobs_service.pause_job, ctx, run_id)
    run_job(None, str(run_id), partial(record_items, hook=on_batch(0, pause)),
            factory=committed_db)
    before = load(committed_db, run_id)

    run_job(None, str(run_id), record_items, factory=committed_db)  # e.g. a duplicate task

    after = load(committed_db, run_id)
    assert (after.status, after.attempts, after.log) == (JobStatus.PAUSED, 1, before.log)
    assert items_of(committed_db, ctx) == [0, 1, 2]


def test_pause_requested_before_the_task_starts_pauses_without_running(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=6, batch=3)
    control(committed_db, jobs_service.pause_job, ctx, run_id)

    run_job(None, str(run_id), record_items, factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.attempts, run.started_at) == (
        JobStatus.PAUSED, "Paused", 0, None)
    assert items_of(committed_db, ctx) == []


def test_entries_operators_add_to_the_log_during_the_run_are_kept(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=9, batch=3)

    def hook(handle: JobHandle, index: int, first: int, count: int) -> None:
        if index == 0:  # an operator pauses, then thinks better of it before the boundary
            control(committed_db, jobs_service.pause_job, ctx, run_id)
            control(committed_db, jobs_service.resume_job, ctx, run_id)
        if index == 1:
            handle.log("halfway")

    run_job(None, str(run_id), partial(record_items, hook=hook), factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.pause_requested) == (JobStatus.COMPLETED, False)
    assert log_messages(run) == ["queued", "pause requested", "halfway", "completed"]
    assert items_of(committed_db, ctx) == list(range(9))


# --- cancel -------------------------------------------------------------------------------


def test_cancel_while_running_ends_the_run_after_the_current_batch(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=10, batch=3)
    cancel = partial(control, committed_db, jobs_service.cancel_job, ctx, run_id)

    run_job(None, str(run_id), partial(record_items, hook=on_batch(1, cancel)),
            factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.cancel_requested) == (
        JobStatus.CANCELLED, "Cancelled", True)
    assert run.finished_at is not None
    assert (run.checkpoint, run.done) == ({"next": 6}, 6)
    assert items_of(committed_db, ctx) == list(range(6))  # rows and checkpoint agree
    assert log_messages(run) == ["queued", "cancel requested", "cancelled"]


def test_cancel_seen_mid_batch_rolls_back_the_batch_in_flight(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=10, batch=4)
    cancel = partial(control, committed_db, jobs_service.cancel_job, ctx, run_id)

    run_job(None, str(run_id),
            partial(record_items, hook=on_batch(1, cancel), check_mid_batch=True),
            factory=committed_db)

    run = load(committed_db, run_id)
    assert run.status == JobStatus.CANCELLED
    # Items 4..6 of the second batch were written (flushed) when the cancel was seen.
    assert (run.checkpoint, run.done) == ({"next": 4}, 4)
    assert items_of(committed_db, ctx) == [0, 1, 2, 3]


def test_run_cancelled_while_queued_never_runs_its_body(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=3, batch=3)
    control(committed_db, jobs_service.cancel_job, ctx, run_id)

    run_job(None, str(run_id), record_items, factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.attempts, run.started_at) == (JobStatus.CANCELLED, 0, None)
    assert log_messages(run) == ["queued", "cancel requested"]
    assert items_of(committed_db, ctx) == []


# --- a worker that dies -------------------------------------------------------------------


def test_run_left_running_by_a_dead_worker_restarts_from_its_checkpoint(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, items=10, batch=3)

    def die() -> None:
        raise WorkerKilled

    with pytest.raises(WorkerKilled):
        run_job(None, str(run_id), partial(record_items, hook=on_batch(2, die)),
                factory=committed_db)
    run = load(committed_db, run_id)
    assert (run.status, run.checkpoint, run.attempts) == (JobStatus.RUNNING, {"next": 6}, 1)
    assert items_of(committed_db, ctx) == list(range(6))  # batch 3 died uncommitted

    # What the stalled-job recovery does: the same task runs again, on another worker.
    run_job(None, str(run_id), record_items, factory=committed_db)

    run = load(committed_db, run_id)
    assert (run.status, run.done, run.percent, run.attempts) == (
        JobStatus.COMPLETED, 10, 100.0, 2)
    (restart,) = [e for e in run.log if e["message"].startswith("restarted")]
    assert restart["message"] == ("restarted after the worker stopped; continuing from "
                                  "checkpoint")
    assert restart["checkpoint"] == {"next": 6}
    assert log_messages(run) == ["queued", restart["message"], "completed"]
    assert items_of(committed_db, ctx) == list(range(10))


# --- the real bib assignment --------------------------------------------------------------


@pytest.fixture
def worker_like(committed_db: Factory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registered task's own session factory and settings, as in ``racehub worker``."""
    monkeypatch.setattr(runner, "worker_sessionmaker", lambda: committed_db)
    monkeypatch.setattr(events_tasks, "get_settings", lambda: Settings(job_batch_size=7))
    yield


def run_registered_task(run_id: uuid.UUID) -> None:
    get_kind(ASSIGN_BIBS_KIND).task(None, str(run_id))


def bibs_of(db: Session, category: Category) -> dict[uuid.UUID, str | None]:
    return dict(db.execute(select(EventParticipant.id, EventParticipant.bib)
                           .where(EventParticipant.category_id == category.id)).all())


def test_assign_bibs_numbers_the_category_in_name_order_skipping_taken_bibs(
    committed_db: Factory, worker_like: None
) -> None:
    with committed_db() as db:
        tenant: Tenant = make_tenant(db)
        event: Event = make_event(db, tenant)
        ten_k, five_k = make_category(db, event, "10K"), make_category(db, event, "5K")
        make_unnumbered_field(db, event, ten_k, 50)
        kept = make_participant(db, event, bib="107", category_id=ten_k.id)
        withdrawn = make_participant(db, event, category_id=ten_k.id,
                                     status=ParticipantStatus.WITHDRAWN)
        make_participant(db, event, bib="103", category_id=five_k.id)  # taken in the event
        make_participant(db, event, bib="110", category_id=five_k.id,  # freed: withdrawn
                         status=ParticipantStatus.WITHDRAWN)
        make_participant(db, event, bib="A12", category_id=five_k.id)  # not a number
        make_participant(db, make_event(db, tenant), bib="101")  # another event
        order = [ep.id for ep in numbering_order(db, ten_k) if ep.bib is None]
        run = events_service.start_bib_assignment(db, system_ctx(tenant), event_id=event.id,
                                                  category_id=ten_k.id, first_bib=100)
        db.commit()

    run_registered_task(run.id)

    numbers = free_numbers(100, 50, taken={103, 107})
    assert 110 in numbers and numbers[-1] == 151
    with committed_db() as db:
        bibs = bibs_of(db, ten_k)
        assert [bibs[ep_id] for ep_id in order] == [str(n) for n in numbers]
        assert (bibs[kept.id], bibs[withdrawn.id]) == ("107", None)
        # One committed batch of 7 (RACEHUB_JOB_BATCH_SIZE) after another, none repeated.
        batches = bib_batches(db, ten_k)
        assert [count for count, _, _ in batches] == [7] * 7 + [1]
        assert [(first, last) for _, first, last in batches] == [
            (numbers[i], numbers[min(i + 6, 49)]) for i in range(0, 50, 7)]
        done = db.get(JobRun, run.id)
        assert done is not None
        assert (done.status, done.stage, done.percent, done.done, done.total) == (
            JobStatus.COMPLETED, "Done", 100.0, 50, 50)
        assert done.counts == {"assigned": 50}
        assert done.checkpoint == {"next_bib": 152, "assigned": 50}
        assert done.message == "Assigned 50 bibs, next is 152"


def test_assign_bibs_fails_when_the_range_is_used_up_and_a_rerun_finishes_the_rest(
    committed_db: Factory, worker_like: None
) -> None:
    with committed_db() as db:
        tenant = make_tenant(db)
        ctx = system_ctx(tenant)
        event = make_event(db, tenant)
        category = make_category(db, event, "10K", bib_range_start=1, bib_range_end=10)
        make_unnumbered_field(db, event, category, 15)
        order = [ep.id for ep in numbering_order(db, category)]
        run = events_service.start_bib_assignment(db, ctx, event_id=event.id,
                                                  category_id=category.id, first_bib=None)
        db.commit()

    with pytest.raises(Invalid, match="used up"):
        run_registered_task(run.id)

    with committed_db() as db:
        failed = db.get(JobRun, run.id)
        assert (failed.status, failed.checkpoint) == (
            JobStatus.FAILED, {"next_bib": 8, "assigned": 7})
        assert failed.message == (
            "bib range 1-10 of 10K is used up after 7 bibs; widen the range and run again "
            "(numbered participants keep their bibs)")
        bibs = bibs_of(db, category)
        # Whole batches only: the batch that ran out (8, 9, 10, then none) left no bib behind.
        assert [bibs[i] for i in order] == [str(n) for n in range(1, 8)] + [None] * 8

        db.get(Category, category.id).bib_range_end = 20
        rerun = events_service.start_bib_assignment(db, ctx, event_id=event.id,
                                                    category_id=category.id, first_bib=None)
        db.commit()

    run_registered_task(rerun.id)

    with committed_db() as db:
        bibs = bibs_of(db, category)
        assert [bibs[i] for i in order] == [str(n) for n in range(1, 16)]
        assert db.get(JobRun, rerun.id).status == JobStatus.COMPLETED
