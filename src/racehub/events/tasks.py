"""Background jobs of the events domain."""

from __future__ import annotations

import uuid
from typing import Any

from procrastinate import Blueprint
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.events import bulk, service
from racehub.jobs.models import JobRun
from racehub.jobs.registry import Owner, Subject
from racehub.jobs.runner import JobHandle, job_task
from racehub.settings import get_settings

blueprint = Blueprint()


def _assign_bibs_belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    return service.event_owner(db, ctx, run.params.get("event_id"))


def _runs_of_event(ctx: TenantContext, event_id: uuid.UUID) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = JobRun.params["event_id"].astext == str(event_id)
    return condition


@job_task(
    blueprint,
    kind=service.ASSIGN_BIBS_KIND,
    label="Assign bibs",
    permission=Perm.EVENTS_PARTICIPANT_WRITE,
    read_permission=Perm.EVENTS_PARTICIPANT_READ,
    subject=Subject("category"),  # no rule: the permissions above are the tenant's
    lock="assign-bibs:{event_id}",  # two runs on one event would race for the same numbers
    belongs_to=_assign_bibs_belongs_to,
    of_event=_runs_of_event,
)
def assign_bibs(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    service.assign_bibs(db, ctx, job=handle, batch_size=get_settings().job_batch_size, **params)


def _bulk_edit_belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    return service.event_owner(db, ctx, run.params.get("event_id"))


@job_task(
    blueprint,
    kind=bulk.BULK_EDIT_KIND,
    label="Bulk edit of participants",
    permission=Perm.EVENTS_PARTICIPANT_WRITE,
    read_permission=Perm.EVENTS_PARTICIPANT_READ,
    subject=Subject("event"),  # no rule: the permissions above are the tenant's
    # Two bulk edits of one event run one after the other (their rows would interleave).
    lock="participants-bulk:{event_id}",
    belongs_to=_bulk_edit_belongs_to,
    of_event=_runs_of_event,
)
def bulk_edit(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    bulk.run_bulk_edit(db, ctx, job=handle, batch_size=get_settings().job_batch_size, **params)
