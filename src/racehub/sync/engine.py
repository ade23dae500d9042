"""The participant pull of one sync run: fetch -> stage -> apply.

Fetch: the link's pages (``list_participants`` since the cursor minus the overlap window,
and ``list_withdrawn`` where the adapter offers it) become StagedRows, committed page by
page with the job's progress. Rows the adapter could not read are staged as problems.
A read that fails leaves the staged rows unapplied: nothing is applied from a partial
read, and no withdrawal is inferred from one.

Apply: every staged row in ONE transaction, together with the synced records, the
changes, the counts, the link's cursor and the deletion of the staged rows, so a crash
either applied all of it and moved the cursor, or nothing. The preview and the circuit
breaker sit between the two steps (``staged`` in the job's checkpoint marks the border):
a run may stop there for a person (sync/review.py), and the job that resumes it applies
what they chose.

A worker killed while fetching starts the read again (the staged rows of the cut read are
dropped); killed while applying, it applies the staged rows again (the first try was
rolled back with its transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring, get_keyring
from racehub.db.bulk import copy_rows
from racehub.jobs.exceptions import JobCancelled
from racehub.jobs.handle import RunningJob
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.providers.base import Capability, Page, ProviderAdapter
from racehub.providers.errors import ProviderError
from racehub.settings import get_settings
from racehub.sync import attempts, mapping, preview, review, schedule, staging, timing_push
from racehub.sync.apply import Applier
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    StagedKind,
    StagedRow,
    SyncRun,
    SyncStatus,
)
from racehub.sync.prefetch import Prefetch
from racehub.sync.service import AdapterFactory, read_credentials, redact, secret_variants

log = structlog.get_logger(__name__)

MESSAGE_MAX = staging.MESSAGE_MAX

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class SyncFailed(Exception):
    """The run failed; the message is the scrubbed line stored on the run."""


def run_participant_sync(
    handle: RunningJob, db: Session, ctx: TenantContext, *, sync_run_id: str,
    link_id: str | None = None, keyring: Keyring | None = None,
    adapter_factory: AdapterFactory | None = None, clock: Clock = _now,
    overlap: timedelta | None = None,
) -> None:
    """One attempt of one sync run (the body of a "sync.participants" job). ``link_id`` is
    in the job's params for its lock (one attempt of a link at a time) only."""
    # Reads of the provider count as attempts: applying a reviewed read is not one.
    started = attempts.begin_attempt(
        handle, db, ctx, sync_run_id, clock, what="the sync run",
        counts=lambda run: not (run.reviewed_at is not None and handle.checkpoint.get("staged")))
    if started is None:
        return
    run, link, connection = started
    if link is None or connection is None or link.event_id is None:
        _finish(db, run, SyncStatus.FAILED, clock, error="the provider event is no longer "
                "linked to a racehub event", retryable=False)
        db.commit()
        return
    handle.set_progress(stage="Starting", message=f"attempt {run.attempts}")
    secrets: set[str] = set()
    with failures_recorded(handle, db, run, clock, secrets):
        credentials = read_credentials(keyring or get_keyring(), connection)
        secrets |= secret_variants(credentials)
        if not handle.checkpoint.get("staged"):
            factory = adapter_factory or _default_factory()
            with factory(connection, credentials) as adapter:
                stage(handle, db, run, link, connection, adapter, overlap=overlap)
        # The border: a held read, or a manual one asking for a preview, stops here for a
        # person (sync/review.py); the job ends and its resumption applies what they chose.
        if review.stop_before_apply(handle, db, run, link, clock=clock):
            return
        apply_run(handle, db, ctx, run, link, connection, clock=clock)


@contextmanager
def failures_recorded(handle: RunningJob, db: Session, run: SyncRun, clock: Clock,
                      secrets: set[str]) -> Iterator[None]:
    """How an attempt of any run type ends when its body raises: what it wrote is rolled
    back and the run records why (scrubbed of ``secrets``, filled in by the body once it
    has read the credentials); a provider outage waits for its retry (the kind's retry
    policy decides in the runner, the run says the same, and when)."""
    try:
        yield
    except JobCancelled:
        db.rollback()
        _give_up(db, run, SyncStatus.CANCELLED, clock, error="cancelled")
        db.commit()
        raise
    except ProviderError as exc:
        db.rollback()
        retry_at = PROVIDER_OUTAGES.next_attempt_at(exc, retries=handle.retries, now=clock())
        _failed_attempt(db, run, redact(str(exc), secrets)[:MESSAGE_MAX],
                        retryable=exc.retryable, retry_at=retry_at, clock=clock)
        db.commit()
        raise
    except DecryptError as exc:
        db.rollback()
        _give_up(db, run, SyncStatus.FAILED, clock, error=str(exc)[:MESSAGE_MAX])
        db.commit()
        raise SyncFailed(str(exc)) from None
    except Exception as exc:
        db.rollback()
        message = redact(f"unexpected error ({type(exc).__name__}): {exc}", secrets)
        _give_up(db, run, SyncStatus.FAILED, clock, error=message[:MESSAGE_MAX])
        db.commit()
        raise


