"""Tenant members: the API and the /settings/members page. Adding (an existing account or a
new one), changing roles, removing; the last TENANT_ADMIN kept; every change audited; a
removed member's sessions and tokens losing access to the tenant."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.models import ApiToken, AuditEntry, Membership, Role, Tenant, User, UserSession
from racehub.core.schemas import ApiTokenCreate
from racehub.core.security import verify_password
from tests.core.conftest import start_browser_session
from tests.factories import PASSWORD, auth, make_tenant, make_user, system_ctx


@pytest.fixture
def tenant(db: Session) -> Tenant:
    return make_tenant(db)


@pytest.fixture
def admin(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


def entries(db: Session, tenant: Tenant, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(
        AuditEntry.tenant_id == tenant.id, AuditEntry.action == action).order_by(AuditEntry.id)))


def role_of(db: Session, tenant: Tenant, user: User) -> Role | None:
    membership = core_service.get_membership(db, user_id=user.id, tenant_id=tenant.id)
    return membership.role if membership else None


def token_made_by(db: Session, tenant: Tenant, user: User, role: Role) -> tuple[ApiToken, str]:
    """A token created by ``user`` (as the tokens page would, from their session)."""
    ctx = replace(system_ctx(tenant), user_id=user.id, actor_label=user.email)
    return core_service.create_api_token(
        db, ctx, data=ApiTokenCreate(name=f"{role.value} of {user.email}", role=role))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- API: list and add -------------------------------------------------------------------


def test_list_shows_this_tenants_members_only(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.EVENT_MANAGER, email="ada@example.test")
    make_user(db, make_tenant(db), Role.TENANT_ADMIN, email="elsewhere@example.test")

    response = client.get("/api/members", headers=admin)

    assert response.status_code == 200
    (member,) = response.json()
    assert member["userId"] == str(ada.id)
    assert (member["email"], member["role"]) == ("ada@example.test", "EVENT_MANAGER")
    assert member["createdAt"]


def test_adding_an_existing_account_keeps_its_password(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    ada = make_user(db, make_tenant(db), Role.VIEWER, email="ada@example.test")

    response = client.post("/api/members", headers=admin, json={
        "email": " ADA@example.test ", "role": "RESULTS_OFFICER", "password": "another one 123"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["userId"], body["role"], body["userCreated"]) == (
        str(ada.id), "RESULTS_OFFICER", False)
    assert role_of(db, tenant, ada) == Role.RESULTS_OFFICER
    db.refresh(ada)
    assert verify_password(PASSWORD, ada.password_hash)
    (entry,) = entries(db, tenant, "member.add")
    assert entry.target_id == str(ada.id)
    assert entry.actor_label.startswith("token:rh_")
    assert entry.before is None
    assert entry.after == {"email": "ada@example.test", "role": "RESULTS_OFFICER",
                           "account_created": False}


def test_adding_a_new_email_creates_the_account_with_the_password_given(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    response = client.post("/api/members", headers=admin, json={
        "email": "grace@example.test", "role": "VIEWER", "password": "long enough pw",
        "fullName": "Grace Hopper"})

    assert response.status_code == 201, response.text
    assert response.json()["userCreated"] is True
    grace = core_service.get_user_by_email(db, "grace@example.test")
    assert grace is not None and grace.full_name == "Grace Hopper"
    assert verify_password("long enough pw", grace.password_hash)
    assert role_of(db, tenant, grace) == Role.VIEWER
    (entry,) = entries(db, tenant, "member.add")
    assert entry.after is not None and entry.after["account_created"] is True
    assert "long enough pw" not in str(entry.after)


@pytest.mark.parametrize(("payload", "field", "message"), [
    ({"email": "new@example.test", "role": "VIEWER"}, "password", "no racehub account yet"),
    ({"email": "new@example.test", "role": "VIEWER", "password": "short"}, "password",
     "at least 10 characters"),
    ({"email": "not-an-address", "role": "VIEWER", "password": "long enough pw"}, "email",
     "e-mail address"),
    ({"email": "new@example.test", "role": "OWNER", "password": "long enough pw"}, "role",
     "TENANT_ADMIN"),
])
def test_refused_additions_name_the_field_and_create_nothing(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str],
    payload: dict[str, Any], field: str, message: str,
) -> None:
    response = client.post("/api/members", headers=admin, json=payload)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert message in response.text
    assert core_service.get_user_by_email(db, "new@example.test") is None
    assert entries(db, tenant, "member.add") == []


def test_adding_a_member_twice_is_409(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.VIEWER)

    response = client.post("/api/members", headers=admin,
                           json={"email": ada.email, "role": "TENANT_ADMIN"})

    assert response.status_code == 409
    assert "already a member" in response.json()["detail"]
    assert role_of(db, tenant, ada) == Role.VIEWER


def test_only_tenant_admins_manage_members(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    response = client.get("/api/members", headers=auth(db, tenant, Role.EVENT_MANAGER))
    assert response.status_code == 403
    assert "core:member:manage" in response.json()["detail"]


# --- API: role changes and removal ---------------------------------------------------------


def test_role_change_is_audited_with_before_and_after(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.VIEWER)

    response = client.patch(f"/api/members/{ada.id}", headers=admin,
                            json={"role": "EVENT_MANAGER"})

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "EVENT_MANAGER"
    assert role_of(db, tenant, ada) == Role.EVENT_MANAGER
    (entry,) = entries(db, tenant, "member.role_change")
    assert entry.target_id == str(ada.id)
    assert entry.before == {"email": ada.email, "role": "VIEWER"}
    assert entry.after == {"role": "EVENT_MANAGER", "revoked_tokens": []}


def test_the_last_tenant_admin_cannot_demote_or_remove_themselves(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    boss = make_user(db, tenant, Role.TENANT_ADMIN)
    make_user(db, tenant, Role.EVENT_MANAGER)
    csrf = start_browser_session(db, client, boss)
    headers = {"X-CSRF-Token": csrf}

    demoted = client.patch(f"/api/members/{boss.id}", headers=headers, json={"role": "VIEWER"})
    removed = client.delete(f"/api/members/{boss.id}", headers=headers)

    assert demoted.status_code == 409
    assert "you are the only TENANT_ADMIN" in demoted.json()["detail"]
    assert [e["field"] for e in demoted.json()["errors"]] == ["role"]
    assert removed.status_code == 409
    assert "only TENANT_ADMIN" in removed.json()["detail"]
    assert role_of(db, tenant, boss) == Role.TENANT_ADMIN
    assert entries(db, tenant, "member.role_change") == entries(db, tenant, "member.remove") == []


def test_a_token_cannot_remove_the_last_tenant_admin_either(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    boss = make_user(db, tenant, Role.TENANT_ADMIN, email="boss@example.test")

    response = client.delete(f"/api/members/{boss.id}", headers=admin)

    assert response.status_code == 409
    assert "boss@example.test is the only TENANT_ADMIN" in response.json()["detail"]


def test_an_admin_may_step_down_while_another_admin_remains(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    boss = make_user(db, tenant, Role.TENANT_ADMIN)
    make_user(db, tenant, Role.TENANT_ADMIN)
    csrf = start_browser_session(db, client, boss)

    response = client.patch(f"/api/members/{boss.id}", headers={"X-CSRF-Token": csrf},
                            json={"role": "VIEWER"})

    assert response.status_code == 200, response.text
    assert role_of(db, tenant, boss) == Role.VIEWER
    # The session follows the new role on its next request.
    assert client.get("/api/members").status_code == 403


def test_removal_ends_the_members_access_by_session_and_by_token(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    other_tenant = make_tenant(db, name="Zeta Timing")
    ada = make_user(db, tenant, Role.TENANT_ADMIN)
    core_service.set_membership(db, tenant=other_tenant, user=ada, role=Role.VIEWER)
    make_user(db, tenant, Role.TENANT_ADMIN)  # so that ada is not the last admin
    ada_token, ada_secret = token_made_by(db, tenant, ada, Role.EVENT_MANAGER)
    _, elsewhere_secret = token_made_by(db, other_tenant, ada, Role.VIEWER)
    kept_secret = core_service.create_api_token(
        db, system_ctx(tenant), data=ApiTokenCreate(name="shared", role=Role.VIEWER))[1]
    start_browser_session(db, client, ada)
    session = db.scalar(select(UserSession).where(UserSession.user_id == ada.id))
    assert session is not None and session.active_tenant_id == tenant.id

    response = client.delete(f"/api/members/{ada.id}", headers=admin)

    assert response.status_code == 204, response.text
    assert role_of(db, tenant, ada) is None
    # Her session moved to the tenant she still belongs to; this one is out of reach.
    me = client.get("/api/me")
    assert me.status_code == 200 and me.json()["tenant"]["id"] == str(other_tenant.id)
    # Her tokens here are revoked; hers elsewhere and other people's here keep working.
    assert client.get("/api/me", headers=bearer(ada_secret)).status_code == 401
    assert client.get("/api/me", headers=bearer(elsewhere_secret)).status_code == 200
    assert client.get("/api/me", headers=bearer(kept_secret)).status_code == 200
    (entry,) = entries(db, tenant, "member.remove")
    assert entry.before == {"email": ada.email, "role": "TENANT_ADMIN"}
    assert entry.after == {"revoked_tokens": [ada_token.prefix]}
    assert [e.target_id for e in entries(db, tenant, "token.revoke")] == [str(ada_token.id)]


def test_a_removed_member_without_another_tenant_is_refused(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.VIEWER)
    start_browser_session(db, client, ada)

    assert client.delete(f"/api/members/{ada.id}", headers=admin).status_code == 204

    # Who they are is still answered, saying they have no tenant; no tenant data is.
    me = client.get("/api/me").json()
    assert (me["tenant"], me["memberships"]) == (None, [])
    assert "Ask a tenant admin to add you" in me["message"]
    response = client.get("/api/events")
    assert response.status_code == 403
    assert "Ask a tenant admin to add you" in response.json()["detail"]


def test_a_lower_role_revokes_the_members_tokens_that_outrank_it(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str]
) -> None:
    ada = make_user(db, tenant, Role.TENANT_ADMIN)
    make_user(db, tenant, Role.TENANT_ADMIN)  # so that ada is not the last admin
    strong, strong_secret = token_made_by(db, tenant, ada, Role.TENANT_ADMIN)
    _, weak_secret = token_made_by(db, tenant, ada, Role.RESULTS_OFFICER)

    response = client.patch(f"/api/members/{ada.id}", headers=admin,
                            json={"role": "EVENT_MANAGER"})

    assert response.status_code == 200, response.text
    assert client.get("/api/me", headers=bearer(strong_secret)).status_code == 401
    assert client.get("/api/me", headers=bearer(weak_secret)).status_code == 200
    (entry,) = entries(db, tenant, "member.role_change")
    assert entry.after == {"role": "EVENT_MANAGER", "revoked_tokens": [strong.prefix]}


@pytest.mark.parametrize(("method", "body"), [("PATCH", {"role": "VIEWER"}), ("DELETE", None)])
def test_another_tenants_member_is_not_found(
    client: TestClient, db: Session, tenant: Tenant, admin: dict[str, str],
    method: str, body: dict[str, str] | None,
) -> None:
    other = make_tenant(db)
    theirs = make_user(db, other, Role.EVENT_MANAGER)

    response = client.request(method, f"/api/members/{theirs.id}", headers=admin, json=body)
    unknown = client.request(method, f"/api/members/{uuid.uuid4()}", headers=admin, json=body)

    assert response.status_code == unknown.status_code == 404
    assert role_of(db, other, theirs) == Role.EVENT_MANAGER


# --- the page --------------------------------------------------------------------------------

CSRF_FIELD = 'name="csrf_token" value="'


@pytest.fixture
def boss(db: Session, tenant: Tenant) -> User:
    return make_user(db, tenant, Role.TENANT_ADMIN, email="boss@example.test")


@pytest.fixture
def boss_csrf(client: TestClient, db: Session, boss: User) -> str:
    csrf = start_browser_session(db, client, boss)
    db.commit()  # as in production, the rows exist before the request (pages may roll back)
    return csrf


def test_members_page_lists_members_with_a_csrf_token_on_every_form(
    client: TestClient, db: Session, tenant: Tenant, boss: User, boss_csrf: str
) -> None:
    ada = make_user(db, tenant, Role.VIEWER, email="ada@example.test")

    page = client.get("/settings/members")

    assert page.status_code == 200
    assert 'href="/settings/members">Members</a>' in page.text  # in the nav
    for user in (boss, ada):
        assert f'action="/settings/members/{user.id}/role"' in page.text
        assert f'action="/settings/members/{user.id}/remove"' in page.text
    forms = page.text.count("<form")
    assert forms == page.text.count(CSRF_FIELD) == 1 + 2 * 2 + 1  # add, 2 rows, logout
    assert f'{CSRF_FIELD}{boss_csrf}"' in page.text


def test_the_members_link_is_only_for_admins(client: TestClient, db: Session,
                                             tenant: Tenant) -> None:
    start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))

    events = client.get("/events")

    assert events.status_code == 200
    assert "/settings/members" not in events.text
    assert client.get("/settings/members").status_code == 403


def test_add_form_adds_and_redirects_with_a_message(
    client: TestClient, db: Session, tenant: Tenant, boss_csrf: str
) -> None:
    response = client.post("/settings/members", follow_redirects=False, data={
        "csrf_token": boss_csrf, "email": "grace@example.test", "role": "EVENT_MANAGER",
        "full_name": "", "password": "long enough pw"})

    assert response.status_code == 303
    assert response.headers["location"].startswith("/settings/members?flash=")
    grace = core_service.get_user_by_email(db, "grace@example.test")
    assert grace is not None and role_of(db, tenant, grace) == Role.EVENT_MANAGER
    page = client.get(response.headers["location"])
    assert "grace@example.test added as EVENT_MANAGER (a new account)" in page.text


def test_add_form_shows_the_problem_beside_its_input_and_keeps_the_values(
    client: TestClient, db: Session, boss_csrf: str
) -> None:
    response = client.post("/settings/members", data={
        "csrf_token": boss_csrf, "email": "grace@example.test", "role": "EVENT_MANAGER",
        "password": "short"})

    assert response.status_code == 422
    assert re.search(r'name="password" aria-invalid="true" aria-describedby="password-problem"',
                     response.text)
    assert 'id="password-problem"' in response.text
    assert "at least 10 characters" in response.text
    assert 'value="grace@example.test"' in response.text
    assert '<option value="EVENT_MANAGER" selected>' in response.text
    assert 'value="short"' not in response.text  # a password is never sent back
    assert core_service.get_user_by_email(db, "grace@example.test") is None


def test_role_form_refusal_is_shown_beside_that_row(
    client: TestClient, db: Session, boss: User, boss_csrf: str
) -> None:
    response = client.post(f"/settings/members/{boss.id}/role",
                           data={"csrf_token": boss_csrf, "role": "VIEWER"})

    assert response.status_code == 409
    assert f'aria-describedby="problem-{boss.id}"' in response.text
    problem = re.search(rf'id="problem-{boss.id}">([^<]+)<', response.text)
    assert problem is not None and "you are the only TENANT_ADMIN" in problem.group(1)


def test_role_and_remove_forms_change_the_member(
    client: TestClient, db: Session, tenant: Tenant, boss_csrf: str
) -> None:
    ada = make_user(db, tenant, Role.VIEWER, email="ada@example.test")

    changed = client.post(f"/settings/members/{ada.id}/role", follow_redirects=False,
                          data={"csrf_token": boss_csrf, "role": "RESULTS_OFFICER"})
    assert changed.status_code == 303
    assert role_of(db, tenant, ada) == Role.RESULTS_OFFICER

    removed = client.post(f"/settings/members/{ada.id}/remove", follow_redirects=False,
                          data={"csrf_token": boss_csrf})
    assert removed.status_code == 303
    assert "removed" in removed.headers["location"]
    assert role_of(db, tenant, ada) is None
    assert [e.action for e in entries(db, tenant, "member.role_change")
            + entries(db, tenant, "member.remove")] == ["member.role_change", "member.remove"]


def test_forms_without_the_csrf_token_are_refused(
    client: TestClient, db: Session, tenant: Tenant, boss_csrf: str
) -> None:
    ada = make_user(db, tenant, Role.VIEWER)

    response = client.post(f"/settings/members/{ada.id}/remove", follow_redirects=False)

    assert response.status_code == 403
    assert db.scalar(select(Membership).where(Membership.user_id == ada.id)) is not None


def test_removing_yourself_leaves_for_the_events_page(
    client: TestClient, db: Session, tenant: Tenant, boss: User, boss_csrf: str
) -> None:
    make_user(db, tenant, Role.TENANT_ADMIN)

    response = client.post(f"/settings/members/{boss.id}/remove", follow_redirects=False,
                           data={"csrf_token": boss_csrf})

    assert response.status_code == 303
    assert response.headers["location"].startswith("/events?flash=")
    assert role_of(db, tenant, boss) is None
