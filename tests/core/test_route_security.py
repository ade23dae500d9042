"""Every route declares its permission; every role is refused what it lacks; no id of
another tenant reaches a row (404, never 403, so ids leak nothing).

The tables below hold one sample request per route and the permission it must require,
written out here (never read from the route), with GRANTS saying which role holds which
permission as the README does: a route or a role loosened in src fails here. A new route
without an entry fails ``test_every_*_route_has_a_security_case``: add a case, do not skip
it. FOREIGN_ID_CASES sends another tenant's ids in query strings and bodies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from racehub.alerts.models import Alert, AlertSettings, AlertStatus
from racehub.core import service as core_service
from racehub.core.crypto import keyring_from_settings
from racehub.core.csrf import csrf_protect
from racehub.core.deps import PermissionDependency
from racehub.core.models import Role, Tenant
from racehub.core.rbac import ROLE_PERMISSIONS, Perm
from racehub.core.schemas import ApiTokenCreate
from racehub.events import service as events_service
from racehub.events.bulk import BULK_EDIT_KIND
from racehub.events.schemas import ParticipantCreate
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.exports.models import Export
from racehub.exports.service import EXPORT_KIND
from racehub.imports.models import Import
from racehub.imports.service import RUN_IMPORT_KIND
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.registry import load_kinds
from racehub.settings import Settings
from racehub.sync import links as sync_links
from racehub.sync import service as sync_service
from racehub.sync.discovery import DISCOVER_EVENTS_KIND
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    PublicationStatus,
    ResultPublication,
    SyncConflict,
    SyncRun,
    SyncStatus,
)
from racehub.sync.publications import PUBLISH_KIND
from racehub.sync.runs import (
    RESULTS_PUBLISH_PREPARE_KIND,
    SYNC_PARTICIPANTS_KIND,
    SYNC_RESULTS_PULL_KIND,
)
from racehub.sync.schemas import ConnectionCreate, LinkCreate
from racehub.sync.timing_push import SYNC_START_LIST_PUSH_KIND
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_number_type,
    make_participant,
    make_synced_record,
    make_tenant,
    make_user,
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
# Probes and metrics for machines: no tenant data (tests/ops/test_api.py); /metrics answers
# only RACEHUB_METRICS_TOKEN.
PUBLIC_OPS_PATHS = {"/healthz", "/readyz", "/metrics"}
PUBLIC_PAGE_PATHS = {
    "/",  # redirects to /events, which then asks for a login
    "/login",
    "/logout",
    "/tenant",  # checks the session and the membership itself (see test_auth)
    "/static",
} | PUBLIC_OPS_PATHS

# Controlling a job also needs the permission of the job's kind (assign bibs here).
JOB_CONTROL = frozenset({Perm.EVENTS_PARTICIPANT_WRITE})
# Manufactured-number imports need the inventory permission on top of running imports.
INVENTORY_MANAGE = frozenset({Perm.INVENTORY_NUMBER_MANAGE})
IMPORT_CONTROL = INVENTORY_MANAGE


@dataclass(frozen=True)
class Case:
    # The permission the route must declare, written out here and never read back from the
    # route: test_every_route_declares_its_pinned_permission compares the two, and the role
    # matrix expects 403 or success from this value (with GRANTS below).
    perm: Perm
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


@dataclass(frozen=True)
class Ref:
    """A build_rows id inside a JSON body or a form, filled in when the request is sent."""

    name: str


NEW_PERSON = {"person": {"firstName": "Grace", "lastName": "Hopper"}, "bib": "8"}
NEW_MEMBER = {"email": "new-member@example.test", "role": "VIEWER",
              "password": "long enough pw"}
NEW_CONNECTION = {"provider": "HAKU", "name": "Haku 2",
                  "credentials": {"client_id": "client-12345678", "client_secret": "s-12345678"}}

# Every case pins the permission its route must require, as the README states it (the
# endpoint table under "API", the Roles table, and the sections on results, exports and
# connections). Which roles hold a permission is pinned separately, in GRANTS.
API_CASES: dict[tuple[str, str], Case] = {
    # "GET /api/me: any role"; tokens and the audit log: TENANT_ADMIN.
    ("GET", "/api/me"): Case(Perm.CORE_SELF_READ, 200),
    ("GET", "/api/tokens"): Case(Perm.CORE_TOKEN_MANAGE, 200),
    ("POST", "/api/tokens"):
        Case(Perm.CORE_TOKEN_MANAGE, 201, json={"name": "ci", "role": "VIEWER"}),
    ("DELETE", "/api/tokens/{token_id}"): Case(Perm.CORE_TOKEN_MANAGE, 204),
    # Members: TENANT_ADMIN.
    ("GET", "/api/members"): Case(Perm.CORE_MEMBER_MANAGE, 200),
    ("POST", "/api/members"): Case(Perm.CORE_MEMBER_MANAGE, 201, json=NEW_MEMBER),
    ("PATCH", "/api/members/{user_id}"):
        Case(Perm.CORE_MEMBER_MANAGE, 200, json={"role": "VIEWER"}),
    ("DELETE", "/api/members/{user_id}"): Case(Perm.CORE_MEMBER_MANAGE, 204),
    ("GET", "/api/audit"): Case(Perm.AUDIT_LOG_READ, 200),
    # Events and categories: any role reads; TENANT_ADMIN and EVENT_MANAGER write.
    ("GET", "/api/events"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("POST", "/api/events"): Case(
        Perm.EVENTS_EVENT_WRITE, 201,
        json={"name": "Spring 10K", "startAt": "2026-04-12T09:00:00", "timezone": "Europe/Paris"}),
    ("GET", "/api/events/{event_id}"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("PATCH", "/api/events/{event_id}"):
        Case(Perm.EVENTS_EVENT_WRITE, 200, json={"location": "Lyon"}),
    ("GET", "/api/events/{event_id}/categories"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("POST", "/api/events/{event_id}/categories"):
        Case(Perm.EVENTS_EVENT_WRITE, 201, json={"name": "Half"}),
    ("POST", "/api/events/{event_id}/archive"): Case(Perm.EVENTS_EVENT_WRITE, 200),
    ("POST", "/api/events/{event_id}/unarchive"): Case(Perm.EVENTS_EVENT_WRITE, 200),
    # An event with nothing in it: only such an event is deleted.
    ("DELETE", "/api/events/{event_id}"):
        Case(Perm.EVENTS_EVENT_WRITE, 204, ids={"event_id": "empty_event_id"}),
    ("PATCH", "/api/events/{event_id}/categories/{category_id}"):
        Case(Perm.EVENTS_EVENT_WRITE, 200, json={"distanceM": 21097}),
    # The spare category: the sample one has an entry and a bib assignment queued.
    ("DELETE", "/api/events/{event_id}/categories/{category_id}"):
        Case(Perm.EVENTS_EVENT_WRITE, 200, ids={"category_id": "spare_category_id"}),
    # Participants: any role reads; RESULTS_OFFICER and up edit them and assign bibs.
    ("POST", "/api/events/{event_id}/categories/{category_id}/assign-bibs"):
        Case(Perm.EVENTS_PARTICIPANT_WRITE, 202, json={"firstBib": 10}),
    ("GET", "/api/events/{event_id}/participants"): Case(Perm.EVENTS_PARTICIPANT_READ, 200),
    ("POST", "/api/events/{event_id}/participants/bulk"): Case(
        Perm.EVENTS_PARTICIPANT_WRITE, 200,
        json={"action": "clear_bibs", "ids": [Ref("participant_id")]}),
    ("POST", "/api/events/{event_id}/participants"):
        Case(Perm.EVENTS_PARTICIPANT_WRITE, 201, json=NEW_PERSON),
    ("GET", "/api/participants/{participant_id}"): Case(Perm.EVENTS_PARTICIPANT_READ, 200),
    ("PATCH", "/api/participants/{participant_id}"):
        Case(Perm.EVENTS_PARTICIPANT_WRITE, 200, json={"team": "Harriers"}),
    # Imports: any role reads; running one needs imports:import:run and the type's own
    # permission (manufactured numbers: TENANT_ADMIN); controlling one, the same.
    ("POST", "/api/imports"): Case(
        Perm.IMPORTS_IMPORT_RUN, 201,
        params={"importType": "NUMBER_ONBOARDING", "numberTypeId": "{number_type_id}"},
        files={"file": ("batch.csv", b"sequence,number,barcode\r\n5,0005,\r\n")},
        also_needs=INVENTORY_MANAGE),
    ("GET", "/api/imports"): Case(Perm.IMPORTS_IMPORT_READ, 200),
    ("GET", "/api/imports/{import_id}"): Case(Perm.IMPORTS_IMPORT_READ, 200),
    ("GET", "/api/imports/{import_id}/rows"): Case(Perm.IMPORTS_IMPORT_READ, 200),
    ("GET", "/api/imports/{import_id}/rows.csv"): Case(Perm.IMPORTS_IMPORT_READ, 200),
    ("POST", "/api/imports/{import_id}/cancel"):
        Case(Perm.IMPORTS_IMPORT_RUN, 200, also_needs=IMPORT_CONTROL),
    ("POST", "/api/imports/{import_id}/pause"):
        Case(Perm.IMPORTS_IMPORT_RUN, 200, also_needs=IMPORT_CONTROL),
    ("POST", "/api/imports/{import_id}/resume"):
        Case(Perm.IMPORTS_IMPORT_RUN, 200, also_needs=IMPORT_CONTROL),
    ("POST", "/api/imports/{import_id}/mapping"): Case(
        Perm.IMPORTS_IMPORT_RUN, 200,
        json={"mapping": {"sequence": "seq", "number": "num", "barcode": "code"}},
        also_needs=IMPORT_CONTROL, ids={"import_id": "mapping_import_id"}),
    # Inventory: any role reads; number types are TENANT_ADMIN's.
    ("GET", "/api/number-types"): Case(Perm.INVENTORY_NUMBER_READ, 200),
    ("POST", "/api/number-types"):
        Case(Perm.INVENTORY_NUMBER_MANAGE, 201, json={"name": "Road bibs"}),
    ("GET", "/api/race-numbers"): Case(Perm.INVENTORY_NUMBER_READ, 200),
    ("GET", "/api/race-numbers/templates/manufactured-numbers.csv"):
        Case(Perm.INVENTORY_NUMBER_READ, 200),
    ("GET", "/api/race-numbers/{race_number_id}"): Case(Perm.INVENTORY_NUMBER_READ, 200),
    # E11: timing:export:run (RESULTS_OFFICER and up); E08: everyone reads results.
    ("GET", "/api/events/{event_id}/timing-export"):
        Case(Perm.TIMING_EXPORT, 200, params={"format": "csv"}),
    ("GET", "/api/events/{event_id}/timing-export/preflight"): Case(Perm.TIMING_EXPORT, 200),
    ("GET", "/api/events/{event_id}/results"): Case(Perm.TIMING_RESULT_READ, 200),
    ("GET", "/api/events/{event_id}/results/reconciliation"):
        Case(Perm.TIMING_RESULT_READ, 200),
    # Jobs: any role reads; control needs "the permission of the job's kind" on top.
    ("GET", "/api/jobs"): Case(Perm.JOBS_RUN_READ, 200),
    ("GET", "/api/jobs/{job_id}"): Case(Perm.JOBS_RUN_READ, 200),
    ("POST", "/api/jobs/{job_id}/cancel"): Case(Perm.JOBS_RUN_READ, 200, also_needs=JOB_CONTROL),
    ("POST", "/api/jobs/{job_id}/pause"): Case(Perm.JOBS_RUN_READ, 200, also_needs=JOB_CONTROL),
    ("POST", "/api/jobs/{job_id}/resume"): Case(Perm.JOBS_RUN_READ, 200, also_needs=JOB_CONTROL),
    # List exports: "every route needs exports:export:run" (and the view's own read).
    ("GET", "/api/exports/views"): Case(Perm.EXPORTS_EXPORT_RUN, 200),
    ("POST", "/api/exports"): Case(Perm.EXPORTS_EXPORT_RUN, 201, json={"view": "race_numbers"}),
    ("GET", "/api/exports"): Case(Perm.EXPORTS_EXPORT_RUN, 200),
    ("GET", "/api/exports/{export_id}"): Case(Perm.EXPORTS_EXPORT_RUN, 200),
    ("GET", "/api/exports/{export_id}/download"):
        Case(Perm.EXPORTS_EXPORT_RUN, 410),  # the sample export expired
    ("POST", "/api/exports/{export_id}/cancel"): Case(Perm.EXPORTS_EXPORT_RUN, 200),
    ("POST", "/api/exports/{export_id}/retry"): Case(Perm.EXPORTS_EXPORT_RUN, 201),
    # Connections: sync:connection:read (EVENT_MANAGER and up) sees them and their health;
    # everything touching credentials or calling the provider is sync:connection:manage.
    ("GET", "/api/providers"): Case(Perm.SYNC_CONNECTION_READ, 200),
    ("GET", "/api/connections"): Case(Perm.SYNC_CONNECTION_READ, 200),
    ("POST", "/api/connections"): Case(Perm.SYNC_CONNECTION_MANAGE, 201, json=NEW_CONNECTION),
    ("GET", "/api/connections/{connection_id}"): Case(Perm.SYNC_CONNECTION_READ, 200),
    ("PATCH", "/api/connections/{connection_id}"):
        Case(Perm.SYNC_CONNECTION_MANAGE, 200, json={"name": "Renamed"}),
    ("DELETE", "/api/connections/{connection_id}"): Case(Perm.SYNC_CONNECTION_MANAGE, 200),
    ("POST", "/api/connections/{connection_id}/test"):
        Case(Perm.SYNC_CONNECTION_MANAGE, 200),  # FAILED: nobody on port 9
    # Nobody on port 9: 422 with the reason, after the permission and tenant checks.
    ("GET", "/api/connections/{connection_id}/events"): Case(Perm.SYNC_CONNECTION_MANAGE, 422),
    ("POST", "/api/connections/{connection_id}/mapping-preview"): Case(
        Perm.SYNC_CONNECTION_MANAGE, 200, json={"fieldMapping": [], "sample": [{"a": 1}]}),
    # Links: read with the event (any role) or the connection (sync:connection:read);
    # linking, unlinking and mapping races to categories: sync:link:manage (EVENT_MANAGER up).
    ("GET", "/api/events/{event_id}/links"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("POST", "/api/events/{event_id}/links"): Case(
        Perm.SYNC_LINK_MANAGE, 201,
        json={"connectionId": Ref("connection_id"), "providerEventRef": "202"}),
    ("PATCH", "/api/events/{event_id}/links/{link_id}"):
        Case(Perm.SYNC_LINK_MANAGE, 200, json={"autoSync": False}),
    ("DELETE", "/api/events/{event_id}/links/{link_id}"): Case(Perm.SYNC_LINK_MANAGE, 204),
    ("GET", "/api/events/{event_id}/links/{link_id}/categories"):
        Case(Perm.EVENTS_EVENT_READ, 200),
    ("PUT", "/api/events/{event_id}/links/{link_id}/categories"): Case(
        Perm.SYNC_LINK_MANAGE, 200, json={"categories": [
            {"providerRef": "5k", "providerName": "5K", "categoryId": Ref("category_id")}]}),
    ("GET", "/api/connections/{connection_id}/links"): Case(Perm.SYNC_CONNECTION_READ, 200),
    # Discovered provider events (candidates): read with connections; discovering (a job),
    # linking one and creating an event from one: sync:link:manage (EVENT_MANAGER and up).
    ("POST", "/api/connections/{connection_id}/discover"): Case(Perm.SYNC_LINK_MANAGE, 202),
    ("GET", "/api/provider-events"): Case(Perm.SYNC_CONNECTION_READ, 200),
    ("POST", "/api/provider-events/{link_id}/link"): Case(
        Perm.SYNC_LINK_MANAGE, 201, json={"eventId": Ref("event_id")},
        ids={"link_id": "candidate_id"}),
    ("POST", "/api/provider-events/{link_id}/create-event"): Case(
        Perm.SYNC_LINK_MANAGE, 201,
        json={"startAt": "2026-10-01T07:30:00", "timezone": "Europe/Paris", "name": "From 202"},
        ids={"link_id": "candidate_id"}),
    # What a sync left on participants: everyone reads conflicts and sources (raw payloads
    # only with sync:payload:read); sync:record:manage (EVENT_MANAGER and up) resolves
    # conflicts and splits a wrong person match.
    ("GET", "/api/events/{event_id}/conflicts"): Case(Perm.EVENTS_PARTICIPANT_READ, 200),
    ("POST", "/api/events/{event_id}/conflicts/{conflict_id}/keep"):
        Case(Perm.SYNC_RECORD_MANAGE, 200),
    ("POST", "/api/events/{event_id}/conflicts/{conflict_id}/take"):
        Case(Perm.SYNC_RECORD_MANAGE, 200),
    ("GET", "/api/events/{event_id}/participants/{participant_id}/sources"):
        Case(Perm.EVENTS_PARTICIPANT_READ, 200),
    ("POST", "/api/events/{event_id}/participants/{participant_id}/split-person"):
        Case(Perm.SYNC_RECORD_MANAGE, 200),
    # Sync runs: EVENT_MANAGER and up run them; everyone in the tenant reads the history.
    # The route asks what every sync type needs (a timing push: RESULTS_OFFICER); a
    # participants sync needs sync:run:start on top (tests/sync/test_push_api.py has the
    # push's own cases).
    ("POST", "/api/sync/manual"): Case(Perm.SYNC_TIMING_RUN, 202, json={
        "connectionId": Ref("connection_id"), "syncType": "participants"},
        also_needs=frozenset({Perm.SYNC_RUN_START})),
    # What a start list push would send: RESULTS_OFFICER and up, who push.
    ("GET", "/api/sync/links/{link_id}/push-preview"):
        Case(Perm.SYNC_TIMING_RUN, 200, ids={"link_id": "timing_link_id"}),
    # Results publications: everyone reads the versions; approving one sends it out, so it
    # is sync:results:publish (EVENT_MANAGER and up, never RESULTS_OFFICER).
    ("GET", "/api/events/{event_id}/publications"): Case(Perm.SYNC_RUN_READ, 200),
    ("GET", "/api/events/{event_id}/publications/{version}"): Case(Perm.SYNC_RUN_READ, 200),
    ("POST", "/api/events/{event_id}/publications/{version}/approve"):
        Case(Perm.SYNC_RESULTS_PUBLISH, 202, json={}),
    ("GET", "/api/sync/status/{connection_id}"): Case(Perm.SYNC_RUN_READ, 200),
    # Unified views and sync monitoring (README "Monitoring"): events are any role's; the
    # sync figures sum the run history every role reads; tracking counts, no personal data.
    ("GET", "/api/events/unified"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("GET", "/api/monitoring/sync-summary"): Case(Perm.SYNC_RUN_READ, 200),
    ("GET", "/api/monitoring/runs-per-hour"):
        Case(Perm.SYNC_RUN_READ, 200, params={"connectionId": "{connection_id}"}),
    ("GET", "/api/monitoring/participant-tracking"): Case(Perm.EVENTS_PARTICIPANT_READ, 200),
    ("GET", "/api/sync/runs"): Case(Perm.SYNC_RUN_READ, 200),
    ("GET", "/api/sync/runs/{sync_run_id}"): Case(Perm.SYNC_RUN_READ, 200),
    # Between the read and the apply: everyone reads a waiting run's preview; applying,
    # confirming a held run and discarding are sync:run:start, like starting one.
    ("GET", "/api/sync/runs/{sync_run_id}/preview"):
        Case(Perm.SYNC_RUN_READ, 200, ids={"sync_run_id": "review_run_id"}),
    ("POST", "/api/sync/runs/{sync_run_id}/apply"): Case(
        Perm.SYNC_RUN_START, 202, json={"all": True}, ids={"sync_run_id": "review_run_id"}),
    ("POST", "/api/sync/runs/{sync_run_id}/confirm"):
        Case(Perm.SYNC_RUN_START, 202, ids={"sync_run_id": "held_run_id"}),
    ("POST", "/api/sync/runs/{sync_run_id}/discard"):
        Case(Perm.SYNC_RUN_START, 200, ids={"sync_run_id": "review_run_id"}),
    # Alerts: everyone reads them, EVENT_MANAGER and up acknowledge, TENANT_ADMIN sets the
    # rules, recipients and webhook.
    ("GET", "/api/alerts"): Case(Perm.ALERTS_ALERT_READ, 200),
    ("GET", "/api/alerts/{alert_id}"): Case(Perm.ALERTS_ALERT_READ, 200),
    ("POST", "/api/alerts/{alert_id}/acknowledge"):
        Case(Perm.ALERTS_ALERT_ACK, 200, json={"comment": "on it"}),
    ("GET", "/api/alerts/settings"): Case(Perm.ALERTS_SETTINGS_MANAGE, 200),
    ("PATCH", "/api/alerts/settings"):
        Case(Perm.ALERTS_SETTINGS_MANAGE, 200, json={"repeatHours": 12}),
    ("POST", "/api/alerts/settings/webhook-secret"): Case(Perm.ALERTS_SETTINGS_MANAGE, 200),
}

# A page needs what its API counterpart needs; a page showing a form needs what the form's
# submission needs.
PAGE_CASES: dict[tuple[str, str], Case] = {
    ("GET", "/alerts"): Case(Perm.ALERTS_ALERT_READ, 200),
    ("GET", "/alerts/{alert_id}"): Case(Perm.ALERTS_ALERT_READ, 200),
    ("POST", "/alerts/{alert_id}/acknowledge"): Case(Perm.ALERTS_ALERT_ACK, 303, form={}),
    ("GET", "/alerts/settings"): Case(Perm.ALERTS_SETTINGS_MANAGE, 200),
    ("POST", "/alerts/settings"):
        Case(Perm.ALERTS_SETTINGS_MANAGE, 303, form={"repeat_hours": "12"}),
    ("POST", "/alerts/settings/webhook-secret"): Case(Perm.ALERTS_SETTINGS_MANAGE, 200, form={}),
    ("GET", "/settings/tokens"): Case(Perm.CORE_TOKEN_MANAGE, 200),
    ("POST", "/settings/tokens"):
        Case(Perm.CORE_TOKEN_MANAGE, 201, form={"name": "ci", "role": "VIEWER"}),
    ("POST", "/settings/tokens/{token_id}/revoke"): Case(Perm.CORE_TOKEN_MANAGE, 303, form={}),
    ("GET", "/settings/members"): Case(Perm.CORE_MEMBER_MANAGE, 200),
    ("POST", "/settings/members"): Case(Perm.CORE_MEMBER_MANAGE, 303, form=NEW_MEMBER),
    ("POST", "/settings/members/{user_id}/role"):
        Case(Perm.CORE_MEMBER_MANAGE, 303, form={"role": "VIEWER"}),
    ("POST", "/settings/members/{user_id}/remove"):
        Case(Perm.CORE_MEMBER_MANAGE, 303, form={}),
    ("GET", "/audit"): Case(Perm.AUDIT_LOG_READ, 200),
    ("GET", "/events"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("GET", "/events/new"): Case(Perm.EVENTS_EVENT_WRITE, 200),
    ("POST", "/events/new"): Case(
        Perm.EVENTS_EVENT_WRITE, 303,
        form={"name": "Spring 10K", "start_at": "2026-04-12T09:00", "timezone": "UTC"}),
    ("GET", "/events/{event_id}"): Case(Perm.EVENTS_EVENT_READ, 200),
    ("GET", "/events/{event_id}/edit"): Case(Perm.EVENTS_EVENT_WRITE, 200),
    ("POST", "/events/{event_id}/edit"):
        Case(Perm.EVENTS_EVENT_WRITE, 303, form={"location": "Lyon"}),
    ("POST", "/events/{event_id}/categories"):
        Case(Perm.EVENTS_EVENT_WRITE, 303, form={"name": "Half"}),
    ("POST", "/events/{event_id}/archive"): Case(Perm.EVENTS_EVENT_WRITE, 303, form={}),
    ("POST", "/events/{event_id}/unarchive"): Case(Perm.EVENTS_EVENT_WRITE, 303, form={}),
    ("POST", "/events/{event_id}/delete"):
        Case(Perm.EVENTS_EVENT_WRITE, 303, form={}, ids={"event_id": "empty_event_id"}),
    ("GET", "/events/{event_id}/categories/{category_id}/edit"):
        Case(Perm.EVENTS_EVENT_WRITE, 200),
    ("POST", "/events/{event_id}/categories/{category_id}/edit"):
        Case(Perm.EVENTS_EVENT_WRITE, 303, form={"name": "Half 2"}),
    ("POST", "/events/{event_id}/categories/{category_id}/delete"):
        Case(Perm.EVENTS_EVENT_WRITE, 303, form={}, ids={"category_id": "spare_category_id"}),
    ("POST", "/events/{event_id}/categories/{category_id}/assign-bibs"):
        Case(Perm.EVENTS_PARTICIPANT_WRITE, 303, form={}),
    ("GET", "/events/{event_id}/participants/new"): Case(Perm.EVENTS_PARTICIPANT_WRITE, 200),
    ("POST", "/events/{event_id}/participants/bulk"): Case(
        Perm.EVENTS_PARTICIPANT_WRITE, 303, form={"action": "clear_bibs", "scope": "filter"}),
    ("POST", "/events/{event_id}/participants/new"): Case(
        Perm.EVENTS_PARTICIPANT_WRITE, 303, form={"first_name": "Grace", "last_name": "Hopper"}),
    ("GET", "/participants/{participant_id}/edit"): Case(Perm.EVENTS_PARTICIPANT_WRITE, 200),
    ("POST", "/participants/{participant_id}/edit"): Case(
        Perm.EVENTS_PARTICIPANT_WRITE, 303,
        form={"first_name": "Ada", "last_name": "Lovelace", "status": "active"}),
    ("GET", "/imports"): Case(Perm.IMPORTS_IMPORT_READ, 200),
    ("GET", "/imports/{import_id}"): Case(Perm.IMPORTS_IMPORT_READ, 200),
    ("POST", "/imports/{import_id}/control"): Case(
        Perm.IMPORTS_IMPORT_RUN, 303, form={"action": "cancel"}, also_needs=IMPORT_CONTROL),
    ("POST", "/imports/{import_id}/mapping"): Case(
        Perm.IMPORTS_IMPORT_RUN, 303,
        form={"field": ["sequence", "number", "barcode"], "header": ["seq", "num", "code"]},
        also_needs=IMPORT_CONTROL, ids={"import_id": "mapping_import_id"}),
    # The manufactured-number upload form is TENANT_ADMIN's; its summary, anyone's.
    ("GET", "/inventory/numbers/onboard/import"): Case(Perm.INVENTORY_NUMBER_MANAGE, 200),
    ("GET", "/inventory/numbers/onboard/imports/{import_id}/summary"):
        Case(Perm.INVENTORY_NUMBER_READ, 200),
    ("GET", "/events/{event_id}/results"): Case(Perm.TIMING_RESULT_READ, 200),
    ("GET", "/events/{event_id}/results/import"): Case(Perm.TIMING_RESULT_IMPORT, 200),
    ("GET", "/results/imports/{import_id}/summary"):
        Case(Perm.TIMING_RESULT_READ, 200, ids={"import_id": "results_import_id"}),
    ("GET", "/inventory/number-types"): Case(Perm.INVENTORY_NUMBER_READ, 200),
    ("POST", "/inventory/number-types"):
        Case(Perm.INVENTORY_NUMBER_MANAGE, 303, form={"name": "Road bibs"}),
    ("GET", "/inventory/numbers"): Case(Perm.INVENTORY_NUMBER_READ, 200),
    ("GET", "/inventory/numbers/{race_number_id}"): Case(Perm.INVENTORY_NUMBER_READ, 200),
    # The lists show each row only to those who may read it (test_job_controls_need_...).
    ("GET", "/jobs"): Case(Perm.JOBS_RUN_READ, 200),
    ("GET", "/jobs/{job_id}"): Case(Perm.JOBS_RUN_READ, 200),
    ("POST", "/jobs/{job_id}/control"): Case(
        Perm.JOBS_RUN_READ, 303, form={"action": "cancel"}, also_needs=JOB_CONTROL),
    ("GET", "/exports"): Case(Perm.EXPORTS_EXPORT_RUN, 200),
    ("GET", "/exports/new"):
        Case(Perm.EXPORTS_EXPORT_RUN, 200, params={"view": "race_numbers"}),
    ("POST", "/exports"): Case(Perm.EXPORTS_EXPORT_RUN, 303,
                               form={"view": "race_numbers", "columns": "number"}),
    ("GET", "/exports/{export_id}"): Case(Perm.EXPORTS_EXPORT_RUN, 200),
    ("POST", "/exports/{export_id}/cancel"): Case(Perm.EXPORTS_EXPORT_RUN, 303, form={}),
    ("POST", "/exports/{export_id}/retry"): Case(Perm.EXPORTS_EXPORT_RUN, 303, form={}),
    # The list (with health) and the webhook deliveries are read; a connection's own page
    # is its edit form (credentials), so manage, like the mapping editor.
    ("GET", "/connections"): Case(Perm.SYNC_CONNECTION_READ, 200),
    ("GET", "/connections/new"): Case(Perm.SYNC_CONNECTION_MANAGE, 200),
    ("POST", "/connections/new"): Case(Perm.SYNC_CONNECTION_MANAGE, 303, form={
        "provider": "HAKU", "name": "Haku 2", "cred_client_id": "client-12345678",
        "cred_client_secret": "secret-12345678"}),
    ("GET", "/connections/{connection_id}"): Case(Perm.SYNC_CONNECTION_MANAGE, 200),
    ("POST", "/connections/{connection_id}"):
        Case(Perm.SYNC_CONNECTION_MANAGE, 303, form={"name": "Renamed"}),
    ("POST", "/connections/{connection_id}/test"): Case(Perm.SYNC_CONNECTION_MANAGE, 303, form={}),
    ("POST", "/connections/{connection_id}/delete"):
        Case(Perm.SYNC_CONNECTION_MANAGE, 303, form={}),
    ("GET", "/connections/{connection_id}/mapping"): Case(Perm.SYNC_CONNECTION_MANAGE, 200),
    ("POST", "/connections/{connection_id}/mapping"): Case(Perm.SYNC_CONNECTION_MANAGE, 303, form={
        "target_0": "city", "sources_0": "user.address.city", "transforms_0": "trim"}),
    ("POST", "/connections/{connection_id}/mapping/preview"): Case(
        Perm.SYNC_CONNECTION_MANAGE, 200,
        form={"target_0": "city", "sources_0": "city", "sample": '[{"city": "Lyon"}]'}),
    # The editor's "load the provider's fields" (here from a pasted sample) and step picker.
    ("POST", "/connections/{connection_id}/mapping/fields"): Case(
        Perm.SYNC_CONNECTION_MANAGE, 200, form={"target_0": "city",
                                                "sample": '[{"city": "Lyon"}]'}),
    ("POST", "/connections/{connection_id}/mapping/steps"): Case(
        Perm.SYNC_CONNECTION_MANAGE, 200, form={"target_0": "city", "add_step": "0",
                                                "step_kind_0": "trim"}),
    ("GET", "/connections/{connection_id}/webhook-deliveries"):
        Case(Perm.SYNC_CONNECTION_READ, 200),
    ("GET", "/connections/{connection_id}/events"):
        Case(Perm.SYNC_CONNECTION_MANAGE, 200),  # the reason, in the fragment
    # A connection's provider events: read with connections; the link forms need links.
    ("GET", "/connections/{connection_id}/links"): Case(Perm.SYNC_CONNECTION_READ, 200),
    ("POST", "/connections/{connection_id}/links"): Case(
        Perm.SYNC_LINK_MANAGE, 303,
        form={"provider_event_ref": "202", "event_id": Ref("event_id")}),
    ("POST", "/connections/{connection_id}/links/{link_id}/unlink"):
        Case(Perm.SYNC_LINK_MANAGE, 303, form={}),
    # The Sync tabs and a run's page: everyone reads; Sync now needs sync:run:start, the
    # conflict buttons sync:record:manage, as their API counterparts do.
    ("GET", "/events/{event_id}/sync"): Case(Perm.SYNC_RUN_READ, 200),
    ("POST", "/events/{event_id}/sync"): Case(Perm.SYNC_RUN_START, 303, form={}),
    # Pulling a timing race's results: RESULTS_OFFICER and up (sync:timing:run).
    ("POST", "/events/{event_id}/sync/links/{link_id}/pull"): Case(
        Perm.SYNC_TIMING_RUN, 303, form={}, ids={"link_id": "pull_link_id"}),
    # "Push start list": its preview and its confirmation, RESULTS_OFFICER and up.
    ("GET", "/events/{event_id}/sync/push/{link_id}"): Case(
        Perm.SYNC_TIMING_RUN, 200, ids={"event_id": "timing_event_id",
                                        "link_id": "timing_link_id"}),
    ("POST", "/events/{event_id}/sync/push/{link_id}"): Case(
        Perm.SYNC_TIMING_RUN, 303, form={}, ids={"event_id": "timing_event_id",
                                                 "link_id": "timing_link_id"}),
    ("POST", "/events/{event_id}/conflicts/{conflict_id}/keep"):
        Case(Perm.SYNC_RECORD_MANAGE, 303, form={}),
    ("POST", "/events/{event_id}/conflicts/{conflict_id}/take"):
        Case(Perm.SYNC_RECORD_MANAGE, 303, form={}),
    # Results publications, as their API: prepare is a sync run, approving publishes.
    ("POST", "/events/{event_id}/publications"): Case(Perm.SYNC_RUN_START, 303, form={}),
    ("GET", "/events/{event_id}/publications/{version}"): Case(Perm.SYNC_RUN_READ, 200),
    ("POST", "/events/{event_id}/publications/{version}/approve"):
        Case(Perm.SYNC_RESULTS_PUBLISH, 303, form={}),
    ("GET", "/connections/{connection_id}/sync"): Case(Perm.SYNC_RUN_READ, 200),
    ("POST", "/connections/{connection_id}/sync"): Case(Perm.SYNC_RUN_START, 303, form={}),
    ("GET", "/sync/runs/{sync_run_id}"): Case(Perm.SYNC_RUN_READ, 200),
    ("GET", "/monitoring"): Case(Perm.SYNC_RUN_READ, 200),
    ("GET", "/monitoring/connections/{connection_id}"): Case(Perm.SYNC_RUN_READ, 200),
    ("POST", "/sync/runs/{sync_run_id}/apply"): Case(
        Perm.SYNC_RUN_START, 303, form={"all": "1"}, ids={"sync_run_id": "held_run_id"}),
    ("POST", "/sync/runs/{sync_run_id}/discard"):
        Case(Perm.SYNC_RUN_START, 303, form={}, ids={"sync_run_id": "review_run_id"}),
    ("POST", "/connections/{connection_id}/discover"): Case(Perm.SYNC_LINK_MANAGE, 303, form={}),
    ("POST", "/connections/{connection_id}/provider-events/{link_id}/create-event"): Case(
        Perm.SYNC_LINK_MANAGE, 303,
        form={"name": "From 202", "start_at": "2026-10-01T07:30", "timezone": "Europe/Paris"},
        ids={"link_id": "candidate_id"}),
}

# Who holds what, written out from the README's Roles table, never read from rbac.py: the
# role matrix expects 403 or success from this table, so a permission wrongly granted to
# (or taken from) a role fails there and in test_role_permissions_match_the_readme.
# VIEWER: "read events, participants, jobs, inventory, imports, results, sync history";
# GET /api/me is "any role".
_EVERY_ROLE = {
    Perm.EVENTS_EVENT_READ, Perm.EVENTS_PARTICIPANT_READ, Perm.JOBS_RUN_READ,
    Perm.INVENTORY_NUMBER_READ, Perm.IMPORTS_IMPORT_READ, Perm.TIMING_RESULT_READ,
    Perm.CORE_SELF_READ, Perm.SYNC_RUN_READ, Perm.ALERTS_ALERT_READ,
}
# RESULTS_OFFICER: "+ edit participants, assign bibs, run imports, export to the timing
# system, import results, export lists, push start lists to a linked timing system and pull
# its results".
_RESULTS_OFFICER = _EVERY_ROLE | {
    Perm.EVENTS_PARTICIPANT_WRITE, Perm.IMPORTS_IMPORT_RUN, Perm.TIMING_EXPORT,
    Perm.TIMING_RESULT_IMPORT, Perm.EXPORTS_EXPORT_RUN, Perm.SYNC_TIMING_RUN,
}
# EVENT_MANAGER: "+ create and edit events and categories, see provider connections and
# their health, link provider events to events, run syncs, prepare and approve results
# publications to a registration platform, resolve sync conflicts and split wrong person
# matches, read the raw provider payloads".
_EVENT_MANAGER = _RESULTS_OFFICER | {Perm.EVENTS_EVENT_WRITE, Perm.SYNC_CONNECTION_READ,
                                     Perm.SYNC_LINK_MANAGE, Perm.SYNC_RECORD_MANAGE,
                                     Perm.SYNC_PAYLOAD_READ, Perm.SYNC_RUN_START,
                                     Perm.SYNC_RESULTS_PUBLISH, Perm.ALERTS_ALERT_ACK}
GRANTS: dict[Role, frozenset[Perm]] = {
    Role.VIEWER: frozenset(_EVERY_ROLE),
    Role.RESULTS_OFFICER: frozenset(_RESULTS_OFFICER),
    Role.EVENT_MANAGER: frozenset(_EVENT_MANAGER),
    Role.TENANT_ADMIN: frozenset(Perm),  # "everything in the tenant"
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


def _closed_port_connection(db: Session, tenant: Tenant, name: str, *,
                            event_ids: list[str]) -> ProviderConnection:
    """A RunSignUp connection pointing at a closed loopback port: fails fast, offline."""
    return sync_service.create_connection(
        db, replace(system_ctx(tenant), is_platform_admin=True), keyring=keyring_from_settings(
            Settings(database_url="postgresql://unused/none")),
        data=ConnectionCreate(provider="RUNSIGNUP", name=name,
                              base_url="http://127.0.0.1:9/Rest",
                              credentials={"api_key": "key-12345678", "api_secret": "s-12345678"},
                              event_ids=event_ids))


def build_rows(db: Session, tenant: Tenant) -> dict[str, str]:
    """One row of each kind a route can address by id, in ``tenant``."""
    event = make_event(db, tenant)
    category = make_category(db, event, bib_range_start=1, bib_range_end=99)
    spare_category = make_category(db, event)
    empty_event = make_event(db, tenant)
    participant = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="7",
                                   category_id=category.id)
    token, _ = core_service.create_api_token(
        db, system_ctx(tenant), data=ApiTokenCreate(name="sample", role=Role.VIEWER)
    )
    # Queued with a pause requested: cancel, pause and resume all apply to it.
    job = JobRun(tenant_id=tenant.id, kind=ASSIGN_BIBS_KIND, pause_requested=True,
                 params={"event_id": str(event.id), "category_id": str(category.id),
                         "first_bib": 1}, subject_type="category", subject_id=category.id)
    db.add(job)
    # A bulk edit of the event, queued with a pause requested like the job above.
    bulk_job = JobRun(tenant_id=tenant.id, kind=BULK_EDIT_KIND, pause_requested=True,
                      params={"event_id": str(event.id), "action": "clear_bibs",
                              "withdrawn_at": "2026-12-07T00:00:00+00:00", "ids": None,
                              "filter": {}, "category_id": None, "first_bib": None,
                              "reason": None},
                      subject_type="event", subject_id=event.id)
    db.add(bulk_job)
    # A member other than the caller: changing or removing them is never refused as
    # "the last TENANT_ADMIN".
    member = make_user(db, tenant, Role.EVENT_MANAGER)
    number_type = make_number_type(db, tenant)
    [numbered] = onboard(db, number_type, ("1", "0001", "CHIP-1"))
    # Queued with a pause requested, like the job above; no file needed to control it.
    upload_id = uuid.uuid4()
    import_run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND, pause_requested=True,
                        params={"import_id": "", "import_type": "NUMBER_ONBOARDING"},
                        subject_type="import", subject_id=upload_id)
    db.add(import_run)
    db.flush()
    upload = Import(id=upload_id, tenant_id=tenant.id, import_type="NUMBER_ONBOARDING",
                    filename="b.csv",
                    stored_path="imports/none", size_bytes=1, file_format="csv",
                    header=["sequence", "number", "barcode"],
                    column_map={"sequence": 0, "number": 1, "barcode": 2},
                    params={"numberTypeId": str(number_type.id)}, job_run_id=import_run.id)
    db.add(upload)
    # A result-file import (E08) of the event, for its summary page.
    results_upload_id = uuid.uuid4()
    results_run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND,
                         params={"import_id": "", "import_type": "TIMING_RESULTS"},
                         subject_type="import", subject_id=results_upload_id)
    db.add(results_run)
    db.flush()
    results_upload = Import(id=results_upload_id, tenant_id=tenant.id,
                            import_type="TIMING_RESULTS",
                            filename="r.csv", stored_path="imports/none", size_bytes=1,
                            file_format="csv", header=["ExternalReferenceID", "Number"],
                            column_map={"ExternalReferenceID": 0, "Number": 1},
                            params={"eventId": str(event.id), "identifierMode": "PERSON_ID"},
                            job_run_id=results_run.id)
    db.add(results_upload)
    # Waiting in Columns for its mapping (paused, as the pipeline leaves it): the mapping
    # routes apply to it. A manufactured-number file never waits; the routes do not care.
    waiting_id = uuid.uuid4()
    mapping_run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND, status=JobStatus.PAUSED,
                         stage="Columns", params={"import_id": "",
                                                  "import_type": "NUMBER_ONBOARDING"},
                         subject_type="import", subject_id=waiting_id)
    db.add(mapping_run)
    db.flush()
    waiting = Import(id=waiting_id, tenant_id=tenant.id, import_type="NUMBER_ONBOARDING",
                     filename="m.csv",
                     stored_path="imports/none", size_bytes=1, file_format="csv",
                     header=["seq", "num", "code"], column_map={},
                     mapping_state="needs_mapping",
                     params={"numberTypeId": str(number_type.id)}, job_run_id=mapping_run.id)
    db.add(waiting)
    # Queued yet past its expiry: cancel, retry (expired) and download (410) all apply.
    export = _export(db, tenant, "participants", filters={"eventId": str(event.id)},
                     columns=["bib"])
    # The audit log's export (TENANT_ADMIN's), queued with a pause requested like the
    # rest; and two runs whose subject is missing (read as their rule's strictest case).
    audit_export = _export(db, tenant, "audit", filters={}, columns=["action"],
                           pause_requested=True)
    orphans = {}
    for kind, params in ((RUN_IMPORT_KIND, {"import_id": "", "import_type": "TIMING_RESULTS"}),
                         (EXPORT_KIND, {"export_id": ""})):
        orphans[kind] = JobRun(tenant_id=tenant.id, kind=kind, pause_requested=True,
                               params=params)
        db.add(orphans[kind])
    # A connection pointing at a closed loopback port: its test fails fast, offline.
    connection = _closed_port_connection(db, tenant, "RunSignUp", event_ids=["101", "202"])
    connection.settings = {**connection.settings, "max_attempts": 1}
    # Provider event 101 feeds the event (unlink, categories); 202 is chosen, not linked.
    link = sync_links.create_link(db, system_ctx(tenant), event_id=event.id, data=LinkCreate(
        connection_id=connection.id, provider_event_ref="101"))
    db.flush()
    # A sync's leftovers on the participant: its registration (a raw payload), an open
    # conflict on its racehub-owned team (keep and take both apply), and a second entry
    # of its person in another event (a match to split).
    participant.local_fields = ["team"]
    record = make_synced_record(db, participant, payload={"user": {"first_name": "Ada"}},
                                synced_values={"team": "Harriers"})
    conflict = SyncConflict(tenant_id=tenant.id, event_id=event.id,
                            participant_id=participant.id, record_id=record.id, field="team",
                            local_value=None, provider_value="Harriers B")
    db.add(conflict)
    events_service.create_participant(
        db, system_ctx(tenant), event_id=make_event(db, tenant).id,
        data=ParticipantCreate(person_id=participant.person_id))
    db.flush()
    # A finished run of the linked provider event, and a queued one (pause requested, like
    # the jobs above): no worker runs it here.
    sync_job = JobRun(tenant_id=tenant.id, kind=SYNC_PARTICIPANTS_KIND, pause_requested=True,
                      params={"sync_run_id": "", "link_id": str(link.id)},
                      subject_type="event_link", subject_id=link.id)
    db.add(sync_job)
    db.flush()
    sync_run = SyncRun(tenant_id=tenant.id, connection_id=connection.id, provider="RUNSIGNUP",
                       link_id=link.id, event_id=event.id, sync_type="participants",
                       trigger="manual", status=SyncStatus.SUCCEEDED, job_run_id=sync_job.id)
    db.add(sync_run)
    # Two runs stopped before applying, each on a provider event of its own (a link has
    # one active run, and link 101 must stay free to unlink), of a second connection (the
    # first must stay free to delete): one awaiting review (preview, apply, discard), one
    # held by the circuit breaker (confirm).
    held_by = _closed_port_connection(db, tenant, "RunSignUp (waiting runs)", event_ids=[])
    stopped = {}
    for ref, status in (("303", SyncStatus.AWAITING_REVIEW), ("404", SyncStatus.HELD)):
        other = sync_links.create_link(db, system_ctx(tenant), event_id=event.id,
                                       data=LinkCreate(connection_id=held_by.id,
                                                       provider_event_ref=ref))
        stopped[status] = SyncRun(
            tenant_id=tenant.id, connection_id=held_by.id, provider="RUNSIGNUP",
            link_id=other.id, event_id=event.id, sync_type="participants", trigger="manual",
            status=status, preview=status == SyncStatus.AWAITING_REVIEW,
            hold_reason="a sample hold" if status == SyncStatus.HELD else None)
        db.add(stopped[status])
    db.flush()
    # A discovery of the connection, queued with a pause requested like the jobs above.
    discover_job = JobRun(tenant_id=tenant.id, kind=DISCOVER_EVENTS_KIND, pause_requested=True,
                          params={"connection_id": str(connection.id)},
                          subject_type="provider_connection", subject_id=connection.id)
    db.add(discover_job)
    db.flush()
    candidate = db.scalar(select(EventLink).where(EventLink.connection_id == connection.id,
                                                  EventLink.provider_event_ref == "202"))
    assert candidate is not None
    # A timing race (Copernico) linked to the event: results pulls.
    timing = sync_service.create_connection(
        db, replace(system_ctx(tenant), is_platform_admin=True), keyring=keyring_from_settings(
            Settings(database_url="postgresql://unused/none")),
        data=ConnectionCreate(provider="COPERNICO", name="Copernico timing",
                              base_url="http://127.0.0.1:9", credentials={}))
    pull_link = sync_links.create_link(db, system_ctx(tenant), event_id=event.id, data=LinkCreate(
        connection_id=timing.id, provider_event_ref="race-1:event-1"))
    pull_job = JobRun(tenant_id=tenant.id, kind=SYNC_RESULTS_PULL_KIND, pause_requested=True,
                      params={"sync_run_id": "", "link_id": str(pull_link.id)},
                      subject_type="event_link", subject_id=pull_link.id)
    db.add(pull_job)
    # A timing event (ChronoTrack, a closed port) linked to an event of its own: pushes.
    pusher = sync_service.create_connection(
        db, replace(system_ctx(tenant), is_platform_admin=True), keyring=keyring_from_settings(
            Settings(database_url="postgresql://unused/none")),
        data=ConnectionCreate(provider="CHRONOTRACK", name="ChronoTrack",
                              base_url="http://127.0.0.1:9/api",
                              credentials={"client_id": "c-12345678", "user_id": "u-12345678",
                                           "user_pass": "p-12345678"}))
    timing_link = sync_links.create_link(
        db, system_ctx(tenant), event_id=make_event(db, tenant).id, data=LinkCreate(
            connection_id=pusher.id, provider_event_ref="31000:81000"))
    # A push of it, queued with a pause requested like the jobs above.
    push_job = JobRun(tenant_id=tenant.id, kind=SYNC_START_LIST_PUSH_KIND,
                      pause_requested=True,
                      params={"sync_run_id": "", "link_id": str(timing_link.id)},
                      subject_type="event_link", subject_id=timing_link.id)
    db.add(push_job)
    db.flush()
    # A results version of the linked provider event, ready to approve (no warning), and
    # a queued prepare job and publish job (pause requested, like the jobs above).
    publication = ResultPublication(
        tenant_id=tenant.id, event_id=event.id, link_id=link.id, connection_id=connection.id,
        provider="RUNSIGNUP", provider_event_ref="101", version=1,
        status=PublicationStatus.READY, prepared_by_label="test", validation=[],
        acknowledged_warnings=[], auto_approved=False, result_set_requested=False,
        publish_attempts=0, rows_total=0, added=0, changed=0, removed=0, unchanged=0,
        errors=0, warnings=0, accepted=0, refused=0, sent=0)
    db.add(publication)
    db.flush()
    prepare_job = JobRun(tenant_id=tenant.id, kind=RESULTS_PUBLISH_PREPARE_KIND,
                         pause_requested=True, params={"sync_run_id": "", "link_id": str(link.id)},
                         subject_type="event_link", subject_id=link.id)
    publish_job = JobRun(tenant_id=tenant.id, kind=PUBLISH_KIND, pause_requested=True,
                         params={"publication_id": str(publication.id), "link_id": str(link.id)},
                         subject_type="result_publication", subject_id=publication.id)
    db.add_all([prepare_job, publish_job])
    # An open alert on the connection, and alert settings with a webhook.
    alert = Alert(tenant_id=tenant.id, rule="credentials_refused",
                  fingerprint=f"credentials_refused:connection:{connection.id}",
                  subject_type="connection", subject_id=str(connection.id),
                  subject_label=connection.name, status=AlertStatus.FIRING,
                  summary="RUNSIGNUP refused the credentials", evidence={},
                  active_since=datetime.now(UTC), fired_at=datetime.now(UTC),
                  last_seen_at=datetime.now(UTC), notices=1)
    db.add(AlertSettings(tenant_id=tenant.id, rules={}, repeat_hours=24, email_recipients=[],
                         webhook_url="https://hooks.example.com/racehub"))
    db.add(alert)
    db.flush()
    return {"alert_id": str(alert.id), "connection_id": str(connection.id), "link_id": str(link.id),
            "pull_link_id": str(pull_link.id), "pull_job_id": str(pull_job.id),
            "timing_link_id": str(timing_link.id), "push_job_id": str(push_job.id),
            "timing_event_id": str(timing_link.event_id),
            "version": "1", "prepare_job_id": str(prepare_job.id),
            "publish_job_id": str(publish_job.id),
            "review_run_id": str(stopped[SyncStatus.AWAITING_REVIEW].id),
            "held_run_id": str(stopped[SyncStatus.HELD].id),
            "candidate_id": str(candidate.id), "discover_job_id": str(discover_job.id),
            "conflict_id": str(conflict.id),
            "sync_run_id": str(sync_run.id), "sync_job_id": str(sync_job.id),
            "event_id": str(event.id), "category_id": str(category.id), "export_id": str(export.id),
            "empty_event_id": str(empty_event.id), "spare_category_id": str(spare_category.id),
            "race_number_id": str(numbered.race_number_id),
            "number_type_id": str(number_type.id), "import_id": str(upload.id),
            "results_import_id": str(results_upload.id),
            "mapping_import_id": str(waiting.id),
            "participant_id": str(participant.id), "person_id": str(participant.person_id),
            "token_id": str(token.id), "user_id": str(member.id),
            "job_id": str(job.id), "bulk_job_id": str(bulk_job.id),
            "import_job_id": str(import_run.id),
            "results_import_job_id": str(results_run.id),
            "export_job_id": str(export.job_run_id),
            "audit_export_id": str(audit_export.id),
            "audit_export_job_id": str(audit_export.job_run_id),
            "orphan_import_job_id": str(orphans[RUN_IMPORT_KIND].id),
            "orphan_export_job_id": str(orphans[EXPORT_KIND].id)}


def _export(db: Session, tenant: Tenant, view: str, *, filters: dict[str, str],
            columns: list[str], pause_requested: bool = False) -> Export:
    """A queued export of ``view`` already past its expiry: cancel, retry (expired) and
    download (410) all apply to it."""
    export_id = uuid.uuid4()
    run = JobRun(tenant_id=tenant.id, kind=EXPORT_KIND, params={"export_id": str(export_id)},
                 pause_requested=pause_requested, subject_type="export", subject_id=export_id)
    db.add(run)
    db.flush()
    export = Export(id=export_id, tenant_id=tenant.id, view_key=view, title=view.title(),
                    filters=filters, columns=columns, file_format="csv",
                    cutoff_at=datetime.now(UTC), job_run_id=run.id, storage_backend="local",
                    storage_key=f"{tenant.id}/{export_id}/{view}.csv", filename=f"{view}.csv",
                    expires_at=datetime.now(UTC) - timedelta(hours=1))
    db.add(export)
    db.flush()
    return export


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


def resolve(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with each ``Ref`` replaced by its id."""
    if isinstance(value, Ref):
        return ids[value.name]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def send(client: TestClient, method: str, path: str, case: Case, ids: dict[str, str],
         headers: dict[str, str]) -> Response:
    url = case.url(path, ids)
    params = {k: v.format(**ids) for k, v in (case.params or {}).items()}
    if case.files is not None:
        return client.request(method, url, params=params, files=case.files, headers=headers,
                              follow_redirects=False)
    if case.form is not None:
        return client.request(method, url, params=params, data=resolve(case.form, ids),
                              headers=headers, follow_redirects=False)
    return client.request(method, url, params=params, json=resolve(case.json, ids),
                          headers=headers, follow_redirects=False)


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


