"""Every route declares its permission; every role is refused what it lacks; no id of
another tenant reaches a row (404, never 403, so ids leak nothing).

The tables below hold one sample request per route. A new route without an entry fails
``test_every_*_route_has_a_security_case``: add a case, do not skip it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.crypto import keyring_from_settings
from racehub.core.csrf import csrf_protect
from racehub.core.deps import PermissionDependency
from racehub.core.models import Role, Tenant
from racehub.core.rbac import ROLE_PERMISSIONS, Perm
from racehub.core.schemas import ApiTokenCreate
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.exports.models import Export
from racehub.exports.service import EXPORT_KIND
from racehub.imports.models import Import
from racehub.imports.service import RUN_IMPORT_KIND
from racehub.jobs.models import JobRun, JobStatus
from racehub.settings import Settings
from racehub.sync import service as sync_service
from racehub.sync.schemas import ConnectionCreate
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_number_type,
    make_participant,
    make_tenant,
    onboard,
    system_ctx,
)

# Routes anyone may call. Keep these short: each entry is a deliberate decision.
PUBLIC_API_PATHS = {
    "/api/openapi.json",  # the schema of the API, the same for every caller
    # Called by Copernico, not a racehub user: authenticated by the connection's API key in
    # the payload (404 unknown connection, 401 wrong key: tests/sync/test_webhooks.py).
    "/api/connections/{connection_id}/webhook",
}
PUBLIC_PAGE_PATHS = {
    "/",  # redirects to /events, which then asks for a login
    "/login",
    "/logout",
    "/tenant",  # checks the session and the membership itself (see test_auth)
    "/static",
}

# Controlling a job also needs the permission of the job's kind (assign bibs here).
JOB_CONTROL = frozenset({Perm.EVENTS_PARTICIPANT_WRITE})
# Manufactured-number imports need the inventory permission on top of running imports.
INVENTORY_MANAGE = frozenset({Perm.INVENTORY_NUMBER_MANAGE})
IMPORT_CONTROL = INVENTORY_MANAGE


@dataclass(frozen=True)
class Case:
    ok: int
    json: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    also_needs: frozenset[Perm] = field(default_factory=frozenset)
    params: dict[str, str] | None = None  # formatted with the row ids, like the path
    files: dict[str, tuple[str, bytes]] | None = None
    # Placeholder -> the build_rows id to put there instead (a row in another state).
    ids: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, ids: dict[str, str]) -> str:
        return path.format(**{**ids, **{k: ids[v] for k, v in self.ids.items()}})


NEW_PERSON = {"person": {"firstName": "Grace", "lastName": "Hopper"}, "bib": "8"}
NEW_CONNECTION = {"provider": "HAKU", "name": "Haku 2",
                  "credentials": {"client_id": "client-12345678", "client_secret": "s-12345678"}}

API_CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/me"): Case(200),
    ("GET", "/api/tokens"): Case(200),
    ("POST", "/api/tokens"): Case(201, json={"name": "ci", "role": "VIEWER"}),
    ("DELETE", "/api/tokens/{token_id}"): Case(204),
    ("GET", "/api/audit"): Case(200),
    ("GET", "/api/events"): Case(200),
    ("POST", "/api/events"): Case(
        201, json={"name": "Spring 10K", "startAt": "2026-04-12T09:00:00",
                   "timezone": "Europe/Paris"}),
    ("GET", "/api/events/{event_id}"): Case(200),
    ("PATCH", "/api/events/{event_id}"): Case(200, json={"location": "Lyon"}),
    ("GET", "/api/events/{event_id}/categories"): Case(200),
    ("POST", "/api/events/{event_id}/categories"): Case(201, json={"name": "Half"}),
    ("POST", "/api/events/{event_id}/categories/{category_id}/assign-bibs"): Case(
        202, json={"firstBib": 10}),
    ("GET", "/api/events/{event_id}/participants"): Case(200),
    ("POST", "/api/events/{event_id}/participants"): Case(201, json=NEW_PERSON),
    ("GET", "/api/participants/{participant_id}"): Case(200),
    ("PATCH", "/api/participants/{participant_id}"): Case(200, json={"team": "Harriers"}),
    ("POST", "/api/imports"): Case(
        201, params={"importType": "NUMBER_ONBOARDING", "numberTypeId": "{number_type_id}"},
        files={"file": ("batch.csv", b"sequence,number,barcode\r\n5,0005,\r\n")},
        also_needs=INVENTORY_MANAGE),
    ("GET", "/api/imports"): Case(200),
    ("GET", "/api/imports/{import_id}"): Case(200),
    ("GET", "/api/imports/{import_id}/rows"): Case(200),
    ("GET", "/api/imports/{import_id}/rows.csv"): Case(200),
    ("POST", "/api/imports/{import_id}/cancel"): Case(200, also_needs=IMPORT_CONTROL),
    ("POST", "/api/imports/{import_id}/pause"): Case(200, also_needs=IMPORT_CONTROL),
    ("POST", "/api/imports/{import_id}/resume"): Case(200, also_needs=IMPORT_CONTROL),
    ("POST", "/api/imports/{import_id}/mapping"): Case(
        200, json={"mapping": {"sequence": "seq", "number": "num", "barcode": "code"}},
        also_needs=IMPORT_CONTROL, ids={"import_id": "mapping_import_id"}),
    ("GET", "/api/number-types"): Case(200),
    ("POST", "/api/number-types"): Case(201, json={"name": "Road bibs"}),
    ("GET", "/api/race-numbers"): Case(200),
    ("GET", "/api/race-numbers/templates/manufactured-numbers.csv"): Case(200),
    ("GET", "/api/race-numbers/{race_number_id}"): Case(200),
    ("GET", "/api/events/{event_id}/timing-export"): Case(200, params={"format": "csv"}),
    ("GET", "/api/events/{event_id}/timing-export/preflight"): Case(200),
    ("GET", "/api/events/{event_id}/results"): Case(200),
    ("GET", "/api/events/{event_id}/results/reconciliation"): Case(200),
    ("GET", "/api/jobs"): Case(200),
    ("GET", "/api/jobs/{job_id}"): Case(200),
    ("POST", "/api/jobs/{job_id}/cancel"): Case(200, also_needs=JOB_CONTROL),
    ("POST", "/api/jobs/{job_id}/pause"): Case(200, also_needs=JOB_CONTROL),
    ("POST", "/api/jobs/{job_id}/resume"): Case(200, also_needs=JOB_CONTROL),
    ("GET", "/api/exports/views"): Case(200),
    ("POST", "/api/exports"): Case(201, json={"view": "race_numbers"}),
    ("GET", "/api/exports"): Case(200),
    ("GET", "/api/exports/{export_id}"): Case(200),
    ("GET", "/api/exports/{export_id}/download"): Case(410),  # the sample export expired
    ("POST", "/api/exports/{export_id}/cancel"): Case(200),
    ("POST", "/api/exports/{export_id}/retry"): Case(201),
    ("GET", "/api/providers"): Case(200),
    ("GET", "/api/connections"): Case(200),
    ("POST", "/api/connections"): Case(201, json=NEW_CONNECTION),
    ("GET", "/api/connections/{connection_id}"): Case(200),
    ("PATCH", "/api/connections/{connection_id}"): Case(200, json={"name": "Renamed"}),
    ("DELETE", "/api/connections/{connection_id}"): Case(204),
    ("POST", "/api/connections/{connection_id}/test"): Case(200),  # FAILED: nobody on port 9
    # Nobody on port 9: 422 with the reason, after the permission and tenant checks.
    ("GET", "/api/connections/{connection_id}/events"): Case(422),
    ("POST", "/api/connections/{connection_id}/mapping-preview"): Case(
        200, json={"fieldMapping": [], "sample": [{"a": 1}]}),
}

PAGE_CASES: dict[tuple[str, str], Case] = {
    ("GET", "/settings/tokens"): Case(200),
    ("POST", "/settings/tokens"): Case(201, form={"name": "ci", "role": "VIEWER"}),
    ("POST", "/settings/tokens/{token_id}/revoke"): Case(303, form={}),
    ("GET", "/audit"): Case(200),
    ("GET", "/events"): Case(200),
    ("GET", "/events/new"): Case(200),
    ("POST", "/events/new"): Case(
        303, form={"name": "Spring 10K", "start_at": "2026-04-12T09:00", "timezone": "UTC"}),
    ("GET", "/events/{event_id}"): Case(200),
    ("GET", "/events/{event_id}/edit"): Case(200),
    ("POST", "/events/{event_id}/edit"): Case(303, form={"location": "Lyon"}),
    ("POST", "/events/{event_id}/categories"): Case(303, form={"name": "Half"}),
    ("POST", "/events/{event_id}/categories/{category_id}/assign-bibs"): Case(303, form={}),
    ("GET", "/participants/{participant_id}/edit"): Case(200),
    ("POST", "/participants/{participant_id}/edit"): Case(
        303, form={"first_name": "Ada", "last_name": "Lovelace", "status": "active"}),
    ("GET", "/imports/{import_id}"): Case(200),
    ("POST", "/imports/{import_id}/control"): Case(303, form={"action": "cancel"},
                                                   also_needs=IMPORT_CONTROL),
    ("POST", "/imports/{import_id}/mapping"): Case(
        303, form={"field": ["sequence", "number", "barcode"], "header": ["seq", "num", "code"]},
        also_needs=IMPORT_CONTROL, ids={"import_id": "mapping_import_id"}),
    ("GET", "/inventory/numbers/onboard/import"): Case(200),
    ("GET", "/inventory/numbers/onboard/imports/{import_id}/summary"): Case(200),
    ("GET", "/events/{event_id}/results"): Case(200),
    ("GET", "/events/{event_id}/results/import"): Case(200),
    ("GET", "/results/imports/{import_id}/summary"): Case(
        200, ids={"import_id": "results_import_id"}),
    ("GET", "/inventory/number-types"): Case(200),
    ("POST", "/inventory/number-types"): Case(303, form={"name": "Road bibs"}),
    ("GET", "/inventory/numbers"): Case(200),
    ("GET", "/inventory/numbers/{race_number_id}"): Case(200),
    ("GET", "/jobs/{job_id}"): Case(200),
    ("POST", "/jobs/{job_id}/control"): Case(303, form={"action": "cancel"},
                                             also_needs=JOB_CONTROL),
    ("GET", "/exports"): Case(200),
    ("GET", "/exports/new"): Case(200, params={"view": "race_numbers"}),
    ("POST", "/exports"): Case(303, form={"view": "race_numbers"}),
    ("GET", "/exports/{export_id}"): Case(200),
    ("POST", "/exports/{export_id}/cancel"): Case(303, form={}),
    ("POST", "/exports/{export_id}/retry"): Case(303, form={}),
    ("GET", "/connections"): Case(200),
    ("GET", "/connections/new"): Case(200),
    ("POST", "/connections/new"): Case(303, form={
        "provider": "HAKU", "name": "Haku 2", "cred_client_id": "client-12345678",
        "cred_client_secret": "secret-12345678"}),
    ("GET", "/connections/{connection_id}"): Case(200),
    ("POST", "/connections/{connection_id}"): Case(303, form={"name": "Renamed"}),
    ("POST", "/connections/{connection_id}/test"): Case(303, form={}),
    ("POST", "/connections/{connection_id}/delete"): Case(303, form={}),
    ("GET", "/connections/{connection_id}/mapping"): Case(200),
    ("POST", "/connections/{connection_id}/mapping"): Case(303, form={
        "target_0": "city", "sources_0": "user.address.city", "transforms_0": "trim"}),
    ("POST", "/connections/{connection_id}/mapping/preview"): Case(
        200, form={"target_0": "city", "sources_0": "city", "sample": '[{"city": "Lyon"}]'}),
    ("GET", "/connections/{connection_id}/webhook-deliveries"): Case(200),
    ("GET", "/connections/{connection_id}/events"): Case(200),  # the reason, in the fragment
}

ROLES = list(Role)


# --- helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    method: str  # "" for mounts
    path: str
    permissions: frozenset[Perm]
    calls: tuple[Any, ...]  # every dependency callable, app-wide ones included
    is_endpoint: bool  # a FastAPI route (not a mount or a bare Starlette route)


def walk_routes(app: FastAPI) -> list[RouteInfo]:
    """Every route the app serves, routers included (FastAPI >= 0.137 no longer flattens
    included routers into ``app.routes``), with what its dependency tree declares."""
    found = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        calls: list[Any] = []
        stack = [dependant] if dependant is not None else []
        while stack:
            current = stack.pop()
            calls.append(current.call)
            stack.extend(current.dependencies)
        permissions = frozenset(c.permission for c in calls if isinstance(c, PermissionDependency))
        is_endpoint = isinstance(route.original_route, APIRoute)
        for method in sorted(route.methods or {""}):
            found.append(RouteInfo(method, route.path or "", permissions, tuple(calls),
                                   is_endpoint))
    return found


def endpoints(app: FastAPI, *, api: bool) -> dict[tuple[str, str], RouteInfo]:
    return {(r.method, r.path): r for r in walk_routes(app)
            if r.is_endpoint and r.path.startswith("/api/") == api}


def permission_of(app: FastAPI, method: str, path: str) -> Perm:
    (permission,) = endpoints(app, api=path.startswith("/api/"))[(method, path)].permissions
    return permission


def build_rows(db: Session, tenant: Tenant) -> dict[str, str]:
    """One row of each kind a route can address by id, in ``tenant``."""
    event = make_event(db, tenant)
    category = make_category(db, event, bib_range_start=1, bib_range_end=99)
    participant = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="7",
                                   category_id=category.id)
    token, _ = core_service.create_api_token(
        db, system_ctx(tenant), data=ApiTokenCreate(name="sample", role=Role.VIEWER)
    )
    # Queued with a pause requested: cancel, pause and resume all apply to it.
    job = JobRun(tenant_id=tenant.id, kind=ASSIGN_BIBS_KIND, pause_requested=True,
                 params={"event_id": str(event.id), "category_id": str(category.id),
                         "first_bib": 1})
    db.add(job)
    number_type = make_number_type(db, tenant)
    [numbered] = onboard(db, number_type, ("1", "0001", "CHIP-1"))
    # Queued with a pause requested, like the job above; no file needed to control it.
    import_run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND, pause_requested=True,
                        params={"import_id": "", "import_type": "NUMBER_ONBOARDING"})
    db.add(import_run)
    db.flush()
    upload = Import(tenant_id=tenant.id, import_type="NUMBER_ONBOARDING", filename="b.csv",
                    stored_path="imports/none", size_bytes=1, file_format="csv",
                    header=["sequence", "number", "barcode"],
                    column_map={"sequence": 0, "number": 1, "barcode": 2},
                    params={"numberTypeId": str(number_type.id)}, job_run_id=import_run.id)
    db.add(upload)
    # A result-file import (E08) of the event, for its summary page.
    results_run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND,
                         params={"import_id": "", "import_type": "TIMING_RESULTS"})
    db.add(results_run)
    db.flush()
    results_upload = Import(tenant_id=tenant.id, import_type="TIMING_RESULTS",
                            filename="r.csv", stored_path="imports/none", size_bytes=1,
                            file_format="csv", header=["ExternalReferenceID", "Number"],
                            column_map={"ExternalReferenceID": 0, "Number": 1},
                            params={"eventId": str(event.id), "identifierMode": "PERSON_ID"},
                            job_run_id=results_run.id)
    db.add(results_upload)
    # Waiting in Columns for its mapping (paused, as the pipeline leaves it): the mapping
    # routes apply to it. A manufactured-number file never waits; the routes do not care.
    mapping_run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND, status=JobStatus.PAUSED,
                         stage="Columns", params={"import_id": "",
                                                  "import_type": "NUMBER_ONBOARDING"})
    db.add(mapping_run)
    db.flush()
    waiting = Import(tenant_id=tenant.id, import_type="NUMBER_ONBOARDING", filename="m.csv",
                     stored_path="imports/none", size_bytes=1, file_format="csv",
                     header=["seq", "num", "code"], column_map={},
                     mapping_state="needs_mapping",
                     params={"numberTypeId": str(number_type.id)}, job_run_id=mapping_run.id)
    db.add(waiting)
    # Queued yet past its expiry: cancel, retry (expired) and download (410) all apply.
    export_run = JobRun(tenant_id=tenant.id, kind=EXPORT_KIND, params={"export_id": ""})
    db.add(export_run)
    db.flush()
    export = Export(tenant_id=tenant.id, view_key="participants", title="Participants",
                    filters={"eventId": str(event.id)}, columns=["bib"], file_format="csv",
                    cutoff_at=datetime.now(UTC), job_run_id=export_run.id,
                    storage_backend="local", storage_key=f"{tenant.id}/x/p.csv",
                    filename="p.csv", expires_at=datetime.now(UTC) - timedelta(hours=1))
    db.add(export)
    # A connection pointing at a closed loopback port: its test fails fast, offline.
    connection = sync_service.create_connection(
        db, replace(system_ctx(tenant), is_platform_admin=True), keyring=keyring_from_settings(
            Settings(database_url="postgresql://unused/none")),
        data=ConnectionCreate(provider="RUNSIGNUP", name="RunSignUp",
                              base_url="http://127.0.0.1:9/Rest",
                              credentials={"api_key": "key-12345678", "api_secret": "s-12345678"}))
    connection.settings = {**connection.settings, "max_attempts": 1}
    db.flush()
    return {"connection_id": str(connection.id),
            "event_id": str(event.id), "category_id": str(category.id), "export_id": str(export.id),
            "race_number_id": str(numbered.race_number_id),
            "number_type_id": str(number_type.id), "import_id": str(upload.id),
            "results_import_id": str(results_upload.id),
            "mapping_import_id": str(waiting.id),
            "participant_id": str(participant.id), "token_id": str(token.id),
            "job_id": str(job.id)}


def tenant_fingerprint(db: Session, tenant: Tenant) -> dict[str, str]:
    """The content of every row the tenant owns (audit entries included); a refused
    request must leave it exactly as it was. Token ``last_used_at`` is left out: using a
    token is not a change to the tenant's data."""
    tables = db.scalars(text(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name"
    )).all()
    row = "(to_jsonb(t) - 'last_used_at')::text"
    prints = {}
    for table in tables:
        prints[table] = db.scalar(text(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg({row}, '|' ORDER BY {row}), ''))"
            f' FROM "{table}" t WHERE tenant_id = :tenant'
        ), {"tenant": tenant.id})
    prints["tenants"] = db.scalar(
        text("SELECT to_jsonb(t)::text FROM tenants t WHERE id = :tenant"), {"tenant": tenant.id}
    )
    return prints