def _default_factory() -> AdapterFactory:
    from racehub.sync.adapters import build_adapter

    return build_adapter


def _finish(db: Session, run: SyncRun, status: SyncStatus, clock: Clock, *,
            error: str | None = None, retryable: bool | None = None) -> None:
    run.status = status
    run.finished_at = clock()
    run.next_attempt_at = None
    run.error = error
    run.retryable = retryable
    schedule.run_ended(db, run)  # the link's next scheduled run counts from this end


def _give_up(db: Session, run: SyncRun, status: SyncStatus, clock: Clock, *,
             error: str) -> None:
    """End the run without applying anything (its staged rows go)."""
    db.refresh(run)
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    preview.drop(db, run.id)  # a reviewed run that failed applying
    _finish(db, run, status, clock, error=error, retryable=False)


def _failed_attempt(db: Session, run: SyncRun, message: str, *, retryable: bool,
                    retry_at: datetime | None, clock: Clock) -> None:
    """A provider error ended the read (nothing was applied): the run waits for its retry
    at ``retry_at`` (an outage or throttling, retries left), else it failed for good."""
    db.refresh(run)
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    if retry_at is None:
        _finish(db, run, SyncStatus.FAILED, clock, error=message, retryable=retryable)
        return
    run.status = SyncStatus.RETRYING  # still active: a request meanwhile joins it
    run.next_attempt_at = retry_at
    run.error, run.retryable = message, retryable
    log.info("sync.retry_scheduled", sync_run_id=str(run.id), attempt=run.attempts,
             next_attempt_at=retry_at.isoformat())


# --- fetch -> stage ---------------------------------------------------------------------------


def since_of(run: SyncRun, link: EventLink, overlap: timedelta) -> datetime | None:
    """Where an incremental read starts: the cursor minus the overlap window (a change
    the provider saved late, with an earlier time, is read again rather than skipped)."""
    if run.full_refresh or link.cursor is None:
        return None
    return link.cursor - overlap


PREFETCH_PAGES = 2  # pages read ahead of the one being staged