def _declared_against_pinned(app: FastAPI, cases: dict[tuple[str, str], Case], *,
                             api: bool) -> list[str]:
    routes = endpoints(app, api=api)
    return [f"{method} {path} declares {sorted(p.value for p in routes[method, path].permissions)}"
            f", must require {case.perm.value!r}"
            for (method, path), case in cases.items()
            if (method, path) in routes and routes[method, path].permissions != {case.perm}]


def test_every_api_route_declares_its_pinned_permission(app: FastAPI) -> None:
    # A route loosened (or tightened) in its declaration fails here, naming both values;
    # fix the route, or change its case here on purpose (and the README with it).
    assert _declared_against_pinned(app, API_CASES, api=True) == []


def test_every_page_route_declares_its_pinned_permission(app: FastAPI) -> None:
    assert _declared_against_pinned(app, PAGE_CASES, api=False) == []


def test_public_routes_declare_no_permission(app: FastAPI) -> None:
    # "public" is pinned by the allow-lists above; a route there that declares a
    # permission belongs in the case tables instead.
    declaring = [(r.method, r.path) for r in walk_routes(app)
                 if r.path in PUBLIC_API_PATHS | PUBLIC_PAGE_PATHS and r.permissions]
    assert declaring == []


def test_role_permissions_match_the_readme() -> None:
    wrong = {role.value: {"granted, README says no": sorted(ROLE_PERMISSIONS[role] - GRANTS[role]),
                          "README grants, missing": sorted(GRANTS[role] - ROLE_PERMISSIONS[role])}
             for role in Role if ROLE_PERMISSIONS[role] != GRANTS[role]}
    assert wrong == {}


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
    client: TestClient, db: Session, key: tuple[str, str], case: Case, role: Role, *, api: bool
) -> None:
    method, path = key
    tenant = make_tenant(db)
    ids = build_rows(db, tenant)
    headers = auth(db, tenant, role)
    db.commit()  # as in production, the rows exist before the request (routes may roll back)
    # Both sides pinned in this file: the route's permission and what the role holds.
    needed = {case.perm} | case.also_needs
    missing = needed - GRANTS[role]
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
    client: TestClient, db: Session, key: tuple[str, str], role: Role
) -> None:
    _role_matrix(client, db, key, API_CASES[key], role, api=True)


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize("key", list(PAGE_CASES), ids=case_id)
def test_page_route_answers_each_role_by_its_permissions(
    client: TestClient, db: Session, key: tuple[str, str], role: Role
) -> None:
    _role_matrix(client, db, key, PAGE_CASES[key], role, api=False)


