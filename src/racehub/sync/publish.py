"""Sending an approved results version to the registration platform (a job, retried).

Idempotent by the platform's own ids, whatever happened before: the version keeps the
platform's result set (``result_set_id``; the link's earlier versions' set is reused, so a
new version edits rows rather than adding a second copy), and every attempt first reads
that set back. A row the set already holds as prepared is answered "accepted" with the
platform's row id and not sent again; a row it holds with other values is sent as an edit
of that row id; only a row it lacks is added. So a retried publish (a reply lost after the
platform saved part of a batch, an HTTP 500 mid-batch, a killed worker) or a repeated one
creates no second result set and no second row. Rows go out in small batches, each
committed with its answers; the adapter spends the connection's shared request budget.
After the last batch the set is read again for the row ids of the rows added.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, get_keyring
from racehub.jobs.exceptions import JobCancelled
from racehub.jobs.handle import RunningJob
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.providers.base import ProviderAdapter, ProviderResult
from racehub.providers.base import ResultStatus as WireStatus
from racehub.providers.errors import BadData, ProviderError
from racehub.settings import Settings, get_settings
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    PublicationRow,
    PublicationStatus,
    ResultPublication,
    RowAnswer,
)
from racehub.sync.service import AdapterFactory, read_credentials, redact, secret_variants

log = structlog.get_logger(__name__)

MESSAGE_MAX = 1000
# Rows per full-results POST: RACEHUB_PUBLISH_BATCH_SIZE (100 by default).
RESULT_SET_NAME = "Results"

Clock = Callable[[], datetime]
WIRE_STATUS = {"finished": WireStatus.FINISHED, "DNF": WireStatus.DNF,
               "DNS": WireStatus.DNS, "DQ": WireStatus.DQ}


def _now() -> datetime:
    return datetime.now(UTC)


def _default_factory() -> AdapterFactory:
    from racehub.sync.adapters import build_adapter

    return build_adapter


def run_publish(handle: RunningJob, db: Session, ctx: TenantContext, *, publication_id: str,
                link_id: str | None = None, keyring: Keyring | None = None,
                adapter_factory: AdapterFactory | None = None, clock: Clock = _now,
                batch_size: int | None = None, settings: Settings | None = None) -> None:
    """One attempt of publishing a version (the body of a "sync.results_publish" job).
    ``link_id`` is in the job's params for its lock (one publish per link at a time).
    Rows go in batches of ``batch_size``, by default RACEHUB_PUBLISH_BATCH_SIZE."""
    batch_size = batch_size or (settings or get_settings()).publish_batch_size
    publication = _locked(db, ctx, publication_id)
    if publication is None or publication.status not in (PublicationStatus.APPROVED,
                                                          PublicationStatus.PUBLISHING):
        handle.log("nothing to do: the version is "
                   + (publication.status.value if publication else "gone"))
        return
    link = db.get(EventLink, publication.link_id) if publication.link_id else None
    connection = (db.get(ProviderConnection, publication.connection_id)
                  if publication.connection_id else None)
    publication.status = PublicationStatus.PUBLISHING
    publication.publish_attempts += 1
    publication.next_attempt_at = None
    publication.error = None
    handle.set_progress(stage="Starting", message=f"attempt {publication.publish_attempts}")
    secrets: set[str] = set()
    try:
        if link is None or connection is None:
            raise BadData("the provider event or its connection was removed")
        credentials = read_credentials(keyring or get_keyring(), connection)
        secrets = secret_variants(credentials)
        with (adapter_factory or _default_factory())(connection, credentials) as adapter:
            _publish(handle, db, publication, adapter, clock=clock, batch_size=batch_size)
    except JobCancelled:
        db.rollback()
        _ended(db, ctx, publication_id, PublicationStatus.FAILED, "cancelled")
        db.commit()
        raise
    except ProviderError as exc:
        db.rollback()
        retry_at = PROVIDER_OUTAGES.next_attempt_at(exc, retries=handle.retries, now=clock())
        message = redact(str(exc), secrets)[:MESSAGE_MAX]
        if retry_at is None:
            _ended(db, ctx, publication_id, PublicationStatus.FAILED, message)
        else:
            _ended(db, ctx, publication_id, PublicationStatus.PUBLISHING,
                   f"{message} (retrying at {retry_at:%H:%M} UTC)", retry_at=retry_at)
        db.commit()
        raise
    except Exception as exc:
        db.rollback()
        _ended(db, ctx, publication_id, PublicationStatus.FAILED,
               redact(f"unexpected error ({type(exc).__name__}): {exc}", secrets))
        db.commit()
        raise


def _locked(db: Session, ctx: TenantContext, publication_id: str) -> ResultPublication | None:
    return db.scalar(select(ResultPublication).where(
        ResultPublication.id == uuid.UUID(publication_id),
        ResultPublication.tenant_id == ctx.tenant_id)
        .with_for_update().execution_options(populate_existing=True))


def _ended(db: Session, ctx: TenantContext, publication_id: str, status: PublicationStatus,
           error: str, *, retry_at: datetime | None = None) -> None:
    publication = _locked(db, ctx, publication_id)
    if publication is None:
        return
    publication.status = status
    publication.error = error[:MESSAGE_MAX]
    publication.next_attempt_at = retry_at


def _publish(handle: RunningJob, db: Session, publication: ResultPublication,
             adapter: ProviderAdapter, *, clock: Clock, batch_size: int) -> None:
    ref = publication.provider_event_ref
    set_id = _result_set(handle, db, publication, adapter)
    rows = list(db.scalars(select(PublicationRow).where(
        PublicationRow.publication_id == publication.id, PublicationRow.sendable)
        .order_by(PublicationRow.seq)))
    held = _read_set(adapter, ref, set_id)
    outgoing: list[tuple[PublicationRow, ProviderResult]] = []
    for row in rows:
        wire = _wire(row, ref)
        there = held.find(row)
        if there is not None and _same(there, wire):
            _answer(row, RowAnswer.ACCEPTED, clock, row_id=there.ref,
                    message="on the platform as prepared")
            continue
        if there is not None:
            wire.ref = there.ref  # an edit of the platform's row
        outgoing.append((row, wire))
    handle.set_progress(stage="Publishing", done=0, total=len(outgoing), commit=False)
    handle.commit_batch(checkpoint={"result_set_id": set_id}, done=0,
                        message=f"{len(rows) - len(outgoing)} row(s) already on the platform; "
                                f"{len(outgoing)} to send")
    done = 0
    for start in range(0, len(outgoing), batch_size):
        batch = outgoing[start:start + batch_size]
        report = adapter.post_results(ref, [wire for _, wire in batch], result_set_id=set_id)
        refused = {problem.row: problem.message for problem in report.problems}
        for index, (row, wire) in enumerate(batch):
            if index in refused:
                _answer(row, RowAnswer.REFUSED, clock, message=refused[index])
            else:
                _answer(row, RowAnswer.ACCEPTED, clock, row_id=wire.ref,
                        message="edited" if wire.ref else "added")
        done += len(batch)
        publication.sent += len(batch)
        handle.commit_batch(checkpoint={"result_set_id": set_id, "sent": done}, done=done,
                            message=f"batch of {len(batch)} sent")
    # The row ids of the rows added: the platform's reply does not give them.
    held = _read_set(adapter, ref, set_id)
    for row in rows:
        if row.answer == RowAnswer.ACCEPTED and row.provider_row_id is None:
            there = held.find(row)
            if there is None:
                _answer(row, RowAnswer.REFUSED, clock, message="accepted, but not in the "
                        "result set when read back")
            else:
                row.provider_row_id = there.ref
    counts = {answer: sum(1 for r in rows if r.answer == answer) for answer in RowAnswer}
    publication.accepted = counts[RowAnswer.ACCEPTED]
    publication.refused = counts[RowAnswer.REFUSED]
    publication.status = PublicationStatus.PUBLISHED
    publication.published_at = clock()
    publication.error = None
    handle.set_progress(stage="Done", done=done, commit=False, counts={
        "sent": done, "accepted": publication.accepted, "refused": publication.refused},
        message=f"version {publication.version} published: {publication.accepted} row(s) "
                f"accepted, {publication.refused} refused")
    db.commit()


def _answer(row: PublicationRow, answer: RowAnswer, clock: Clock, *,
            row_id: str | None = None, message: str | None = None) -> None:
    row.answer = answer
    row.provider_row_id = row_id
    row.answer_message = (message or "")[:MESSAGE_MAX] or None
    row.answered_at = clock()


def _result_set(handle: RunningJob, db: Session, publication: ResultPublication,
                adapter: ProviderAdapter) -> str:
    """The version's result set: its own (a retry), else the one the link's earlier
    versions went into, else a new one. Asking for a new one is recorded and committed
    first, so an attempt cut before the answer finds the set by its name instead of
    creating a second."""
    if publication.result_set_id:
        return publication.result_set_id
    earlier = db.scalar(select(ResultPublication.result_set_id).where(
        ResultPublication.link_id == publication.link_id,
        ResultPublication.id != publication.id,
        ResultPublication.result_set_id.is_not(None))
        .order_by(ResultPublication.version.desc()).limit(1))
    configured = (getattr(adapter, "settings", None) and
                  getattr(adapter.settings, "individual_result_set_id", None))
    set_id = earlier or configured
    ref = publication.provider_event_ref
    if set_id is None:
        name = publication.result_set_name or _set_name(adapter, publication)
        if publication.result_set_requested:
            set_id = next((sid for sid, sname in reversed(adapter.result_sets(ref))
                           if sname == name), None)
        if set_id is None:
            publication.result_set_name = name
            publication.result_set_requested = True
            handle.commit_batch(checkpoint={}, done=0, message=f"creating result set {name!r}")
            set_id = adapter.create_result_set(ref, name)
    publication.result_set_id = str(set_id)
    handle.commit_batch(checkpoint={"result_set_id": publication.result_set_id}, done=0,
                        message=f"result set {publication.result_set_id}")
    return publication.result_set_id


def _set_name(adapter: ProviderAdapter, publication: ResultPublication) -> str:
    configured = getattr(getattr(adapter, "settings", None), "result_set_name", None)
    return str(configured or RESULT_SET_NAME)


class _Held:
    """A result set's rows by registration id and by bib."""

    def __init__(self, results: Iterable[ProviderResult]) -> None:
        self.by_registration: dict[str, ProviderResult] = {}
        self.by_bib: dict[str, ProviderResult] = {}
        for result in results:
            if result.participant_ref:
                self.by_registration.setdefault(result.participant_ref, result)
            if result.bib:
                self.by_bib.setdefault(result.bib, result)

    def find(self, row: PublicationRow) -> ProviderResult | None:
        ref = row.registration_ref or ""
        found = self.by_registration.get(ref) if ref.isdigit() else None
        if found is None and row.bib:
            found = self.by_bib.get(row.bib)
        return found