def stage(handle: RunningJob, db: Session, run: SyncRun, link: EventLink,
          connection: ProviderConnection, adapter: ProviderAdapter, *,
          overlap: timedelta | None = None) -> None:
    """Read every page into StagedRows, committing page by page. The pages are read by a
    thread of their own, a page or two ahead (``Prefetch``), so that staging a page overlaps
    reading the next; registrations found unchanged are counted, not staged
    (``staging.UnchangedFilter``)."""
    if overlap is None:
        overlap = timedelta(minutes=get_settings().sync_cursor_overlap_minutes)
    # A read cut short (a killed worker) starts again: its pages are not all the pages.
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    since = since_of(run, link, overlap)
    run.cursor_before = link.cursor
    run.fetched = run.problems = run.unchanged = 0
    changed = f" changed since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    handle.set_progress(stage="Fetching", done=0, total=None,
                        message=f"reading registrations{changed}")
    seq = 0
    rules = mapping.connection_rules(connection.field_mapping).rules
    unchanged = staging.UnchangedFilter(db, link)

    def checkpoint(staged: bool) -> dict[str, Any]:
        newest = unchanged.newest
        return {"staged": staged, "seq": seq, "unchanged": len(unchanged.unchanged),
                "unchanged_newest": newest.isoformat() if newest else None}

    def stage_page(page: Page[Any], kind: StagedKind, what: str) -> None:
        nonlocal seq
        rows: list[dict[str, Any]] = []
        problems = list(page.problems)
        if kind == StagedKind.PARTICIPANT:
            read = []
            for index, item in enumerate(page.items):
                mapped = mapping.map_participant(item, rules, row=index)
                read.append(staging.participant_data(mapped))
                problems += mapped.problems  # the field stays empty; the row is applied
            staged = [(StagedKind.PARTICIPANT, data) for data in unchanged.keep(read)]
        else:
            staged = [(kind, staging.withdrawal_data(item)) for item in page.items]
        staged += [(StagedKind.PROBLEM, staging.problem_data(problem, page.number, what))
                   for problem in problems]
        for staged_kind, data in staged:
            seq += 1
            rows.append({"tenant_id": run.tenant_id, "run_id": run.id, "seq": seq,
                         "kind": staged_kind, "source_ref": data.get("ref"),
                         "data": staging.encoded(data)})
        copy_rows(db, StagedRow.__table__, rows)
        if kind == StagedKind.PARTICIPANT:
            run.fetched += page.row_count
        run.problems += len(problems)
        run.unchanged = len(unchanged.unchanged)
        handle.commit_batch(checkpoint=checkpoint(False), done=run.fetched,
                            counts={"fetched": run.fetched, "problems": run.problems,
                                    "unchanged": run.unchanged},
                            message=f"{what}: page {page.number} read")

    def pages() -> Iterator[tuple[StagedKind, str, Page[Any]]]:
        for page in adapter.list_participants(link.provider_event_ref, since=since):
            yield StagedKind.PARTICIPANT, "registrations", page
        if adapter.supports(Capability.LIST_WITHDRAWN):
            for withdrawn in adapter.list_withdrawn(link.provider_event_ref, since=since):
                yield StagedKind.WITHDRAWAL, "withdrawals", withdrawn

    with Prefetch(pages, depth=PREFETCH_PAGES) as read:
        for kind, what, page in read:
            stage_page(page, kind, what)
    handle.commit_batch(checkpoint=checkpoint(True), done=run.fetched,
                        counts={"fetched": run.fetched, "problems": run.problems,
                                "unchanged": run.unchanged},
                        message=f"read {run.fetched} registration(s); applying")


# --- apply ----------------------------------------------------------------------------------


def apply_run(handle: RunningJob, db: Session, ctx: TenantContext, run: SyncRun,
              link: EventLink, connection: ProviderConnection, *, clock: Clock = _now) -> None:
    """Apply what the run staged, all in the caller's one transaction, then commit."""
    handle.set_progress(stage="Applying", done=0, total=run.fetched, commit=False)
    applier = Applier(db, ctx, run=run, link=link, connection=connection, clock=clock)
    # Registrations the staging step found unchanged (not staged): counted, and their
    # times move the cursor as applied rows' do.
    applier.skipped_unchanged(int(handle.checkpoint.get("unchanged") or 0),
                              staging.as_datetime(handle.checkpoint.get("unchanged_newest")))
    # Registrations a reviewer did not select: not applied, the cursor stays before them.
    reviewed = run.reviewed_at is not None  # else no preview: no query spent on one
    left = preview.left_out(db, run.id) if reviewed else set()
    done = 0
    for batch in staging.staged_participants(db, run.id):
        applier.apply_participants(preview.kept(batch, left, applier.leave_out))
        done += len(batch)
        handle.set_progress(done=done, commit=False)
    withdrawals = [row for rows in staging.staged_rows(db, run.id, StagedKind.WITHDRAWAL)
                   for row in rows]
    applier.apply_withdrawals(preview.kept(withdrawals, left, applier.leave_out))
    for rows in staging.staged_rows(db, run.id, StagedKind.PROBLEM):
        applier.record_problems(rows)
    applier.finish()
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    if reviewed:
        preview.drop(db, run.id)
    _finish(db, run, SyncStatus.SUCCEEDED, clock)
    link.last_success_at = run.finished_at
    # A changed start list goes on to the event's timing systems in race week and live
    # (committed with this run: the pushes' jobs see what it applied).
    timing_push.request_after_participant_sync(db, ctx, run=run, now=clock())
    handle.set_progress(stage="Done", done=done, commit=False, counts={
        "fetched": run.fetched, "created": run.created, "updated": run.updated,
        "unchanged": run.unchanged, "withdrawn": run.withdrawn, "conflicts": run.conflicts,
        "problems": run.problems}, message=summary(run))
    db.commit()


def summary(run: SyncRun) -> str:
    return (f"{run.fetched} read: {run.created} created, {run.updated} updated, "
            f"{run.unchanged} unchanged, {run.withdrawn} withdrawn, {run.conflicts} "
            f"conflict(s), {run.problems} problem(s)")
