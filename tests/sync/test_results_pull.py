"""Results pulled from a timing system into E08's Result store (sync/results_pull.py), over
HTTP from the ChronoTrack and Copernico simulators, on real Postgres: pulled twice without
duplicates, a corrected time and a DQ updated with old and new values, places computed
again, unresolved rows listed with their reason, athletes on the course counted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.jobs.retry import RetryScheduled
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.providers.chronotrack.mapping import format_duration
from racehub.providers.copernico import simulator as cop_sim
from racehub.sync import results_pull
from racehub.sync.models import ChangeAction, SyncStatus
from racehub.timing.models import ResultStatus
from tests.factories import make_event
from tests.sync import results_helpers as h


@pytest.fixture
def ct() -> Iterator[tuple[ct_sim.ChronoTrackSimulator, str]]:
    with h.chronotrack() as served:
        yield served


@pytest.fixture
def ct_setup(db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any,
             ct: tuple[ct_sim.ChronoTrackSimulator, str]) -> dict[str, Any]:
    """A ChronoTrack race of 12 entries and 8 finish rows; racehub pushed the first 10."""
    sim, url = ct
    connection = h.connect(db, ctx, keyring, "CHRONOTRACK", url,
                           dict(ct_sim.DEMO_CREDENTIALS), page_size=5)
    event = make_event(db, tenant)
    ref, race_id = h.chronotrack_race(sim)
    eps = h.pushed_chronotrack(db, event, sim, race_id, count=10)
    h.timing_link(db, connection, event, ref)
    return {"sim": sim, "race_id": race_id, "connection": connection, "event": event,
            "eps": eps}


def _result_row(sim: ct_sim.ChronoTrackSimulator, race_id: int, entry: dict[str, str],
                **changes: str) -> dict[str, str]:
    row = sim._result_row(entry, 99, ct_sim.timedelta(minutes=40),
                          ct_sim.timedelta(minutes=40, seconds=5))
    return {**row, **changes}


def test_chronotrack_results_pulled_twice_store_each_once(
        db: Session, ctx: TenantContext, keyring: Keyring, ct_setup: dict[str, Any]) -> None:
    sim, race_id, event = ct_setup["sim"], ct_setup["race_id"], ct_setup["event"]
    connection, eps = ct_setup["connection"], ct_setup["eps"]

    first = h.pull(db, ctx, keyring, connection, event)

    assert first.status == SyncStatus.SUCCEEDED, first.error
    assert first.sync_type == "results_pull"
    assert (first.fetched, first.created, first.updated, first.unchanged, first.problems) == (
        8, 8, 0, 0, 0)
    stored = h.results_of(db, event)
    assert set(stored) == {ep.id for ep in eps[:8]}
    winner = stored[eps[0].id]
    assert winner.status == ResultStatus.FINISHED and winner.overall_place == 1
    assert winner.chip_ms == 1_093_500  # 1080 s + 13.5 s, the simulator's first finisher
    assert winner.import_id is None
    created = h.changes_of(db, first, ChangeAction.CREATED)
    assert len(created) == 8
    by_ep = {c.participant_id: c for c in created}
    assert by_ep[eps[0].id].changes["chip_time"] == [None, "0:18:13.500"]
    assert by_ep[eps[0].id].changes["overall_place"] == [None, 1]
    assert by_ep[eps[0].id].source_ref == sim.entries[race_id][0]["entry_id"]

    second = h.pull(db, ctx, keyring, connection, event)

    assert (second.fetched, second.created, second.updated, second.unchanged) == (8, 0, 0, 8)
    assert h.changes_of(db, second) == []
    assert len(h.results_of(db, event)) == 8


def test_a_corrected_time_and_a_dq_update_with_old_and_new_values_and_places_move(
        db: Session, ctx: TenantContext, keyring: Keyring, ct_setup: dict[str, Any]) -> None:
    sim, race_id, event = ct_setup["sim"], ct_setup["race_id"], ct_setup["event"]
    connection, eps = ct_setup["connection"], ct_setup["eps"]
    h.pull(db, ctx, keyring, connection, event)
    before = {ep_id: r.chip_ms for ep_id, r in h.results_of(db, event).items()}
    with sim.lock:
        rows = sim.results[race_id]
        rows[0]["results_time"] = "DQ"  # the winner disqualified
        rows[4]["results_time"] = format_duration(ct_sim.timedelta(seconds=1160.25))

    run = h.pull(db, ctx, keyring, connection, event)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.created == 0 and run.problems == 0
    stored = h.results_of(db, event)
    assert stored[eps[0].id].status == ResultStatus.DQ
    assert stored[eps[0].id].overall_place is None
    assert stored[eps[4].id].chip_ms == 1_160_250
    # Every finisher behind the DQ moved up one place; the corrected time did not pass
    # anyone (1160.25 s is still between the 4th and 6th).
    assert [stored[ep.id].overall_place for ep in eps[1:8]] == [1, 2, 3, 4, 5, 6, 7]
    updated = {c.participant_id: c for c in h.changes_of(db, run, ChangeAction.UPDATED)}
    assert run.updated == len(updated) == 8
    dq = updated[eps[0].id].changes
    assert dq["status"] == ["finished", "DQ"]
    assert dq["overall_place"] == [1, None]
    assert dq["chip_time"][1] is None
    corrected = updated[eps[4].id].changes
    assert corrected["chip_time"] == ["0:19:07.500", "0:19:20.250"]
    assert corrected["overall_place"] == [5, 4]
    assert before[eps[4].id] == 1_147_500
    assert "DQ with OverallPlace 1 in ChronoTrack Live" in (updated[eps[0].id].message or "")


def test_unresolved_rows_are_listed_with_their_reason_and_runners_counted(
        db: Session, ctx: TenantContext, keyring: Keyring, ct_setup: dict[str, Any]) -> None:
    sim, race_id, event = ct_setup["sim"], ct_setup["race_id"], ct_setup["event"]
    connection = ct_setup["connection"]
    entries = sim.entries[race_id]
    with sim.lock:
        rows = sim.results[race_id]
        # Entry 11 was entered in ChronoTrack by hand: no external id.
        rows.append(_result_row(sim, race_id, entries[10]))
        # Entry 12 only passed the 10K split: on the course.
        rows.append(_result_row(sim, race_id, entries[11], results_interval_name="10K",
                                results_rank=""))
        # Entry 10 carries entry 2's external id (pushed twice?): the id is on two rows,
        # neither is stored.
        entries[9]["entry_external_id"] = entries[1]["entry_external_id"]
        rows.append(_result_row(sim, race_id, entries[9]))
        # A row naming an entry the race does not have.
        rows.append(_result_row(sim, race_id, {**entries[9], "entry_id": "999999"}))
        # Entry 9 started and has not finished.
        rows.append(_result_row(sim, race_id, entries[8], results_time="RUN",
                                results_rank=""))

    run = h.pull(db, ctx, keyring, connection, event)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.fetched == 13
    assert run.on_course == 2
    assert run.created == 7  # the 8 finishers but entry 2, whose id is on two rows
    assert run.problems == 4
    problems = {c.source_ref: c.message or "" for c in
                h.changes_of(db, run, ChangeAction.PROBLEM)}
    assert set(problems) == {entries[10]["entry_id"], entries[1]["entry_id"],
                             entries[9]["entry_id"], "999999"}
    assert problems[entries[9]["entry_id"]].startswith("duplicate")
    assert "has no external id" in problems[entries[10]["entry_id"]]
    assert problems[entries[10]["entry_id"]].startswith("unmatched")
    assert "Suggestion: Number" not in problems[entries[10]["entry_id"]]  # no EP has bib 11's
    assert "is not in the race's entry list" in problems["999999"]
    assert "several rows of ChronoTrack Live" in problems[entries[1]["entry_id"]]
    assert problems[entries[1]["entry_id"]].startswith("duplicate")
    stored = h.results_of(db, event)
    assert ct_setup["eps"][8].id not in stored  # running: no result, finished or not
    assert ct_setup["eps"][1].id not in stored


def test_a_failed_read_stores_nothing_and_waits_for_its_retry(
        db: Session, ctx: TenantContext, keyring: Keyring, ct_setup: dict[str, Any]) -> None:
    sim, event, connection = ct_setup["sim"], ct_setup["event"], ct_setup["connection"]
    sim.faults.arm("http_503", times=50)  # down for longer than the adapter's own retries
    request = results_pull.request_results_pull(db, ctx, connection_id=connection.id,
                                                event_id=event.id)[0]

    with pytest.raises(RetryScheduled):
        h.attempt(db, keyring, request.run)

    assert request.run.status == SyncStatus.RETRYING
    assert request.run.next_attempt_at is not None and request.run.attempts == 1
    assert h.results_of(db, event) == {}
    assert h.changes_of(db, request.run) == []

    sim.faults.clear()
    again = h.attempt(db, keyring, request.run)

    assert again.status == SyncStatus.SUCCEEDED and again.attempts == 2
    assert again.trigger == "manual" and again.created == 8


def test_copernico_results_resolve_by_the_pushed_id(
        db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any) -> None:
    with h.copernico() as (sim, url):
        connection = h.connect(db, ctx, keyring, "COPERNICO", url,
                               {"api_key": h.COPERNICO_KEY},
                               **{k: v for k, v in cop_sim.demo_settings(url).items()
                                  if k != "eventIds"})
        event = make_event(db, tenant)
        ref = sim.race_ref()
        eps = h.pushed_copernico(db, event, sim, ref, count=5)
        h.timing_link(db, connection, event, ref)

        first = h.pull(db, ctx, keyring, connection, event)
        race_id, event_id = ref.split(":")
        rows = sim.results[(race_id, event_id)]
        with sim.lock:
            rows[1]["status"] = "dsq"
            rows[2][str(cop_sim.m.ASSUMED["finish_time_key"])] += 1_000
        second = h.pull(db, ctx, keyring, connection, event)

    assert first.status == SyncStatus.SUCCEEDED, first.error
    # 6 finishers and 3 athletes on the course; the 6th finisher was not pushed by racehub.
    assert (first.fetched, first.created, first.on_course, first.problems) == (9, 5, 3, 1)
    unmatched = h.changes_of(db, first, ChangeAction.PROBLEM)
    assert len(unmatched) == 1 and unmatched[0].source_ref == rows[5]["id"]
    assert "no active participant of the event has ExternalReferenceID" in (
        unmatched[0].message or "")
    stored = h.results_of(db, event)
    assert stored[eps[1].id].status == ResultStatus.DQ
    assert stored[eps[2].id].gun_ms == rows[2][str(cop_sim.m.ASSUMED["finish_time_key"])]
    assert stored[eps[0].id].splits["start"] == -250  # a start offset before the gun
    assert second.created == 0 and second.problems == 1 and second.on_course == 3
    updated = {c.participant_id: c.changes for c in
               h.changes_of(db, second, ChangeAction.UPDATED)}
    assert updated[eps[1].id]["status"] == ["finished", "DQ"]
    assert eps[2].id in updated and "gun_time" in updated[eps[2].id]
    assert eps[0].id not in updated  # placed 1st before and after


def test_a_registration_connection_is_refused_for_results(
        db: Session, ctx: TenantContext, offline_link: Any) -> None:
    from racehub.core.exceptions import Invalid

    with pytest.raises(Invalid, match="connectionId: .* is not a timing system"):
        results_pull.request_results_pull(db, ctx, connection_id=offline_link.connection_id)