def _read_set(adapter: ProviderAdapter, ref: str, set_id: str) -> _Held:
    """Every row of the set; a row the adapter cannot read fails the publish (which rows
    are ours could not be told, and a guess could duplicate one)."""
    results: list[ProviderResult] = []
    for page in adapter.read_result_set(ref, set_id):
        if page.problems:
            problem = page.problems[0]
            raise BadData(f"result set {set_id}: row {problem.ref or problem.row} unreadable "
                          f"({problem.field or 'row'}: {problem.message}); "
                          f"{len(page.problems)} such row(s) on page {page.number}")
        results.extend(page.items)
    return _Held(results)


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else round(value.total_seconds() * 1000)


def _wire(row: PublicationRow, ref: str) -> ProviderResult:
    status = WIRE_STATUS[row.status]
    finished = status is WireStatus.FINISHED
    registration = row.registration_ref or ""
    return ProviderResult(
        event_ref=ref, participant_ref=registration if registration.isdigit() else None,
        bib=None if registration.isdigit() else row.bib, place=row.place if finished else None,
        clock_time=(timedelta(milliseconds=row.gun_ms)
                    if finished and row.gun_ms is not None else None),
        chip_time=(timedelta(milliseconds=row.chip_ms)
                   if finished and row.chip_ms is not None else None),
        status=status)


def _same(there: ProviderResult, wire: ProviderResult) -> bool:
    key: Callable[[ProviderResult], tuple[Any, ...]] = lambda r: (  # noqa: E731
        r.status, r.place, _ms(r.clock_time), _ms(r.chip_time))
    return key(there) == key(wire)
