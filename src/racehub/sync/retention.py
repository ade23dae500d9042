"""The retention of raw provider payloads: personal data kept only as long as the setting
RACEHUB_SYNC_PAYLOAD_RETENTION_DAYS says, then purged (the record itself stays: its
key, its last-synced values and its content hash are what the sync needs).

The daily task is declared on this module's ``blueprint``; the sync domain's tasks
module adds it (``blueprint.add_tasks_from(retention.blueprint, namespace="retention")``),
so it is queued as ``sync:retention:purge_payloads``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import Blueprint
from sqlalchemy import null, select, update
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.jobs.runner import worker_sessionmaker
from racehub.settings import get_settings
from racehub.sync.models import SyncedRecord

log = structlog.get_logger(__name__)

blueprint = Blueprint()

PURGE_BATCH = 1000


def purge_payload_batch(db: Session, *, older_than: datetime, batch_size: int = PURGE_BATCH,
                        ) -> int:
    """Set NULL the raw payloads synced before ``older_than``, at most ``batch_size`` of
    them (all tenants; oldest first, along the partial index on payload_synced_at). Rows
    another transaction holds (a sync applying them) are skipped: the next run gets them.
    Each tenant's count is audit-logged. Returns how many were purged."""
    due = (select(SyncedRecord.id)
           .where(SyncedRecord.payload.is_not(None),
                  SyncedRecord.payload_synced_at < older_than)
           .order_by(SyncedRecord.payload_synced_at)
           .limit(batch_size)
           .with_for_update(skip_locked=True))
    tenants = db.scalars(
        update(SyncedRecord).where(SyncedRecord.id.in_(due.scalar_subquery()))
        # SQL NULL, not JSON null: the JSONB type would store None as 'null'.
        .values(payload=null())
        .returning(SyncedRecord.tenant_id)
        .execution_options(synchronize_session=False)).all()
    for tenant_id, count in Counter(tenants).items():
        audit.record(db, None, action="sync.payloads_purged", target_type="synced_records",
                     tenant_id=tenant_id, actor_label="system (payload retention)",
                     after={"count": count, "synced_before": older_than.isoformat()})
    return len(tenants)


def purge_payloads(db: Session, *, retention_days: int, now: datetime,
                   batch_size: int = PURGE_BATCH) -> int:
    """Purge every payload older than ``retention_days``, committing each batch (a long
    purge holds no lock for long, and what it did stays done if it is stopped)."""
    older_than = now - timedelta(days=retention_days)
    total = 0
    while True:
        purged = purge_payload_batch(db, older_than=older_than, batch_size=batch_size)
        db.commit()
        total += purged
        if purged < batch_size:
            return total


@blueprint.periodic(cron="23 3 * * *")  # daily, at a quiet hour (UTC)
@blueprint.task(name="purge_payloads", queueing_lock="sync_purge_payloads")
def purge_payloads_task(timestamp: int) -> int:
    """Purge raw provider payloads older than RACEHUB_SYNC_PAYLOAD_RETENTION_DAYS."""
    settings = get_settings()
    with worker_sessionmaker()() as db:
        count = purge_payloads(db, retention_days=settings.sync_payload_retention_days,
                               now=datetime.now(UTC))
    if count:
        log.info("sync.payloads_purged", count=count)
    return count
