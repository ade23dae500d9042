"""Bulk edits of participants: each action through the one write path (what it changes
becomes racehub-owned), the rows ticked or all matching a filter (evaluated by the
server), one audit entry with the counts, refusals naming the row and why, another
tenant's rows never touched, the job above the inline limit, the API and the page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.models import AuditEntry, Role, Tenant
from racehub.db.session import lend
from racehub.events import bulk
from racehub.events.exceptions import CategoryNotFound
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.events.schemas import BulkEditRequest
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.runner import run_job
from tests.core.conftest import start_browser_session
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_participant,
    make_tenant,
    make_user,
)


def edit(db: Session, ctx: TenantContext, event: Event, inline_max: int = 300,
         **request: Any) -> bulk.BulkOutcome:
    return bulk.start_bulk_edit(db, ctx, event_id=event.id, inline_max=inline_max,
                                data=BulkEditRequest.model_validate(request))


def applied(db: Session, ctx: TenantContext, event: Event, **request: Any) -> bulk.BulkSummary:
    outcome = edit(db, ctx, event, **request)
    assert outcome.job is None and outcome.summary is not None
    return outcome.summary


def reload(db: Session, *eps: EventParticipant) -> list[EventParticipant]:
    db.expire_all()
    return [db.get_one(EventParticipant, ep.id) for ep in eps]


def entries(db: Session, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def ids(*eps: EventParticipant) -> list[str]:
    return [str(ep.id) for ep in eps]


# --- the actions ---------------------------------------------------------------------------


def test_withdraw_then_reinstate_the_ticked_rows_as_one_audited_change_each(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ann = make_participant(db, event, first_name="Ann", last_name="Lee", bib="1")
    bob = make_participant(db, event, first_name="Bob", last_name="Ray", bib="2")
    gone = make_participant(db, event, first_name="Cy", last_name="Old", bib="3",
                            status=ParticipantStatus.WITHDRAWN)
    untouched = make_participant(db, event, bib="4")

    summary = applied(db, ctx, event, action="withdraw", ids=ids(ann, bob, gone),
                      reason="  moved to next year ")

    assert summary.counts() == {"selected": 3, "changed": 2, "unchanged": 1, "refused": 0}
    ann, bob, gone, untouched = reload(db, ann, bob, gone, untouched)
    assert [ep.status for ep in (ann, bob, gone, untouched)] == [
        ParticipantStatus.WITHDRAWN] * 3 + [ParticipantStatus.ACTIVE]
    assert (ann.withdrawn_reason, ann.bib) == ("moved to next year", "1")  # bib kept, freed
    assert ann.withdrawn_at is not None and ann.withdrawn_at == bob.withdrawn_at
    # One entry for the change, with its counts; the write path wrote none of its own.
    [entry] = entries(db, "participant.bulk_edit")
    assert entry.target_id == str(event.id) and entry.after is not None
    assert {k: entry.after[k] for k in ("action", "selection", "selected", "changed",
                                        "unchanged", "refused", "reason", "finished")} == {
        "action": "withdraw", "selection": {"ids": 3}, "selected": 3, "changed": 2,
        "unchanged": 1, "refused": 0, "reason": "moved to next year", "finished": True}
    assert entries(db, "participant.batch_write") == []

    back = applied(db, ctx, event, action="reinstate", ids=ids(ann, bob, untouched))

    assert back.counts() == {"selected": 3, "changed": 2, "unchanged": 1, "refused": 0}
    ann, bob = reload(db, ann, bob)
    assert (ann.status, ann.withdrawn_at, ann.withdrawn_reason, ann.bib) == (
        ParticipantStatus.ACTIVE, None, None, "1")
    assert len(entries(db, "participant.bulk_edit")) == 2


def test_reinstating_a_row_whose_bib_another_entry_took_is_refused_naming_both(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ann = make_participant(db, event, first_name="Ann", last_name="Lee", bib="7",
                           status=ParticipantStatus.WITHDRAWN)
    make_participant(db, event, first_name="Bob", last_name="Ray", bib="7",
                     registration_id="R-9")
    free = make_participant(db, event, first_name="Cy", last_name="Free", bib="8",
                            status=ParticipantStatus.WITHDRAWN)

    summary = applied(db, ctx, event, action="reinstate", ids=ids(ann, free))

    assert summary.counts() == {"selected": 2, "changed": 1, "unchanged": 0, "refused": 1}
    [refusal] = summary.refusals
    assert (refusal.participant_id, refusal.name, refusal.bib, refusal.field) == (
        ann.id, "Ann Lee", "7", "bib")
    assert refusal.reason == ("bib 7 is already used in this event by Bob Ray "
                              "(registration R-9)")
    assert refusal.text() == f"Ann Lee (bib 7): {refusal.reason}"
    ann, free = reload(db, ann, free)
    assert (ann.status, free.status) == (ParticipantStatus.WITHDRAWN, ParticipantStatus.ACTIVE)
    [entry] = entries(db, "participant.bulk_edit")
    assert entry.after is not None
    assert entry.after["refusals"] == [{"participant_id": str(ann.id),
                                        "reason": refusal.reason}]


def test_a_move_to_a_category_makes_the_category_racehub_owned(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ten_k, half = make_category(db, event, "10K"), make_category(db, event, "Half")
    ann = make_participant(db, event, category_id=ten_k.id)
    bob = make_participant(db, event)
    there = make_participant(db, event, category_id=half.id)

    summary = applied(db, ctx, event, action="move_category", ids=ids(ann, bob, there),
                      category_id=str(half.id))

    assert summary.counts() == {"selected": 3, "changed": 2, "unchanged": 1, "refused": 0}
    ann, bob = reload(db, ann, bob)
    assert ann.category_id == bob.category_id == half.id
    assert "category_id" in ann.local_fields and "category_id" in bob.local_fields
    [entry] = entries(db, "participant.bulk_edit")
    assert entry.after is not None
    assert (entry.after["category_id"], entry.after["category_name"]) == (str(half.id), "Half")


def test_a_move_needs_a_category_of_the_same_event(
    db: Session, ctx: TenantContext, tenant: Tenant, event: Event
) -> None:
    ann = make_participant(db, event)
    elsewhere = make_category(db, make_event(db, tenant), "10K")

    with pytest.raises(Invalid) as missing:
        edit(db, ctx, event, action="move_category", ids=ids(ann))
    assert (missing.value.field, missing.value.detail) == (
        "categoryId", "choose the category to move them to")
    with pytest.raises(CategoryNotFound) as other:
        edit(db, ctx, event, action="move_category", ids=ids(ann), category_id=str(elsewhere.id))
    assert other.value.field == "categoryId"
    assert reload(db, ann)[0].category_id is None
    assert entries(db, "participant.bulk_edit") == []


def test_clear_bibs_clears_them_as_racehub_owned(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ann, bob = make_participant(db, event, bib="11"), make_participant(db, event)

    summary = applied(db, ctx, event, action="clear_bibs", ids=ids(ann, bob))

    assert summary.counts() == {"selected": 2, "changed": 1, "unchanged": 1, "refused": 0}
    [ann] = reload(db, ann)
    assert ann.bib is None and "bib" in ann.local_fields


def test_assign_bibs_numbers_the_selection_in_name_order_from_each_categorys_range(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ten_k = make_category(db, event, "10K", bib_range_start=100, bib_range_end=103)
    five_k = make_category(db, event, "5K", bib_range_start=500)
    make_participant(db, event, bib="101", category_id=five_k.id)  # taken in the event
    zed = make_participant(db, event, first_name="Zed", last_name="Zorn", category_id=ten_k.id)
    amy = make_participant(db, event, first_name="Amy", last_name="Abel", category_id=ten_k.id)
    max_ = make_participant(db, event, first_name="Max", last_name="Moss", category_id=ten_k.id)
    kim = make_participant(db, event, first_name="Kim", last_name="Kent", category_id=ten_k.id)
    five = make_participant(db, event, first_name="Eve", last_name="Fay", category_id=five_k.id)
    numbered = make_participant(db, event, bib="9", category_id=ten_k.id)
    withdrawn = make_participant(db, event, first_name="Wes", last_name="Wald",
                                 category_id=ten_k.id, status=ParticipantStatus.WITHDRAWN)
    loose = make_participant(db, event, first_name="Lou", last_name="Loose")

    summary = applied(db, ctx, event, action="assign_bibs",
                      ids=ids(zed, amy, max_, kim, five, numbered, withdrawn, loose))

    amy, kim, max_, zed, five, numbered, loose = reload(db, amy, kim, max_, zed, five,
                                                        numbered, loose)
    # 10K by name from 100, skipping 101 (taken): Abel 100, Kent 102, Moss 103; the range
    # ends at 103, so Zorn is refused; 5K from 500; no category: from 1.
    assert [amy.bib, kim.bib, max_.bib, zed.bib] == ["100", "102", "103", None]
    assert (five.bib, numbered.bib, loose.bib) == ("500", "9", "1")
    assert "bib" in amy.local_fields
    assert summary.counts() == {"selected": 8, "changed": 5, "unchanged": 1, "refused": 2}
    assert sorted(r.text() for r in summary.refusals) == [
        "Wes Wald: withdrawn: reinstate the entry before giving it a bib",
        "Zed Zorn: bib range 100-103 of 10K is used up; widen the range and assign again"]


def test_assign_bibs_from_a_first_bib_given(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ann, bob = make_participant(db, event, last_name="A"), make_participant(db, event,
                                                                            last_name="B")
    applied(db, ctx, event, action="assign_bibs", ids=ids(ann, bob), first_bib=40)
    assert [ep.bib for ep in reload(db, ann, bob)] == ["40", "41"]


# --- the selection -----------------------------------------------------------------------


def test_all_matching_the_filter_is_evaluated_by_the_server(
    db: Session, ctx: TenantContext, tenant: Tenant, event: Event
) -> None:
    ten_k, five_k = make_category(db, event, "10K"), make_category(db, event, "5K")
    hits = [make_participant(db, event, last_name=f"Smith{i}", category_id=ten_k.id)
            for i in range(3)]
    other_name = make_participant(db, event, last_name="Jones", category_id=ten_k.id)
    other_category = make_participant(db, event, last_name="Smithers", category_id=five_k.id)
    withdrawn = make_participant(db, event, last_name="Smithy", category_id=ten_k.id,
                                 status=ParticipantStatus.WITHDRAWN)
    other_event = make_participant(db, make_event(db, tenant), last_name="Smith")

    summary = applied(db, ctx, event, action="clear_bibs", filter={
        "q": "smith", "status": "active", "categoryId": str(ten_k.id)})

    assert summary.selected == 3
    summary = applied(db, ctx, event, action="withdraw", filter={
        "q": "smith", "status": "active", "categoryId": str(ten_k.id)})
    assert summary.counts() == {"selected": 3, "changed": 3, "unchanged": 0, "refused": 0}
    rows = reload(db, *hits, other_name, other_category, withdrawn, other_event)
    assert [ep.status.value for ep in rows] == ["withdrawn"] * 3 + ["active", "active"] \
        + ["withdrawn", "active"]
    [_, entry] = entries(db, "participant.bulk_edit")
    assert entry.after is not None
    assert entry.after["selection"] == {"filter": {
        "q": "smith", "status": "active", "category_id": str(ten_k.id)}}


def test_an_empty_filter_selects_the_whole_event(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    eps = [make_participant(db, event, bib=str(i)) for i in range(4)]
    summary = applied(db, ctx, event, action="clear_bibs", filter={})
    assert summary.counts()["changed"] == 4
    assert [ep.bib for ep in reload(db, *eps)] == [None] * 4


def test_nothing_selected_is_refused_naming_the_selection(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    with pytest.raises(Invalid) as none:
        edit(db, ctx, event, action="withdraw", ids=[])
    assert none.value.field == "ids"
    with pytest.raises(Invalid) as neither:
        edit(db, ctx, event, action="withdraw")
    assert neither.value.field == "ids"
    with pytest.raises(Invalid) as both:
        edit(db, ctx, event, action="withdraw", ids=[str(uuid.uuid4())], filter={})
    assert both.value.field == "filter"


def test_ids_of_another_tenant_or_event_are_refused_and_never_touched(
    db: Session, ctx: TenantContext, tenant: Tenant, event: Event
) -> None:
    mine = make_participant(db, event, bib="5")
    other_tenant = make_event(db, make_tenant(db))
    theirs = make_participant(db, other_tenant, bib="5")
    other_event = make_participant(db, make_event(db, tenant), bib="6")
    nobody = uuid.uuid4()

    summary = applied(db, ctx, event, action="clear_bibs",
                      ids=[*ids(mine, theirs, other_event), str(nobody)])

    assert summary.counts() == {"selected": 4, "changed": 1, "unchanged": 0, "refused": 3}
    assert sorted(r.participant_id for r in summary.refusals) == sorted(
        [theirs.id, other_event.id, nobody])
    # Refused exactly like an id nobody has: nothing about the other rows comes back.
    assert {(r.name, r.bib, r.field, r.reason) for r in summary.refusals} == {
        (None, None, "ids", "not a participant of this event")}
    mine, theirs, other_event = reload(db, mine, theirs, other_event)
    assert (mine.bib, theirs.bib, other_event.bib) == (None, "5", "6")


# --- above the inline limit: a job -----------------------------------------------------------


def run_in_test_transaction(db: Session, run: JobRun, batch_size: int) -> None:
    """One attempt of the job's body as a worker runs it, in the test's transaction."""
    def body(handle: Any, session: Session, job_ctx: TenantContext, **params: Any) -> None:
        bulk.run_bulk_edit(session, job_ctx, job=handle, batch_size=batch_size, **params)

    run_job(None, str(run.id), body, factory=lend(db))  # type: ignore[arg-type]
    db.refresh(run)


def test_more_rows_than_the_inline_limit_run_as_a_job_in_batches(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    half = make_category(db, event, "Half")
    eps = [make_participant(db, event, last_name=f"R{i:02}") for i in range(7)]
    taken = make_participant(db, event, first_name="Cy", last_name="R99", bib="3",
                             status=ParticipantStatus.WITHDRAWN)
    make_participant(db, event, first_name="Hal", last_name="Holder", bib="3")

    outcome = edit(db, ctx, event, inline_max=5, action="reinstate", filter={})
    assert outcome.summary is None and outcome.job is not None
    run = outcome.job
    assert (run.kind, run.status, run.total, run.subject_id) == (
        bulk.BULK_EDIT_KIND, JobStatus.QUEUED, 9, event.id)
    assert run.params["filter"] == {"q": None, "status": None, "category_id": None}
    assert entries(db, "participant.bulk_edit") == []  # nothing done yet

    run_in_test_transaction(db, run, batch_size=4)

    assert run.status == JobStatus.COMPLETED, run.message
    assert run.counts == {"selected": 9, "changed": 0, "unchanged": 8, "refused": 1}
    assert run.message == "Reinstate: 0 changed, 8 unchanged, 1 refused"
    assert [e["message"] for e in run.log if e["message"].startswith("refused")] == [
        "refused Cy R99 (bib 3): bib 3 is already used in this event by Hal Holder"]
    assert run.checkpoint["done"] == 9 and run.checkpoint["cursor"] is None
    [entry] = entries(db, "participant.bulk_edit")
    assert entry.after is not None
    assert (entry.after["job_id"], entry.after["refused"], entry.after["finished"]) == (
        str(run.id), 1, True)
    assert bulk.summary_of_job(run) is not None

    moved = edit(db, ctx, event, inline_max=5, action="move_category", filter={},
                 category_id=str(half.id)).job
    assert moved is not None
    run_in_test_transaction(db, moved, batch_size=4)
    assert moved.counts == {"selected": 9, "changed": 9, "unchanged": 0, "refused": 0}
    assert {ep.category_id for ep in reload(db, *eps, taken)} == {half.id}


# --- the API ---------------------------------------------------------------------------------


def test_api_applies_a_small_selection_and_answers_the_summary(
    client: TestClient, db: Session, headers: dict[str, str], event: Event
) -> None:
    ann = make_participant(db, event, first_name="Ann", last_name="Lee", bib="7",
                           status=ParticipantStatus.WITHDRAWN)
    make_participant(db, event, first_name="Bob", last_name="Ray", bib="7")
    url = f"/api/events/{event.id}/participants/bulk"

    response = client.post(url, headers=headers, json={"action": "reinstate",
                                                        "ids": [str(ann.id)]})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "action": "reinstate", "selected": 1, "changed": 0, "unchanged": 0, "refused": 1,
        "refusals": [{"participantId": str(ann.id), "name": "Ann Lee", "bib": "7",
                      "field": "bib",
                      "reason": "bib 7 is already used in this event by Bob Ray"}],
        "job": None}


def test_api_queues_a_large_selection_as_a_job(
    client: TestClient, db: Session, headers: dict[str, str], event: Event, app: Any
) -> None:
    app.state.settings.bulk_edit_inline_max = 1
    eps = [make_participant(db, event) for _ in range(2)]

    response = client.post(f"/api/events/{event.id}/participants/bulk", headers=headers,
                           json={"action": "withdraw", "ids": ids(*eps)})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["selected"] == 2 and body["job"]["kind"] == bulk.BULK_EDIT_KIND
    assert body["job"]["status"] == "queued"


@pytest.mark.parametrize("body,field", [
    ({"action": "withdraw"}, "ids"),
    ({"action": "explode", "ids": []}, "action"),
    ({"action": "move_category", "filter": {}}, "categoryId"),
    ({"action": "withdraw", "ids": ["not-an-id"]}, "ids.0"),
])
def test_api_refuses_a_bad_request_naming_the_field(
    client: TestClient, db: Session, headers: dict[str, str], event: Event,
    body: dict[str, Any], field: str,
) -> None:
    response = client.post(f"/api/events/{event.id}/participants/bulk", headers=headers,
                           json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("role,allowed", [
    (Role.VIEWER, False), (Role.RESULTS_OFFICER, True), (Role.EVENT_MANAGER, True),
    (Role.TENANT_ADMIN, True)])
def test_bulk_edits_need_the_participant_write_permission(
    client: TestClient, db: Session, tenant: Tenant, event: Event, role: Role, allowed: bool
) -> None:
    ann = make_participant(db, event, bib="1")
    response = client.post(f"/api/events/{event.id}/participants/bulk",
                           headers=auth(db, tenant, role),
                           json={"action": "clear_bibs", "ids": ids(ann)})
    assert response.status_code == (200 if allowed else 403), response.text
    assert reload(db, ann)[0].bib == (None if allowed else "1")


def test_api_another_tenants_event_is_not_found(
    client: TestClient, db: Session, headers: dict[str, str]
) -> None:
    theirs = make_event(db, make_tenant(db))
    ep = make_participant(db, theirs, bib="1")
    response = client.post(f"/api/events/{theirs.id}/participants/bulk", headers=headers,
                           json={"action": "clear_bibs", "ids": ids(ep)})
    assert response.status_code == 404
    assert reload(db, ep)[0].bib == "1"


# --- the page ----------------------------------------------------------------------------------


@pytest.fixture
def csrf(client: TestClient, db: Session, tenant: Tenant) -> str:
    token = start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))
    db.commit()
    return token


def test_page_bulk_bar_moves_the_ticked_rows_and_shows_the_summary(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    half = make_category(db, event, "Half")
    ann = make_participant(db, event, first_name="Ann", last_name="Lee")
    bob = make_participant(db, event, first_name="Bob", last_name="Ray")
    db.commit()
    page = client.get(f"/events/{event.id}")
    assert f'name="ids" value="{ann.id}" form="bulk-form"' in page.text
    assert 'id="bulk-all-matching"' in page.text

    response = client.post(f"/events/{event.id}/participants/bulk",
                           headers={"HX-Request": "true", "HX-Target": "participants"},
                           data={"csrf_token": csrf, "action": "move_category",
                                 "category_id": str(half.id), "ids": [str(ann.id)],
                                 "sort": "bib"})

    assert response.status_code == 200, response.text
    assert response.text.startswith('<div id="participants">')
    assert "Move to a category: 1 changed, 0 unchanged, 0 refused" in response.text
    assert '<input type="hidden" name="sort" value="bib">' in response.text  # kept
    ann, bob = reload(db, ann, bob)
    assert (ann.category_id, bob.category_id) == (half.id, None)


def test_page_without_htmx_redirects_with_the_summary(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    ann = make_participant(db, event, first_name="Ann", last_name="Lee", bib="4")
    make_participant(db, event, first_name="Bob", last_name="Ray", bib="5")
    db.commit()

    response = client.post(f"/events/{event.id}/participants/bulk", follow_redirects=False,
                           data={"csrf_token": csrf, "action": "clear_bibs", "scope": "filter",
                                 "q": "lee", "ids": [str(uuid.uuid4())]})

    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/events/{event.id}?q=lee&flash=Clear")
    follow = client.get(response.headers["location"])
    assert "Clear bibs: 1 changed, 0 unchanged, 0 refused" in follow.text
    assert reload(db, ann)[0].bib is None


def test_page_refused_request_shows_why_at_the_table(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    db.commit()
    response = client.post(f"/events/{event.id}/participants/bulk",
                           headers={"HX-Request": "true"},
                           data={"csrf_token": csrf, "action": "withdraw"})
    assert response.status_code == 422
    assert 'id="bulk-error"' in response.text
    assert "no participant selected" in response.text

    full = client.post(f"/events/{event.id}/participants/bulk",
                       headers={"Referer": f"http://testserver/events/{event.id}?q=x"},
                       data={"csrf_token": csrf, "action": "", "ids": [str(uuid.uuid4())]})
    assert full.status_code == 422
    assert "Action is required" in full.text
    assert f'data-page-url="/events/{event.id}?q=x"' in full.text


def test_page_large_selection_goes_to_the_job(
    client: TestClient, db: Session, csrf: str, event: Event, app: Any
) -> None:
    app.state.settings.bulk_edit_inline_max = 0
    make_participant(db, event)
    db.commit()
    response = client.post(f"/events/{event.id}/participants/bulk", follow_redirects=False,
                           data={"csrf_token": csrf, "action": "withdraw", "scope": "filter"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/jobs/")
    job_page = client.get(response.headers["location"])  # its page links back to the event
    assert job_page.status_code == 200 and f'href="/events/{event.id}"' in job_page.text
    assert "Bulk edit of participants" in job_page.text
    htmx = client.post(f"/events/{event.id}/participants/bulk", headers={"HX-Request": "true"},
                       data={"csrf_token": csrf, "action": "reinstate", "scope": "filter"})
    assert htmx.headers["HX-Redirect"].startswith("/jobs/")


def test_viewer_sees_no_bulk_bar(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    start_browser_session(db, client, make_user(db, tenant, Role.VIEWER))
    make_participant(db, event)
    db.commit()
    page = client.get(f"/events/{event.id}")
    assert page.status_code == 200
    assert "bulk-form" not in page.text


def test_a_job_cancelled_midway_records_what_its_committed_batches_did(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    eps = [make_participant(db, event, last_name=f"R{i}") for i in range(5)]
    run = edit(db, ctx, event, inline_max=1, action="withdraw", filter={}).job
    assert run is not None

    def body(handle: Any, session: Session, job_ctx: TenantContext, **params: Any) -> None:
        real = handle.commit_batch

        def commit_then_cancel(**kwargs: Any) -> None:  # an operator cancels meanwhile
            session.execute(update(JobRun).where(JobRun.id == run.id)
                            .values(cancel_requested=True))
            real(**kwargs)

        handle.commit_batch = commit_then_cancel
        bulk.run_bulk_edit(session, job_ctx, job=handle, batch_size=2, **params)

    run_job(None, str(run.id), body, factory=lend(db))  # type: ignore[arg-type]
    db.refresh(run)

    assert run.status == JobStatus.CANCELLED
    statuses = [ep.status for ep in reload(db, *eps)]
    assert statuses.count(ParticipantStatus.WITHDRAWN) == 2  # the first batch only
    [entry] = entries(db, "participant.bulk_edit")
    assert entry.after is not None
    assert (entry.after["changed"], entry.after["finished"], entry.after["job_id"]) == (
        2, False, str(run.id))
