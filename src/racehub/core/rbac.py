"""Roles and permissions: the one place that says who may do what."""

from __future__ import annotations

import enum

from racehub.core.models import Role


class Perm(enum.StrEnum):
    """``domain:resource:action``; routes declare one of these with ``require(...)``."""

    EVENTS_EVENT_READ = "events:event:read"
    EVENTS_EVENT_WRITE = "events:event:write"
    EVENTS_PARTICIPANT_READ = "events:participant:read"
    EVENTS_PARTICIPANT_WRITE = "events:participant:write"
    IMPORTS_IMPORT_READ = "imports:import:read"
    IMPORTS_IMPORT_RUN = "imports:import:run"  # the import type may ask for more
    INVENTORY_NUMBER_READ = "inventory:number:read"
    INVENTORY_NUMBER_MANAGE = "inventory:number:manage"  # number types and number imports
    JOBS_RUN_READ = "jobs:run:read"
    TIMING_EXPORT = "timing:export:run"  # E11 CSV export (locks the identifier mode)
    TIMING_RESULT_READ = "timing:result:read"  # E08 results pages and API
    TIMING_RESULT_IMPORT = "timing:result:import"  # E08 result-file imports
    # Async list exports; each view also needs its own read permission (exports/views).
    EXPORTS_EXPORT_RUN = "exports:export:run"
    # Provider connections: read shows health; manage holds the (write-only) credentials.
    SYNC_CONNECTION_READ = "sync:connection:read"
    SYNC_CONNECTION_MANAGE = "sync:connection:manage"
    # Which racehub event each provider event feeds (and race -> category): EVENT_MANAGER up.
    SYNC_LINK_MANAGE = "sync:link:manage"
    # What a sync left on participants: resolve its conflicts (keep ours / take theirs),
    # split a person it matched wrongly. EVENT_MANAGER and up.
    SYNC_RECORD_MANAGE = "sync:record:manage"
    # The raw provider payloads behind participants (personal data): EVENT_MANAGER and up.
    SYNC_PAYLOAD_READ = "sync:payload:read"
    # Sync runs: everyone reads their history (the fields the participants page shows);
    # EVENT_MANAGER and up start them.
    SYNC_RUN_READ = "sync:run:read"
    SYNC_RUN_START = "sync:run:start"
    # Timing flows: push start lists to a timing system and pull its results back, as E11
    # exports and E08 imports are: RESULTS_OFFICER and up. Linking timing events and
    # confirming their risky steps (a full re-push, a change on a live event) stay
    # SYNC_LINK_MANAGE.
    SYNC_TIMING_RUN = "sync:timing:run"
    # Results publication to a registration platform: approving a version sends it out
    # (EVENT_MANAGER and up; never RESULTS_OFFICER, whose results it publishes). Preparing
    # one is a sync run (SYNC_RUN_START): with a link's auto-approve on, it may go out.
    SYNC_RESULTS_PUBLISH = "sync:results:publish"
    # Alerts (alerts/): everyone sees them (the top bar's badge, the alerts page); EVENT_MANAGER
    # and up acknowledge one; the rules, recipients and webhook are TENANT_ADMIN's.
    ALERTS_ALERT_READ = "alerts:alert:read"
    ALERTS_ALERT_ACK = "alerts:alert:ack"
    ALERTS_SETTINGS_MANAGE = "alerts:settings:manage"
    AUDIT_LOG_READ = "core:audit:read"
    CORE_TOKEN_MANAGE = "core:token:manage"
    CORE_MEMBER_MANAGE = "core:member:manage"
    CORE_SELF_READ = "core:self:read"


_EVERYONE = {
    Perm.EVENTS_EVENT_READ,
    Perm.EVENTS_PARTICIPANT_READ,
    Perm.IMPORTS_IMPORT_READ,
    Perm.INVENTORY_NUMBER_READ,
    Perm.JOBS_RUN_READ,
    Perm.CORE_SELF_READ,
    Perm.TIMING_RESULT_READ,
    Perm.SYNC_RUN_READ,
    Perm.ALERTS_ALERT_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.VIEWER: frozenset(_EVERYONE),
    Role.RESULTS_OFFICER: frozenset(
        _EVERYONE | {Perm.EVENTS_PARTICIPANT_WRITE, Perm.IMPORTS_IMPORT_RUN,
                     Perm.TIMING_EXPORT, Perm.EXPORTS_EXPORT_RUN, Perm.TIMING_RESULT_IMPORT,
                     Perm.SYNC_TIMING_RUN}
    ),
    Role.EVENT_MANAGER: frozenset(
        _EVERYONE | {Perm.EVENTS_EVENT_WRITE, Perm.EVENTS_PARTICIPANT_WRITE,
                     Perm.IMPORTS_IMPORT_RUN, Perm.TIMING_EXPORT, Perm.EXPORTS_EXPORT_RUN,
                     Perm.TIMING_RESULT_IMPORT, Perm.SYNC_CONNECTION_READ,
                     Perm.SYNC_LINK_MANAGE, Perm.SYNC_RECORD_MANAGE, Perm.SYNC_PAYLOAD_READ,
                     Perm.SYNC_RUN_START, Perm.SYNC_TIMING_RUN, Perm.SYNC_RESULTS_PUBLISH,
                     Perm.ALERTS_ALERT_ACK}
    ),
    Role.TENANT_ADMIN: frozenset(Perm),
}

# PLATFORM_ADMIN is a user flag, not a tenant role: it grants everything in every tenant,
# and each request it makes in a tenant it is not a member of is audit-logged.
PLATFORM_ADMIN_PERMISSIONS: frozenset[Perm] = frozenset(Perm)


def permissions_for(role: Role | None, *, platform_admin: bool = False) -> frozenset[Perm]:
    if platform_admin:
        return PLATFORM_ADMIN_PERMISSIONS
    if role is None:
        return frozenset()
    return ROLE_PERMISSIONS[role]


def role_label(role: Role | None, *, platform_admin: bool = False) -> str:
    if role is not None:
        return role.value
    return "PLATFORM_ADMIN" if platform_admin else "NONE"
