"""Start list push: racehub -> a timing system (ChronoTrack Live, Copernico).

A racehub event links a timing connection's event/race (an EventLink of a SCORING
connection). A push sends that link the plan of sync/push_plan.py: new and changed EPs
under the external id of the event's timing identifier mode, and tells the timing system
about withdrawn ones (per provider: Copernico removes the registration, ChronoTrack marks
the entry DNS; see each adapter's ``withdraw_participants``). It is a SyncRun of type
``start_list_push`` (one active per link) run by a ``sync.start_list_push`` job, retried
like a participant sync (a provider down or throttling: 2, 4, 8 minutes; bad credentials
or an unknown race: not at all).

What the provider accepted is written to ``timing_push_states`` batch by batch, with a
SyncChange per EP (created, updated, withdrawn), so a retry or the next push sends only
what is still different; a refused row is a problem change with the provider's reason
and its state stays as it was (sent again next time).

Rules around it:
- the first push locks the event's timing identifier mode, as the first E11 export does
  (audited ``event.timing_identifier_locked``); changing a locked mode once something was
  pushed needs ``confirmFullRepush`` (events/service.update_event), which requests a push
  per timing link: it withdraws every old id and sends the new ones;
- on a provider that changes a registration by removing it and adding it again
  (``changes_by_removal``: Copernico), while the event is live (from its start until
  ``RACEHUB_TIMING_LIVE_HOURS`` after) the changed and withdrawn rows need an event
  manager's confirmation (``confirmLiveChanges``); without it they are refused, each a
  problem saying so, and nothing of them is sent (new rows still go);
- after a participant sync that changed an event, each timing link of the event is pushed
  when the event starts within 7 days or is live (a link whose push is active joins it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring, get_keyring
from racehub.core.exceptions import Conflict, Forbidden, Invalid
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.exceptions import TimingIdentifierLocked
from racehub.events.models import Event
from racehub.jobs.exceptions import JobCancelled
from racehub.jobs.handle import RunningJob
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.providers.base import Capability, PushReport, RowProblem
from racehub.providers.catalog import Direction
from racehub.providers.errors import ProviderError
from racehub.settings import Settings, get_settings
from racehub.sync import attempts, push_plan, runs
from racehub.sync.exceptions import LinkNotFound
from racehub.sync.models import (
    ChangeAction,
    EventLink,
    ProviderConnection,
    SyncChange,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
    TimingPushState,
)
from racehub.sync.push_plan import PlannedRow, PushAction, PushPlan
from racehub.sync.service import (
    AdapterFactory,
    get_connection_or_raise,
    read_credentials,
    redact,
    secret_variants,
)

log = structlog.get_logger(__name__)

SYNC_START_LIST_PUSH_KIND = "sync.start_list_push"
PUSH_BATCH = 500  # rows per provider call, committed with their states
RACE_WEEK = timedelta(days=7)
MESSAGE_MAX = 1000
LIVE_FIELD = "confirmLiveChanges"

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class PushFailed(Exception):
    """The push failed before sending anything; the message is stored on the run."""


class PushConfirmationLost(Conflict):
    """A confirmed push asked while another push of the link is active (it would join a
    run that runs without the confirmation)."""


# --- when ------------------------------------------------------------------------------------


def live_until(event: Event, settings: Settings | None = None) -> datetime:
    """RACEHUB_TIMING_LIVE_HOURS after the event's last start (its own or a later
    category's), as for results pulls (results_schedule.live_window)."""
    hours = (settings or get_settings()).timing_live_hours
    last = max([event.start_at, *(c.start_at for c in event.categories if c.start_at)])
    return last + timedelta(hours=hours)


def is_live(event: Event, now: datetime, settings: Settings | None = None) -> bool:
    """From the event's start until RACEHUB_TIMING_LIVE_HOURS after its last start."""
    return event.start_at <= now < live_until(event, settings)


def in_push_window(event: Event, now: datetime, settings: Settings | None = None) -> bool:
    """Race week (the start within 7 days) or live: when a participant sync that changed
    the event pushes its start list on."""
    return event.start_at - RACE_WEEK <= now < live_until(event, settings)


# --- the links ---------------------------------------------------------------------------------


