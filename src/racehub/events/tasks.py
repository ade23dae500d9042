"""Background jobs of the events domain."""

from __future__ import annotations

from typing import Any

from procrastinate import Blueprint
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.events import service
from racehub.jobs.registry import Subject
from racehub.jobs.runner import JobHandle, job_task
from racehub.settings import get_settings

blueprint = Blueprint()


@job_task(
    blueprint,
    kind=service.ASSIGN_BIBS_KIND,
    label="Assign bibs",
    permission=Perm.EVENTS_PARTICIPANT_WRITE,
    read_permission=Perm.EVENTS_PARTICIPANT_READ,
    subject=Subject("category"),  # no rule: the permissions above are the tenant's
    lock="assign-bibs:{event_id}",  # two runs on one event would race for the same numbers
)
def assign_bibs(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    service.assign_bibs(db, ctx, job=handle, batch_size=get_settings().job_batch_size, **params)
