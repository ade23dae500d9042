"""The unified views and monitoring API over HTTP: each endpoint with crafted links and
runs, its filters and keyset pages, and tenant isolation (another tenant's rows are never
listed nor counted). The API reads the clock itself, so runs are placed hours before the
real time and the windows asked about are hours wide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import AuditEntry, Role, Tenant
from racehub.events.models import EventStatus
from racehub.sync.models import EventLink, SyncStatus
from tests.core.conftest import start_browser_session
from tests.factories import (
    auth,
    make_event,
    make_participant,
    make_synced_record,
    make_tenant,
    make_user,
)
from tests.monitoring.conftest import connection, link, run

H = timedelta(hours=1)
JUNE = datetime(2026, 6, 1, 8, tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def viewer(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.VIEWER)


@pytest.fixture
def other(db: Session) -> Tenant:
    """Another tenant whose event, links, records and runs must never show."""
    tenant = make_tenant(db)
    event = make_event(db, tenant, name="Their race", start_at=JUNE)
    theirs = link(db, connection(db, tenant, "Their RunSignUp"), event, "9")
    ep = make_participant(db, event)
    make_synced_record(db, ep, link_id=theirs.id, source_ref="their-reg")
    for _ in range(3):
        run(db, theirs, SyncStatus.FAILED, ago=H, now=_now())
    return tenant


# --- GET /api/events/unified ---------------------------------------------------------------


def test_unified_events_list_each_events_sources_counts_and_timing_links(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str], other: Tenant
) -> None:
    rsu = connection(db, tenant, "RunSignUp")
    haku = connection(db, tenant, "Haku", provider="HAKU")
    ct = connection(db, tenant, "ChronoTrack", provider="CHRONOTRACK")
    event = make_event(db, tenant, name="City 10K", start_at=JUNE)
    from_rsu = link(db, rsu, event, "111:222", provider_event_name="City 10K (RSU)",
                    last_success_at=_now() - 3 * H, next_run_at=_now() + H)
    from_haku = link(db, haku, event, "h-7")
    race = link(db, ct, event, "ev-1:race-2")
    for name in ("Ada", "Bob", "Cy"):
        make_synced_record(db, make_participant(db, event, first_name=name),
                           link_id=from_rsu.id)
    make_synced_record(db, make_participant(db, event, first_name="Dee"),
                       provider="HAKU", link_id=from_haku.id, withdrawn_at=_now())
    make_participant(db, event, first_name="Eve")  # entered by hand
    run(db, from_rsu, SyncStatus.SUCCEEDED, ago=3 * H, now=_now())
    run(db, from_rsu, SyncStatus.FAILED, ago=H, now=_now())
    pushed = run(db, race, SyncStatus.SUCCEEDED, ago=2 * H, now=_now(),
                 sync_type="start_list_push")
    lonely = make_event(db, tenant, name="No links", start_at=JUNE - 24 * H)
    db.commit()

    response = client.get("/api/events/unified", headers=viewer)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["name"] for e in body["items"]] == ["City 10K", "No links"]
    city, bare = body["items"]
    assert city["participants"] == 5
    assert bare == {**bare, "id": str(lonely.id), "participants": 0, "links": [],
                    "timingLinks": []}
    by_ref = {link_["providerEventId"]: link_ for link_ in city["links"]}
    assert set(by_ref) == {"111:222", "h-7"}
    rsu_link = by_ref["111:222"]
    assert (rsu_link["provider"], rsu_link["connectionId"], rsu_link["connectionName"],
            rsu_link["providerEventName"]) == ("RUNSIGNUP", str(rsu.id), "RunSignUp",
                                               "City 10K (RSU)")
    assert (rsu_link["participants"], rsu_link["withdrawn"]) == (3, 0)
    assert rsu_link["lastRun"]["status"] == "failed"
    assert rsu_link["lastSuccessSyncType"] == "participants"
    assert by_ref["h-7"]["participants"] == 0 and by_ref["h-7"]["withdrawn"] == 1
    assert by_ref["h-7"]["lastSuccessAt"] is None and by_ref["h-7"]["lastRun"] is None
    [timing] = city["timingLinks"]
    assert (timing["provider"], timing["providerEventId"], timing["participants"]) == (
        "CHRONOTRACK", "ev-1:race-2", None)
    assert timing["lastSuccessSyncType"] == "start_list_push"
    assert datetime.fromisoformat(timing["lastSuccessAt"]) == pushed.finished_at
    # The tenant's connections, none of the other tenant's.
    assert sorted(c["name"] for c in body["connections"]) == ["ChronoTrack", "Haku",
                                                               "RunSignUp"]
    assert "Their" not in response.text


def test_unified_events_filter_by_dates_provider_and_status_and_page_by_keyset(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str], other: Tenant
) -> None:
    rsu = connection(db, tenant)
    haku = connection(db, tenant, provider="HAKU")
    events = [make_event(db, tenant, name=f"E{i}", start_at=JUNE + i * 24 * H)
              for i in range(5)]
    link(db, rsu, events[1])
    link(db, haku, events[3])
    link(db, rsu, events[4])
    events[2].status = EventStatus.OPEN
    db.commit()

    def names(**params: str) -> list[str]:
        response = client.get("/api/events/unified", headers=viewer, params=params)
        assert response.status_code == 200, response.text
        return [e["name"] for e in response.json()["items"]]

    assert names() == ["E4", "E3", "E2", "E1", "E0"]
    assert names(startFrom="2026-06-02T08:00:00Z", startTo="2026-06-04T08:00:00Z") == [
        "E2", "E1"]
    assert names(startFrom="2026-06-04T08:00:00") == ["E4", "E3"]  # no offset: UTC
    assert names(provider="RUNSIGNUP") == ["E4", "E1"]
    assert names(provider="haku") == ["E3"]
    assert names(status="open") == ["E2"]
    # Keyset pages: each page's nextCursor gives the next; together, every event once.
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/events/unified", headers=viewer, params=params).json()
        seen += [e["name"] for e in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["E4", "E3", "E2", "E1", "E0"]


@pytest.mark.parametrize(("params", "field"), [
    ({"provider": "NOPE"}, "provider"),
    ({"startFrom": "2026-06-03T00:00:00Z", "startTo": "2026-06-02T00:00:00Z"}, "startTo"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"status": "sleeping"}, "status"),
])
def test_unified_events_refuse_bad_filters_naming_the_field(
    client: TestClient, viewer: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = client.get("/api/events/unified", headers=viewer, params=params)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_the_unified_route_is_not_read_as_an_event_id(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str]
) -> None:
    event = make_event(db, tenant)
    db.commit()
    assert client.get("/api/events/unified", headers=viewer).status_code == 200
    assert client.get(f"/api/events/{event.id}", headers=viewer).json()["id"] == str(event.id)


# --- GET /api/events/{id}/participants: sources ------------------------------------------


def test_participant_list_gives_each_entry_its_provider_sources(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str]
) -> None:
    rsu, haku = connection(db, tenant), connection(db, tenant, provider="HAKU")
    event = make_event(db, tenant)
    ada = make_participant(db, event, first_name="Ada", last_name="A")
    bob = make_participant(db, event, first_name="Bob", last_name="B")
    make_participant(db, event, first_name="Cy", last_name="C")
    older = datetime(2026, 11, 1, tzinfo=UTC)
    make_synced_record(db, ada, source_ref="R-1", connection_id=rsu.id,
                       last_synced_at=older)
    make_synced_record(db, ada, provider="HAKU", source_ref="H-9", connection_id=haku.id,
                       last_synced_at=older + H)
    make_synced_record(db, bob, source_ref="R-2", connection_id=rsu.id, withdrawn_at=older,
                       last_synced_at=older)
    db.commit()

    response = client.get(f"/api/events/{event.id}/participants", headers=viewer)

    assert response.status_code == 200, response.text
    items = {i["person"]["firstName"]: i for i in response.json()["items"]}
    assert [(s["provider"], s["registrationId"], s["connectionId"]) for s in
            items["Ada"]["sources"]] == [("HAKU", "H-9", str(haku.id)),
                                         ("RUNSIGNUP", "R-1", str(rsu.id))]
    assert datetime.fromisoformat(items["Ada"]["sources"][1]["lastSyncedAt"]) == older
    [bob_source] = items["Bob"]["sources"]
    assert bob_source["withdrawnAt"] is not None and bob_source["refIsFallback"] is False
    assert items["Cy"]["sources"] == []


def test_participant_sources_cost_one_query_per_page_not_one_per_entry(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str]
) -> None:
    event = make_event(db, tenant)
    for i in range(12):
        make_synced_record(db, make_participant(db, event, first_name=f"P{i}"))
    db.commit()
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "synced_records" in statement:
            statements.append(statement)

    engine = db.get_bind()
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        small = client.get(f"/api/events/{event.id}/participants", headers=viewer,
                           params={"limit": "3"})
        large = client.get(f"/api/events/{event.id}/participants", headers=viewer,
                           params={"limit": "12"})
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert small.status_code == large.status_code == 200
    assert all(len(i["sources"]) == 1 for i in large.json()["items"])
    # One statement for the 3-entry page and one for the 12-entry page (the token's own
    # lookup reads no synced record).
    assert len(statements) == 2


# --- GET /api/monitoring/sync-summary and runs-per-hour ------------------------------------


def test_sync_summary_counts_only_the_callers_tenant(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str], other: Tenant
) -> None:
    conn = connection(db, tenant, "Mine")
    mine = link(db, conn, make_event(db, tenant), next_run_at=_now() + H)
    run(db, mine, SyncStatus.SUCCEEDED, ago=2 * H, now=_now())
    run(db, mine, SyncStatus.RUNNING, ago=H / 4, now=_now())
    db.commit()

    response = client.get("/api/monitoring/sync-summary", headers=viewer)

    assert response.status_code == 200, response.text
    body = response.json()
    [row] = body["connections"]
    assert (row["name"], row["syncs24h"], row["succeeded24h"], row["failed24h"],
            row["successRate"], row["runningNow"], row["activeLinks"]) == (
        "Mine", 2, 1, 0, 1.0, 1, 1)
    assert body["total"]["syncs24h"] == 2 and body["tenants"] is None
    # Every tenant is for platform admins: a token (a tenant's role) is refused.
    refused = client.get("/api/monitoring/sync-summary", headers=viewer,
                         params={"allTenants": "true"})
    assert refused.status_code == 403, refused.text


def test_a_platform_admin_sees_every_tenants_summary_audit_logged(
    client: TestClient, db: Session, tenant: Tenant, other: Tenant
) -> None:
    admin = make_user(db, tenant, Role.VIEWER, platform_admin=True)
    start_browser_session(db, client, admin)
    db.commit()

    response = client.get("/api/monitoring/sync-summary", params={"allTenants": "true"})

    assert response.status_code == 200, response.text
    rows = {t["tenantName"]: t for t in response.json()["tenants"]}
    assert (rows[other.name]["syncs24h"], rows[other.name]["failed24h"],
            rows[other.name]["successRate"], rows[other.name]["connections"]) == (3, 3, 0.0, 1)
    assert rows[tenant.name]["syncs24h"] == 0
    assert db.scalars(select(AuditEntry.action).where(
        AuditEntry.action == "platform.monitoring.all_tenants")).all() == [
        "platform.monitoring.all_tenants"]


def test_runs_per_hour_counts_the_callers_runs_and_404s_another_tenants_connection(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str], other: Tenant
) -> None:
    conn = connection(db, tenant)
    mine = link(db, conn, make_event(db, tenant))
    run(db, mine, SyncStatus.SUCCEEDED, ago=2 * H, now=_now())
    run(db, mine, SyncStatus.FAILED, ago=3 * H, now=_now())
    theirs = db.scalars(select(EventLink.connection_id).where(
        EventLink.tenant_id == other.id)).one()
    db.commit()

    buckets = client.get("/api/monitoring/runs-per-hour", headers=viewer).json()
    assert len(buckets) == 48
    assert (sum(b["succeeded"] for b in buckets), sum(b["failed"] for b in buckets)) == (1, 1)
    only = client.get("/api/monitoring/runs-per-hour", headers=viewer,
                      params={"connectionId": str(conn.id), "hours": "6"}).json()
    assert len(only) == 6 and sum(b["failed"] for b in only) == 1
    foreign = client.get("/api/monitoring/runs-per-hour", headers=viewer,
                         params={"connectionId": str(theirs)})
    assert foreign.status_code == 404, foreign.text


# --- GET /api/monitoring/participant-tracking ---------------------------------------------


def test_participant_tracking_counts_only_the_callers_people_and_pages_its_events(
    client: TestClient, db: Session, tenant: Tenant, viewer: dict[str, str], other: Tenant
) -> None:
    conn = connection(db, tenant)
    first = make_event(db, tenant, name="First", start_at=JUNE)
    second = make_event(db, tenant, name="Second", start_at=JUNE + 24 * H)
    for event in (first, second):
        feed = link(db, conn, event)
        make_synced_record(db, make_participant(db, event), link_id=feed.id)
    db.commit()

    body = client.get("/api/monitoring/participant-tracking", headers=viewer,
                      params={"limit": "1"}).json()

    assert (body["uniquePeople"], body["entries"], body["avgEventsPerPerson"]) == (2, 2, 1.0)
    assert body["providersPerPerson"] == [{"providers": 1, "people": 2}]
    assert [e["name"] for e in body["events"]] == ["Second"]
    assert body["events"][0]["drift"] == 0
    rest = client.get("/api/monitoring/participant-tracking", headers=viewer,
                      params={"cursor": body["nextCursor"]}).json()
    assert [e["name"] for e in rest["events"]] == ["First"] and rest["nextCursor"] is None
    assert "Their race" not in str(body) + str(rest)