def timing_links(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> list[EventLink]:
    """The event's links to a timing system's event (SCORING connections)."""
    return list(db.scalars(
        scoped(ctx, EventLink).join(ProviderConnection,
                                    ProviderConnection.id == EventLink.connection_id)
        .where(EventLink.event_id == event_id,
               ProviderConnection.direction == Direction.SCORING)
        .order_by(EventLink.provider_event_ref, EventLink.id)))


@dataclass
class TimingTarget:
    link: EventLink
    connection: ProviderConnection
    event: Event


def get_target_or_raise(db: Session, ctx: TenantContext, *,
                        link_id: uuid.UUID) -> TimingTarget:
    """A link of a timing connection to a racehub event (404 for anything else)."""
    link = db.scalar(scoped(ctx, EventLink).where(EventLink.id == link_id))
    if link is None or link.event_id is None:
        raise LinkNotFound()
    connection = get_connection_or_raise(db, ctx, connection_id=link.connection_id)
    if connection.direction != Direction.SCORING:
        raise LinkNotFound()
    event = events_service.get_event_or_raise(db, ctx, event_id=link.event_id)
    return TimingTarget(link, connection, event)


def _label(link: EventLink) -> str:
    return link.provider_event_name or link.provider_event_ref


# --- the preview -------------------------------------------------------------------------------


@dataclass
class PushPreview:
    target: TimingTarget
    plan: PushPlan
    live: bool
    # The provider removes to change (Copernico), the event is live and the plan changes
    # or withdraws rows: those go only with an event manager's confirmation.
    needs_live_confirmation: bool

    @property
    def guarded_rows(self) -> int:
        if not self.needs_live_confirmation:
            return 0
        return len(self.plan.of(PushAction.CHANGED)) + len(self.plan.of(PushAction.WITHDRAWN))


def needs_live_confirmation(plan: PushPlan, now: datetime) -> bool:
    cls = push_plan.adapter_class(plan.link.provider)
    return (cls.changes_by_removal and is_live(plan.event, now)
            and bool(plan.of(PushAction.CHANGED) or plan.of(PushAction.WITHDRAWN)))


def preview_push(db: Session, ctx: TenantContext, *, link_id: uuid.UUID,
                 now: datetime | None = None) -> PushPreview:
    """What a push of the link would send now (nothing is sent or written)."""
    target = get_target_or_raise(db, ctx, link_id=link_id)
    plan = push_plan.build_plan(db, ctx, link=target.link, event=target.event)
    now = now or _now()
    return PushPreview(target, plan, is_live(target.event, now),
                       needs_live_confirmation(plan, now))


# --- asking for a push ---------------------------------------------------------------------------


def request_push(
    db: Session, ctx: TenantContext, *, target: TimingTarget,
    trigger: SyncTrigger = SyncTrigger.MANUAL, confirm_live: bool = False,
    plan_fingerprint: str | None = None,
) -> runs.RunRequest:
    """A push run of the link and its job, or the link's active push (joined). A push
    carrying a confirmation (``confirm_live``) or a previewed plan refuses to join one that
    does not: the caller asks again once it ended."""
    if confirm_live and not ctx.can(Perm.SYNC_LINK_MANAGE):
        raise Forbidden(f"{LIVE_FIELD}: confirming a change of a live event's start list on "
                        f"a timing system needs the '{Perm.SYNC_LINK_MANAGE.value}' permission "
                        "(EVENT_MANAGER and up)", field=LIVE_FIELD)
    if not ctx.can(Perm.SYNC_TIMING_RUN):
        raise Forbidden(f"pushing a start list needs the '{Perm.SYNC_TIMING_RUN.value}' "
                        "permission")
    params: dict[str, Any] = {}
    if confirm_live:
        params["confirm_live"] = True
    if plan_fingerprint:
        params["plan_fingerprint"] = plan_fingerprint
    requested = runs.request_run(db, ctx, connection=target.connection, link=target.link,
                                 sync_type=SyncType.START_LIST_PUSH,
                                 kind=SYNC_START_LIST_PUSH_KIND, trigger=trigger,
                                 params=params)
    if requested.joined and params:
        raise PushConfirmationLost(
            f"a push to {_label(target.link)!r} is already {requested.run.status.value}; it "
            "runs without this confirmation. Push again once it has ended")
    return requested


def request_pushes(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    event_id: uuid.UUID | None = None, confirm_live: bool = False,
    plan_fingerprint: str | None = None,
) -> list[runs.RunRequest]:
    """A push per linked timing event of the connection (of ``event_id``): what
    ``POST /api/sync/manual`` asks with ``syncType`` start_list_push."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    if connection.direction != Direction.SCORING:
        raise Invalid(f"connectionId: {connection.name!r} is a {connection.direction.value} "
                      "connection; start lists are pushed to timing (scoring) connections",
                      field="connectionId")
    links = runs.linked_links(db, ctx, connection_id=connection.id, event_id=event_id)
    if not links:
        where = "this event" if event_id is not None else "a racehub event"
        field = "eventId" if event_id is not None else "connectionId"
        raise Invalid(f"{field}: no timing event of this connection is linked to {where}; "
                      "link one first", field=field)
    if plan_fingerprint and len(links) > 1:
        raise Invalid("planFingerprint: names the preview of one linked timing event; this "
                      f"request covers {len(links)}: send the eventId of one",
                      field="planFingerprint")
    return [request_push(db, ctx, target=get_target_or_raise(db, ctx, link_id=link.id),
                         confirm_live=confirm_live, plan_fingerprint=plan_fingerprint)
            for link in links]


def request_after_participant_sync(db: Session, ctx: TenantContext, *, run: SyncRun,
                                   now: datetime) -> list[runs.RunRequest]:
    """After a participant sync that changed its event, a push to each timing link of the
    event in race week or while it is live (called in the run's applying transaction)."""
    if run.event_id is None or not (run.created or run.updated or run.withdrawn):
        return []
    event = db.get(Event, run.event_id)
    if event is None or not in_push_window(event, now):
        return []
    requested = []
    for link in timing_links(db, ctx, event_id=event.id):
        target = get_target_or_raise(db, ctx, link_id=link.id)
        requested.append(request_push(db, ctx, target=target, trigger=SyncTrigger.AFTER_SYNC))
    if requested:
        log.info("sync.push_after_participant_sync", sync_run_id=str(run.id),
                 pushes=[str(r.run.id) for r in requested])
    return requested


def active_push(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> SyncRun | None:
    """A push of one of the event's timing links that is queued, running or retrying."""
    ids = [link.id for link in timing_links(db, ctx, event_id=event_id)]
    for link_id in ids:
        if (run := runs.active_run(db, link_id, SyncType.START_LIST_PUSH)) is not None:
            return run
    return None


def guard_identifier_change(db: Session, ctx: TenantContext, *, event: Event,
                            confirmed: bool) -> bool:
    """Before ``event``'s timing identifier changes: refused while a push of it is active,
    and, once a timing system holds ids pushed from it, without ``confirmFullRepush`` (every
    id it holds would be orphaned; acknowledgeOverride alone does not do). Returns whether
    a full re-push follows the change."""
    active = active_push(db, ctx, event_id=event.id)
    if active is not None:
        raise Conflict(f"preferredTimingIdentifier: a start list push of this event is "
                       f"{active.status.value}; change the identifier once it has ended",
                       field="preferredTimingIdentifier")
    if not push_plan.anything_pushed(db, ctx, event_id=event.id):
        return False
    if not confirmed:
        raise TimingIdentifierLocked(
            "confirmFullRepush: a start list was pushed to a timing system under the "
            f"{event.preferred_timing_identifier.value} identifier; changing it orphans "
            "every id it holds. Send confirmFullRepush=true to change it and push every "
            "linked timing event again (the old ids withdrawn, the new ones sent); "
            "acknowledgeOverride alone is not enough", field="confirmFullRepush")
    if not (ctx.can(Perm.SYNC_LINK_MANAGE) and ctx.can(Perm.SYNC_TIMING_RUN)):
        raise Forbidden("confirmFullRepush: a full re-push of the start list needs the "
                        f"'{Perm.SYNC_LINK_MANAGE.value}' permission (EVENT_MANAGER and up)",
                        field="confirmFullRepush")
    return True


def request_full_repush(db: Session, ctx: TenantContext, *,
                        event: Event) -> list[runs.RunRequest]:
    """After the event's timing identifier changed (confirmed): a push per timing link,
    which withdraws every id pushed under the old mode and sends the new ones. The
    confirmation covers those removals on a live event too."""
    return [request_push(db, ctx, target=get_target_or_raise(db, ctx, link_id=link.id),
                         confirm_live=True)
            for link in timing_links(db, ctx, event_id=event.id)]


# --- the run (the body of a "sync.start_list_push" job) --------------------------------------


LIVE_REFUSAL = (
    "not sent: the event is live and {provider} changes a registration by removing it and "
    "adding it again, which can drop what it recorded for it (detections). An event manager "
    f"confirms it ({LIVE_FIELD}) on the next push")


def run_start_list_push(
    handle: RunningJob, db: Session, ctx: TenantContext, *, sync_run_id: str,
    link_id: str | None = None, confirm_live: bool = False,
    plan_fingerprint: str | None = None, keyring: Keyring | None = None,
    adapter_factory: AdapterFactory | None = None, clock: Clock = _now,
) -> None:
    """One attempt of a push run. ``link_id`` is in the job's params for its lock only."""
    started = attempts.begin_attempt(handle, db, ctx, sync_run_id, clock, what="the push")
    if started is None:
        return
    run, link, connection = started
    if (link is None or connection is None or link.event_id is None
            or connection.direction != Direction.SCORING):
        _end(db, run, SyncStatus.FAILED, clock, error="the timing event is no longer linked "
             "to a racehub event", retryable=False)
        db.commit()
        return
    handle.set_progress(stage="Planning", message=f"attempt {run.attempts}")
    secrets: set[str] = set()
    try:
        credentials = read_credentials(keyring or get_keyring(), connection)
        secrets = secret_variants(credentials)
        # The event's row, locked while planning: a mode change waits for the plan (and
        # then finds this push active, which it refuses to change the mode under).
        event = db.scalar(select(Event).where(Event.id == link.event_id,
                                              Event.tenant_id == ctx.tenant_id)
                          .with_for_update().execution_options(populate_existing=True))
        if event is None:
            raise PushFailed("the racehub event is gone")
        plan = push_plan.build_plan(db, ctx, link=link, event=event)
        first = not handle.checkpoint.get("planned")
        if first and plan_fingerprint and plan.fingerprint != plan_fingerprint:
            raise PushFailed(
                "the start list changed since the preview this push was confirmed from "
                f"(now: {_counts_text(plan)}); nothing was sent: preview it again")
        guarded = (not confirm_live) and needs_live_confirmation(plan, clock())
        refused = [r for r in plan.rows if guarded
                   and r.action in (PushAction.CHANGED, PushAction.WITHDRAWN)]
        if first:
            _lock_mode(db, ctx, event, run)
            run.fetched = len([r for r in plan.rows if r.action is not PushAction.WITHDRAWN]
                              ) + plan.unchanged
            run.unchanged = plan.unchanged
            for row in plan.of(PushAction.PROBLEM):
                _change(db, run, row, ChangeAction.PROBLEM, message=_problem_text(row))
            provider = connection.name
            for row in refused:
                _change(db, run, row, ChangeAction.PROBLEM,
                        message=LIVE_REFUSAL.format(provider=provider))
            run.problems += len(plan.of(PushAction.PROBLEM)) + len(refused)
        handle.commit_batch(checkpoint={"planned": True}, done=0,
                            counts=_counts(run), message=f"plan: {_counts_text(plan)}")
        factory = adapter_factory or _default_factory()
        with factory(connection, credentials) as adapter:
            _send(handle, db, run, plan, connection, adapter, skip={id(r) for r in refused},
                  clock=clock)
        _end(db, run, SyncStatus.SUCCEEDED, clock)
        handle.set_progress(stage="Done", commit=False, counts=_counts(run),
                            message=summary(run))
        db.commit()
    except JobCancelled:
        db.rollback()
        _end(db, run, SyncStatus.CANCELLED, clock, error="cancelled", refresh=True)
        db.commit()
        raise
    except ProviderError as exc:
        db.rollback()
        retry_at = PROVIDER_OUTAGES.next_attempt_at(exc, retries=handle.retries, now=clock())
        db.refresh(run)
        message = redact(str(exc), secrets)[:MESSAGE_MAX]
        if retry_at is None:
            _end(db, run, SyncStatus.FAILED, clock, error=message, retryable=exc.retryable)
        else:
            run.status = SyncStatus.RETRYING  # still active: a request meanwhile joins it
            run.next_attempt_at = retry_at
            run.error, run.retryable = message, exc.retryable
        db.commit()
        raise
    except (PushFailed, DecryptError) as exc:
        db.rollback()
        _end(db, run, SyncStatus.FAILED, clock, error=str(exc)[:MESSAGE_MAX], refresh=True)
        db.commit()
        raise PushFailed(str(exc)) from None
    except Exception as exc:
        db.rollback()
        message = redact(f"unexpected error ({type(exc).__name__}): {exc}", secrets)
        _end(db, run, SyncStatus.FAILED, clock, error=message[:MESSAGE_MAX], refresh=True)
        db.commit()
        raise


def _default_factory() -> AdapterFactory:
    from racehub.sync.adapters import build_adapter

    return build_adapter


def _end(db: Session, run: SyncRun, status: SyncStatus, clock: Clock, *,
         error: str | None = None, retryable: bool | None = None,
         refresh: bool = False) -> None:
    if refresh:
        db.refresh(run)
    run.status = status
    run.finished_at = clock()
    run.next_attempt_at = None
    run.error = error
    run.retryable = retryable if status is not SyncStatus.CANCELLED else False


def _lock_mode(db: Session, ctx: TenantContext, event: Event, run: SyncRun) -> None:
    """The first push locks the event's timing identifier, as the first E11 export does."""
    if events_service.lock_timing_identifier(db, ctx, event=event):
        audit.record(db, ctx, action="event.timing_identifier_locked", target_type="event",
                     target_id=event.id, after={
                         "identifier_mode": event.preferred_timing_identifier.value,
                         "by": "start_list_push", "sync_run_id": str(run.id),
                         "link_id": str(run.link_id)})


def _counts(run: SyncRun) -> dict[str, int]:
    return {"created": run.created, "updated": run.updated, "withdrawn": run.withdrawn,
            "unchanged": run.unchanged, "problems": run.problems}


def _counts_text(plan: PushPlan) -> str:
    c = plan.counts
    return (f"{c['new']} new, {c['changed']} changed, {c['withdrawn']} withdrawn, "
            f"{c['problem']} problem(s), {c['unchanged']} unchanged")


def summary(run: SyncRun) -> str:
    return (f"pushed: {run.created} new, {run.updated} changed, {run.withdrawn} withdrawn, "
            f"{run.unchanged} unchanged, {run.problems} problem(s)")


def _problem_text(row: PlannedRow) -> str:
    return f"{row.field}: {row.message}" if row.field else (row.message or "not sent")


def _change(db: Session, run: SyncRun, row: PlannedRow, action: ChangeAction, *,
            message: str | None = None) -> None:
    changes: dict[str, Any] = {}
    if action is ChangeAction.CREATED:
        changes = {k: [None, v] for k, v in row.values.items() if v not in (None, "")}
    elif action is ChangeAction.UPDATED:
        changes = row.changes
    db.add(SyncChange(tenant_id=run.tenant_id, run_id=run.id, participant_id=row.participant_id,
                      source_ref=row.external_id, action=action, changes=changes,
                      message=(message or "")[:MESSAGE_MAX] or None))


def _send(handle: RunningJob, db: Session, run: SyncRun, plan: PushPlan,
          connection: ProviderConnection, adapter: Any, *, skip: set[int],
          clock: Clock) -> None:
    """Withdrawals first (an EP whose id changed leaves under its old id before it comes
    back under the new one), then changes, then new rows; each batch committed with the
    states of what the provider accepted."""
    ref = plan.link.provider_event_ref
    groups = [(action, [r for r in plan.of(action) if id(r) not in skip])
              for action in (PushAction.WITHDRAWN, PushAction.CHANGED, PushAction.NEW)]
    total = sum(len(rows) for _, rows in groups)
    if groups[0][1] and not adapter.supports(Capability.WITHDRAW_PARTICIPANTS):
        raise PushFailed(f"{connection.name}: this timing system takes no withdrawals, so "
                         f"{len(groups[0][1])} withdrawn participant(s) cannot be sent")
    done = 0
    handle.set_progress(stage="Pushing", done=0, total=total)
    for action, rows in groups:
        for start in range(0, len(rows), PUSH_BATCH):
            chunk = rows[start:start + PUSH_BATCH]
            if action is PushAction.WITHDRAWN:
                report = adapter.withdraw_participants(
                    ref, [r.external_id for r in chunk])
            else:
                report = adapter.push_participants(
                    ref, [r.participant for r in chunk],
                    # A change may replace (Copernico: remove and re-add); a new row never
                    # replaces what the provider holds under its id: that is a problem.
                    replace_existing=action is PushAction.CHANGED)
            _record(db, run, action, chunk, report, connection, now=clock())
            done += len(chunk)
            handle.commit_batch(checkpoint={"planned": True}, done=done, counts=_counts(run),
                                message=f"{done} of {total} sent")


ACCEPTED = {PushAction.NEW: ChangeAction.CREATED, PushAction.CHANGED: ChangeAction.UPDATED,
            PushAction.WITHDRAWN: ChangeAction.WITHDRAWN}


def _record(db: Session, run: SyncRun, action: PushAction, chunk: Sequence[PlannedRow],
            report: PushReport, connection: ProviderConnection, *, now: datetime) -> None:
    """The states and changes of one batch: accepted rows move their state; refused ones
    are problems with the provider's reason and keep theirs."""
    index_of = {r.external_id: i for i, r in enumerate(chunk)}
    refused: dict[int, list[RowProblem]] = {}
    unnamed: list[RowProblem] = []
    for problem in report.problems:
        i = (problem.row if 0 <= problem.row < len(chunk)
             and (problem.ref is None or problem.ref == chunk[problem.row].external_id)
             else index_of.get(problem.ref or ""))
        if i is None:
            unnamed.append(problem)
        else:
            refused.setdefault(i, []).append(problem)
    for i, problems in refused.items():
        reason = "; ".join(f"{p.field}: {p.message}" if p.field else p.message
                           for p in problems)
        _change(db, run, chunk[i], ChangeAction.PROBLEM,
                message=f"{connection.name} refused it: {reason}")
    run.problems += len(refused)
    if unnamed:
        # Which row it refused is not known: none of the batch is taken as sent (the next
        # push sends it again), never a guess.
        reasons = "; ".join(str(p) for p in unnamed)
        db.add(SyncChange(tenant_id=run.tenant_id, run_id=run.id, action=ChangeAction.PROBLEM,
                          message=(f"{connection.name} refused row(s) it did not name "
                                   f"({reasons}): none of these {len(chunk)} is marked as "
                                   "sent; the next push sends them again")[:MESSAGE_MAX]))
        run.problems += len(unnamed)
        return
    accepted = [r for i, r in enumerate(chunk) if i not in refused]
    if not accepted:
        return
    if action is PushAction.WITHDRAWN:
        db.execute(update(TimingPushState)
                   .where(TimingPushState.link_id == run.link_id,
                          TimingPushState.external_id.in_([r.external_id for r in accepted]))
                   .values(withdrawn_at=now, last_run_id=run.id, updated_at=now))
        for row in accepted:
            _change(db, run, row, ChangeAction.WITHDRAWN,
                    message=f"withdrawn on {connection.name}")
        run.withdrawn += len(accepted)
    else:
        stmt = pg_insert(TimingPushState).values([{
            "id": uuid.uuid4(), "tenant_id": run.tenant_id, "link_id": run.link_id,
            "participant_id": r.participant_id, "external_id": r.external_id,
            "content_hash": r.content_hash, "pushed_values": r.values, "pushed_at": now,
            "withdrawn_at": None, "last_run_id": run.id} for r in accepted])
        db.execute(stmt.on_conflict_do_update(
            constraint="uq_timing_push_states_link_id_external_id",
            set_={"participant_id": stmt.excluded.participant_id,
                  "content_hash": stmt.excluded.content_hash,
                  "pushed_values": stmt.excluded.pushed_values,
                  "pushed_at": stmt.excluded.pushed_at, "withdrawn_at": None,
                  "last_run_id": stmt.excluded.last_run_id, "updated_at": now}))
        for row in accepted:
            _change(db, run, row, ACCEPTED[action])
        if action is PushAction.NEW:
            run.created += len(accepted)
        else:
            run.updated += len(accepted)
