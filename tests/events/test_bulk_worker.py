"""A bulk edit above the inline limit, run by a real ``racehub worker`` process (batches of
RACEHUB_JOB_BATCH_SIZE, here two): the counts and refusals on the job, the bibs given in
name order across the batches, one audit entry at the end."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from racehub.core.models import AuditEntry
from racehub.events import bulk
from racehub.events.models import EventParticipant, ParticipantStatus
from racehub.events.schemas import BulkEditRequest
from racehub.jobs.models import JobStatus
from tests.factories import make_category, make_event, make_participant, make_tenant, system_ctx
from tests.workers import BATCH, Factory, Workers, alive, load_run, wait_for

pytestmark = pytest.mark.worker

ENTRIES = BATCH + 5  # two batches: a full one, then the rest


def test_a_large_bulk_assignment_runs_in_a_worker_in_committed_batches(
    committed_db: Factory, workers: Workers
) -> None:
    with committed_db() as db:
        tenant = make_tenant(db)
        event = make_event(db, tenant)
        category = make_category(db, event, "10K", bib_range_start=1)
        entries = [make_participant(db, event, first_name="Run", last_name=f"N{i:03}",
                                    category_id=category.id) for i in range(ENTRIES)]
        make_participant(db, event, bib="3")  # taken: skipped
        withdrawn = make_participant(db, event, first_name="Wes", last_name="N999",
                                     category_id=category.id, status=ParticipantStatus.WITHDRAWN)
        outcome = bulk.start_bulk_edit(
            db, system_ctx(tenant), event_id=event.id, inline_max=10,
            data=BulkEditRequest(action="assign_bibs", filter={"categoryId": category.id}))
        db.commit()
    assert outcome.job is not None
    run_id = outcome.job.id

    worker = workers.start("worker-1")
    wait_for(lambda: load_run(committed_db, run_id).status.is_terminal,
             "the worker to finish the bulk edit", check=alive(workers, "worker-1", worker))

    run = load_run(committed_db, run_id)
    assert run.status == JobStatus.COMPLETED, (run.message, run.error)
    assert (run.done, run.total, run.percent) == (ENTRIES + 1, ENTRIES + 1, 100.0)
    assert run.counts == {"selected": ENTRIES + 1, "changed": ENTRIES, "unchanged": 0,
                          "refused": 1}
    assert run.message == f"Assign bibs: {ENTRIES} changed, 0 unchanged, 1 refused"
    assert [e["message"] for e in run.log if e["message"].startswith("refused")] == [
        "refused Wes N999: withdrawn: reinstate the entry before giving it a bib"]
    with committed_db() as db:
        bibs = dict(db.execute(select(EventParticipant.id, EventParticipant.bib)
                               .where(EventParticipant.category_id == category.id)).all())
        entries_ = list(db.scalars(select(AuditEntry).where(
            AuditEntry.action == "participant.bulk_edit",
            AuditEntry.tenant_id == tenant.id)))
        owned = db.scalars(select(EventParticipant.local_fields)
                           .where(EventParticipant.id == entries[0].id)).one()
    numbers = [n for n in range(1, ENTRIES + 2) if n != 3]
    assert [bibs[ep.id] for ep in entries] == [str(n) for n in numbers]
    assert bibs[withdrawn.id] is None
    assert "bib" in owned
    # One entry for the whole change, written with its last batch.
    [entry] = entries_
    assert entry.after is not None
    assert (entry.after["job_id"], entry.after["changed"], entry.after["finished"]) == (
        str(run_id), ENTRIES, True)
    # The checkpoint is the end of the walk: a restart would change nothing more.
    assert run.checkpoint["done"] == ENTRIES + 1 and run.checkpoint["cursor"] is None
    assert run.attempts == 1
