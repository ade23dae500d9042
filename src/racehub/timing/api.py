"""JSON/CSV routes of the timing-system export (E11). Thin: the service holds the rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.timing import service
from racehub.timing.schemas import MissingIdRead, PreflightRead

router = APIRouter(prefix="/api", tags=["timing"])
log = structlog.get_logger(__name__)

ExportTiming = Annotated[TenantContext, Depends(require(Perm.TIMING_EXPORT))]

EXPORT_DESCRIPTION = f"""
Stream the event's start list as the CSV a timing system imports (UTF-8; `bom=1` adds a
byte-order mark for Excel). Columns, in this order: `{", ".join(service.COLUMNS)}`.

* `ExternalReferenceID` follows the event's `preferredTimingIdentifier`: `EPID` -> the
  participant (EP) id, `PERSON_ID` -> the person id, `REGISTRATION_ID` -> the EP's
  registration id (blank where it has none).
* Withdrawn participants are left out. Rows are sorted by bib (numeric-aware: 9 before 10,
  missing bibs last), then last and first name.
* `Age` is the age on the event's day in the event's time zone.
* **Formula neutralization**: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
  return gets a leading `'` so that a spreadsheet shows it as text instead of running it.
* The first export locks `preferredTimingIdentifier` (`preferredTimingIdentifierLockedAt`
  is set and committed before the first byte is sent); changing it afterwards needs
  `PATCH /api/events/{{id}}` with `acknowledgeOverride=true`.
* In `REGISTRATION_ID` mode, if active participants have no registration id the export is
  refused (409, with their count) unless `acceptMissingIds=1`; see the `/preflight` route.
* No participants: a header-only file.
* Audit: `event.timing_export_started` is written with the lock (so a cut-off download
  still leaves a trace); `event.timing_export`, written when the stream ends, holds the
  mode, the user, whether missing ids were accepted and `row_count`, the rows actually sent.
"""


@router.get("/events/{event_id}/timing-export/preflight", response_model=PreflightRead)
def timing_export_preflight(event_id: uuid.UUID, db: DB, ctx: ExportTiming) -> PreflightRead:
    """What an export would do now: mode, lock, row count and, in `REGISTRATION_ID` mode,
    the active participants without a registration id (each with a link to fix it)."""
    check = service.preflight(db, ctx, event_id=event_id)
    return PreflightRead(
        event_id=event_id, mode=check.mode, locked_at=check.locked_at,
        row_count=check.row_count, missing_registration_count=check.missing_count,
        missing_registration_ids=[MissingIdRead(id=m.id, name=m.name, bib=m.bib,
                                                edit_url=m.edit_url) for m in check.missing],
        download_url=f"/api/events/{event_id}/timing-export?format=csv",
    )


@router.get("/events/{event_id}/timing-export", response_class=StreamingResponse,
            description=EXPORT_DESCRIPTION, summary="Export the timing-system CSV",
            responses={200: {"content": {"text/csv": {}}},
                       409: {"description": "participants without a registration id"}})
def timing_export(
    event_id: uuid.UUID,
    request: Request,
    db: DB,
    ctx: ExportTiming,
    format: Annotated[str, Query(description="Only `csv`.")] = "csv",  # noqa: A002
    bom: Annotated[bool, Query(description="Start with a UTF-8 BOM (for Excel).")] = False,
    accept_missing_ids: Annotated[bool, Query(
        alias="acceptMissingIds",
        description="Export even though participants lack a registration id "
        "(REGISTRATION_ID mode); recorded in the audit entry.")] = False,
) -> StreamingResponse:
    service.check_format(format)
    plan = service.start_export(db, ctx, event_id=event_id,
                                accept_missing_ids=accept_missing_ids)
    db.commit()  # the lock and the "started" entry hold even if the client goes away
    batch_size = getattr(request.app.state, "timing_export_batch_size",
                         service.DEFAULT_BATCH_SIZE)
    chunks = service.export_csv(db, ctx, plan=plan, bom=bom, batch_size=batch_size)

    def body() -> Iterator[str]:
        completed = False
        try:
            yield from chunks
            completed = True
        finally:
            chunks.close()  # ends the server-side cursor before the audit write
            try:
                # A transaction of its own: the rows were read in the one the commit above
                # opened, which wrote nothing.
                db.rollback()
                service.record_export(db, ctx, plan=plan, completed=completed)
                db.commit()
            except Exception:  # the client already has its file; the log keeps the miss
                log.exception("timing_export_audit_failed", event_id=str(event_id),
                              rows=plan.rows)

    safe_name = "".join(c if c.isalnum() or c in "-_" else "-" for c in plan.event_name)
    name = f"timing-{safe_name[:60]}-{plan.mode.value}.csv"
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
