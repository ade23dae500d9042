"""Results pulled from a timing system (ChronoTrack, Copernico) into E08's Result store.

A run of sync type ``results_pull`` (job kind ``sync.results_pull``) over one timing link
(an EventLink of a SCORING connection): read everything first (``results_read``), then, in
ONE transaction, resolve and store the rows exactly as a result file's are
(``timing.results.store_rows`` in the event's identifier mode, then
``recompute_places``), record a SyncChange per result created or updated with the old
and new values (``results_changes``), one per row not stored (unmatched, duplicate,
invalid: action ``problem``, with E08's reason) and the run's counts. A failed read stores
nothing; a provider outage is retried after 2, 4 and 8 minutes like a participant sync.
Pulled twice, the second pull finds every result unchanged: nothing is duplicated (one
result per participant) and only what the timing system changed is updated.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, get_keyring
from racehub.core.exceptions import Invalid
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import TimingIdentifier
from racehub.jobs.handle import RunningJob
from racehub.providers.catalog import PROVIDERS, Direction
from racehub.sync import (
    attempts,
    engine,
    results_changes,
    results_read,
    results_schedule,
    runs,
)
from racehub.sync.apply import change_row, write_changes
from racehub.sync.models import (
    ChangeAction,
    EventLink,
    ProviderConnection,
    SyncRun,
    SyncStatus,
    SyncTrigger,
)
from racehub.sync.service import (
    AdapterFactory,
    get_connection_or_raise,
    read_credentials,
    secret_variants,
)
from racehub.timing import results as timing_results
from racehub.timing.results import Outcome

Clock = Callable[[], datetime]
STORED = (Outcome.IMPORTED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.BIB_MISMATCH)


def _now() -> datetime:
    return datetime.now(UTC)


# --- asking for a pull -------------------------------------------------------------------------


def timing_links(db: Session, ctx: TenantContext, *, connection: ProviderConnection,
                 event_id: uuid.UUID | None = None) -> list[EventLink]:
    """The connection's linked timing events (of ``event_id``); 422 naming the field when
    the connection is no timing system or nothing is linked."""
    if (connection.direction != Direction.SCORING
            or connection.provider not in results_read.PULLABLE):
        raise Invalid(f"connectionId: {connection.name} is not a timing system racehub pulls "
                      "results from (ChronoTrack or Copernico)", field="connectionId")
    links = runs.linked_links(db, ctx, connection_id=connection.id, event_id=event_id)
    if not links:
        field = "eventId" if event_id is not None else "connectionId"
        raise Invalid(f"{field}: no timing event or race of this connection is linked to "
                      f"{'this event' if event_id else 'a racehub event'}; link one first",
                      field=field)
    return links


def request_results_pull(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    event_id: uuid.UUID | None = None, link_id: uuid.UUID | None = None,
    trigger: SyncTrigger = SyncTrigger.MANUAL, now: datetime | None = None,
) -> list[runs.RunRequest]:
    """A pull per linked timing race of the connection (of ``event_id``, or the one link
    ``link_id``), each with its job; a link with an active pull joins it."""
    runs.require_permission(ctx, Perm.SYNC_TIMING_RUN)
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    links = timing_links(db, ctx, connection=connection, event_id=event_id)
    if link_id is not None:
        links = [link for link in links if link.id == link_id]
        if not links:
            raise Invalid("linkId: not a linked timing race of this connection",
                          field="linkId")
    at = now or _now()
    return [results_schedule.request_pull(db, ctx, link=link, trigger=trigger, now=at)
            for link in links]


# --- one attempt -------------------------------------------------------------------------------


def run_results_pull(
    handle: RunningJob, db: Session, ctx: TenantContext, *, sync_run_id: str,
    link_id: str | None = None, keyring: Keyring | None = None,
    adapter_factory: AdapterFactory | None = None, clock: Clock = _now,
) -> None:
    """One attempt of one results pull (the body of a "sync.results_pull" job). ``link_id``
    is in the job's params for its lock only."""
    started = attempts.begin_attempt(handle, db, ctx, sync_run_id, clock,
                                   what="the results pull")
    if started is None:
        return
    run, link, connection = started
    if link is None or connection is None or link.event_id is None:
        engine._finish(db, run, SyncStatus.FAILED, clock, error="the timing race is no "
                       "longer linked to a racehub event", retryable=False)
        db.commit()
        return
    handle.set_progress(stage="Reading", message=f"attempt {run.attempts}: reading results")
    secrets: set[str] = set()
    with engine.failures_recorded(handle, db, run, clock, secrets):
        credentials = read_credentials(keyring or get_keyring(), connection)
        secrets |= secret_variants(credentials)
        factory = adapter_factory or engine._default_factory()
        with factory(connection, credentials) as adapter:
            read = results_read.read_results(adapter, link.provider_event_ref,
                                             connection.provider)
        handle.set_progress(stage="Storing", done=0, total=read.fetched, commit=False,
                            message=f"{read.fetched} result row(s) read; storing")
        store_pull(db, ctx, run, link, connection, read)
        engine._finish(db, run, SyncStatus.SUCCEEDED, clock)
        link.last_success_at = run.finished_at
        handle.set_progress(stage="Done", done=read.fetched, commit=False, counts=counts(run),
                            message=summary(run))
        db.commit()