def send(client: TestClient, method: str, path: str, case: Case, ids: dict[str, str],
         headers: dict[str, str]) -> Response:
    url = case.url(path, ids)
    params = {k: v.format(**ids) for k, v in (case.params or {}).items()}
    if case.files is not None:
        return client.request(method, url, params=params, files=case.files, headers=headers,
                              follow_redirects=False)
    if case.form is not None:
        return client.request(method, url, params=params, data=case.form, headers=headers,
                              follow_redirects=False)
    return client.request(method, url, params=params, json=case.json, headers=headers,
                          follow_redirects=False)


def assert_refused(response: Response, status: int, *, api: bool) -> None:
    assert response.status_code == status, response.text
    expected_type = "application/problem+json" if api else "text/html"
    assert response.headers["content-type"].startswith(expected_type)


def case_id(key: tuple[str, str]) -> str:
    return f"{key[0]} {key[1]}"


def with_ids(cases: dict[tuple[str, str], Case]) -> list[tuple[str, str]]:
    return [key for key in cases if "{" in key[1]]


# --- every route declares a permission ----------------------------------------------------


def test_route_walk_sees_the_routes_behind_included_routers(app: FastAPI) -> None:
    # Guards the guard: an empty walk would make every test below pass vacuously.
    seen = {(r.method, r.path) for r in walk_routes(app)}
    assert {("GET", "/api/me"), ("PATCH", "/api/events/{event_id}"), ("GET", "/events"),
            ("POST", "/login"), ("", "/static")} <= seen


