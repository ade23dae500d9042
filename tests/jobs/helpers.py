"""Helpers shared by the jobs tests.

``tests.record_items`` is a job kind whose body writes one row per item (an audit entry)
in the batch's transaction, so a test can count exactly which items ran, and how often.
The bib helpers build a category of unnumbered participants and read it back in the
order the bib assignment numbers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from procrastinate import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.models import AuditEntry, Tenant
from racehub.core.rbac import Perm
from racehub.events.models import Category, Event, EventParticipant, ParticipantStatus, Person
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.queue import load_tasks
from racehub.jobs.runner import JobHandle, job_task
from tests.factories import make_participant

RECORD_ITEMS_KIND = "tests.record_items"
ITEM_ACTION = "test.item"

# Called with (handle, index of the batch, first item, item count) inside each batch, before
# the batch commits: tests use it to pause, cancel, fail or "kill the worker" mid-run.
BatchHook = Callable[[JobHandle, int, int, int], None]


def record_items(
    handle: JobHandle, db: Session, ctx: TenantContext, *, items: int, batch: int,
    hook: BatchHook | None = None, check_mid_batch: bool = False,
) -> None:
    """Items 0..items-1, ``batch`` at a time: one audit row per item, committed with the
    batch's checkpoint (``next``). With ``check_mid_batch`` the body also honours
    pause/cancel halfway through each batch, as a body with slow items would."""
    start = int(handle.checkpoint.get("next", 0))
    handle.set_progress(stage="Recording", total=items, done=start)
    index = start // batch
    while start < items:
        end = min(items, start + batch)
        for item in range(start, end):
            audit.record(db, ctx, action=ITEM_ACTION, target_type="item", target_id=item)
            if check_mid_batch and item == start + (end - start) // 2:
                db.flush()  # half the batch is written, uncommitted, when control is checked
                if hook is not None:
                    hook(handle, index, start, end - start)
                handle.check_control()
        if hook is not None and not check_mid_batch:
            hook(handle, index, start, end - start)
        handle.commit_batch(checkpoint={"next": end}, done=end, counts={"recorded": end})
        start, index = end, index + 1


_blueprint = Blueprint()
# Registered like a real kind, so the service can start, pause and resume it (resume defers
# its task again). Tests run the body in-process with run_job, never through a worker.
job_task(_blueprint, kind=RECORD_ITEMS_KIND, label="Record items",
         permission=Perm.EVENTS_PARTICIPANT_WRITE)(record_items)
load_tasks().add_tasks_from(_blueprint, namespace="tests")


def recorded_items(db: Session, tenant_id: Any) -> list[int]:
    """Every item runs of ``record_items`` committed, in commit order, repeats included."""
    rows = db.scalars(select(AuditEntry.target_id)
                      .where(AuditEntry.tenant_id == tenant_id,
                             AuditEntry.action == ITEM_ACTION)
                      .order_by(AuditEntry.id))
    return [int(r) for r in rows]


def make_run(db: Session, tenant: Tenant, *, kind: str = ASSIGN_BIBS_KIND,
             status: JobStatus = JobStatus.QUEUED, **fields: Any) -> JobRun:
    """A JobRun row in any state, without a queued task (for reads and state checks)."""
    values: dict[str, Any] = {"params": {}, "counts": {}, "log": [], "checkpoint": {}, **fields}
    run = JobRun(tenant_id=tenant.id, kind=kind, status=status, **values)
    db.add(run)
    db.flush()
    return run


def log_messages(run: JobRun) -> list[str]:
    return [entry["message"] for entry in run.log]


# --- bib assignment -----------------------------------------------------------------------

LAST_NAMES = ["Martin", "bernard", "Dubois", "martin", "Thomas", "Robert", "richard", "Petit",
              "Durand", "Leroy", "moreau", "Simon", "Laurent", "Lefebvre", "Michel"]
FIRST_NAMES = ["Camille", "léa", "Hugo", "Emma", "jules", "Louise", "Adam", "Chloé", "Noah"]


def make_unnumbered_field(db: Session, event: Event, category: Category, count: int) -> None:
    """``count`` active participants without a bib, created in no particular name order, with
    repeated names in mixed case (so the order's tie-breakers matter)."""
    for i in range(count):
        make_participant(db, event, first_name=FIRST_NAMES[(i * 7) % len(FIRST_NAMES)],
                         last_name=LAST_NAMES[(i * 4) % len(LAST_NAMES)],
                         category_id=category.id)


def numbering_order(db: Session, category: Category) -> list[EventParticipant]:
    """The category's active participants in the order the bib assignment numbers them."""
    return list(db.scalars(
        select(EventParticipant)
        .join(Person, Person.id == EventParticipant.person_id)
        .where(EventParticipant.category_id == category.id,
               EventParticipant.status == ParticipantStatus.ACTIVE)
        .order_by(func.lower(Person.last_name), func.lower(Person.first_name),
                  EventParticipant.id)
        .execution_options(populate_existing=True)
    ))


def free_numbers(first: int, count: int, taken: Iterable[int]) -> list[int]:
    """The ``count`` smallest numbers from ``first`` on that are not ``taken``."""
    blocked, numbers, candidate = set(taken), [], first
    while len(numbers) < count:
        if candidate not in blocked:
            numbers.append(candidate)
        candidate += 1
    return numbers


def bib_batches(db: Session, category: Category) -> list[tuple[int, int, int]]:
    """(count, first bib, last bib) of each batch the assignment committed, in order."""
    rows = db.scalars(select(AuditEntry.after)
                      .where(AuditEntry.action == "participant.bibs_assigned",
                             AuditEntry.target_id == str(category.id))
                      .order_by(AuditEntry.id))
    return [(a["count"], int(a["first"]), int(a["last"])) for a in rows]
