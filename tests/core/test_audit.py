"""The audit log: filters, keyset paging, tenant isolation, and append-only storage."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core import service as core_service
from racehub.core.models import AuditEntry, Role, Tenant
from racehub.core.pagination import encode_cursor
from racehub.core.schemas import ApiTokenCreate
from racehub.exports.views import get_view
from tests.factories import auth, make_tenant, make_user, system_ctx

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def add_entry(
    db: Session, tenant: Tenant, action: str, *, at: datetime | None = None,
    target: tuple[str, str] = ("event", "e-1"), actor: uuid.UUID | None = None,
) -> AuditEntry:
    entry = audit.record(db, system_ctx(tenant), action=action, target_type=target[0],
                         target_id=target[1], actor_user_id=actor, after={"n": action})
    if at is not None:
        entry.at = at
    db.flush()
    return entry


def listed_ids(client: TestClient, headers: dict[str, str], **params: Any) -> list[int]:
    response = client.get("/api/audit", headers=headers, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def ids_of(*entries: AuditEntry) -> list[int]:
    return [e.id for e in entries]


@pytest.fixture
def tenant(db: Session) -> Tenant:
    return make_tenant(db)


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


def test_action_filter_matches_exactly_or_by_prefix_ending_in_a_dot(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    create = add_entry(db, tenant, "event.create")
    update = add_entry(db, tenant, "event.update")
    override = add_entry(db, tenant, "event.timing_identifier_override")
    add_entry(db, tenant, "eventual.thing")
    add_entry(db, tenant, "participant.create")

    assert listed_ids(client, headers, action="event.create") == ids_of(create)
    assert listed_ids(client, headers, action="event.") == ids_of(override, update, create)
    assert listed_ids(client, headers, action="event") == []  # no dot: exact match only
    assert listed_ids(client, headers, action="event%") == []  # no LIKE wildcards


def test_actor_and_target_filters(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    ada, bob = uuid.uuid4(), uuid.uuid4()
    by_ada = add_entry(db, tenant, "event.update", actor=ada, target=("event", "e-1"))
    by_bob = add_entry(db, tenant, "event.update", actor=bob, target=("event", "e-2"))
    on_category = add_entry(db, tenant, "category.create", actor=ada, target=("category", "e-1"))

    assert listed_ids(client, headers, actor=str(ada)) == ids_of(on_category, by_ada)
    assert listed_ids(client, headers, actor=str(bob)) == ids_of(by_bob)
    assert listed_ids(client, headers, targetType="event", targetId="e-1") == ids_of(by_ada)
    assert listed_ids(client, headers, targetId="e-1") == ids_of(on_category, by_ada)
    assert listed_ids(client, headers, targetType="category") == ids_of(on_category)


def test_since_is_inclusive_and_until_exclusive(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    early = add_entry(db, tenant, "x.a", at=T0)
    middle = add_entry(db, tenant, "x.b", at=T0 + timedelta(hours=1))
    late = add_entry(db, tenant, "x.c", at=T0 + timedelta(hours=2))
    one, two = (T0 + timedelta(hours=h) for h in (1, 2))

    assert listed_ids(client, headers, action="x.", since=one.isoformat()) == ids_of(late, middle)
    assert listed_ids(client, headers, action="x.", until=one.isoformat()) == ids_of(early)
    assert listed_ids(client, headers, action="x.", since=one.isoformat(),
                      until=two.isoformat()) == ids_of(middle)
    # Another offset names the same instant.
    paris = one.astimezone(timezone(timedelta(hours=1)))
    assert listed_ids(client, headers, action="x.", since=paris.isoformat()) \
        == ids_of(late, middle)


def test_since_must_be_a_datetime(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/api/audit", headers=headers, params={"since": "yesterday"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["since"]


@pytest.mark.parametrize(("count", "page_sizes"), [(5, [2, 2, 1]), (4, [2, 2])])
def test_keyset_pages_cover_every_entry_once_newest_first(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str],
    count: int, page_sizes: list[int],
) -> None:
    entries = [add_entry(db, tenant, f"paging.n{i}") for i in range(count)]
    seen: list[int] = []
    sizes = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "paging.", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/audit", headers=headers, params=params).json()
        seen += [item["id"] for item in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "paging does not end"
    assert seen == sorted(ids_of(*entries), reverse=True)
    assert sizes == page_sizes


@pytest.mark.parametrize("cursor", [
    "not a cursor!",
    "e30",  # base64 of "{}": JSON, but not a list
    encode_cursor(["x", "y"]),  # the wrong width for this list
    encode_cursor(["seven"]),  # the right width, not an id
])
def test_foreign_cursor_is_422_naming_the_cursor(
    client: TestClient, headers: dict[str, str], cursor: str
) -> None:
    response = client.get("/api/audit", headers=headers, params={"cursor": cursor})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


@pytest.mark.parametrize("limit", [0, 501])
def test_limit_outside_bounds_is_422(
    client: TestClient, headers: dict[str, str], limit: int
) -> None:
    response = client.get("/api/audit", headers=headers, params={"limit": limit})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["limit"]


def test_a_tenant_never_sees_another_tenants_entries(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    other = make_tenant(db)
    theirs = add_entry(db, other, "event.create", target=("event", "shared-id"))
    mine = add_entry(db, tenant, "event.create", target=("event", "shared-id"))

    assert theirs.id not in listed_ids(client, headers)
    assert listed_ids(client, headers, targetId="shared-id") == ids_of(mine)
    other_headers = auth(db, other, Role.TENANT_ADMIN)
    assert mine.id not in listed_ids(client, other_headers)
    # Nor by paging past the other tenant's ids.
    cursor = encode_cursor([theirs.id + 1])
    assert listed_ids(client, headers, cursor=cursor) == [
        i for i in listed_ids(client, headers) if i <= theirs.id]


def test_entries_of_api_writes_name_the_token_and_the_request(
    client: TestClient, db: Session, headers: dict[str, str]
) -> None:
    response = client.post("/api/events", headers=headers, json={
        "name": "Trail", "startAt": "2026-05-01T07:00:00Z"})
    event_id = response.json()["id"]

    (entry,) = client.get("/api/audit", headers=headers,
                          params={"targetType": "event", "targetId": event_id}).json()["items"]

    assert entry["action"] == "event.create"
    assert entry["requestId"] == response.headers["x-request-id"]
    assert entry["actorLabel"].startswith("token:rh_")
    assert entry["before"] is None
    assert entry["after"]["name"] == "Trail"
    assert entry["after"]["start_at"].startswith("2026-05-01 07:00:00")


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET action = 'forged' WHERE id = :id",
    "DELETE FROM audit_log WHERE id = :id",
])
def test_audit_log_refuses_update_and_delete(db: Session, tenant: Tenant, statement: str) -> None:
    entry = add_entry(db, tenant, "event.create")

    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text(statement), {"id": entry.id})

    assert db.scalar(text("SELECT action FROM audit_log WHERE id = :id"), {"id": entry.id}) \
        == "event.create"


@pytest.mark.parametrize("statement", [
    "TRUNCATE audit_log",
    "TRUNCATE race_number_log",
    "TRUNCATE tenants CASCADE",  # reaches both logs through their tenant_id
])
def test_append_only_logs_refuse_truncate(db: Session, tenant: Tenant, statement: str) -> None:
    entry = add_entry(db, tenant, "event.create")

    with pytest.raises(DBAPIError, match="append-only .TRUNCATE refused"), db.begin_nested():
        db.execute(text(statement))

    assert db.scalar(text("SELECT action FROM audit_log WHERE id = :id"), {"id": entry.id}) \
        == "event.create"


# --- the actor filter: users by e-mail, API tokens by prefix, name or id --------------------


def test_actor_filter_finds_users_by_email_and_tokens_by_prefix_name_or_id(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.EVENT_MANAGER, email="Ada@Example.test")
    token, _ = core_service.create_api_token(
        db, system_ctx(tenant), data=ApiTokenCreate(name="Timing Laptop", role=Role.VIEWER))
    by_ada = audit.record(db, replace(system_ctx(tenant), user_id=ada.id, actor_label=ada.email),
                          action="event.update")
    by_token = audit.record(db, replace(system_ctx(tenant), token_id=token.id,
                                        actor_label=f"token:{token.prefix}"),
                            action="event.update")
    add_entry(db, tenant, "event.update")  # by the system
    db.flush()

    assert listed_ids(client, headers, actor="ada@example.TEST") == ids_of(by_ada)
    assert listed_ids(client, headers, actor=str(ada.id)) == ids_of(by_ada)
    for name in (f"token:{token.prefix}", token.prefix, f"{token.prefix}…", "timing laptop",
                 str(token.id)):
        assert listed_ids(client, headers, actor=name) == ids_of(by_token), name
    assert listed_ids(client, headers, actor="nobody@example.test") == []


def test_actor_filter_never_reaches_another_tenants_token(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    other = make_tenant(db)
    theirs, _ = core_service.create_api_token(
        db, system_ctx(other), data=ApiTokenCreate(name="shared name", role=Role.VIEWER))
    # An entry of this tenant naming the other tenant's token (it cannot happen, but the
    # filter must not rely on that): found by id only, never by the other tenant's name.
    forged = audit.record(db, replace(system_ctx(tenant), token_id=theirs.id), action="x.y")
    db.flush()

    assert listed_ids(client, headers, actor="shared name") == []
    assert listed_ids(client, headers, actor=theirs.prefix) == []
    assert listed_ids(client, headers, actor=str(theirs.id)) == ids_of(forged)


# --- the audit page -----------------------------------------------------------------------


def page_rows(client: TestClient, headers: dict[str, str], **params: str) -> str:
    response = client.get("/audit", headers={**headers, "HX-Request": "true"}, params=params)
    assert response.status_code == 200, response.text
    return response.text


def test_audit_page_to_date_includes_the_whole_chosen_day(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    day = date(2026, 3, 1)
    add_entry(db, tenant, "day.before", at=datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC))
    add_entry(db, tenant, "day.start", at=datetime(2026, 3, 1, tzinfo=UTC))
    add_entry(db, tenant, "day.late", at=datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC))
    add_entry(db, tenant, "day.after", at=datetime(2026, 3, 2, tzinfo=UTC))

    rows = page_rows(client, headers, action="day.", since=day.isoformat(),
                     until=day.isoformat())

    assert re.findall(r"<code>(day\.\w+)</code>", rows) == ["day.late", "day.start"]
    today = datetime.now(UTC).date().isoformat()
    add_entry(db, tenant, "day.now")
    assert "day.now" in page_rows(client, headers, action="day.", since=today, until=today)


def test_audit_page_filters_by_actor_and_its_export_button_carries_the_filter(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.EVENT_MANAGER, email="ada@example.test")
    audit.record(db, replace(system_ctx(tenant), user_id=ada.id, actor_label=ada.email),
                 action="by.ada")
    add_entry(db, tenant, "by.system")
    db.flush()

    page = client.get("/audit", headers=headers,
                      params={"actor": "ada@example.test", "until": "2026-05-01"})
    rows = page_rows(client, headers, actor="ada@example.test")

    assert page.status_code == 200
    assert 'name="actor" value="ada@example.test"' in page.text
    assert '<option value="ada@example.test">' in page.text  # a suggestion, from the members
    assert ("/exports/new?view=audit&amp;filter.actor=ada%40example.test&amp;"
            "filter.until=2026-05-01") in page.text
    assert "by.ada" in rows and "by.system" not in rows


def test_audit_page_refuses_a_malformed_date_naming_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.get("/audit", headers=headers, params={"until": "01/05/2026"})
    assert response.status_code == 422
    assert "until must be a date" in response.text


def test_audit_export_applies_the_page_filters_with_the_to_day_included(
    db: Session, tenant: Tenant
) -> None:
    view = get_view("audit")
    ada = make_user(db, tenant, Role.EVENT_MANAGER, email="ada@example.test")
    ada_ctx = replace(system_ctx(tenant), user_id=ada.id, actor_label=ada.email)
    late = audit.record(db, ada_ctx, action="exp.late")
    late.at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    after = audit.record(db, ada_ctx, action="exp.after")
    after.at = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    other = add_entry(db, tenant, "exp.system", at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    db.flush()

    def exported(**raw: str) -> list[int]:
        flt = view.parse_filters({"action": "exp.", **raw})
        query = view.query(system_ctx(tenant), flt, "id", True, datetime.now(UTC))
        return [row.id for row in db.scalars(query.stmt)]

    assert set(exported(until="2026-03-01")) == {late.id, other.id}
    assert set(exported(until="2026-03-01", actor="ada@example.test")) == {late.id}
    assert set(exported(until="2026-03-02T00:00:00Z")) == {late.id, other.id}  # exclusive
    assert set(exported(since="2026-03-02")) == {after.id}
    # Stored and shown again as the page's filters: the same day, not the day after.
    flt = view.parse_filters({"until": "2026-03-01", "actor": "ada@example.test"})
    stored = flt.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert stored == {"actor": "ada@example.test", "until": "2026-03-01"}
    assert view.list_url(view.parse_filters(stored), "id", True) \
        == "/audit?actor=ada%40example.test&until=2026-03-01"
    assert view.list_url(view.parse_filters({"until": "2026-03-02T00:00:00Z"}), "id", True) \
        == "/audit?until=2026-03-01"
