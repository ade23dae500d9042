"""The tenant picker (GET /tenant) and the switch (POST /tenant): a platform admin with no
tenant chosen is led there from every page (not a dead-end 403), searches tenants by name
or slug, acts in one with a banner saying so on every page; a member of several tenants
gets the same switcher; GET /api/me answers a session with no tenant chosen."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.models import AuditEntry, Role
from tests.core.conftest import start_browser_session
from tests.factories import make_tenant, make_user


def _chosen(html: str) -> list[str]:
    return re.findall(r'name="tenant_id" value="([0-9a-f-]+)"', html)


def test_a_platform_admin_with_no_tenant_is_led_to_the_picker_from_any_page(
    client: TestClient, db: Session
) -> None:
    admin = make_user(db, None, None, platform_admin=True)
    start_browser_session(db, client, admin)

    page = client.get("/events/new?x=1", follow_redirects=False)
    htmx = client.get("/events", headers={"HX-Request": "true"}, follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"] == "/tenant?next=/events/new%3Fx%3D1"
    assert (htmx.status_code, htmx.headers["HX-Redirect"]) == (204, "/tenant?next=/events")


def test_the_picker_has_the_menu_log_out_and_every_tenant_for_a_platform_admin(
    client: TestClient, db: Session
) -> None:
    alpine, lakes = make_tenant(db, "Alpine Timing"), make_tenant(db, "Lakes Chrono")
    admin = make_user(db, None, None, platform_admin=True)
    start_browser_session(db, client, admin)

    response = client.get("/tenant")

    assert response.status_code == 200, response.text
    assert 'aria-label="Main"' in response.text and "Log out" in response.text
    assert "No tenant chosen" in response.text
    listed = _chosen(response.text)
    assert str(alpine.id) in listed and str(lakes.id) in listed
    assert "not a member (platform admin)" in response.text


def test_the_picker_searches_by_name_or_slug_and_pages_by_keyset(
    client: TestClient, db: Session
) -> None:
    tenants = [make_tenant(db, f"Zephyr Timing {i:02d}") for i in range(30)]
    other = core_service.create_tenant(db, name="Quiet Hills", slug="zephyr-hills")
    admin = make_user(db, None, None, platform_admin=True)
    start_browser_session(db, client, admin)

    first = client.get("/tenant", params={"q": "zephyr"})
    (next_url,) = re.findall(r'href="(/tenant\?[^"]*cursor=[^"]+)"', first.text)
    second = client.get(next_url.replace("&amp;", "&"))
    by_slug = client.get("/tenant", params={"q": "ZEPHYR-HILLS"})

    by_name = sorted([*tenants, other], key=lambda t: (t.name, t.id))
    assert _chosen(first.text) == [str(t.id) for t in by_name[:25]]
    assert _chosen(second.text) == [str(t.id) for t in by_name[25:]]
    assert _chosen(by_slug.text) == [str(other.id)]
    assert "No tenant matches" in client.get("/tenant", params={"q": "nothing"}).text


def test_choosing_a_tenant_returns_to_the_page_and_shows_the_acting_banner(
    client: TestClient, db: Session
) -> None:
    tenant = make_tenant(db, "Alpine Timing")
    admin = make_user(db, None, None, platform_admin=True)
    csrf = start_browser_session(db, client, admin)

    switched = client.post("/tenant", follow_redirects=False, data={
        "tenant_id": str(tenant.id), "next": "/jobs", "csrf_token": csrf})
    page = client.get("/jobs")

    assert (switched.status_code, switched.headers["location"]) == (303, "/jobs")
    assert page.status_code == 200
    assert 'id="acting-banner"' in page.text and "Alpine Timing" in page.text
    assert 'href="/tenant"' in page.text  # the top bar's way back to the picker
    traces = db.scalars(select(AuditEntry).where(
        AuditEntry.action == "platform.cross_tenant_request",
        AuditEntry.tenant_id == tenant.id)).all()
    assert [t.target_id for t in traces] == ["/jobs"]


def test_a_member_sees_no_acting_banner_and_only_their_tenants(
    client: TestClient, db: Session
) -> None:
    home, second, foreign = make_tenant(db), make_tenant(db), make_tenant(db)
    user = make_user(db, home, Role.VIEWER)
    core_service.set_membership(db, tenant=second, user=user, role=Role.TENANT_ADMIN)
    start_browser_session(db, client, user)

    events = client.get("/events")
    picker = client.get("/tenant")

    assert 'id="acting-banner"' not in events.text
    assert 'class="switch-tenant"' in events.text  # several tenants: the switcher
    assert sorted(_chosen(picker.text)) == sorted([str(home.id), str(second.id)])
    assert str(foreign.id) not in picker.text
    assert "TENANT_ADMIN" in picker.text and "VIEWER" in picker.text


def test_a_member_of_one_tenant_gets_no_switcher(client: TestClient, db: Session) -> None:
    user = make_user(db, make_tenant(db), Role.VIEWER)
    start_browser_session(db, client, user)
    assert 'class="switch-tenant"' not in client.get("/events").text


def test_a_refused_switch_re_renders_the_picker_at_its_own_address(
    client: TestClient, db: Session
) -> None:
    home, foreign = make_tenant(db), make_tenant(db)
    user = make_user(db, home, Role.VIEWER)
    csrf = start_browser_session(db, client, user)

    response = client.post("/tenant", data={"tenant_id": str(foreign.id),
                                            "csrf_token": csrf})

    assert response.status_code == 404
    assert "tenant not found" in response.text
    assert _chosen(response.text) == [str(home.id)]


def test_a_user_with_no_membership_gets_the_picker_saying_so(
    client: TestClient, db: Session
) -> None:
    start_browser_session(db, client, make_user(db, None, None))
    response = client.get("/events")
    assert response.status_code == 200 and response.url.path == "/tenant"
    assert "not a member of any tenant yet" in response.text
    assert "Log out" in response.text


def test_api_me_answers_a_platform_admin_with_no_tenant_chosen(
    client: TestClient, db: Session
) -> None:
    admin = make_user(db, None, None, platform_admin=True)
    start_browser_session(db, client, admin)

    response = client.get("/api/me")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tenant"], body["role"], body["isPlatformAdmin"], body["permissions"]) == (
        None, "PLATFORM_ADMIN", True, [])
    assert "No tenant chosen" in body["message"]
    assert client.get("/api/events").status_code == 403  # tenant data still needs a tenant


def test_api_me_says_when_a_platform_admin_acts_across_tenants(
    client: TestClient, db: Session
) -> None:
    tenant = make_tenant(db)
    admin = make_user(db, None, None, platform_admin=True)
    csrf = start_browser_session(db, client, admin)
    client.post("/tenant", data={"tenant_id": str(tenant.id), "csrf_token": csrf},
                follow_redirects=False)
    body = client.get("/api/me").json()
    assert (body["tenant"]["id"], body["crossTenant"], body["message"]) == (
        str(tenant.id), True, None)
