"""The participant pull of one sync run: fetch -> stage -> apply.

Fetch: the link's pages (``list_participants`` since the cursor minus the overlap window,
and ``list_withdrawn`` where the adapter offers it) become StagedRows, committed page by
page with the job's progress. Rows the adapter could not read are staged as problems.
A read that fails leaves the staged rows unapplied: nothing is applied from a partial
read, and no withdrawal is inferred from one.

Apply: every staged row in ONE transaction, together with the synced records, the
changes, the counts, the link's cursor and the deletion of the staged rows, so a crash
either applied all of it and moved the cursor, or nothing. Part 2's preview and circuit
breaker sit between the two steps (``staged`` in the job's checkpoint marks the border).

A worker killed while fetching starts the read again (the staged rows of the cut read are
dropped); killed while applying, it applies the staged rows again (the first try was
rolled back with its transaction).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, selectinload

from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring, get_keyring
from racehub.events.models import EventParticipant
from racehub.jobs.exceptions import JobCancelled
from racehub.jobs.runner import JobHandle
from racehub.providers.base import (
    Capability,
    Page,
    ProviderAdapter,
    ProviderParticipant,
    ProviderWithdrawal,
    RowProblem,
)
from racehub.providers.errors import ProviderError
from racehub.settings import get_settings
from racehub.sync import runs
from racehub.sync.models import (
    CategoryLink,
    ChangeAction,
    EventLink,
    ProviderConnection,
    StagedKind,
    StagedRow,
    SyncChange,
    SyncedRecord,
    SyncRun,
    SyncStatus,
    SyncTrigger,
)
from racehub.sync.service import AdapterFactory, read_credentials, redact, secret_variants
from racehub.sync.transforms import MappingRule, apply_mapping

log = structlog.get_logger(__name__)

APPLY_BATCH = 1000
MESSAGE_MAX = 1000
# The provider's participant fields the engine writes, by racehub name.
PERSON_VALUE_FIELDS = ("first_name", "last_name", "birth_date", "gender", "email", "city",
                       "region", "country")
EP_VALUE_FIELDS = ("bib", "team", "registration_id", "category_id")
# The racehub fields a connection's mapping rule may override (others have no EP column).
RULE_TARGETS = frozenset(PERSON_VALUE_FIELDS) | {"bib", "team", "registration_id"}

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class SyncFailed(Exception):
    """The run failed; the message is the scrubbed line stored on the run."""


# --- JSON shapes of what was read ----------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    out = _jsonable(dict(value))
    assert isinstance(out, dict)
    return out


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of what the provider sent."""
    text = json.dumps(_jsonable(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def participant_data(participant: ProviderParticipant) -> dict[str, Any]:
    """A read participant as staged: its keys, its provider values, its raw payload."""
    values = {name: getattr(participant, name) for name in PERSON_VALUE_FIELDS}
    values.update(bib=participant.bib, team=participant.team,
                  registration_id=None if participant.ref_is_fallback else participant.ref)
    raw = participant.raw if participant.raw is not None else _jsonable(
        {k: v for k, v in vars(participant).items() if k != "raw"})
    return _json_object({
        "ref": participant.ref, "fallback_ref": participant.fallback_ref,
        "ref_is_fallback": participant.ref_is_fallback, "event_ref": participant.event_ref,
        "person_ref": participant.person_ref, "modified_at": participant.modified_at,
        "values": values, "raw": raw,
    })


def withdrawal_data(withdrawal: ProviderWithdrawal) -> dict[str, Any]:
    return _json_object({"ref": withdrawal.ref, "event_ref": withdrawal.event_ref,
                      "reason": withdrawal.reason, "withdrawn_at": withdrawal.withdrawn_at,
                      "raw": withdrawal.raw})


def problem_data(problem: RowProblem, page: int, what: str) -> dict[str, Any]:
    """A row the adapter could not read: named by its id and field, without its data."""
    return {"what": what, "page": page, "row": problem.row, "ref": problem.ref,
            "field": problem.field, "message": problem.message[:MESSAGE_MAX]}


def _as_datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


# --- the task body ---------------------------------------------------------------------------


def run_participant_sync(
    handle: JobHandle, db: Session, ctx: TenantContext, *, sync_run_id: str,
    link_id: str | None = None, keyring: Keyring | None = None,
    adapter_factory: AdapterFactory | None = None, clock: Clock = _now,
    overlap: timedelta | None = None,
) -> None:
    """One attempt of one sync run (the body of a "sync.participants" job)."""
    run = db.scalar(select(SyncRun).where(SyncRun.id == uuid.UUID(sync_run_id),
                                          SyncRun.tenant_id == ctx.tenant_id)
                    .with_for_update().execution_options(populate_existing=True))
    if run is None or not run.status.is_active:
        handle.log("nothing to do: the sync run is " + (run.status.value if run else "gone"))
        return
    link = db.get(EventLink, run.link_id) if run.link_id else None
    connection = db.get(ProviderConnection, run.connection_id) if run.connection_id else None
    if run.status == SyncStatus.RETRYING:
        run.trigger = SyncTrigger.RETRY.value
    run.status = SyncStatus.RUNNING
    run.started_at = run.started_at or clock()
    run.next_attempt_at = None
    run.attempts += 1
    if link is None or connection is None or link.event_id is None:
        _finish(db, run, SyncStatus.FAILED, clock, error="the provider event is no longer "
                "linked to a racehub event", retryable=False)
        db.commit()
        return
    handle.set_progress(stage="Starting", message=f"attempt {run.attempts}")
    secrets: set[str] = set()
    try:
        credentials = read_credentials(keyring or get_keyring(), connection)
        secrets = secret_variants(credentials)
        if not handle.checkpoint.get("staged"):
            factory = adapter_factory or _default_factory()
            with factory(connection, credentials) as adapter:
                stage(handle, db, run, link, adapter, overlap=overlap)
        apply_run(handle, db, ctx, run, link, connection, clock=clock)
    except JobCancelled:
        db.rollback()
        _give_up(db, run, SyncStatus.CANCELLED, clock, error="cancelled")
        db.commit()
        raise
    except (ProviderError, DecryptError) as exc:
        db.rollback()
        message = redact(str(exc), secrets)[:MESSAGE_MAX]
        _failed_attempt(db, ctx, run, message, retryable=bool(getattr(exc, "retryable", False)),
                        clock=clock)
        db.commit()
        raise SyncFailed(message) from None
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


def _give_up(db: Session, run: SyncRun, status: SyncStatus, clock: Clock, *,
             error: str) -> None:
    """End the run without applying anything (its staged rows go)."""
    db.refresh(run)
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    _finish(db, run, status, clock, error=error, retryable=False)


def _failed_attempt(db: Session, ctx: TenantContext, run: SyncRun, message: str, *,
                    retryable: bool, clock: Clock) -> None:
    """A provider error: retried after 2, 4, 8 minutes when retryable, else final."""
    db.refresh(run)
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    run.error = message
    run.retryable = retryable
    delay = runs.retry_delay(run.attempts) if retryable else None
    if delay is None:
        _finish(db, run, SyncStatus.FAILED, clock, error=message, retryable=retryable)
        return
    runs.schedule_retry(db, ctx, run, at=clock() + delay)
    log.info("sync.retry_scheduled", sync_run_id=str(run.id), attempt=run.attempts,
             next_attempt_at=run.next_attempt_at.isoformat() if run.next_attempt_at else None)


# --- fetch -> stage ---------------------------------------------------------------------------


def since_of(run: SyncRun, link: EventLink, overlap: timedelta) -> datetime | None:
    """Where an incremental read starts: the cursor minus the overlap window (a change
    the provider saved late, with an earlier time, is read again rather than skipped)."""
    if run.full_refresh or link.cursor is None:
        return None
    return link.cursor - overlap


def stage(handle: JobHandle, db: Session, run: SyncRun, link: EventLink,
          adapter: ProviderAdapter, *, overlap: timedelta | None = None) -> None:
    """Read every page into StagedRows, committing page by page."""
    if overlap is None:
        overlap = timedelta(minutes=get_settings().sync_cursor_overlap_minutes)
    # A read cut short (a killed worker) starts again: its pages are not all the pages.
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    since = since_of(run, link, overlap)
    run.cursor_before = link.cursor
    run.fetched = run.problems = 0
    changed = f" changed since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    handle.set_progress(stage="Fetching", done=0, total=None,
                        message=f"reading registrations{changed}")
    seq = 0

    def stage_page(page: Page[Any], kind: StagedKind, to_data: Callable[[Any], dict[str, Any]],
                   what: str) -> None:
        nonlocal seq
        rows: list[dict[str, Any]] = []
        for item in page.items:
            seq += 1
            rows.append({"tenant_id": run.tenant_id, "run_id": run.id, "seq": seq,
                         "kind": kind, "source_ref": item.ref, "data": to_data(item)})
        for problem in page.problems:
            seq += 1
            rows.append({"tenant_id": run.tenant_id, "run_id": run.id, "seq": seq,
                         "kind": StagedKind.PROBLEM, "source_ref": problem.ref,
                         "data": problem_data(problem, page.number, what)})
        if rows:
            db.execute(insert(StagedRow), rows)
        if kind == StagedKind.PARTICIPANT:
            run.fetched += page.row_count
        run.problems += len(page.problems)
        handle.commit_batch(checkpoint={"staged": False, "seq": seq}, done=run.fetched,
                            counts={"fetched": run.fetched, "problems": run.problems},
                            message=f"{what}: page {page.number} read")

    for page in adapter.list_participants(link.provider_event_ref, since=since):
        stage_page(page, StagedKind.PARTICIPANT, participant_data, "registrations")
    if adapter.supports(Capability.LIST_WITHDRAWN):
        for withdrawn in adapter.list_withdrawn(link.provider_event_ref, since=since):
            stage_page(withdrawn, StagedKind.WITHDRAWAL, withdrawal_data, "withdrawals")
    handle.commit_batch(checkpoint={"staged": True, "seq": seq}, done=run.fetched,
                        counts={"fetched": run.fetched, "problems": run.problems},
                        message=f"read {run.fetched} registration(s); applying")


def staged_rows(db: Session, run_id: uuid.UUID, kind: StagedKind,
                batch: int = APPLY_BATCH) -> Iterator[list[StagedRow]]:
    """The run's staged rows of ``kind`` in the order read, ``batch`` at a time."""
    after = 0
    while True:
        rows = list(db.scalars(select(StagedRow).where(
            StagedRow.run_id == run_id, StagedRow.kind == kind, StagedRow.seq > after)
            .order_by(StagedRow.seq).limit(batch)))
        if not rows:
            return
        yield rows
        after = rows[-1].seq


# --- apply ----------------------------------------------------------------------------------


def apply_run(handle: JobHandle, db: Session, ctx: TenantContext, run: SyncRun,
              link: EventLink, connection: ProviderConnection, *, clock: Clock = _now) -> None:
    """Apply what the run staged, all in the caller's one transaction, then commit."""
    from racehub.sync.apply import Applier

    handle.set_progress(stage="Applying", done=0, total=run.fetched, commit=False)
    applier = Applier(db, ctx, run=run, link=link, connection=connection, clock=clock)
    done = 0
    for rows in staged_rows(db, run.id, StagedKind.PARTICIPANT):
        applier.apply_participants(rows)
        done += len(rows)
        handle.set_progress(done=done, commit=False)
    withdrawals = [row for rows in staged_rows(db, run.id, StagedKind.WITHDRAWAL)
                   for row in rows]
    applier.apply_withdrawals(withdrawals)
    for rows in staged_rows(db, run.id, StagedKind.PROBLEM):
        applier.record_problems(rows)
    applier.finish()
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    _finish(db, run, SyncStatus.SUCCEEDED, clock)
    link.last_success_at = run.finished_at
    handle.set_progress(stage="Done", done=done, commit=False, counts={
        "fetched": run.fetched, "created": run.created, "updated": run.updated,
        "unchanged": run.unchanged, "withdrawn": run.withdrawn, "conflicts": run.conflicts,
        "problems": run.problems}, message=summary(run))
    db.commit()


def summary(run: SyncRun) -> str:
    return (f"{run.fetched} read: {run.created} created, {run.updated} updated, "
            f"{run.unchanged} unchanged, {run.withdrawn} withdrawn, {run.conflicts} "
            f"conflict(s), {run.problems} problem(s)")


def upsert_category_links(db: Session, link: EventLink,
                          refs: Mapping[str, str | None]) -> dict[str, uuid.UUID | None]:
    """The category of each provider race/distance ref; a ref seen the first time gets an
    unmapped CategoryLink (an operator maps it; until then its participants get none)."""
    if refs:
        db.execute(pg_insert(CategoryLink).values([
            {"id": uuid.uuid4(), "tenant_id": link.tenant_id, "link_id": link.id,
             "provider_ref": ref, "provider_name": name} for ref, name in refs.items()])
            .on_conflict_do_nothing(constraint="uq_category_links_link_id_provider_ref"))
    return {ref: category_id for ref, category_id in db.execute(
        select(CategoryLink.provider_ref, CategoryLink.category_id)
        .where(CategoryLink.link_id == link.id, CategoryLink.provider_ref.in_(list(refs))))}


def mapped_values(rules: list[MappingRule], data: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """The provider's values of a staged participant, the connection's rules applied over
    them (rules read the raw record); and the rules' errors by field."""
    values = dict(data["values"])
    if not rules:
        return values, {}
    raw = data.get("raw") if isinstance(data.get("raw"), dict) else {}
    ruled, errors = apply_mapping([r for r in rules if r.target in RULE_TARGETS], raw or {})
    for target, value in ruled.items():
        if target not in errors:
            values[target] = value
    return values, errors


def connection_rules(connection: ProviderConnection) -> list[MappingRule]:
    rules = []
    for rule in connection.field_mapping or []:
        try:
            rules.append(MappingRule.model_validate(rule))
        except ValueError:
            continue  # stored before a rule's check tightened: the adapter's default stands
    return rules


def local_values(ep: EventParticipant) -> dict[str, Any]:
    """The EP's (and its person's) values now, as JSON, comparable with synced values."""
    person = ep.person
    return _json_object({
        "first_name": person.first_name, "last_name": person.last_name,
        "birth_date": person.birth_date,
        "gender": person.gender.value if person.gender else None,
        "email": person.email, "city": person.city, "region": person.region,
        "country": person.country, "bib": ep.bib, "team": ep.team,
        "registration_id": ep.registration_id, "category_id": ep.category_id})


def eps_by_id(db: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, EventParticipant]:
    if not ids:
        return {}
    return {ep.id: ep for ep in db.scalars(
        select(EventParticipant).where(EventParticipant.id.in_(ids))
        .options(selectinload(EventParticipant.person))
        .execution_options(populate_existing=True))}


def records_by_ref(db: Session, tenant_id: uuid.UUID, provider: str,
                   refs: list[str]) -> dict[str, SyncedRecord]:
    if not refs:
        return {}
    return {r.source_ref: r for r in db.scalars(select(SyncedRecord).where(
        SyncedRecord.tenant_id == tenant_id, SyncedRecord.provider == provider,
        SyncedRecord.source_ref.in_(refs)))}


def change_row(run: SyncRun, action: ChangeAction, *, record_id: uuid.UUID | None = None,
               participant_id: uuid.UUID | None = None, source_ref: str | None = None,
               changes: Mapping[str, Any] | None = None, message: str | None = None,
               ) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "tenant_id": run.tenant_id, "run_id": run.id,
            "record_id": record_id, "participant_id": participant_id,
            "source_ref": source_ref, "action": action,
            "changes": _jsonable(runs.shown_changes(dict(changes or {}))),
            "message": message[:MESSAGE_MAX] if message else None}


def write_changes(db: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        db.execute(insert(SyncChange), rows)


def count_rows(db: Session, run_id: uuid.UUID) -> int:
    return db.scalar(select(func.count()).select_from(StagedRow)
                     .where(StagedRow.run_id == run_id)) or 0
