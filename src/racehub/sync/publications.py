"""Results publication to a registration platform, through a versioned approval gate.

"Prepare" (a sync run of type ``results_publish_prepare``, in a job) builds a version of
the event's results for one link (sync/publication_build.py), validates it and diffs it
against the link's last published version. Someone with ``sync:results:publish``
(EVENT_MANAGER and up) approves a version that passes validation, naming every warning it
has; only then does its publish job send it (sync/publish.py). A link's
``results_auto_approve_below`` setting approves a version without errors or warnings that
changes fewer rows than that, as "auto-approve". Versions are numbered per event and kept,
with who approved them, when, and what the platform answered row by row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, Invalid, NotFound
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.jobs import service as jobs_service
from racehub.jobs.handle import RunningJob
from racehub.providers import catalog
from racehub.providers.base import Capability
from racehub.sync import publication_build as build
from racehub.sync import runs
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    PublicationRow,
    PublicationStatus,
    ResultPublication,
    RowAnswer,
    RowChange,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
)
from racehub.sync.service import get_connection_or_raise

log = structlog.get_logger(__name__)

PUBLISH_KIND = "sync.results_publish"
MESSAGE_MAX = 1000
# The link setting (EventLink.sync_settings) that auto-approves small clean versions.
AUTO_APPROVE_SETTING = "results_auto_approve_below"
# A version whose publish is queued or running: the link prepares no other meanwhile.
IN_FLIGHT = (PublicationStatus.APPROVED, PublicationStatus.PUBLISHING)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class PublicationNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("publication version not found in this event")


class PublicationNotApprovable(Conflict):
    """Approving a version that has errors, was superseded, or went out already."""


class PublishInFlight(Conflict):
    """A link whose version is being published prepares no other until it ends."""


# --- prepare ---------------------------------------------------------------------------------


def request_prepare(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    event_id: uuid.UUID | None = None, trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> list[runs.RunRequest]:
    """A prepare run per provider event of the connection linked to a racehub event (to
    ``event_id``); a link with an active prepare run joins it. EVENT_MANAGER and up
    (sync:run:start): with auto-approval on, a prepared version may go out unapproved."""
    runs.require_permission(ctx, Perm.SYNC_RUN_START)
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    if not _takes_results(connection):
        raise Invalid(f"connectionId: {connection.provider} takes no results from racehub",
                      field="connectionId")
    links = runs.linked_links(db, ctx, connection_id=connection.id, event_id=event_id)
    if not links:
        where = "this event" if event_id is not None else "a racehub event"
        name = "eventId" if event_id is not None else "connectionId"
        raise Invalid(f"{name}: no provider event of this connection is linked to {where}; "
                      "link one first", field=name)
    for link in links:
        busy = in_flight(db, ctx, link_id=link.id)
        if busy is not None:
            raise PublishInFlight(f"version {busy.version} of "
                                  f"{link.provider_event_name or link.provider_event_ref} is "
                                  f"being published ({busy.status.value}): prepare again once "
                                  "it ends")
    return [runs.request_link_sync(db, ctx, connection=connection, link=link, trigger=trigger,
                                   sync_type=SyncType.RESULTS_PUBLISH_PREPARE)
            for link in links]


def request_event_prepare(db: Session, ctx: TenantContext, *,
                          event_id: uuid.UUID) -> list[runs.RunRequest]:
    """A prepare run per provider event linked to ``event_id`` of every registration
    connection that takes results (the Sync tab's "Prepare publication")."""
    requested = []
    for connection_id in runs.connections_feeding(db, ctx, event_id=event_id):
        connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
        if _takes_results(connection):
            requested += request_prepare(db, ctx, connection_id=connection_id,
                                         event_id=event_id)
    if not requested:
        raise Invalid("event_id: no registration platform that takes results (RunSignUp) "
                      "feeds this event: link one first", field="event_id")
    return requested


def _takes_results(connection: ProviderConnection) -> bool:
    spec = catalog.get_spec(connection.provider)
    return spec is not None and Capability.POST_RESULTS in spec.adapter_class().capabilities


def in_flight(db: Session, ctx: TenantContext, *,
              link_id: uuid.UUID) -> ResultPublication | None:
    return db.scalar(scoped(ctx, ResultPublication).where(
        ResultPublication.link_id == link_id, ResultPublication.status.in_(IN_FLIGHT)))


def run_prepare(handle: RunningJob, db: Session, ctx: TenantContext, *, sync_run_id: str,
                link_id: str | None = None, clock: Clock = _now) -> None:
    """The body of a "sync.results_publish_prepare" job: one version, committed with the
    run's end (and, auto-approved, with its publish job)."""
    run = db.scalar(select(SyncRun).where(SyncRun.id == uuid.UUID(sync_run_id),
                                          SyncRun.tenant_id == ctx.tenant_id)
                    .with_for_update().execution_options(populate_existing=True))
    if run is None or not run.status.is_active:
        handle.log("nothing to do: the sync run is " + (run.status.value if run else "gone"))
        return
    run.status = SyncStatus.RUNNING
    run.started_at = run.started_at or clock()
    run.attempts += 1
    link = db.get(EventLink, run.link_id) if run.link_id else None
    connection = db.get(ProviderConnection, run.connection_id) if run.connection_id else None
    try:
        if link is None or connection is None or link.event_id is None:
            raise Invalid("the provider event is no longer linked to a racehub event")
        handle.set_progress(stage="Preparing", message="reading the event's results")
        publication = prepare_version(db, ctx, link=link, connection=connection, run=run)
        run.fetched = publication.rows_total
        run.created, run.updated = publication.added, publication.changed
        run.withdrawn, run.unchanged = publication.removed, publication.unchanged
        run.problems = publication.errors + publication.warnings
        run.status = SyncStatus.SUCCEEDED
        run.finished_at = clock()
        auto = auto_approve(db, ctx, publication=publication, link=link, clock=clock)
        handle.set_progress(stage="Done", done=publication.rows_total, commit=False,
                            message=summary(publication) + (" (auto-approved)" if auto else ""))
        db.commit()
    except Exception as exc:
        db.rollback()
        db.refresh(run)
        run.status = SyncStatus.FAILED
        run.finished_at = clock()
        run.retryable = False
        run.error = (exc.detail if isinstance(exc, Invalid | Conflict)
                     else f"unexpected error ({type(exc).__name__}): {exc}")[:MESSAGE_MAX]
        db.commit()
        raise


def summary(publication: ResultPublication) -> str:
    return (f"version {publication.version}: {publication.rows_total} row(s), "
            f"{publication.added} added, {publication.changed} changed, "
            f"{publication.removed} removed; {publication.errors} error(s), "
            f"{publication.warnings} warning(s)")


def last_published(db: Session, ctx: TenantContext, *,
                   link_id: uuid.UUID) -> ResultPublication | None:
    return db.scalar(scoped(ctx, ResultPublication).where(
        ResultPublication.link_id == link_id,
        ResultPublication.status == PublicationStatus.PUBLISHED)
        .order_by(ResultPublication.version.desc()).limit(1))


def prepare_version(db: Session, ctx: TenantContext, *, link: EventLink,
                    connection: ProviderConnection, run: SyncRun | None = None
                    ) -> ResultPublication:
    """Build, validate and diff a version of the link's results; flushed, not committed.
    Earlier versions of the link still waiting for approval are superseded by it."""
    assert link.event_id is not None
    base = last_published(db, ctx, link_id=link.id)
    base_rows = list(db.scalars(select(PublicationRow).where(
        PublicationRow.publication_id == base.id))) if base else []
    drafts = build.gather(db, ctx, link=link)
    issues = build.validate(drafts)
    drafts = build.diff(drafts, base_rows)
    counts = {change: sum(1 for d in drafts if d.change == change) for change in RowChange}
    removal = build.removal_issue(counts[RowChange.REMOVED], base.version if base else None)
    if removal is not None:
        issues.append(removal)
    errors = sum(1 for i in issues if i.severity == build.ERROR)
    # Version numbers are per event: two links of one event preparing at once take turns.
    db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
               {"key": f"result-publication:{link.event_id}"})
    version = (db.scalar(select(func.max(ResultPublication.version)).where(
        ResultPublication.event_id == link.event_id)) or 0) + 1
    db.execute(update(ResultPublication).where(
        ResultPublication.tenant_id == ctx.tenant_id, ResultPublication.link_id == link.id,
        ResultPublication.status.in_((PublicationStatus.READY, PublicationStatus.INVALID)))
        .values(status=PublicationStatus.SUPERSEDED))
    publication = ResultPublication(
        tenant_id=ctx.tenant_id, event_id=link.event_id, link_id=link.id,
        connection_id=connection.id, provider=connection.provider,
        provider_event_ref=link.provider_event_ref, version=version,
        status=PublicationStatus.INVALID if errors else PublicationStatus.READY,
        sync_run_id=run.id if run else None, prepared_by_label=ctx.actor_label,
        base_version=base.version if base else None,
        rows_total=len(drafts) - counts[RowChange.REMOVED],
        added=counts[RowChange.ADDED], changed=counts[RowChange.CHANGED],
        removed=counts[RowChange.REMOVED], unchanged=counts[RowChange.UNCHANGED],
        errors=errors, warnings=len(issues) - errors,
        validation=[i.as_json() for i in issues], acknowledged_warnings=[],
        auto_approved=False, result_set_requested=False, publish_attempts=0,
        accepted=0, refused=0, sent=0)
    db.add(publication)
    db.flush()  # the rows below reference it
    rows = []
    for seq, draft in enumerate(drafts, start=1):
        sendable, why = _sendable(draft)
        rows.append({
            "tenant_id": ctx.tenant_id, "publication_id": publication.id, "seq": seq,
            "participant_id": draft.participant_id, "registration_ref": draft.registration_ref,
            "bib": draft.bib, "name": draft.name[:300], "category": draft.category,
            "status": draft.status, "place": draft.place, "chip_ms": draft.chip_ms,
            "gun_ms": draft.gun_ms, "gender": draft.gender, "age": draft.age,
            "change": draft.change, "previous": draft.previous, "problems": draft.problems,
            "sendable": sendable,
            "answer": RowAnswer.PENDING if sendable else RowAnswer.NOT_SENT,
            "answer_message": why})
    if rows:
        db.execute(insert(PublicationRow), rows)
    audit.record(db, ctx, action="results.prepare", target_type="result_publication",
                 target_id=publication.id,
                 after={"event": str(link.event_id), "link": str(link.id), "version": version,
                        "status": publication.status.value, "added": publication.added,
                        "changed": publication.changed, "removed": publication.removed,
                        "errors": publication.errors, "warnings": publication.warnings})
    db.flush()
    return publication