# --- job controls: the permission of what the job does -------------------------------------


@dataclass(frozen=True)
class JobSample:
    """A run in build_rows, and what reading and controlling it need, written out from the
    README ("a job is read and controlled with the permissions of what it works on"):
    ``read`` on top of the route's own permission, ``control`` on top of ``read``."""

    job: str  # the build_rows id of the run
    kind: str
    read: frozenset[Perm]
    control: frozenset[Perm]
    subject: str | None = None  # the build_rows id of its import or export


_IMPORT_TYPE_PERMS = frozenset({Perm.INVENTORY_NUMBER_MANAGE, Perm.TIMING_RESULT_IMPORT})
_VIEW_PERMS = frozenset({Perm.AUDIT_LOG_READ, Perm.EVENTS_PARTICIPANT_READ,
                         Perm.IMPORTS_IMPORT_READ, Perm.INVENTORY_NUMBER_READ,
                         Perm.TIMING_RESULT_READ, Perm.SYNC_CONNECTION_READ})
JOB_SAMPLES: dict[str, JobSample] = {
    "assign-bibs": JobSample("job_id", ASSIGN_BIBS_KIND, frozenset({Perm.EVENTS_PARTICIPANT_READ}),
                             frozenset({Perm.EVENTS_PARTICIPANT_WRITE})),
    "bulk-edit": JobSample("bulk_job_id", BULK_EDIT_KIND,
                           frozenset({Perm.EVENTS_PARTICIPANT_READ}),
                           frozenset({Perm.EVENTS_PARTICIPANT_WRITE})),
    # An import: reading needs imports:import:read; controlling, running imports and the
    # import type's own permission (manufactured numbers: TENANT_ADMIN).
    "number-import": JobSample(
        "import_job_id", RUN_IMPORT_KIND, frozenset({Perm.IMPORTS_IMPORT_READ}),
        frozenset({Perm.IMPORTS_IMPORT_RUN, Perm.INVENTORY_NUMBER_MANAGE}), "import_id"),
    "results-import": JobSample(
        "results_import_job_id", RUN_IMPORT_KIND, frozenset({Perm.IMPORTS_IMPORT_READ}),
        frozenset({Perm.IMPORTS_IMPORT_RUN, Perm.TIMING_RESULT_IMPORT}), "results_import_id"),
    # An export holds its list: reading it needs the list's read permission, whoever
    # started it; controlling it, exporting lists too.
    "participants-export": JobSample(
        "export_job_id", EXPORT_KIND, frozenset({Perm.EVENTS_PARTICIPANT_READ}),
        frozenset({Perm.EXPORTS_EXPORT_RUN}), "export_id"),
    "audit-export": JobSample(
        "audit_export_job_id", EXPORT_KIND, frozenset({Perm.AUDIT_LOG_READ}),
        frozenset({Perm.EXPORTS_EXPORT_RUN}), "audit_export_id"),
    # A run whose subject is gone (or predates subjects): the strictest case of its rule.
    "import-without-subject": JobSample(
        "orphan_import_job_id", RUN_IMPORT_KIND, frozenset({Perm.IMPORTS_IMPORT_READ}),
        frozenset({Perm.IMPORTS_IMPORT_RUN}) | _IMPORT_TYPE_PERMS),
    "export-without-subject": JobSample(
        "orphan_export_job_id", EXPORT_KIND, _VIEW_PERMS, frozenset({Perm.EXPORTS_EXPORT_RUN})),
    # A sync run: its history is everyone's; running (and controlling) one, EVENT_MANAGER's.
    "sync-participants": JobSample("sync_job_id", SYNC_PARTICIPANTS_KIND,
                                   frozenset({Perm.SYNC_RUN_READ}),
                                   frozenset({Perm.SYNC_RUN_START})),
    # A results pull: its history is everyone's; running (and controlling) one,
    # RESULTS_OFFICER's.
    "sync-results-pull": JobSample("pull_job_id", SYNC_RESULTS_PULL_KIND,
                                   frozenset({Perm.SYNC_RUN_READ}),
                                   frozenset({Perm.SYNC_TIMING_RUN})),
    # A start list push: its history is everyone's; pushing (and controlling a push),
    # RESULTS_OFFICER's and up, as E11 exports are.
    "sync-start-list-push": JobSample("push_job_id", SYNC_START_LIST_PUSH_KIND,
                                      frozenset({Perm.SYNC_RUN_READ}),
                                      frozenset({Perm.SYNC_TIMING_RUN})),
    # Results publication: preparing a version is a sync run (EVENT_MANAGER's); its
    # publish is controlled by those who approve (sync:results:publish).
    "sync-results-publish-prepare": JobSample("prepare_job_id", RESULTS_PUBLISH_PREPARE_KIND,
                                              frozenset({Perm.SYNC_RUN_READ}),
                                              frozenset({Perm.SYNC_RUN_START})),
    "sync-results-publish": JobSample("publish_job_id", PUBLISH_KIND,
                                      frozenset({Perm.SYNC_RUN_READ}),
                                      frozenset({Perm.SYNC_RESULTS_PUBLISH})),
    # A discovery of provider events: read with connections; run and controlled by those
    # who link provider events (EVENT_MANAGER and up).
    "sync-discover-events": JobSample("discover_job_id", DISCOVER_EVENTS_KIND,
                                      frozenset({Perm.SYNC_CONNECTION_READ}),
                                      frozenset({Perm.SYNC_LINK_MANAGE})),
}