def test_every_api_route_declares_a_permission(app: FastAPI) -> None:
    undeclared = [(r.method, r.path) for r in walk_routes(app)
                  if r.path.startswith("/api") and r.path not in PUBLIC_API_PATHS
                  and not (r.is_endpoint and r.permissions)]
    assert undeclared == []


def test_every_page_route_declares_a_permission_or_is_public(app: FastAPI) -> None:
    undeclared = [(r.method, r.path) for r in walk_routes(app)
                  if not r.path.startswith("/api") and r.path not in PUBLIC_PAGE_PATHS
                  and not (r.is_endpoint and r.permissions)]
    assert undeclared == []


def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    ambiguous = [(r.method, r.path, sorted(r.permissions)) for r in walk_routes(app)
                 if len(r.permissions) > 1]
    assert ambiguous == []


def test_every_unsafe_route_runs_the_csrf_check(app: FastAPI) -> None:
    unchecked = [(r.method, r.path) for r in walk_routes(app)
                 if r.is_endpoint and r.method not in ("GET", "HEAD")
                 and csrf_protect not in r.calls]
    assert unchecked == []


# Routes called server to server that skip the CSRF check (they read no cookie and
# authenticate the request themselves). Each entry is a deliberate decision.
CSRF_EXEMPT = {("POST", "/api/connections/{connection_id}/webhook")}


