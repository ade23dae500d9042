"""E11 timing-system CSV export: columns, identifier modes, the lock, the audit trail,
AF-2 (missing registration ids), AF-3 (empty event), AF-4 (viewers) and batching."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import AuditEntry, Role, Tenant
from racehub.events import service as events_service
from racehub.events.models import (
    Event,
    EventParticipant,
    Gender,
    ParticipantStatus,
    TimingIdentifier,
)
from racehub.events.schemas import ParticipantCreate, PersonIn
from racehub.timing import service
from tests.core.test_auth import post_login
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_participant,
    make_tenant,
)

H = dict[str, str]


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> H:
    return auth(db, tenant, Role.RESULTS_OFFICER)


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    # 23:30 UTC on 31 May is already 1 June in Paris: ages count on 1 June.
    return make_event(db, tenant, name="Paris 10K", timezone="Europe/Paris",
                      start_at=datetime(2026, 5, 31, 23, 30, tzinfo=UTC))


def add(db: Session, event: Event, first: str, last: str, **fields: Any) -> EventParticipant:
    person_fields = {k: fields.pop(k) for k in ("birth_date", "gender", "email", "city",
                                                "region", "country") if k in fields}
    return events_service.create_participant(
        db, system_ctx_of(event), event_id=event.id,
        data=ParticipantCreate(person=PersonIn(first_name=first, last_name=last,
                                               **person_fields), **fields))


def system_ctx_of(event: Event):  # type: ignore[no-untyped-def]
    from racehub.core.context import TenantContext

    return TenantContext.system(event.tenant_id, label="test")


def export(client: TestClient, event: Event, headers: H, **params: str) -> Response:
    return client.get(f"/api/events/{event.id}/timing-export",
                      params={"format": "csv", **params}, headers=headers)


def rows_of(response: Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


def audit_of(db: Session, event: Event, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.target_id == str(event.id))
        .order_by(AuditEntry.id)))


def set_mode(db: Session, event: Event, mode: str) -> None:
    event.preferred_timing_identifier = TimingIdentifier(mode)
    db.flush()


# --- columns, values, order ---------------------------------------------------------------


def test_timing_export_has_the_canonical_columns_in_order(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    ten_k = make_category(db, event, "10K")
    ep = add(db, event, "Ada", "Lovelace", bib="7", team="Harriers", category_id=ten_k.id,
             birth_date=date(1990, 6, 1), gender=Gender.FEMALE, email="ada@example.com",
             city="London", region="Greater London", country="GBR", registration_id="R-1")
    response = export(client, event, headers)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8")
    assert not text.startswith("\ufeff")
    assert text.splitlines()[0] == ",".join(service.COLUMNS)
    assert text.splitlines()[0] == ("ExternalReferenceID,Number,FirstName,LastName,Name,Gender,"
                                    "DateOfBirth,Age,Category,Team,City,Region,Country,Email")
    [row] = rows_of(response)
    assert row == {
        "ExternalReferenceID": str(ep.person_id),  # PERSON_ID is the default mode
        "Number": "7", "FirstName": "Ada", "LastName": "Lovelace", "Name": "Ada Lovelace",
        "Gender": "F", "DateOfBirth": "1990-06-01", "Age": "36", "Category": "10K",
        "Team": "Harriers", "City": "London", "Region": "Greater London", "Country": "GBR",
        "Email": "ada@example.com",
    }


def test_timing_export_counts_age_on_the_event_day_in_its_time_zone(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    # Born 1 June 2000: 26 on 1 June 2026 (Paris), though it is still 31 May in UTC.
    add(db, event, "Birthday", "Today", bib="1", birth_date=date(2000, 6, 1))
    add(db, event, "Birthday", "Tomorrow", bib="2", birth_date=date(2000, 6, 2))
    add(db, event, "No", "Birthdate", bib="3")
    ages = [r["Age"] for r in rows_of(export(client, event, headers))]
    assert ages == ["26", "25", ""]


@pytest.mark.parametrize("mode", ["EPID", "PERSON_ID", "REGISTRATION_ID"])
def test_timing_export_writes_external_reference_id_per_mode(
    client: TestClient, db: Session, event: Event, headers: H, mode: str
) -> None:
    ep = add(db, event, "Ada", "Lovelace", bib="1", registration_id="RS-991")
    set_mode(db, event, mode)
    [row] = rows_of(export(client, event, headers))
    expected = {"EPID": str(ep.id), "PERSON_ID": str(ep.person_id),
                "REGISTRATION_ID": "RS-991"}[mode]
    assert row["ExternalReferenceID"] == expected


def test_timing_export_leaves_out_withdrawn_and_sorts_by_bib_then_name(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    add(db, event, "Zed", "Ten", bib="10")
    add(db, event, "Nine", "Nine", bib="9")
    add(db, event, "Gone", "Away", bib="5", status=ParticipantStatus.WITHDRAWN)
    add(db, event, "Bea", "Nobib")
    add(db, event, "Al", "Nobib")
    add(db, event, "Cy", "Anobib")
    add(db, event, "Hundred", "One", bib="100")
    names = [r["Name"] for r in rows_of(export(client, event, headers))]
    assert names == ["Nine Nine", "Zed Ten", "Hundred One", "Cy Anobib", "Al Nobib",
                     "Bea Nobib"]


def test_timing_export_adds_a_bom_on_request(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    add(db, event, "Zoë", "Müller", bib="1")
    body = export(client, event, headers, bom="1").content
    assert body.startswith(b"\xef\xbb\xbf" + b"ExternalReferenceID,")
    assert "Zoë Müller".encode() in body


def test_timing_export_neutralizes_formula_cells(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    add(db, event, "@cmd", "-2+3", bib="=1+1", team="+SUM(A1)",
        city='=HYPERLINK("http://x")', region="\tTabbed", country="FR")
    add(db, event, "Safe", "Name", bib="2", team="a=b", city="Lyon")
    rows = rows_of(export(client, event, headers))
    assert rows[1]["Number"] == "'=1+1"
    assert rows[1]["FirstName"] == "'@cmd"
    assert rows[1]["LastName"] == "'-2+3"
    assert rows[1]["Name"] == "'@cmd -2+3"
    assert rows[1]["Team"] == "'+SUM(A1)"
    assert rows[1]["City"] == "'=HYPERLINK(\"http://x\")"
    assert rows[1]["Region"] == "'\tTabbed"
    assert (rows[0]["Team"], rows[0]["City"]) == ("a=b", "Lyon")  # only a leading sign counts
    assert service.neutralize("\rx") == "'\rx" and service.neutralize("x=") == "x="


def test_format_other_than_csv_is_refused_naming_format(
    client: TestClient, event: Event, headers: H
) -> None:
    response = export(client, event, headers, format="xlsx")
    assert response.status_code == 422
    body = response.json()
    assert "format" in body["detail"]
    assert [e["field"] for e in body.get("errors", [])] == ["format"]
    assert event.preferred_timing_identifier_locked_at is None


# --- the lock and the audit trail -----------------------------------------------------------


def test_timing_export_locks_identifier_on_first_call(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    assert client.get(f"/api/events/{event.id}", headers=headers).json()[
        "preferredTimingIdentifierLockedAt"] is None
    export(client, event, headers)
    first = client.get(f"/api/events/{event.id}", headers=headers).json()
    assert first["preferredTimingIdentifier"] == "PERSON_ID"
    assert first["preferredTimingIdentifierLockedAt"] is not None
    export(client, event, headers)
    second = client.get(f"/api/events/{event.id}", headers=headers).json()
    assert second["preferredTimingIdentifierLockedAt"] == first[
        "preferredTimingIdentifierLockedAt"]  # later exports keep the first lock
    started = audit_of(db, event, "event.timing_export_started")
    assert [e.after["locked_now"] for e in started] == [True, False]


def test_override_after_export_clears_lock_and_audits_previous_value(
    client: TestClient, db: Session, tenant: Tenant, event: Event, headers: H
) -> None:
    export(client, event, headers)
    manager = auth(db, tenant, Role.EVENT_MANAGER)
    url = f"/api/events/{event.id}"
    refused = client.patch(url, json={"preferredTimingIdentifier": "EPID"}, headers=manager)
    assert refused.status_code == 409
    assert "acknowledgeOverride=true" in refused.json()["detail"]
    response = client.patch(url, json={"preferredTimingIdentifier": "EPID",
                                       "acknowledgeOverride": True}, headers=manager)
    assert response.status_code == 200, response.text
    assert response.json()["preferredTimingIdentifier"] == "EPID"
    assert response.json()["preferredTimingIdentifierLockedAt"] is None
    [override] = audit_of(db, event, "event.timing_identifier_override")
    assert override.before["preferred_timing_identifier"] == "PERSON_ID"
    assert override.before["locked_at"] is not None
    assert override.after == {"preferred_timing_identifier": "EPID"}
    assert override.actor_token_id is not None
    export(client, event, headers)  # the next export locks the new mode
    assert client.get(url, headers=headers).json()["preferredTimingIdentifierLockedAt"]


def test_timing_export_audits_the_rows_actually_streamed(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    for n in range(3):
        add(db, event, f"R{n}", "Runner", bib=str(n + 1))
    add(db, event, "Gone", "Runner", status=ParticipantStatus.WITHDRAWN)
    assert len(rows_of(export(client, event, headers))) == 3
    [entry] = audit_of(db, event, "event.timing_export")
    assert entry.after["row_count"] == 3
    assert entry.after["identifier_mode"] == "PERSON_ID"
    assert entry.after["event_id"] == str(event.id)
    assert entry.after["accepted_missing_ids"] is False
    assert entry.after["completed"] is True
    assert entry.actor_token_id is not None and entry.at is not None


def test_session_user_is_recorded_in_the_audit_entry(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    from tests.factories import PASSWORD, make_user

    user = make_user(db, tenant, Role.EVENT_MANAGER, email="officer@example.test")
    login = post_login(client, user.email, PASSWORD)
    assert login.status_code == 303, login.text
    assert export(client, event, {}).status_code == 200
    [entry] = audit_of(db, event, "event.timing_export")
    assert entry.after["user_id"] == str(user.id)
    assert entry.actor_user_id == user.id


def test_audit_counts_only_the_rows_a_cut_off_download_received(
    db: Session, ctx: Any, event: Event
) -> None:
    for n in range(5):
        add(db, event, f"R{n}", "Runner", bib=str(n + 1))
    plan = service.start_export(db, ctx, event_id=event.id)
    chunks = service.export_csv(db, ctx, plan=plan, batch_size=2)
    next(chunks), next(chunks)  # header, first batch handed out
    next(chunks)  # the client took the first batch and asks for more
    chunks.close()  # ... then goes away
    assert plan.rows == 2
    service.record_export(db, ctx, plan=plan, completed=False)
    db.flush()
    [entry] = audit_of(db, event, "event.timing_export")
    assert (entry.after["row_count"], entry.after["completed"]) == (2, False)


# --- AF-2: REGISTRATION_ID with missing ids --------------------------------------------------


def test_preflight_lists_participants_without_registration_id(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    add(db, event, "Has", "Id", bib="1", registration_id="R-1")
    missing = add(db, event, "No", "Id", bib="2")
    add(db, event, "Gone", "Id", status=ParticipantStatus.WITHDRAWN)
    set_mode(db, event, "REGISTRATION_ID")
    body = client.get(f"/api/events/{event.id}/timing-export/preflight",
                      headers=headers).json()
    assert body["mode"] == "REGISTRATION_ID"
    assert body["lockedAt"] is None
    assert body["rowCount"] == 2
    assert body["missingRegistrationCount"] == 1
    assert body["missingRegistrationIds"] == [
        {"id": str(missing.id), "name": "No Id", "bib": "2",
         "editUrl": f"/participants/{missing.id}/edit"}]

    refused = export(client, event, headers)
    assert refused.status_code == 409
    assert "1 participant(s) have no registration id" in refused.json()["detail"]
    assert "acceptMissingIds=1" in refused.json()["detail"]
    db.refresh(event)
    assert event.preferred_timing_identifier_locked_at is None  # a refusal locks nothing

    rows = rows_of(export(client, event, headers, acceptMissingIds="1"))
    assert [r["ExternalReferenceID"] for r in rows] == ["R-1", ""]
    [entry] = audit_of(db, event, "event.timing_export")
    assert entry.after["accepted_missing_ids"] is True
    assert entry.after["missing_ids"] == 1
    assert entry.after["row_count"] == 2


def test_preflight_lists_nothing_outside_registration_id_mode(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    add(db, event, "No", "Id", bib="2")
    body = client.get(f"/api/events/{event.id}/timing-export/preflight",
                      headers=headers).json()
    assert (body["mode"], body["missingRegistrationCount"], body["rowCount"]) == (
        "PERSON_ID", 0, 1)
    assert export(client, event, headers).status_code == 200


# --- AF-3, AF-4, tenancy ------------------------------------------------------------------


def test_empty_event_exports_a_header_only_file(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    response = export(client, event, headers)
    assert response.status_code == 200
    assert response.content.decode() == ",".join(service.COLUMNS) + "\r\n"
    [entry] = audit_of(db, event, "event.timing_export")
    assert entry.after["row_count"] == 0


def test_viewer_is_refused_the_export(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    viewer = auth(db, tenant, Role.VIEWER)
    response = export(client, event, viewer)
    assert response.status_code == 403
    assert "timing:export:run" in response.json()["detail"]
    assert client.get(f"/api/events/{event.id}/timing-export/preflight",
                      headers=viewer).status_code == 403
    assert event.preferred_timing_identifier_locked_at is None


@pytest.mark.parametrize("role", [Role.RESULTS_OFFICER, Role.EVENT_MANAGER, Role.TENANT_ADMIN])
def test_export_roles_may_export(
    client: TestClient, db: Session, tenant: Tenant, event: Event, role: Role
) -> None:
    assert export(client, event, auth(db, tenant, role)).status_code == 200


def test_other_tenants_event_is_not_found(
    client: TestClient, db: Session, event: Event, headers: H
) -> None:
    other = make_event(db, make_tenant(db))
    make_participant(db, other, bib="1")
    assert export(client, other, headers).status_code == 404
    assert client.get(f"/api/events/{other.id}/timing-export/preflight",
                      headers=headers).status_code == 404
    assert export(client, Event(id=uuid.uuid4()), headers).status_code == 404
    db.refresh(other)
    assert other.preferred_timing_identifier_locked_at is None


# --- streaming ------------------------------------------------------------------------------


def test_timing_export_fetches_in_batches(
    app: Any, client: TestClient, db: Session, event: Event, headers: H
) -> None:
    ctx = system_ctx_of(event)
    from racehub.events.models import Person

    people = [Person(tenant_id=event.tenant_id, first_name=f"F{n}", last_name=f"L{n:04d}")
              for n in range(1200)]
    db.add_all(people)
    db.flush()
    db.add_all([EventParticipant(tenant_id=event.tenant_id, event_id=event.id,
                                 person_id=p.id, bib=str(n + 1))
                for n, p in enumerate(people)])
    db.flush()

    plan = service.start_export(db, ctx, event_id=event.id)
    chunks = list(service.export_csv(db, ctx, plan=plan, batch_size=100))
    assert len(chunks) == 1 + 12  # the header, then one chunk per batch of 100
    assert all(c.count("\r\n") == 100 for c in chunks[1:])
    assert plan.rows == 1200

    app.state.timing_export_batch_size = 100
    rows = rows_of(export(client, event, headers))
    assert len(rows) == 1200
    assert [r["Number"] for r in rows[:3]] == ["1", "2", "3"]
    assert rows[-1]["Number"] == "1200"
    assert audit_of(db, event, "event.timing_export")[-1].after["row_count"] == 1200