@dataclass(frozen=True)
class JobPath:
    method: str
    path: str  # {job} or {subject}: the sample's ids
    perm: Perm  # the route's own permission
    control: bool  # controls the run (else reads it)
    ok: int
    form: dict[str, str] | None = None
    subject: str | None = None  # only for runs of this subject type ("import", "export")


_ACTIONS = ("pause", "resume", "cancel")
JOB_PATHS = [
    JobPath("GET", "/api/jobs/{job}", Perm.JOBS_RUN_READ, False, 200),
    JobPath("GET", "/jobs/{job}", Perm.JOBS_RUN_READ, False, 200),
    *(JobPath("POST", f"/api/jobs/{{job}}/{a}", Perm.JOBS_RUN_READ, True, 200) for a in _ACTIONS),
    *(JobPath("POST", "/jobs/{job}/control", Perm.JOBS_RUN_READ, True, 303, {"action": a})
      for a in _ACTIONS),
    JobPath("GET", "/api/imports/{subject}", Perm.IMPORTS_IMPORT_READ, False, 200,
            subject="import"),
    JobPath("GET", "/imports/{subject}", Perm.IMPORTS_IMPORT_READ, False, 200,
            subject="import"),
    *(JobPath("POST", f"/api/imports/{{subject}}/{a}", Perm.IMPORTS_IMPORT_RUN, True, 200,
              subject="import") for a in _ACTIONS),
    *(JobPath("POST", "/imports/{subject}/control", Perm.IMPORTS_IMPORT_RUN, True, 303,
              {"action": a}, subject="import") for a in _ACTIONS),
    JobPath("GET", "/api/exports/{subject}", Perm.EXPORTS_EXPORT_RUN, False, 200,
            subject="export"),
    JobPath("GET", "/exports/{subject}", Perm.EXPORTS_EXPORT_RUN, False, 200, subject="export"),
    JobPath("POST", "/api/exports/{subject}/cancel", Perm.EXPORTS_EXPORT_RUN, True, 200,
            subject="export"),
    JobPath("POST", "/exports/{subject}/cancel", Perm.EXPORTS_EXPORT_RUN, True, 303, {},
            subject="export"),
]