def _ref(source_ref: str | None) -> str | None:
    return source_ref[:200] if source_ref else None


def counts(run: SyncRun) -> dict[str, Any]:
    return {"fetched": run.fetched, "created": run.created, "updated": run.updated,
            "unchanged": run.unchanged, "problems": run.problems, "onCourse": run.on_course}


def summary(run: SyncRun) -> str:
    return (f"{run.fetched} result row(s) read: {run.created} created, {run.updated} updated, "
            f"{run.unchanged} unchanged, {run.problems} not stored, {run.on_course} on the "
            "course")


# --- storing what was read ---------------------------------------------------------------------


def store_pull(db: Session, ctx: TenantContext, run: SyncRun, link: EventLink,
               connection: ProviderConnection, read: results_read.PullRead) -> None:
    """Store one pull's rows through E08's rules, in the caller's transaction."""
    assert link.event_id is not None
    event = events_service.get_event_or_raise(db, ctx, event_id=link.event_id)
    mode = TimingIdentifier(event.preferred_timing_identifier)
    spec = PROVIDERS.get(connection.provider)
    source = spec.label if spec else connection.provider
    pulled = results_read.to_parsed_rows(read, connection.provider)
    before = results_changes.snapshot(db, ctx, event_id=event.id)
    outcomes = timing_results.store_rows(
        db, ctx, event_id=event.id, mode=mode, rows=[p.parsed for p in pulled.rows],
        duplicates=pulled.duplicates, import_id=None, source=source,
        blank_reasons=pulled.blank_reasons)
    db.flush()  # the rows must be in the table the ranking reads
    timing_results.recompute_places(db, ctx, event_id=event.id)
    stored = {o.row_number: o for o in outcomes if o.outcome in STORED}
    after = results_changes.snapshot(db, ctx, event_id=event.id, participant_ids={
        o.target_id for o in stored.values() if o.target_id is not None})
    changes: list[dict[str, Any]] = []
    created = updated = unchanged = 0
    by_number = {p.parsed.row_number: p for p in pulled.rows}

    def problem(source_ref: str | None, outcome: Outcome, message: str) -> None:
        changes.append(change_row(run, ChangeAction.PROBLEM, source_ref=_ref(source_ref),
                                  message=f"{outcome.value}: {message}"))

    for outcome in outcomes:
        row = by_number[outcome.row_number]
        if outcome.outcome not in STORED:
            problem(row.source_ref, outcome.outcome, f"({row.label}) {outcome.reason}")
            continue
        assert outcome.target_id is not None
        old = before.get(outcome.target_id)
        diff = results_changes.diff(old, after[outcome.target_id])
        if old is not None and not diff:
            unchanged += 1
            continue
        created += old is None
        updated += old is not None
        changes.append(change_row(
            run, ChangeAction.CREATED if old is None else ChangeAction.UPDATED,
            participant_id=outcome.target_id, source_ref=_ref(row.source_ref), changes=diff,
            message=outcome.reason or None))
    for invalid in pulled.invalid:
        problem(invalid.source_ref, Outcome.INVALID, f"({invalid.label}) {invalid.reason}")
    for ref, unread in zip(read.problem_refs, read.problems, strict=True):
        problem(ref, Outcome.INVALID, unread)
    write_changes(db, changes)
    run.fetched = read.fetched
    run.created, run.updated, run.unchanged = created, updated, unchanged
    run.problems = len(outcomes) - len(stored) + len(pulled.invalid) + len(read.problems)
    run.on_course = pulled.on_course