def _sendable(draft: build.Draft) -> tuple[bool, str | None]:
    if draft.change == RowChange.REMOVED:
        return False, "not in this version: it stays on the platform until removed there"
    if draft.registration_ref is None:
        return False, "not mapped to a registration on the platform"
    if not draft.registration_ref.isdigit() and not draft.bib:
        return False, (f"the platform gave no registration id ({draft.registration_ref}) and "
                       "the participant has no bib to match on")
    return True, None


# --- approve -----------------------------------------------------------------------------------


def get_publication_or_raise(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                             version: int, for_update: bool = False) -> ResultPublication:
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    stmt = scoped(ctx, ResultPublication).where(ResultPublication.event_id == event_id,
                                                ResultPublication.version == version)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    publication = db.scalar(stmt)
    if publication is None:
        raise PublicationNotFound()
    return publication


def warning_codes(publication: ResultPublication) -> list[str]:
    return sorted({i["code"] for i in publication.validation
                   if i.get("severity") == build.WARNING})


def approve(db: Session, ctx: TenantContext, *, event_id: uuid.UUID, version: int,
            acknowledged: list[str] | None = None, clock: Clock = _now) -> ResultPublication:
    """Approve a version that passes validation, naming each of its warning codes (or none
    when it has none), and queue its publish. A version whose publish failed for good is
    approved again to retry it (the publish is idempotent)."""
    publication = get_publication_or_raise(db, ctx, event_id=event_id, version=version,
                                           for_update=True)
    if publication.status == PublicationStatus.INVALID:
        raise PublicationNotApprovable(
            f"version {version} has {publication.errors} validation error(s): fix the results "
            "and prepare a new version")
    if publication.status not in (PublicationStatus.READY, PublicationStatus.FAILED):
        raise PublicationNotApprovable(f"version {version} is {publication.status.value}: only "
                                       "a ready version (or one whose publish failed) is "
                                       "approved")
    named = sorted(set(acknowledged or []))
    present = warning_codes(publication)
    missing = [c for c in present if c not in named]
    unknown = [c for c in named if c not in present]
    if missing:
        raise Invalid("acknowledgedWarnings: approve with the warnings named; missing: "
                      + ", ".join(f"{c} ({build.WARNING_CODES.get(c, c)})" for c in missing),
                      field="acknowledgedWarnings")
    if unknown:
        raise Invalid(f"acknowledgedWarnings: version {version} has no warning "
                      + ", ".join(unknown), field="acknowledgedWarnings")
    _approve(db, ctx, publication, acknowledged=named, auto=False, clock=clock)
    return publication