def test_every_job_kind_and_control_route_has_a_sample(app: FastAPI) -> None:
    kinds = {k for k in load_kinds() if not k.startswith("tests.")}
    assert kinds - {s.kind for s in JOB_SAMPLES.values()} == set(), "add a JobSample"
    routes = set(endpoints(app, api=True)) | set(endpoints(app, api=False))
    controls = {key for key in routes if key[0] == "POST" and (
        key[1].startswith(("/api/jobs/", "/jobs/"))
        or key[1].endswith(("/cancel", "/pause", "/resume", "/control")))}
    pinned = {(p.method, p.path.replace("{job}", "{job_id}")
               .replace("/imports/{subject}", "/imports/{import_id}")
               .replace("/exports/{subject}", "/exports/{export_id}")) for p in JOB_PATHS}
    assert controls - pinned == set(), "add a JobPath"


def _reset_runs(db: Session, ids: dict[str, str]) -> None:
    """Every sample run queued with a pause requested again: each control applies."""
    db.execute(text(
        "UPDATE job_runs SET status = 'queued', stage = 'Queued', pause_requested = true, "
        "cancel_requested = false, finished_at = NULL WHERE id = ANY(:ids)"
    ), {"ids": [uuid.UUID(ids[s.job]) for s in JOB_SAMPLES.values()]})
    db.commit()
    db.expire_all()  # the routes share this session: they must read the rows afresh


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize("name", list(JOB_SAMPLES))
def test_job_controls_need_the_permissions_of_what_the_job_works_on(
    client: TestClient, db: Session, name: str, role: Role
) -> None:
    sample = JOB_SAMPLES[name]
    subject_type = {RUN_IMPORT_KIND: "import", EXPORT_KIND: "export"}.get(sample.kind)
    tenant = make_tenant(db)
    ids = build_rows(db, tenant)
    headers = auth(db, tenant, role)
    db.commit()
    job_id = ids[sample.job]
    may_read = sample.read <= GRANTS[role]
    may_control = (sample.read | sample.control) <= GRANTS[role]
    outcomes = []
    for route in JOB_PATHS:
        if route.subject is not None and (route.subject != subject_type or not sample.subject):
            continue
        _reset_runs(db, ids)
        needed = {route.perm} | sample.read | (sample.control if route.control else set())
        missing = needed - GRANTS[role]
        url = route.path.format(job=job_id, subject=ids.get(sample.subject or "", ""))
        before = tenant_fingerprint(db, tenant)
        response = client.request(route.method, url, data=route.form, headers=headers,
                                  follow_redirects=False)
        if missing:
            refused = (response.status_code == 403
                       and any(p.value in response.text for p in missing)
                       and tenant_fingerprint(db, tenant) == before)
            outcomes.append((route.method, url, response.status_code, refused))
        else:
            outcomes.append((route.method, url, response.status_code,
                             response.status_code == route.ok))
        if route.path == "/jobs/{job}" and not missing:
            # The page offers the buttons exactly to those they would work for.
            shown = 'name="action"' in response.text
            outcomes.append(("buttons", url, shown, shown == may_control))
        if route.path == "/imports/{subject}" and not missing:
            shown = 'name="action"' in response.text
            outcomes.append(("buttons", url, shown, shown == may_control))
    listed = [j["id"] for j in client.get("/api/jobs", params={"limit": 200},
                                          headers=headers).json()["items"]]
    outcomes.append(("listed", "/api/jobs", job_id in listed, (job_id in listed) == may_read))
    # The lists' pages, on the same rule: the run (and its import) shown exactly when readable.
    shown = f'data-job-id="{job_id}"' in client.get("/jobs", headers=headers).text
    outcomes.append(("listed", "/jobs", shown, shown == may_read))
    if subject_type == "import" and sample.subject:
        imports_page = client.get("/imports", headers=headers).text
        shown = f'data-import-id="{ids[sample.subject]}"' in imports_page
        outcomes.append(("listed", "/imports", shown, shown == may_read))
    assert [o for o in outcomes if not o[3]] == []


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
    # Ids only: a short value ("version": "1") is found in any random request id.
    leaked = [v for v in ids_a.values() if len(v) >= 8 and v not in url and v in response.text]
    assert leaked == [], response.text
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