def test_only_the_listed_server_to_server_routes_skip_the_csrf_check(app: FastAPI) -> None:
    exempt = {(r.method, r.path): r for r in walk_routes(app)
              if r.is_endpoint and any(getattr(c, "csrf_exempt", False) for c in r.calls)}
    assert set(exempt) == CSRF_EXEMPT
    # ...and none of them acts on a racehub login: no permission, so no session either.
    assert all(not r.permissions for r in exempt.values())


def test_public_paths_exist(app: FastAPI) -> None:
    # A stale allow-list entry would silently exempt whatever route takes its path next.
    paths = {r.path for r in walk_routes(app)}
    assert paths >= PUBLIC_API_PATHS | PUBLIC_PAGE_PATHS


def test_every_api_route_has_a_security_case(app: FastAPI) -> None:
    routes = {key for key in endpoints(app, api=True) if key[1] not in PUBLIC_API_PATHS}
    assert sorted(routes - set(API_CASES)) == [], "add these routes to API_CASES"
    assert sorted(set(API_CASES) - routes) == [], "these API_CASES name no route"


def test_every_page_route_has_a_security_case(app: FastAPI) -> None:
    routes = {key for key in endpoints(app, api=False) if key[1] not in PUBLIC_PAGE_PATHS}
    assert sorted(routes - set(PAGE_CASES)) == [], "add these routes to PAGE_CASES"
    assert sorted(set(PAGE_CASES) - routes) == [], "these PAGE_CASES name no route"