def _approve(db: Session, ctx: TenantContext, publication: ResultPublication, *,
             acknowledged: list[str], auto: bool, clock: Clock) -> None:
    again = publication.status == PublicationStatus.FAILED
    publication.status = PublicationStatus.APPROVED
    publication.approved_by_user_id = ctx.user_id
    publication.approved_by_label = ctx.actor_label
    publication.approved_at = clock()
    publication.acknowledged_warnings = acknowledged
    publication.auto_approved = auto
    publication.error = None
    job = jobs_service.start_job(
        db, ctx, kind=PUBLISH_KIND, subject_id=publication.id,
        params={"publication_id": str(publication.id), "link_id": str(publication.link_id)},
        priority=runs.PRIORITY_OF[SyncTrigger.MANUAL],
        message=f"results version {publication.version} to {publication.provider}")
    publication.publish_job_run_id = job.id
    audit.record(db, ctx, action="results.approve", target_type="result_publication",
                 target_id=publication.id,
                 after={"version": publication.version, "acknowledgedWarnings": acknowledged,
                        "auto": auto, "again": again})
    db.flush()


def auto_approve(db: Session, ctx: TenantContext, *, publication: ResultPublication,
                 link: EventLink, clock: Clock = _now) -> bool:
    """Approve ``publication`` as "auto-approve" when the link allows it: no error, no
    warning, and fewer changed rows (added + changed + removed) than its setting."""
    bound = (link.sync_settings or {}).get(AUTO_APPROVE_SETTING)
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
        return False
    changes = publication.added + publication.changed + publication.removed
    if publication.status != PublicationStatus.READY or publication.warnings or \
            changes >= bound:
        return False
    system = TenantContext.system(ctx.tenant_id,
                                  label=f"auto-approve (fewer than {bound} changed rows)")
    _approve(db, system, publication, acknowledged=[], auto=True, clock=clock)
    return True