# --- ids of another tenant in a query string or a body -----------------------------------


@dataclass(frozen=True)
class ForeignId:
    """Tenant B sends the route's sample request with one id of tenant A (``foreign``, a
    build_rows key) in its query string, body or path, every other id B's own."""

    route: tuple[str, str]
    foreign: str
    # What replaces the route's sample request (json, form, params, files); ids as Ref.
    changes: dict[str, Any] = field(default_factory=dict)
    # What A's id gets: 404 like any missing row; 200 for a list filter, whose list must be
    # empty. B's own id gets the route's ``ok`` (with a non-empty list for a filter).
    refused: int = 404

    @property
    def api(self) -> bool:
        return self.route[1].startswith("/api/")

    def case(self) -> Case:
        return replace((API_CASES if self.api else PAGE_CASES)[self.route], **self.changes)


RESULT_FILE = {"file": ("r.csv", b"ExternalReferenceID,Number\r\nX1,7\r\n")}

FOREIGN_ID_CASES = [
    # Participants: the person and the category of a new or edited entry.
    ForeignId(("POST", "/api/events/{event_id}/participants"), "person_id",
              # 422 "person not found" (field personId), as for an id nobody has; B's own
              # person enters B's event a second time under another bib.
              {"json": {"personId": Ref("person_id"), "bib": "8"}}, refused=422),
    ForeignId(("POST", "/api/events/{event_id}/participants"), "category_id",
              {"json": {**NEW_PERSON, "categoryId": Ref("category_id")}}),
    ForeignId(("PATCH", "/api/participants/{participant_id}"), "category_id",
              {"json": {"categoryId": Ref("category_id")}}),
    ForeignId(("POST", "/events/{event_id}/participants/new"), "category_id",
              {"form": {**PAGE_CASES["POST", "/events/{event_id}/participants/new"].form,
                        "category_id": Ref("category_id")}}),
    ForeignId(("POST", "/participants/{participant_id}/edit"), "category_id",
              {"form": {**PAGE_CASES["POST", "/participants/{participant_id}/edit"].form,
                        "category_id": Ref("category_id")}}),
    # A bulk edit's target category; A's participants among the ids are refused one by one
    # (tests/events/test_bulk.py), never touched.
    ForeignId(("POST", "/api/events/{event_id}/participants/bulk"), "category_id",
              {"json": {"action": "move_category", "ids": [Ref("participant_id")],
                        "categoryId": Ref("category_id")}}),
    ForeignId(("POST", "/api/events/{event_id}/participants/bulk"), "category_id",
              {"json": {"action": "clear_bibs", "filter": {"categoryId": Ref("category_id")}}}),
    # A's category under B's event, in the path.
    ForeignId(("POST", "/api/events/{event_id}/categories/{category_id}/assign-bibs"),
              "category_id"),
    # Imports: the number type (the sample request) and the event of a result file.
    ForeignId(("POST", "/api/imports"), "number_type_id"),
    ForeignId(("POST", "/api/imports"), "event_id", {
        "params": {"importType": "TIMING_RESULTS", "eventId": "{event_id}"},
        "files": RESULT_FILE}),
    # Exports: every id a view's filters take.
    ForeignId(("POST", "/api/exports"), "event_id",
              {"json": {"view": "participants", "filters": {"eventId": Ref("event_id")}}}),
    ForeignId(("POST", "/api/exports"), "category_id", {"json": {
        "view": "participants",
        "filters": {"eventId": Ref("event_id"), "categoryId": Ref("category_id")}}}),
    ForeignId(("POST", "/api/exports"), "event_id",
              {"json": {"view": "results", "filters": {"eventId": Ref("event_id")}}}),
    ForeignId(("POST", "/api/exports"), "number_type_id", {"json": {
        "view": "race_numbers", "filters": {"numberTypeId": Ref("number_type_id")}}}),
    ForeignId(("POST", "/api/exports"), "connection_id", {"json": {
        "view": "webhook_deliveries", "filters": {"connectionId": Ref("connection_id")}}}),
    ForeignId(("POST", "/api/exports"), "connection_id", {"json": {
        "view": "sync_runs", "filters": {"connectionId": Ref("connection_id")}}}),
    ForeignId(("POST", "/api/exports"), "event_id",
              {"json": {"view": "sync_runs", "filters": {"eventId": Ref("event_id")}}}),
    # Links: the connection of a new link, the category a provider race maps to, the event
    # a connection's provider event is linked to from its page.
    ForeignId(("POST", "/api/events/{event_id}/links"), "connection_id"),
    ForeignId(("PUT", "/api/events/{event_id}/links/{link_id}/categories"), "category_id"),
    ForeignId(("POST", "/connections/{connection_id}/links"), "event_id"),
    # Candidates: the event one is linked to; the connection or event a list is filtered by.
    ForeignId(("POST", "/api/provider-events/{link_id}/link"), "event_id"),
    ForeignId(("GET", "/api/provider-events"), "connection_id",
              {"params": {"connectionId": "{connection_id}"}}),
    ForeignId(("GET", "/api/provider-events"), "event_id",
              {"params": {"nearEventId": "{event_id}"}}),
    ForeignId(("GET", "/exports/new"), "event_id",
              {"params": {"view": "participants", "filter.eventId": "{event_id}"}}),
    ForeignId(("POST", "/exports"), "event_id",
              {"form": {"view": "participants", "columns": "bib",
                        "filter.eventId": Ref("event_id")}}),
    # List filters naming a row: 404, or an empty list.
    ForeignId(("GET", "/api/race-numbers"), "number_type_id",
              {"params": {"numberTypeId": "{number_type_id}"}}),
    ForeignId(("GET", "/inventory/numbers"), "number_type_id",
              {"params": {"numberTypeId": "{number_type_id}"}}),
    ForeignId(("GET", "/api/events/{event_id}/participants"), "category_id",
              {"params": {"categoryId": "{category_id}"}}, refused=200),
    ForeignId(("POST", "/api/sync/manual"), "connection_id"),
    ForeignId(("GET", "/api/sync/links/{link_id}/push-preview"), "timing_link_id"),
    ForeignId(("POST", "/api/sync/manual"), "event_id", {"json": {
        "connectionId": Ref("connection_id"), "syncType": "participants",
        "eventId": Ref("event_id")}}, refused=422),  # nothing of B's connection linked to it
    ForeignId(("GET", "/api/sync/runs"), "connection_id",
              {"params": {"connectionId": "{connection_id}"}}, refused=200),
    ForeignId(("GET", "/api/sync/runs"), "event_id",
              {"params": {"eventId": "{event_id}"}}, refused=200),
    ForeignId(("GET", "/api/monitoring/runs-per-hour"), "connection_id"),
    ForeignId(("GET", "/api/audit"), "token_id",  # the token.create entry of A's token
              {"params": {"targetId": "{token_id}"}}, refused=200),
]


