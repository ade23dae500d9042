"""Raw payloads older than the retention are purged in batches; the records stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import AuditEntry, Tenant
from racehub.sync import retention
from racehub.sync.models import SyncedRecord
from tests.factories import make_event, make_participant, make_synced_record, make_tenant

NOW = datetime(2027, 6, 1, 12, tzinfo=UTC)


def _record(db: Session, tenant: Tenant, ref: str, age_days: int | None) -> SyncedRecord:
    ep = make_participant(db, make_event(db, tenant))
    synced_at = NOW - timedelta(days=age_days) if age_days is not None else None
    return make_synced_record(db, ep, source_ref=ref, payload={"ref": ref},
                              payload_synced_at=synced_at)


def test_payloads_past_the_retention_are_purged_in_batches_and_audited(
    db: Session, tenant: Tenant
) -> None:
    other = make_tenant(db)
    old = [_record(db, tenant, "a-old-1", 400), _record(db, tenant, "a-old-2", 366),
           _record(db, other, "b-old", 1000)]
    kept = [_record(db, tenant, "a-recent", 364), _record(db, other, "b-recent", 10)]

    purged = retention.purge_payloads(db, retention_days=365, now=NOW, batch_size=2)

    assert purged == 3
    db.expire_all()
    ids = [r.id for r in old + kept]
    payloads: dict[str, object] = dict(db.execute(
        select(SyncedRecord.source_ref, SyncedRecord.payload)
        .where(SyncedRecord.id.in_(ids))).all())
    assert payloads == {"a-old-1": None, "a-old-2": None, "b-old": None,
                        "a-recent": {"ref": "a-recent"}, "b-recent": {"ref": "b-recent"}}
    # SQL NULL (what the retention index leaves out), not a JSON null.
    purged_refs = db.scalars(select(SyncedRecord.source_ref).where(
        SyncedRecord.id.in_(ids), SyncedRecord.payload.is_(None))).all()
    assert sorted(purged_refs) == ["a-old-1", "a-old-2", "b-old"]
    # The records themselves stay, with what the sync needs.
    assert all(db.get_one(SyncedRecord, r.id).content_hash for r in old)
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "sync.payloads_purged",
                                                  AuditEntry.tenant_id.in_([tenant.id,
                                                                            other.id]))).all()
    counted: dict[object, int] = {}
    for entry in entries:
        assert entry.after is not None
        counted[entry.tenant_id] = counted.get(entry.tenant_id, 0) + entry.after["count"]
    assert counted == {tenant.id: 2, other.id: 1}
    # Nothing left to do: a second run purges nothing.
    assert retention.purge_payloads(db, retention_days=365, now=NOW) == 0


def test_the_purge_is_a_daily_periodic_task() -> None:
    [periodic] = retention.blueprint.periodic_registry.periodic_tasks.values()
    assert periodic.task is retention.purge_payloads_task
    assert periodic.cron == "23 3 * * *"


def test_the_worker_runs_the_purge_with_the_sync_domain_tasks() -> None:
    from racehub.jobs.queue import load_tasks

    app = load_tasks()
    assert app.tasks["sync:retention:purge_payloads"] is retention.purge_payloads_task
    assert any(p.task is retention.purge_payloads_task
               for p in app.periodic_registry.periodic_tasks.values())