def test_every_permission_is_granted_to_tenant_admins() -> None:
    assert ROLE_PERMISSIONS[Role.TENANT_ADMIN] == frozenset(Perm)
    assert set(ROLE_PERMISSIONS) == set(Role)


# --- each role gets exactly what its permissions allow ------------------------------------


def _role_matrix(
    app: FastAPI, client: TestClient, db: Session, key: tuple[str, str], case: Case, role: Role,
    *, api: bool,
) -> None:
    method, path = key
    tenant = make_tenant(db)
    ids = build_rows(db, tenant)
    headers = auth(db, tenant, role)
    db.commit()  # as in production, the rows exist before the request (routes may roll back)
    needed = {permission_of(app, method, path)} | case.also_needs
    missing = needed - ROLE_PERMISSIONS[role]
    before = tenant_fingerprint(db, tenant)

    response = send(client, method, path, case, ids, headers)

    if missing:
        assert_refused(response, 403, api=api)
        assert any(p.value in response.text for p in missing), response.text
        assert tenant_fingerprint(db, tenant) == before, "a refused request changed data"
    else:
        assert response.status_code == case.ok, response.text


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize("key", list(API_CASES), ids=case_id)
def test_api_route_answers_each_role_by_its_permissions(
    app: FastAPI, client: TestClient, db: Session, key: tuple[str, str], role: Role
) -> None:
    _role_matrix(app, client, db, key, API_CASES[key], role, api=True)


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize("key", list(PAGE_CASES), ids=case_id)
def test_page_route_answers_each_role_by_its_permissions(
    app: FastAPI, client: TestClient, db: Session, key: tuple[str, str], role: Role
) -> None:
    _role_matrix(app, client, db, key, PAGE_CASES[key], role, api=False)


