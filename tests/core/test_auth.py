"""Login and logout, session cookies, login throttling, CSRF, API tokens, and platform admins
acting in tenants they are no member of."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from racehub.core import service as core_service
from racehub.core.deps import CSRF_COOKIE, SESSION_COOKIE, authenticate
from racehub.core.models import ApiToken, AuditEntry, LoginAttempt, Membership, Role, UserSession
from racehub.core.security import token_digest
from racehub.events.models import Event
from racehub.settings import Settings
from tests.core.conftest import ClientFactory, start_browser_session
from tests.factories import PASSWORD, auth, make_event, make_tenant, make_token, make_user

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_EVENT = {"name": "Night Run", "startAt": "2026-09-05T21:00:00", "timezone": "UTC"}


def login_form_token(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = CSRF_FIELD.search(page.text)
    assert match is not None
    return match.group(1)


def post_login(client: TestClient, email: str, password: str, *, next: str = "/events",
               csrf: str | None = None) -> Response:
    token = login_form_token(client) if csrf is None else csrf
    return client.post("/login", data={"email": email, "password": password, "next": next,
                                       "csrf_token": token}, follow_redirects=False)


def set_cookie(response: Response, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    return None


def cookie_flags(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


def audit_entries(db: Session, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)
                           .order_by(AuditEntry.id)))


# --- login form ---------------------------------------------------------------------------


def test_login_page_sets_a_csrf_cookie_matching_its_hidden_field(client: TestClient) -> None:
    page = client.get("/login")
    header = set_cookie(page, CSRF_COOKIE)
    assert header is not None
    assert {"httponly", "samesite=lax", "path=/"} <= cookie_flags(header)
    assert CSRF_FIELD.search(page.text).group(1) == client.cookies[CSRF_COOKIE]  # type: ignore[union-attr]


def test_login_post_without_csrf_token_is_refused_before_the_password_is_checked(
    client: TestClient, db: Session
) -> None:
    user = make_user(db, make_tenant(db))
    login_form_token(client)  # the cookie alone is not enough: the form must echo it
    response = client.post("/login", data={"email": user.email, "password": PASSWORD},
                           follow_redirects=False)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert set_cookie(response, SESSION_COOKIE) is None
    assert db.scalar(select(func.count()).select_from(LoginAttempt)
                     .where(LoginAttempt.email == user.email)) == 0


def test_wrong_password_shows_the_form_again_with_401(client: TestClient, db: Session) -> None:
    user = make_user(db, make_tenant(db))
    response = post_login(client, user.email, "not the password")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "E-mail or password is wrong." in response.text
    assert f'value="{user.email}"' in response.text  # the e-mail stays filled in
    assert set_cookie(response, SESSION_COOKIE) is None
    assert [e.after["email"] for e in audit_entries(db, "auth.login_failed")] == [user.email]


def test_right_password_redirects_with_an_httponly_lax_session_cookie(
    client: TestClient, db: Session
) -> None:
    tenant = make_tenant(db)
    user = make_user(db, tenant, Role.EVENT_MANAGER)
    response = post_login(client, user.email, PASSWORD, next="/audit")
    assert response.status_code == 303
    assert response.headers["location"] == "/audit"
    header = set_cookie(response, SESSION_COOKIE)
    assert header is not None
    flags = cookie_flags(header)
    assert {"httponly", "samesite=lax", "path=/", f"max-age={12 * 3600}"} <= flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    me = client.get("/api/me").json()
    assert (me["email"], me["role"], me["tenant"]["id"]) == (user.email, "EVENT_MANAGER",
                                                             str(tenant.id))
    stored = db.scalars(select(UserSession.token_hash).where(UserSession.user_id == user.id))
    assert list(stored) == [hashlib.sha256(client.cookies[SESSION_COOKIE].encode()).hexdigest()]
    assert [e.actor_user_id for e in audit_entries(db, "auth.login")] == [user.id]


def test_cookies_are_secure_on_https(client_with: ClientFactory, db: Session) -> None:
    user = make_user(db, make_tenant(db))
    client = client_with(base_url="https://testserver")
    response = post_login(client, user.email, PASSWORD)
    assert response.status_code == 303
    assert "secure" in cookie_flags(set_cookie(response, SESSION_COOKIE) or "")
    fresh = client_with(base_url="https://testserver")
    assert "secure" in cookie_flags(set_cookie(fresh.get("/login"), CSRF_COOKIE) or "")


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example/x", "events"])
def test_login_redirects_only_to_local_paths(
    client: TestClient, db: Session, target: str
) -> None:
    user = make_user(db, make_tenant(db))
    response = post_login(client, user.email, PASSWORD, next=target)
    assert response.headers["location"] == "/events"


# --- throttling ---------------------------------------------------------------------------


def test_login_is_locked_after_max_failures_even_with_the_right_password(
    client_with: ClientFactory, db: Session
) -> None:
    client = client_with(login_max_failures=3, login_lockout_minutes=15, ip="203.0.113.9")
    tenant = make_tenant(db)
    ada = make_user(db, tenant, email="ada@example.test")
    bob = make_user(db, tenant, email="bob@example.test")
    csrf = login_form_token(client)
    # Counted per e-mail, whatever its case.
    for email in ("ada@example.test", "ADA@example.test", " Ada@Example.test "):
        assert post_login(client, email, "wrong password", csrf=csrf).status_code == 401

    locked = post_login(client, ada.email, PASSWORD, csrf=csrf)

    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(15 * 60)
    assert "Too many failed logins. Try again in 15 minutes." in locked.text
    assert set_cookie(locked, SESSION_COOKIE) is None
    # Another e-mail from the same address is not locked out by Ada's failures.
    assert post_login(client, bob.email, PASSWORD, csrf=csrf).status_code == 303


def test_failures_below_the_limit_do_not_lock(client_with: ClientFactory, db: Session) -> None:
    client = client_with(login_max_failures=3)
    user = make_user(db, make_tenant(db))
    csrf = login_form_token(client)
    for _ in range(2):
        assert post_login(client, user.email, "wrong password", csrf=csrf).status_code == 401
    assert post_login(client, user.email, PASSWORD, csrf=csrf).status_code == 303


def test_many_failures_from_one_address_lock_every_email_from_it(
    client_with: ClientFactory, db: Session
) -> None:
    # An address gets four times the per-e-mail allowance (offices share one), no more.
    attacker = client_with(login_max_failures=1, ip="198.51.100.7")
    office = client_with(login_max_failures=1, ip="198.51.100.8")
    user = make_user(db, make_tenant(db))
    csrf = login_form_token(attacker)
    for n in range(4):
        assert post_login(attacker, f"guess{n}@example.test", "x" * 12, csrf=csrf).status_code \
            == 401

    assert post_login(attacker, user.email, PASSWORD, csrf=csrf).status_code == 429
    assert post_login(office, user.email, PASSWORD).status_code == 303


# --- logout and sessions ------------------------------------------------------------------


def test_an_active_session_slides_and_its_cookie_follows(client: TestClient, db: Session) -> None:
    user = make_user(db, make_tenant(db))
    assert post_login(client, user.email, PASSWORD).status_code == 303
    cookie = client.cookies[SESSION_COOKIE]
    # Idle for 11 of its 12 hours: the next request pushes both expiries out again.
    now = datetime.now(UTC)
    db.execute(update(UserSession).where(UserSession.user_id == user.id)
               .values(last_seen_at=now - timedelta(hours=11), expires_at=now + timedelta(hours=1)))

    response = client.get("/api/me")

    assert response.status_code == 200
    header = set_cookie(response, SESSION_COOKIE)
    assert header is not None and header.startswith(f"{SESSION_COOKIE}={cookie};")
    assert {"httponly", "samesite=lax", f"max-age={12 * 3600}"} <= cookie_flags(header)
    expires_at = db.scalar(select(UserSession.expires_at).where(UserSession.user_id == user.id))
    assert expires_at is not None and expires_at > now + timedelta(hours=11, minutes=59)
    # Slid a moment ago: the next request writes nothing and sends no cookie.
    assert set_cookie(client.get("/api/me"), SESSION_COOKIE) is None


def test_logout_deletes_the_session_so_the_old_cookie_stops_working(
    client: TestClient, db: Session
) -> None:
    user = make_user(db, make_tenant(db))
    assert post_login(client, user.email, PASSWORD).status_code == 303
    old_cookie = client.cookies[SESSION_COOKIE]

    response = client.post("/logout", data={"csrf_token": client.cookies[CSRF_COOKIE]},
                           follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert 'max-age=0' in (set_cookie(response, SESSION_COOKIE) or "").lower()
    assert db.scalar(select(func.count()).select_from(UserSession)
                     .where(UserSession.user_id == user.id)) == 0
    client.cookies.set(SESSION_COOKIE, old_cookie)  # a copy kept by an attacker
    assert client.get("/api/me").status_code == 401
    page = client.get("/events", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/events")
    assert [(e.actor_user_id, e.actor_label) for e in audit_entries(db, "auth.logout")] \
        == [(user.id, user.email)]


def test_logout_without_csrf_token_keeps_the_session(client: TestClient, db: Session) -> None:
    user = make_user(db, make_tenant(db))
    start_browser_session(db, client, user)
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.get("/api/me").status_code == 200


def test_session_of_a_removed_member_is_refused(client: TestClient, db: Session) -> None:
    tenant = make_tenant(db)
    user = make_user(db, tenant, Role.TENANT_ADMIN)
    start_browser_session(db, client, user)
    assert client.get("/api/me").status_code == 200
    db.execute(Membership.__table__.delete().where(Membership.user_id == user.id))

    response = client.get("/api/me")

    assert response.status_code == 403
    assert "no longer a member" in response.json()["detail"]


# --- CSRF ---------------------------------------------------------------------------------


def test_cookie_session_write_needs_the_csrf_header(client: TestClient, db: Session) -> None:
    tenant = make_tenant(db)
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))

    missing = client.post("/api/events", json=NEW_EVENT)
    wrong = client.post("/api/events", json=NEW_EVENT, headers={"X-CSRF-Token": csrf + "x"})

    for response in (missing, wrong):
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "CSRF" in response.json()["detail"]
    assert db.scalar(select(func.count()).select_from(Event)
                     .where(Event.tenant_id == tenant.id)) == 0
    ok = client.post("/api/events", json=NEW_EVENT, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text


def test_form_post_is_accepted_with_the_hidden_csrf_field(
    client: TestClient, db: Session
) -> None:
    csrf = start_browser_session(db, client, make_user(db, make_tenant(db), Role.EVENT_MANAGER))
    form = {"name": "Night Run", "start_at": "2026-09-05T21:00", "timezone": "UTC"}

    refused = client.post("/events/new", data=form, follow_redirects=False)
    accepted = client.post("/events/new", data={**form, "csrf_token": csrf},
                           follow_redirects=False)

    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith("/events/")


def test_bearer_requests_need_no_csrf_token(client: TestClient, db: Session) -> None:
    headers = auth(db, make_tenant(db), Role.EVENT_MANAGER)
    assert not client.cookies  # no CSRF cookie, no session
    response = client.post("/api/events", json=NEW_EVENT, headers=headers)
    assert response.status_code == 201, response.text


def test_an_authorization_header_never_falls_back_to_the_session_cookie(
    client: TestClient, db: Session
) -> None:
    # The CSRF exemption of Bearer requests must not let a cookie session write unchecked.
    tenant = make_tenant(db)
    start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    for value in ("Bearer rh_forged", "Basic YWRhOnB3", "Bearer "):
        response = client.post("/api/events", json=NEW_EVENT, headers={"Authorization": value})
        assert response.status_code == 401, value
    assert db.scalar(select(func.count()).select_from(Event)
                     .where(Event.tenant_id == tenant.id)) == 0


# --- API tokens ---------------------------------------------------------------------------


def test_api_token_secret_is_shown_once_and_stored_only_hashed(
    client: TestClient, db: Session
) -> None:
    headers = auth(db, make_tenant(db), Role.TENANT_ADMIN)

    created = client.post("/api/tokens", json={"name": "ci", "role": "VIEWER"}, headers=headers)

    assert created.status_code == 201
    body = created.json()
    secret = body["token"]
    assert secret.startswith("rh_") and len(secret) > 40
    assert body["prefix"] == secret[:9]
    listed = client.get("/api/tokens", headers=headers)
    assert secret not in listed.text
    (row,) = [t for t in listed.json() if t["id"] == body["id"]]
    assert "token" not in row
    assert row["prefix"] == secret[:9]
    stored = db.get(ApiToken, body["id"])
    assert stored is not None
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    secret_part = secret[9:]  # everything the prefix does not already show
    for table in ("api_tokens", "audit_log"):
        dump = db.scalar(text(f"SELECT string_agg(to_jsonb(t)::text, '') FROM {table} t"))
        assert secret_part not in dump


def test_api_token_acts_only_in_its_tenant_and_with_its_role(
    client: TestClient, db: Session
) -> None:
    tenant, other = make_tenant(db), make_tenant(db)
    own_event, other_event = make_event(db, tenant), make_event(db, other)
    created = client.post("/api/tokens", json={"name": "display", "role": "VIEWER"},
                          headers=auth(db, tenant, Role.TENANT_ADMIN))
    headers = {"Authorization": f"Bearer {created.json()['token']}"}

    me = client.get("/api/me", headers=headers).json()
    assert (me["tenant"]["id"], me["role"], me["userId"]) == (str(tenant.id), "VIEWER", None)
    assert client.get(f"/api/events/{own_event.id}", headers=headers).status_code == 200
    assert client.get(f"/api/events/{other_event.id}", headers=headers).status_code == 404
    refused = client.post("/api/events", json=NEW_EVENT, headers=headers)
    assert refused.status_code == 403
    assert "events:event:write" in refused.json()["detail"]


def test_revoked_api_token_is_refused(client: TestClient, db: Session) -> None:
    admin = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    created = client.post("/api/tokens", json={"name": "ci", "role": "VIEWER"},
                          headers=admin).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/me", headers=headers).status_code == 200

    assert client.delete(f"/api/tokens/{created['id']}", headers=admin).status_code == 204

    response = client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "API token is unknown, expired or revoked"
    (row,) = [t for t in client.get("/api/tokens", headers=admin).json()
              if t["id"] == created["id"]]
    assert row["revokedAt"] is not None
    assert [e.target_id for e in audit_entries(db, "token.revoke")] == [created["id"]]


def test_expired_api_token_is_refused(client: TestClient, db: Session) -> None:
    admin = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    created = client.post("/api/tokens", headers=admin, json={
        "name": "old", "role": "VIEWER", "expiresAt": "2030-01-01T00:00:00Z"}).json()
    db.execute(update(ApiToken).where(ApiToken.id == uuid.UUID(created["id"]))
               .values(expires_at=datetime(2020, 1, 1, tzinfo=UTC)))  # its day has come
    response = client.get("/api/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert response.status_code == 401


def test_a_token_cannot_be_created_already_expired(client: TestClient, db: Session) -> None:
    tenant = make_tenant(db)
    response = client.post("/api/tokens", headers=auth(db, tenant, Role.TENANT_ADMIN), json={
        "name": "old", "role": "VIEWER", "expiresAt": "2020-01-01T00:00:00Z"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "expiresAt", "message": "the expiry must be in the future"}]


@pytest.mark.parametrize(("expires_at", "message"), [
    ("9999-12-31T23:59:59-14:00", "must be between the years 1900 and 2200"),
    ("0001-01-01T00:00:00+14:00", "must be between the years 1900 and 2200"),
    ("2199-01-01T00:00:00Z", "the expiry must be at most 5 years from now"),
])
def test_a_token_expiry_is_at_most_five_years_away(
    client: TestClient, db: Session, expires_at: str, message: str
) -> None:
    admin = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    response = client.post("/api/tokens", headers=admin, json={
        "name": "far", "role": "VIEWER", "expiresAt": expires_at})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "expiresAt"
    assert message in error["message"]
    in_four_years = datetime.now(UTC) + timedelta(days=4 * 365)
    assert client.post("/api/tokens", headers=admin, json={
        "name": "ok", "role": "VIEWER", "expiresAt": in_four_years.isoformat()},
    ).status_code == 201


def test_tokens_list_even_with_a_stored_expiry_python_cannot_hold(
    client: TestClient, db: Session
) -> None:
    tenant = make_tenant(db)
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    db.execute(text("UPDATE api_tokens SET expires_at = 'infinity' WHERE tenant_id = :t"),
               {"t": tenant.id})
    db.expire_all()
    response = client.get("/api/tokens", headers=admin)
    assert response.status_code == 200, response.text
    assert [t["expiresAt"] for t in response.json()] == ["9999-12-30T00:00:00Z"]
    assert client.get("/api/me", headers=admin).status_code == 200  # still valid


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_audit_filter_times_are_bounded_too(client: TestClient, db: Session, since: str) -> None:
    admin = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    response = client.get("/api/audit", headers=admin, params={"since": since})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["since"]


# --- platform admins ----------------------------------------------------------------------


def test_platform_admin_without_membership_must_pick_a_tenant_first(
    client: TestClient, db: Session
) -> None:
    admin = make_user(db, None, None, platform_admin=True)
    start_browser_session(db, client, admin)
    # /api/me says so (tests/core/test_tenant_picker.py); tenant data needs the choice.
    response = client.get("/api/events")
    assert response.status_code == 403
    assert "No tenant chosen" in response.json()["detail"]


def test_platform_admin_switches_tenant_and_every_request_there_is_audited(
    client: TestClient, db: Session
) -> None:
    tenant = make_tenant(db)
    event = make_event(db, tenant)
    admin = make_user(db, None, None, platform_admin=True)
    csrf = start_browser_session(db, client, admin)

    switched = client.post("/tenant", data={"tenant_id": str(tenant.id), "csrf_token": csrf},
                           follow_redirects=False)
    listed = client.get("/api/events")
    created = client.post("/api/events", json=NEW_EVENT, headers={"X-CSRF-Token": csrf})
    me = client.get("/api/me")

    assert switched.status_code == 303
    (switch,) = audit_entries(db, "platform.tenant_switch")
    assert (switch.tenant_id, switch.actor_user_id, switch.target_id) == (
        tenant.id, admin.id, str(tenant.id))
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["items"]] == [str(event.id)]
    assert created.status_code == 201
    assert me.json()["role"] == "PLATFORM_ADMIN"
    requests = audit_entries(db, "platform.cross_tenant_request")
    assert [(e.tenant_id, e.actor_user_id, e.target_id, e.after["method"]) for e in requests] \
        == [(tenant.id, admin.id, "/api/events", "GET"), (tenant.id, admin.id, "/api/events",
                                                           "POST"),
            (tenant.id, admin.id, "/api/me", "GET")]
    (create,) = audit_entries(db, "event.create")[-1:]
    assert create.after["_platform_admin_cross_tenant"] is True


def test_a_refused_cross_tenant_write_still_leaves_its_trace(
    client: TestClient, db: Session
) -> None:
    tenant = make_tenant(db)
    admin = make_user(db, None, None, platform_admin=True)
    csrf = start_browser_session(db, client, admin)
    client.post("/tenant", data={"tenant_id": str(tenant.id), "csrf_token": csrf},
                follow_redirects=False)

    refused = client.post("/api/events", json={**NEW_EVENT, "timezone": "Mars/Olympus"},
                          headers={"X-CSRF-Token": csrf})
    db.rollback()  # what the request's own session does with anything it did not commit

    assert refused.status_code == 422
    requests = audit_entries(db, "platform.cross_tenant_request")
    assert [(e.tenant_id, e.target_id, e.after["method"]) for e in requests] == [
        (tenant.id, "/api/events", "POST")]


def test_member_cannot_switch_to_a_tenant_they_do_not_belong_to(
    client: TestClient, db: Session
) -> None:
    home, other = make_tenant(db), make_tenant(db)
    user = make_user(db, home, Role.TENANT_ADMIN)
    csrf = start_browser_session(db, client, user)

    response = client.post("/tenant", data={"tenant_id": str(other.id), "csrf_token": csrf},
                           follow_redirects=False)

    assert response.status_code == 404
    assert client.get("/api/me").json()["tenant"]["id"] == str(home.id)
    assert audit_entries(db, "platform.tenant_switch") == []


def test_platform_admin_cannot_switch_to_a_missing_tenant(
    client: TestClient, db: Session
) -> None:
    csrf = start_browser_session(db, client, make_user(db, None, None, platform_admin=True))
    response = client.post("/tenant", follow_redirects=False, data={
        "tenant_id": "00000000-0000-4000-8000-000000000000", "csrf_token": csrf})
    assert response.status_code == 404


def test_a_token_use_is_stamped_in_a_commit_of_its_own_at_most_once_a_minute(
    committed_db: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GET commits nothing: the stamp was never saved, so every request wrote it again
    and held the token's row lock to its end (requests of one display queued on it)."""
    with committed_db() as db:
        secret = make_token(db, make_tenant(db), Role.VIEWER)
        db.commit()
    digest = select(ApiToken.last_used_at).where(ApiToken.token_hash == token_digest(secret))

    with committed_db() as db:
        found = authenticate(db, settings, authorization=f"Bearer {secret}",
                             session_cookie=None)
        assert found.principal is not None
        with committed_db() as other:  # another connection sees it before the request ends
            stamped = other.scalar(digest)
        assert stamped is not None

        token = found.principal.token
        assert token is not None
        now = stamped + timedelta(seconds=30)
        monkeypatch.setattr(core_service, "_now", lambda: now)
        assert core_service.note_token_use(db, token) is False  # within the minute: no write
        now = stamped + timedelta(minutes=2)
        assert core_service.note_token_use(db, token) is True
