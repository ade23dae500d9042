"""Start list pushes to ChronoTrack Live and Copernico, against their simulators over HTTP:
only changes go out, withdrawals are told per provider, the identifier mode locks and a
locked mode changes only with a full re-push, Copernico's remove-and-re-add waits for a
confirmation on a live event, refused rows are problems with the provider's reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.exceptions import Forbidden
from racehub.core.models import Role
from racehub.events import service as events_service
from racehub.events.exceptions import TimingIdentifierLocked
from racehub.events.models import Event, EventParticipant, ParticipantStatus, TimingIdentifier
from racehub.events.schemas import EventUpdate, ParticipantUpdate, PersonUpdate
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.providers.copernico import simulator as cop_sim
from racehub.sync import push_plan, timing_push
from racehub.sync.models import (
    ChangeAction,
    EventLink,
    SyncChange,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
    TimingPushState,
)
from tests.factories import make_event, make_participant
from tests.sync.conftest import audit_entries
from tests.sync.engine_helpers import T0, Clock
from tests.sync.push_helpers import CT_RACE_REF, as_role, connect, push, timing_link

LATER = T0 + timedelta(days=30)  # an event a month away: not live, not race week


@pytest.fixture
def ct() -> Iterator[tuple[ct_sim.ChronoTrackSimulator, str]]:
    from tests.sync.push_helpers import chronotrack

    with chronotrack() as served:
        yield served


@pytest.fixture
def cop() -> Iterator[tuple[cop_sim.CopernicoSimulator, str]]:
    from tests.sync.push_helpers import copernico

    with copernico() as served:
        yield served


def runners(db: Session, event: Event, n: int = 5, **fields: Any) -> list[EventParticipant]:
    return [make_participant(db, event, first_name=f"Runner{i}", last_name=f"Doe{i}",
                             bib=str(i), **fields) for i in range(1, n + 1)]


def changes(db: Session, run: SyncRun) -> list[SyncChange]:
    return list(db.scalars(select(SyncChange).where(SyncChange.run_id == run.id)
                           .order_by(SyncChange.at, SyncChange.id)))


def states(db: Session, link: EventLink) -> dict[str, TimingPushState]:
    db.expire_all()
    return push_plan.states_of(db, link)


def uploaded_ids(upload: dict[str, Any]) -> list[str]:
    return sorted(row["entry_external_id"] for row in upload["rows"])


# --- ChronoTrack: only changes go out ------------------------------------------------------------


def test_a_second_push_sends_only_the_two_changed_and_the_withdrawn_participant(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, ct: Any) -> None:
    sim, url = ct
    event = make_event(db, tenant, start_at=LATER)
    eps = runners(db, event)
    link = timing_link(db, connect(db, ctx, keyring, "CHRONOTRACK", url), event, CT_RACE_REF)

    first = push(db, ctx, keyring, link)

    assert first.status == SyncStatus.SUCCEEDED, first.error
    assert first.sync_type == SyncType.START_LIST_PUSH.value
    assert (first.created, first.updated, first.withdrawn, first.problems) == (5, 0, 0, 0)
    [upload] = sim.uploads
    # PERSON_ID, the event's mode: the person's id, exactly what E11 writes; never the bib.
    assert uploaded_ids(upload) == sorted(str(ep.person_id) for ep in eps)
    assert {r["entry_bib"] for r in upload["rows"]} == {"1", "2", "3", "4", "5"}
    db.refresh(event)
    assert event.preferred_timing_identifier_locked_at is not None
    [locked] = audit_entries(db, "event.timing_identifier_locked")
    assert locked.after["by"] == "start_list_push"
    assert locked.after["sync_run_id"] == str(first.id)
    assert {c.action for c in changes(db, first)} == {ChangeAction.CREATED}

    events_service.update_participant(db, ctx, participant_id=eps[0].id,
                                      data=ParticipantUpdate(bib="101"))
    events_service.update_participant(db, ctx, participant_id=eps[1].id,
                                      data=ParticipantUpdate(person=PersonUpdate(
                                          last_name="Renamed")))
    events_service.update_participant(db, ctx, participant_id=eps[2].id,
                                      data=ParticipantUpdate(status=ParticipantStatus.WITHDRAWN))

    second = push(db, ctx, keyring, link)

    assert second.status == SyncStatus.SUCCEEDED, second.error
    assert (second.created, second.updated, second.withdrawn, second.unchanged,
            second.problems) == (0, 2, 1, 2, 0)
    withdrawal, changed = sim.uploads[1:]
    # The withdrawal: the entry kept and marked DNS (ChronoTrack), by its id only.
    assert withdrawal["rows"] == [{"entry_external_id": str(eps[2].person_id),
                                   "entry_status": "DNS"}]
    assert uploaded_ids(changed) == sorted(str(ep.person_id) for ep in eps[:2])
    held = {r["entry_external_id"]: r for r in sim.entries[81000]}
    assert held[str(eps[2].person_id)]["entry_status"] == "DNS"
    assert held[str(eps[0].person_id)]["entry_bib"] == "101"
    assert held[str(eps[1].person_id)]["athlete_last_name"] == "Renamed"
    by_ref = {c.source_ref: c for c in changes(db, second)}
    assert by_ref[str(eps[0].person_id)].action == ChangeAction.UPDATED
    assert by_ref[str(eps[0].person_id)].changes == {"bib": ["1", "101"]}
    assert by_ref[str(eps[2].person_id)].action == ChangeAction.WITHDRAWN
    assert states(db, link)[str(eps[2].person_id)].withdrawn_at is not None

    third = push(db, ctx, keyring, link)

    assert (third.created, third.updated, third.withdrawn, third.unchanged) == (0, 0, 0, 4)
    assert len(sim.uploads) == 3  # nothing went out

    # Back again: the withdrawn participant is sent again, confirmed (no longer DNS).
    events_service.update_participant(db, ctx, participant_id=eps[2].id,
                                      data=ParticipantUpdate(status=ParticipantStatus.ACTIVE))
    fourth = push(db, ctx, keyring, link)
    assert fourth.created == 1 and uploaded_ids(sim.uploads[-1]) == [str(eps[2].person_id)]
    held = {r["entry_external_id"]: r for r in sim.entries[81000]}
    assert held[str(eps[2].person_id)]["entry_status"] == "CONF"


def test_a_row_the_timing_system_refuses_is_a_problem_with_its_reason_and_sent_again_later(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, ct: Any) -> None:
    sim, url = ct
    event = make_event(db, tenant, start_at=LATER)
    taken = sim.entries[81000][0]["entry_bib"]  # a bib the race already gives someone
    ok = make_participant(db, event, first_name="Ada", last_name="Ok", bib="7")
    clash = make_participant(db, event, first_name="Bo", last_name="Clash", bib=taken)
    link = timing_link(db, connect(db, ctx, keyring, "CHRONOTRACK", url), event, CT_RACE_REF)

    run = push(db, ctx, keyring, link)

    assert run.status == SyncStatus.SUCCEEDED
    assert (run.created, run.problems) == (1, 1)
    [problem] = [c for c in changes(db, run) if c.action == ChangeAction.PROBLEM]
    assert problem.participant_id == clash.id
    assert problem.source_ref == str(clash.person_id)
    assert problem.message == f"{link_connection_name(db, link)} refused it: entry_bib: bib " \
                              f"{taken} is already in use"
    # Only what was accepted has a state: the refused row is sent again next time.
    assert set(states(db, link)) == {str(ok.person_id)}
    events_service.update_participant(db, ctx, participant_id=clash.id,
                                      data=ParticipantUpdate(bib="8"))
    again = push(db, ctx, keyring, link)
    assert (again.created, again.problems) == (1, 0)
    assert uploaded_ids(sim.uploads[-1]) == [str(clash.person_id)]


def link_connection_name(db: Session, link: EventLink) -> str:
    from racehub.sync.models import ProviderConnection

    connection = db.get(ProviderConnection, link.connection_id)
    assert connection is not None
    return connection.name


def test_registration_id_mode_names_the_participants_without_one_and_sends_the_rest(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, ct: Any) -> None:
    sim, url = ct
    event = make_event(db, tenant, start_at=LATER,
                       preferred_timing_identifier=TimingIdentifier.REGISTRATION_ID)
    with_id = make_participant(db, event, first_name="Ada", last_name="Reg", bib="1",
                               registration_id="R-1")
    without = make_participant(db, event, first_name="Bo", last_name="NoReg", bib="2")
    link = timing_link(db, connect(db, ctx, keyring, "CHRONOTRACK", url), event, CT_RACE_REF)

    preview = timing_push.preview_push(db, ctx, link_id=link.id, now=T0)
    assert preview.plan.counts == {"new": 1, "changed": 0, "withdrawn": 0, "problem": 1,
                                   "unchanged": 0}
    [problem_row] = preview.plan.of(push_plan.PushAction.PROBLEM)
    assert problem_row.participant_id == without.id and problem_row.field == "registrationId"

    run = push(db, ctx, keyring, link)

    assert (run.created, run.problems) == (1, 1)
    assert uploaded_ids(sim.uploads[0]) == ["R-1"]
    [problem] = [c for c in changes(db, run) if c.action == ChangeAction.PROBLEM]
    assert problem.participant_id == without.id
    assert problem.message is not None and problem.message.startswith(
        "registrationId: no registration id")
    assert with_id.id in {c.participant_id for c in changes(db, run)}


def test_a_push_confirmed_from_a_preview_that_no_longer_holds_sends_nothing(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, ct: Any) -> None:
    sim, url = ct
    event = make_event(db, tenant, start_at=LATER)
    eps = runners(db, event, 2)
    link = timing_link(db, connect(db, ctx, keyring, "CHRONOTRACK", url), event, CT_RACE_REF)
    seen = timing_push.preview_push(db, ctx, link_id=link.id, now=T0).plan.fingerprint
    events_service.update_participant(db, ctx, participant_id=eps[0].id,
                                      data=ParticipantUpdate(bib="99"))

    from racehub.sync.timing_push import PushFailed

    with pytest.raises(PushFailed):
        push(db, ctx, keyring, link, plan_fingerprint=seen)

    run = db.scalars(select(SyncRun).where(SyncRun.link_id == link.id)).one()
    assert run.status == SyncStatus.FAILED
    assert run.error is not None and "changed since the preview" in run.error
    assert sim.uploads == [] and states(db, link) == {}
    fresh = timing_push.preview_push(db, ctx, link_id=link.id, now=T0).plan.fingerprint
    assert push(db, ctx, keyring, link, plan_fingerprint=fresh).created == 2


# --- Copernico on a live event --------------------------------------------------------------


def test_copernico_changes_on_a_live_event_wait_for_an_event_managers_confirmation(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, cop: Any) -> None:
    sim, url = cop
    live = make_event(db, tenant, start_at=T0 - timedelta(hours=1))
    eps = runners(db, live, 3)
    link = timing_link(db, connect(db, ctx, keyring, "COPERNICO", url), live, sim.race_ref())
    race_id = sim.race_ref().split(":")[0]
    clock = Clock()

    first = push(db, ctx, keyring, link, clock=clock)  # new rows go, live or not
    assert (first.created, first.problems) == (3, 0)

    events_service.update_participant(db, ctx, participant_id=eps[0].id,
                                      data=ParticipantUpdate(bib="42"))
    events_service.update_participant(db, ctx, participant_id=eps[1].id,
                                      data=ParticipantUpdate(status=ParticipantStatus.WITHDRAWN))
    preview = timing_push.preview_push(db, ctx, link_id=link.id, now=clock.now)
    assert preview.live and preview.needs_live_confirmation and preview.guarded_rows == 2
    pushes_before = len(sim.pushes)

    refused = push(db, ctx, keyring, link, clock=clock)

    assert refused.status == SyncStatus.SUCCEEDED
    assert (refused.updated, refused.withdrawn, refused.problems) == (0, 0, 2)
    assert sim.removals == [] and len(sim.pushes) == pushes_before  # nothing half-done
    messages = {c.source_ref: c.message for c in changes(db, refused)}
    assert set(messages) == {str(eps[0].person_id), str(eps[1].person_id)}
    assert all(m and "the event is live" in m and "confirmLiveChanges" in m
               for m in messages.values())
    assert sim.registrations[race_id][str(eps[0].person_id)]["dorsal"] == "1"

    # A results officer pushes, but cannot confirm the risky step.
    with pytest.raises(Forbidden, match="confirmLiveChanges"):
        push(db, as_role(ctx, Role.RESULTS_OFFICER), keyring, link, confirm_live=True)

    confirmed = push(db, as_role(ctx, Role.EVENT_MANAGER), keyring, link, clock=clock,
                     confirm_live=True)

    assert (confirmed.updated, confirmed.withdrawn, confirmed.problems) == (1, 1, 0)
    held = sim.registrations[race_id]
    assert str(eps[1].person_id) not in held  # withdrawn: removed
    assert held[str(eps[0].person_id)]["dorsal"] == "42"  # removed and added again
    assert sorted(r for _, r in sim.removals) == sorted(
        [str(eps[0].person_id), str(eps[1].person_id)])


def test_copernico_refuses_a_new_id_it_holds_already_as_duplicated_without_removing_it(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, cop: Any) -> None:
    sim, url = cop
    event = make_event(db, tenant, start_at=LATER,
                       preferred_timing_identifier=TimingIdentifier.EPID)
    [ep] = runners(db, event, 1)
    race_id, event_id = sim.race_ref().split(":")
    # Registered there already (by hand, or another tool): never replaced silently.
    sim.registrations[race_id][str(ep.id)] = {"id": str(ep.id), "name": "Someone",
                                              "surname": "Else", "raceId": race_id,
                                              "eventId": event_id}
    link = timing_link(db, connect(db, ctx, keyring, "COPERNICO", url), event, sim.race_ref())

    run = push(db, ctx, keyring, link)

    assert (run.created, run.problems) == (0, 1)
    [problem] = changes(db, run)
    assert problem.action == ChangeAction.PROBLEM and problem.source_ref == str(ep.id)
    assert problem.message is not None and "DUPLICATED" in problem.message
    assert sim.removals == []
    assert sim.registrations[race_id][str(ep.id)]["name"] == "Someone"
    assert states(db, link) == {}


# --- the identifier mode ---------------------------------------------------------------------


def test_a_locked_mode_changes_only_with_a_full_repush_which_removes_the_old_ids(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, cop: Any) -> None:
    sim, url = cop
    event = make_event(db, tenant, start_at=LATER)
    eps = runners(db, event, 3)
    link = timing_link(db, connect(db, ctx, keyring, "COPERNICO", url), event, sim.race_ref())
    race_id = sim.race_ref().split(":")[0]
    assert push(db, ctx, keyring, link).created == 3
    old_ids = sorted(str(ep.person_id) for ep in eps)

    with pytest.raises(TimingIdentifierLocked) as refused:
        events_service.update_event(db, ctx, event_id=event.id, data=EventUpdate(
            preferred_timing_identifier=TimingIdentifier.EPID, acknowledge_override=True))
    assert refused.value.field == "confirmFullRepush"
    assert "confirmFullRepush" in refused.value.detail
    db.refresh(event)
    assert event.preferred_timing_identifier == TimingIdentifier.PERSON_ID

    events_service.update_event(db, as_role(ctx, Role.EVENT_MANAGER), event_id=event.id,
                                data=EventUpdate(preferred_timing_identifier=TimingIdentifier.EPID,
                                                 confirm_full_repush=True))

    [repush] = db.scalars(select(SyncRun).where(SyncRun.link_id == link.id,
                                                SyncRun.status == SyncStatus.QUEUED)).all()
    from tests.sync.push_helpers import attempt

    done = attempt(db, keyring, repush)
    assert (done.created, done.withdrawn, done.problems) == (3, 3, 0), done.error
    assert sorted(r for _, r in sim.removals) == old_ids
    held = sim.registrations[race_id]
    assert not set(old_ids) & set(held)
    assert {str(ep.id) for ep in eps} <= set(held)
    now_held = {k for k, s in states(db, link).items() if s.withdrawn_at is None}
    assert now_held == {str(ep.id) for ep in eps}
    [override] = audit_entries(db, "event.timing_identifier_override")
    assert override.after == {"preferred_timing_identifier": "EPID", "full_repush": True}


def test_a_full_repush_on_chronotrack_marks_the_old_entries_dns_and_reuses_their_bibs(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, ct: Any) -> None:
    sim, url = ct
    event = make_event(db, tenant, start_at=LATER)
    eps = runners(db, event, 2)
    link = timing_link(db, connect(db, ctx, keyring, "CHRONOTRACK", url), event, CT_RACE_REF)
    assert push(db, ctx, keyring, link).created == 2
    events_service.update_event(db, ctx, event_id=event.id, data=EventUpdate(
        preferred_timing_identifier=TimingIdentifier.EPID, confirm_full_repush=True))
    [repush] = db.scalars(select(SyncRun).where(SyncRun.link_id == link.id,
                                                SyncRun.status == SyncStatus.QUEUED)).all()
    from tests.sync.push_helpers import attempt

    done = attempt(db, keyring, repush)

    assert (done.created, done.withdrawn, done.problems) == (2, 2, 0), done.error
    held = {r["entry_external_id"]: r for r in sim.entries[81000]}
    assert {held[str(ep.person_id)]["entry_status"] for ep in eps} == {"DNS"}
    assert [held[str(ep.id)]["entry_bib"] for ep in eps] == ["1", "2"]


def test_a_mode_never_pushed_keeps_the_export_lock_rule(
        db: Session, ctx: TenantContext, tenant: Any) -> None:
    event = make_event(db, tenant, start_at=LATER)
    events_service.lock_timing_identifier(db, ctx, event=event)  # as the first E11 export
    changed = events_service.update_event(db, ctx, event_id=event.id, data=EventUpdate(
        preferred_timing_identifier=TimingIdentifier.EPID, acknowledge_override=True))
    assert changed.preferred_timing_identifier == TimingIdentifier.EPID


# --- after a participant sync --------------------------------------------------------------


def _synced(db: Session, event: Event, link: EventLink, **counts: int) -> SyncRun:
    run = SyncRun(tenant_id=event.tenant_id, connection_id=link.connection_id,
                  provider=link.provider, link_id=link.id, event_id=event.id,
                  sync_type=SyncType.PARTICIPANTS.value, trigger="schedule",
                  status=SyncStatus.SUCCEEDED, **counts)
    db.add(run)
    db.flush()
    return run


def test_a_participant_sync_that_changed_the_event_pushes_it_in_race_week_only(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring,
        offline_link: EventLink) -> None:
    soon = db.get(Event, offline_link.event_id)
    assert soon is not None
    soon.start_at = T0 + timedelta(days=3)
    far = make_event(db, tenant, start_at=LATER)
    timing = connect(db, ctx, keyring, "CHRONOTRACK", "http://127.0.0.1:9/api")
    soon_link = timing_link(db, timing, soon, CT_RACE_REF)
    timing_link(db, timing, far, "31000:81001")

    assert timing_push.request_after_participant_sync(
        db, ctx, run=_synced(db, soon, offline_link), now=T0) == []  # nothing changed
    [asked] = timing_push.request_after_participant_sync(
        db, ctx, run=_synced(db, soon, offline_link, created=2), now=T0)
    assert (asked.joined, asked.run.link_id, asked.run.trigger) == (
        False, soon_link.id, SyncTrigger.AFTER_SYNC.value)
    [joined] = timing_push.request_after_participant_sync(
        db, ctx, run=_synced(db, soon, offline_link, withdrawn=1), now=T0)
    assert joined.joined and joined.run.id == asked.run.id
    # A month before its start: no push.
    assert timing_push.request_after_participant_sync(
        db, ctx, run=_synced(db, far, offline_link, updated=4), now=T0) == []
    # Live (after the start, within RACEHUB_TIMING_LIVE_HOURS): pushed.
    assert timing_push.in_push_window(soon, soon.start_at + timedelta(hours=11))
    assert not timing_push.in_push_window(soon, soon.start_at + timedelta(hours=13))


# --- retries ---------------------------------------------------------------------------------


def test_a_push_cut_by_an_outage_keeps_what_was_accepted_and_its_retry_sends_the_rest(
        db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring, ct: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from racehub.jobs.retry import RetryScheduled
    from racehub.sync.adapters import build_adapter
    from tests.sync.push_helpers import attempt

    sim, url = ct
    monkeypatch.setattr(timing_push, "PUSH_BATCH", 2)  # three rows: two requests
    event = make_event(db, tenant, start_at=LATER)
    eps = runners(db, event, 3)
    connection = connect(db, ctx, keyring, "CHRONOTRACK", url)
    connection.settings = {**connection.settings, "max_attempts": 1}
    link = timing_link(db, connection, event, CT_RACE_REF)

    def down_after_first_upload(conn: Any, credentials: dict[str, str]) -> Any:
        adapter = build_adapter(conn, credentials)
        push_rows = adapter.push_participants

        def push_then_fail(*args: Any, **kwargs: Any) -> Any:
            report = push_rows(*args, **kwargs)
            sim.faults.arm("http_500", -1)  # the provider goes down after this request
            return report

        adapter.push_participants = push_then_fail  # type: ignore[method-assign]
        return adapter

    target = timing_push.get_target_or_raise(db, ctx, link_id=link.id)
    run = timing_push.request_push(db, ctx, target=target).run
    clock = Clock()
    with pytest.raises(RetryScheduled):
        attempt(db, keyring, run, clock=clock, adapter_factory=down_after_first_upload)

    db.refresh(run)
    assert run.status == SyncStatus.RETRYING and run.retryable is True
    assert run.next_attempt_at == clock.now + timedelta(minutes=2)
    assert run.created == 2 and len(states(db, link)) == 2  # the first batch is kept
    sim.faults.clear()
    clock.advance(minutes=2)
    done = attempt(db, keyring, run, clock=clock)

    assert (done.status, done.attempts, done.created) == (SyncStatus.SUCCEEDED, 2, 3)
    sent = [row["entry_external_id"] for upload in sim.uploads for row in upload["rows"]]
    assert sorted(sent) == sorted(str(ep.person_id) for ep in eps)  # nobody twice