# --- ids of another tenant are not found ---------------------------------------------------


def _cross_tenant(
    client: TestClient, db: Session, key: tuple[str, str], case: Case, *, api: bool
) -> None:
    method, path = key
    tenant_a, tenant_b = make_tenant(db), make_tenant(db)
    ids_a, ids_b = build_rows(db, tenant_a), build_rows(db, tenant_b)
    headers_b = auth(db, tenant_b, Role.TENANT_ADMIN)
    db.commit()  # as in production, the rows exist before the request (routes may roll back)
    before = tenant_fingerprint(db, tenant_a)

    response = send(client, method, path, case, ids_a, headers_b)

    assert_refused(response, 404, api=api)
    url = case.url(path, ids_a)
    leaked = [v for v in ids_a.values() if v not in url and v in response.text]
    assert leaked == []
    assert tenant_fingerprint(db, tenant_a) == before, "tenant B changed tenant A's rows"
    # The same request with B's own ids works: the 404 above came from the tenant check.
    assert send(client, method, path, case, ids_b, headers_b).status_code == case.ok


@pytest.mark.parametrize("key", with_ids(API_CASES), ids=case_id)
def test_api_route_answers_404_for_another_tenants_ids(
    client: TestClient, db: Session, key: tuple[str, str]
) -> None:
    _cross_tenant(client, db, key, API_CASES[key], api=True)


@pytest.mark.parametrize("key", with_ids(PAGE_CASES), ids=case_id)
def test_page_route_answers_404_for_another_tenants_ids(
    client: TestClient, db: Session, key: tuple[str, str]
) -> None:
    _cross_tenant(client, db, key, PAGE_CASES[key], api=False)


def test_unauthenticated_requests_are_refused_on_every_route(
    client: TestClient, db: Session
) -> None:
    ids = build_rows(db, make_tenant(db))
    for (method, path), case in API_CASES.items():
        response = send(client, method, path, case, ids, {"Authorization": "Bearer rh_nope"})
        assert_refused(response, 401, api=True)
    for method, path in PAGE_CASES:
        response = client.request(method, path.format(**ids), follow_redirects=False)
        if method == "GET":  # pages send the browser to the login form
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next=")
        else:  # a form post without a session has no CSRF cookie either
            assert_refused(response, 403, api=False)