# --- reading ---------------------------------------------------------------------------------


def list_publications(db: Session, ctx: TenantContext, *,
                      event_id: uuid.UUID) -> list[ResultPublication]:
    """The event's versions, newest first."""
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    return list(db.scalars(scoped(ctx, ResultPublication).where(
        ResultPublication.event_id == event_id).order_by(ResultPublication.version.desc())))


def list_rows(db: Session, ctx: TenantContext, *, publication: ResultPublication,
              changes: list[RowChange] | None = None, answer: RowAnswer | None = None,
              cursor: str | None = None, limit: int = 100
              ) -> tuple[list[PublicationRow], str | None]:
    """A version's rows in its order (only ``changes`` / ``answer`` when given)."""
    check_limit(limit)
    stmt = select(PublicationRow).where(PublicationRow.tenant_id == ctx.tenant_id,
                                        PublicationRow.publication_id == publication.id)
    if changes:
        stmt = stmt.where(PublicationRow.change.in_(changes))
    if answer is not None:
        stmt = stmt.where(PublicationRow.answer == answer)
    key = SortKey(columns=[PublicationRow.seq])
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda r: [r.seq])


def answer_counts(db: Session, publication: ResultPublication) -> dict[str, int]:
    found = {answer: int(count) for answer, count in db.execute(
        select(PublicationRow.answer, func.count())
        .where(PublicationRow.publication_id == publication.id)
        .group_by(PublicationRow.answer))}
    return {a.value: found.get(a, 0) for a in RowAnswer}