def foreign_id(case: ForeignId) -> str:
    return f"{case_id(case.route)} {case.foreign}" + (
        f" {case.changes['json']['view']}" if "view" in case.changes.get("json", {}) else "")


@pytest.mark.parametrize("foreign", FOREIGN_ID_CASES, ids=foreign_id)
def test_an_id_of_another_tenant_in_a_query_or_body_is_not_found(
    client: TestClient, db: Session, foreign: ForeignId
) -> None:
    method, path = foreign.route
    case = foreign.case()
    tenant_a, tenant_b = make_tenant(db), make_tenant(db)
    ids_a, ids_b = build_rows(db, tenant_a), build_rows(db, tenant_b)
    headers_b = auth(db, tenant_b, Role.TENANT_ADMIN)
    db.commit()  # as in production, the rows exist before the request (routes may roll back)
    before_a, before_b = tenant_fingerprint(db, tenant_a), tenant_fingerprint(db, tenant_b)
    mixed = {**ids_b, foreign.foreign: ids_a[foreign.foreign]}

    response = send(client, method, path, case, mixed, headers_b)

    assert response.status_code == foreign.refused, response.text
    if foreign.refused == 200:  # a list filter: nothing of A's comes back
        assert response.json()["items"] == []
    else:
        assert_refused(response, foreign.refused, api=foreign.api)
    # Ids only (a version number "1" is in any request_id).
    leaked = [v for k, v in ids_a.items()
              if k != foreign.foreign and len(v) >= 8 and v in response.text]
    assert leaked == [], response.text
    assert tenant_fingerprint(db, tenant_a) == before_a, "tenant B changed tenant A's rows"
    assert tenant_fingerprint(db, tenant_b) == before_b, "a refused request changed data"
    # A's id is answered exactly like an id nobody has...
    missing = {**ids_b, foreign.foreign: str(uuid.uuid4())}
    assert send(client, method, path, case, missing, headers_b).status_code == foreign.refused
    # ...and B's own id works: the answer above came from the tenant check.
    response = send(client, method, path, case, ids_b, headers_b)
    assert response.status_code == case.ok, response.text
    if foreign.refused == 200:
        assert response.json()["items"] != []


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
