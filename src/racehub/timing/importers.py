"""TIMING_RESULTS (E08): a timing system's result file (CSV or XLSX), imported through the
generic pipeline into one event's results."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import TimingIdentifier
from racehub.imports.exceptions import RejectedUpload
from racehub.imports.registry import Bucket, ImportRow, ImportType, RowOutcome, register
from racehub.jobs.registry import Owner
from racehub.timing import results
from racehub.timing.results import Outcome

TIMING_RESULTS = "TIMING_RESULTS"
SUMMARY_URL = "/results/imports/{import_id}/summary"


def _check_params(db: Session, ctx: TenantContext, params: dict[str, str]) -> dict[str, Any]:
    raw = (params.get("eventId") or "").strip()
    if not raw:
        raise RejectedUpload("eventId is required: which event are these results for?",
                             field="eventId")
    try:
        event_id = uuid.UUID(raw)
    except ValueError as exc:
        raise RejectedUpload(f"eventId {raw!r} is not a valid id", field="eventId") from exc
    # Held against deletion of the event until the import is queued (events delete_event).
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id, for_writing=True)
    # The mode of the upload's moment: one file resolves by one mode from start to end,
    # even if someone overrides the event's mode while it runs.
    return {"eventId": str(event.id),
            "identifierMode": TimingIdentifier(event.preferred_timing_identifier).value}


def _describe(db: Session, ctx: TenantContext, params: dict[str, Any]) -> str:
    event = events_service.get_event_or_raise(db, ctx, event_id=uuid.UUID(params["eventId"]))
    return f"{event.name} ({params['identifierMode']})"


def _belongs_to(db: Session, ctx: TenantContext, params: dict[str, Any]) -> list[Owner]:
    return events_service.event_owner(db, ctx, params.get("eventId"))


def _survey(rows: Iterable[ImportRow]) -> dict[str, Any]:
    return results.survey_rows(rows)


def _process(db: Session, ctx: TenantContext, *, params: dict[str, Any], survey: dict[str, Any],
             rows: list[ImportRow], job_run_id: uuid.UUID | None = None) -> list[RowOutcome]:
    outcomes = results.process_rows(
        db, ctx, event_id=uuid.UUID(params["eventId"]),
        mode=TimingIdentifier(params["identifierMode"]), rows=rows, survey=survey,
        import_id=results.import_of_job(db, ctx, job_run_id))
    # The unmapped columns too: the summary and its CSV show the row as the file had it.
    values = {r.number: {**getattr(r, "extras", {}), **r.values} for r in rows}
    return [RowOutcome(o.row_number, o.outcome.value, values[o.row_number], o.reason,
                       o.target_id) for o in outcomes]


_BUCKETS = (
    Bucket(Outcome.IMPORTED, "Results imported", "New results, stored on their participant."),
    Bucket(Outcome.UPDATED, "Results updated",
           "The participant had a result from an earlier file: it now holds this row's."),
    Bucket(Outcome.UNCHANGED, "Results already on file",
           "The participant already had exactly this result: nothing changed."),
    Bucket(Outcome.BIB_MISMATCH, "Imported with a bib mismatch",
           "The id resolved, but the file's Number is not the participant's bib: the result "
           "was stored with a warning. Check the bib."),
    Bucket(Outcome.UNMATCHED, "Unmatched",
           "The ExternalReferenceID names no participant in the event's identifier mode: not "
           "imported. Where the row's Number is a participant's bib, that participant is "
           "suggested (never applied)."),
    Bucket(Outcome.DUPLICATE, "Duplicate results",
           "The ExternalReferenceID is on several rows of the file: none was imported."),
    Bucket(Outcome.INVALID, "Other issues",
           "Rows refused for the reason given (unreadable time, unknown status...)."),
)

_FIELDS: dict[str, Any] = {
    "optional_columns": results.OPTIONAL_COLUMNS,
    "column_aliases": results.COLUMN_ALIASES,
    "keep_unmapped_columns": True,  # split columns are named by the timing system
}
# The mapping step's fields, set only where the pipeline has them.
_SUPPORTED = {f.name for f in dataclasses.fields(ImportType)}

register(ImportType(
    key=TIMING_RESULTS,
    label="Import results",
    permission=Perm.TIMING_RESULT_IMPORT,
    columns=results.REQUIRED_COLUMNS,
    fixed_schema=False,
    buckets=_BUCKETS,
    check_params=_check_params,
    survey=_survey,
    process=_process,
    verifying_skipped_because="Skipped — result files come from the timing system, matched "
                              "by ExternalReferenceID.",
    caller="e08",
    summary_url=SUMMARY_URL,
    describe_params=_describe,
    belongs_to=_belongs_to,
    **{k: v for k, v in _FIELDS.items() if k in _SUPPORTED},
))
