"""The alert rules: each one set-based query over every tenant at once.

A rule's ``find`` returns what holds now (a ``Finding`` per subject); the evaluation
(``service.evaluate``) turns findings into alerts. Each query reads links, connections and
the tenants' settings, and runs only through indexes bounded by time or by link (the
failed runs of the last hour, the newest finished run of each link and sync type), so the
cost of a tick grows with tenants and links, not with the history of runs.

A tenant's parameters come from its ``alert_settings.rules`` JSON, joined in SQL:
``COALESCE((s.rules #>> '{rule,param}')::float, default)``; a rule a tenant turned off
(``enabled`` false) finds nothing for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.core.crypto import Keyring
from racehub.settings import Settings


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    default: float
    minimum: float
    maximum: float
    unit: str = ""


@dataclass(frozen=True)
class Finding:
    """What a rule saw on one subject now. ``tenant_id`` None: a platform finding."""

    rule: str
    tenant_id: uuid.UUID | None
    subject_type: str
    subject_id: str
    subject_label: str
    summary: str
    evidence: dict[str, Any]
    subject_url: str | None = None
    # The condition must hold this long before the alert fires (Prometheus' "for").
    hold: timedelta = timedelta(0)

    @property
    def fingerprint(self) -> str:
        return f"{self.rule}:{self.subject_type}:{self.subject_id}"


Finder = Callable[[Session, datetime, Settings, Keyring], list[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    description: str
    find: Finder
    params: tuple[Param, ...] = ()
    platform: bool = False  # platform-wide (platform admins), not a tenant's to configure
    tags: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


# Each query joins, after the tenant's ``alert_settings s``, its settings of the rule:
# ``cfg.enabled`` and ``cfg.value`` (the rule's one parameter, else its default), read
# from ``s.rules`` along the JSON paths bound by ``_binds``.


def _binds(rule: str) -> dict[str, Any]:
    """The bound values of ``cfg`` for ``rule``: the JSON paths of its ``enabled`` flag and
    of its parameter in the tenant's ``alert_settings.rules``, and the default."""
    params = RULES[rule].params
    return {"enabled_path": [rule, "enabled"],
            "value_path": [rule, params[0].name if params else "-"],
            "value_default": float(params[0].default) if params else 0.0}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _minutes(value: float) -> str:
    return f"{value:g} min" if value < 120 else f"{value / 60:g} h"


# --- sync failures in the last hour over a threshold ----------------------------------------

SYNC_FAILURES = "sync_failures"


def find_sync_failures(db: Session, now: datetime, settings: Settings,
                       keyring: Keyring) -> list[Finding]:
    """Per connection: runs that failed for good in the last hour, plus runs waiting for a
    retry (their last attempt failed, at most a backoff ago). Along the partial index of
    failing runs (``ix_sync_runs_failing``)."""
    rows = db.execute(text("""
        WITH failing AS (
            SELECT r.tenant_id, r.connection_id, count(*) AS failures,
                   count(*) FILTER (WHERE r.status = 'retrying') AS retrying,
                   (array_agg(r.id::text ORDER BY r.finished_at DESC NULLS FIRST, r.id))[1:5]
                       AS run_ids,
                   (array_agg(r.error ORDER BY r.finished_at DESC NULLS FIRST, r.id)
                       FILTER (WHERE r.error IS NOT NULL))[1:3] AS errors
              FROM sync_runs r
             WHERE r.status IN ('failed', 'retrying') AND r.connection_id IS NOT NULL
               AND (r.finished_at IS NULL OR r.finished_at > :since)
               AND (r.status = 'retrying' OR r.finished_at <= :now)
             GROUP BY r.tenant_id, r.connection_id)
        SELECT f.*, c.name, c.provider, cfg.value AS threshold
          FROM failing f
          JOIN provider_connections c ON c.id = f.connection_id
          LEFT JOIN alert_settings s ON s.tenant_id = f.tenant_id
         CROSS JOIN LATERAL (
               SELECT COALESCE((s.rules #>> CAST(:enabled_path AS text[]))::boolean, true)
                          AS enabled,
                      COALESCE((s.rules #>> CAST(:value_path AS text[]))::float8,
                               CAST(:value_default AS float8)) AS value) cfg
         WHERE cfg.enabled AND f.failures >= cfg.value
    """), {"since": now - timedelta(hours=1), "now": now,
           **_binds(SYNC_FAILURES)}).mappings().all()
    return [Finding(
        rule=SYNC_FAILURES, tenant_id=row["tenant_id"], subject_type="connection",
        subject_id=str(row["connection_id"]), subject_label=row["name"],
        subject_url=f"/connections/{row['connection_id']}/sync",
        summary=(f"{row['failures']} sync run(s) of {row['name']} failed in the last hour "
                 f"(threshold {row['threshold']:g})"),
        evidence={"failures": row["failures"], "retrying": row["retrying"],
                  "threshold": row["threshold"], "runIds": row["run_ids"],
                  "errors": row["errors"] or [], "provider": row["provider"]},
    ) for row in rows]


# --- a stale link ------------------------------------------------------------------------------

STALE_LINK = "stale_link"


def find_stale_links(db: Session, now: datetime, settings: Settings,
                     keyring: Keyring) -> list[Finding]:
    """Registration links synced automatically with no success within ``factor`` times
    their planned cadence (the interval the schedule planned, stretched or not), counted
    from the last success, else from when they were linked."""
    rows = db.execute(text("""
        SELECT l.id, l.tenant_id, l.connection_id, l.event_id, l.provider_event_ref,
               l.provider_event_name, l.last_success_at, l.linked_at, c.name,
               (l.schedule_plan ->> 'planned_interval_minutes')::float8 AS interval_minutes,
               cfg.value AS factor
          FROM event_links l
          JOIN provider_connections c ON c.id = l.connection_id
               AND c.direction = 'registration'
          LEFT JOIN alert_settings s ON s.tenant_id = l.tenant_id
         CROSS JOIN LATERAL (
               SELECT COALESCE((s.rules #>> CAST(:enabled_path AS text[]))::boolean, true)
                          AS enabled,
                      COALESCE((s.rules #>> CAST(:value_path AS text[]))::float8,
                               CAST(:value_default AS float8)) AS value) cfg
         WHERE l.auto_sync AND l.event_id IS NOT NULL AND l.schedule_plan IS NOT NULL
           AND cfg.enabled
           AND COALESCE(l.last_success_at, l.linked_at, l.created_at)
               < :now - make_interval(secs => cfg.value * 60
                   * (l.schedule_plan ->> 'planned_interval_minutes')::float8)
    """), {"now": now, **_binds(STALE_LINK)}).mappings().all()
    found = []
    for row in rows:
        name = row["provider_event_name"] or row["provider_event_ref"]
        since = row["last_success_at"]
        found.append(Finding(
            rule=STALE_LINK, tenant_id=row["tenant_id"], subject_type="link",
            subject_id=str(row["id"]), subject_label=f"{row['name']}: {name}",
            subject_url=f"/events/{row['event_id']}/sync",
            summary=(f"{name} ({row['name']}) has not synced successfully "
                     + (f"since {since:%Y-%m-%d %H:%M} UTC" if since else "since it was linked")
                     + f": more than {row['factor']:g} x its cadence of "
                     f"{_minutes(row['interval_minutes'])}"),
            evidence={"lastSuccessAt": _iso(since), "linkedAt": _iso(row["linked_at"]),
                      "intervalMinutes": row["interval_minutes"], "factor": row["factor"],
                      "connectionId": str(row["connection_id"])},
        ))
    return found


# --- a permanent failure -----------------------------------------------------------------------

PERMANENT_FAILURE = "permanent_failure"
SYNC_TYPES = ("participants", "start_list_push", "results_pull", "results_publish_prepare")


def find_permanent_failures(db: Session, now: datetime, settings: Settings,
                            keyring: Keyring) -> list[Finding]:
    """Each linked link and sync type whose newest finished run failed for good (retries
    exhausted, or an error no retry fixes). Open until a later run of that type succeeds.
    One lookup per link and type along ``ix_sync_runs_link_id_sync_type_finished_at``."""
    rows = db.execute(text("""
        SELECT l.id AS link_id, l.tenant_id, l.event_id, l.provider_event_ref,
               l.provider_event_name, c.name, r.id AS run_id, r.sync_type, r.error,
               r.attempts, r.retryable, r.finished_at
          FROM event_links l
          JOIN provider_connections c ON c.id = l.connection_id
          LEFT JOIN alert_settings s ON s.tenant_id = l.tenant_id
         CROSS JOIN LATERAL (
               SELECT COALESCE((s.rules #>> CAST(:enabled_path AS text[]))::boolean, true)
                          AS enabled,
                      COALESCE((s.rules #>> CAST(:value_path AS text[]))::float8,
                               CAST(:value_default AS float8)) AS value) cfg
         CROSS JOIN unnest(CAST(:types AS text[])) AS t(sync_type)
         CROSS JOIN LATERAL (
               SELECT r.id, r.sync_type, r.status, r.error, r.attempts, r.retryable,
                      r.finished_at
                 FROM sync_runs r
                WHERE r.link_id = l.id AND r.sync_type = t.sync_type
                  AND r.status IN ('succeeded', 'failed')
                ORDER BY r.finished_at DESC NULLS LAST
                LIMIT 1) r
         WHERE l.event_id IS NOT NULL AND r.status = 'failed'
           AND cfg.enabled
    """), {"types": list(SYNC_TYPES), **_binds(PERMANENT_FAILURE)}).mappings().all()
    found = []
    for row in rows:
        name = row["provider_event_name"] or row["provider_event_ref"]
        kind = row["sync_type"].replace("_", " ")
        why = (f"retries exhausted after {row['attempts']} attempt(s)" if row["retryable"]
               else "an error no retry fixes")
        found.append(Finding(
            rule=PERMANENT_FAILURE, tenant_id=row["tenant_id"], subject_type="link",
            subject_id=f"{row['link_id']}:{row['sync_type']}",
            subject_label=f"{row['name']}: {name} ({kind})",
            subject_url=f"/sync/runs/{row['run_id']}",
            summary=f"The last {kind} run of {name} failed for good ({why}): {row['error']}",
            evidence={"runId": str(row["run_id"]), "syncType": row["sync_type"],
                      "error": row["error"], "attempts": row["attempts"],
                      "retryable": row["retryable"], "finishedAt": _iso(row["finished_at"]),
                      "linkId": str(row["link_id"])},
        ))
    return found


# --- a connection's credentials refused --------------------------------------------------------

CREDENTIALS_REFUSED = "credentials_refused"


def find_credentials_refused(db: Session, now: datetime, settings: Settings,
                             keyring: Keyring) -> list[Finding]:
    rows = db.execute(text("""
        SELECT c.id, c.tenant_id, c.name, c.provider, c.last_checked_at, c.last_check_message
          FROM provider_connections c
          LEFT JOIN alert_settings s ON s.tenant_id = c.tenant_id
         CROSS JOIN LATERAL (
               SELECT COALESCE((s.rules #>> CAST(:enabled_path AS text[]))::boolean, true)
                          AS enabled,
                      COALESCE((s.rules #>> CAST(:value_path AS text[]))::float8,
                               CAST(:value_default AS float8)) AS value) cfg
         WHERE c.status = 'FAILED'
           AND cfg.enabled
    """), _binds(CREDENTIALS_REFUSED)).mappings().all()
    return [Finding(
        rule=CREDENTIALS_REFUSED, tenant_id=row["tenant_id"], subject_type="connection",
        subject_id=str(row["id"]), subject_label=row["name"],
        subject_url=f"/connections/{row['id']}",
        summary=(f"{row['provider']} refused the credentials of {row['name']}: "
                 f"{row['last_check_message'] or 'no message'}"),
        evidence={"provider": row["provider"], "lastCheckedAt": _iso(row["last_checked_at"]),
                  "message": row["last_check_message"]},
    ) for row in rows]


# --- the request budget exhausted for longer than N minutes --------------------------------------

BUDGET_EXHAUSTED = "budget_exhausted"


def find_budget_exhausted(db: Session, now: datetime, settings: Settings,
                          keyring: Keyring) -> list[Finding]:
    """A connection whose request budget is exhausted: its auto-synced links need more than
    the schedule's share of its budget (their plans are stretched, ``sync/schedule.py``), or
    the provider told racehub to wait (its bucket's hold-off, ``provider_rate_limits``).
    Fires once that has held for the tenant's ``minutes``."""
    rows = db.execute(text("""
        WITH stretched AS (
            SELECT l.connection_id, count(*) AS links,
                   max((l.schedule_plan ->> 'stretch')::float8) AS stretch,
                   (array_agg(l.schedule_plan ->> 'reason' ORDER BY l.id))[1] AS reason
              FROM event_links l
             WHERE l.auto_sync AND l.event_id IS NOT NULL
               AND (l.schedule_plan ->> 'stretched')::boolean
             GROUP BY l.connection_id)
        SELECT c.id, c.tenant_id, c.name, c.provider, st.links, st.stretch, st.reason,
               rl.blocked_until, cfg.value AS minutes
          FROM provider_connections c
          LEFT JOIN stretched st ON st.connection_id = c.id
          LEFT JOIN provider_rate_limits rl ON rl.key = c.id::text
          LEFT JOIN alert_settings s ON s.tenant_id = c.tenant_id
         CROSS JOIN LATERAL (
               SELECT COALESCE((s.rules #>> CAST(:enabled_path AS text[]))::boolean, true)
                          AS enabled,
                      COALESCE((s.rules #>> CAST(:value_path AS text[]))::float8,
                               CAST(:value_default AS float8)) AS value) cfg
         WHERE (st.links IS NOT NULL OR rl.blocked_until > :now)
           AND cfg.enabled
    """), {"now": now, **_binds(BUDGET_EXHAUSTED)}).mappings().all()
    found = []
    for row in rows:
        parts = []
        if row["links"]:
            parts.append(f"{row['links']} auto-synced link(s) need more than its request "
                         f"budget allows: their syncs are spaced out x{row['stretch']:.2f}")
        if row["blocked_until"] is not None and row["blocked_until"] > now:
            parts.append(f"{row['provider']} asked racehub to wait until "
                         f"{row['blocked_until']:%Y-%m-%d %H:%M:%S} UTC")
        found.append(Finding(
            rule=BUDGET_EXHAUSTED, tenant_id=row["tenant_id"], subject_type="connection",
            subject_id=str(row["id"]), subject_label=row["name"],
            subject_url=f"/connections/{row['id']}/sync",
            summary=f"The request budget of {row['name']} is exhausted: " + "; ".join(parts),
            evidence={"stretchedLinks": row["links"] or 0, "stretch": row["stretch"],
                      "planReason": row["reason"], "blockedUntil": _iso(row["blocked_until"]),
                      "minutes": row["minutes"]},
            hold=timedelta(minutes=row["minutes"]),
        ))
    return found


# --- results not pulled for a live event -------------------------------------------------------

RESULTS_STALE = "results_stale"


def find_results_stale(db: Session, now: datetime, settings: Settings,
                       keyring: Keyring) -> list[Finding]:
    """Timing links pulled automatically whose event is live (from its start until
    RACEHUB_TIMING_LIVE_HOURS after its last start, not finished or cancelled) and whose
    results were not pulled successfully within ``factor`` times the results cadence (the
    link's planned interval, else RACEHUB_SYNC_RESULTS_PULL_INTERVAL_MINUTES), counted from
    the last successful pull, else from the start."""
    rows = db.execute(text("""
        SELECT l.id, l.tenant_id, l.event_id, l.provider_event_ref, l.provider_event_name,
               c.name, e.name AS event_name, e.start_at, pulled.at AS pulled_at,
               COALESCE((l.schedule_plan ->> 'planned_interval_minutes')::float8,
                        :cadence) AS interval_minutes, cfg.value AS factor
          FROM event_links l
          JOIN provider_connections c ON c.id = l.connection_id AND c.direction = 'scoring'
          JOIN events e ON e.id = l.event_id AND e.status NOT IN ('finished', 'cancelled')
          LEFT JOIN alert_settings s ON s.tenant_id = l.tenant_id
         CROSS JOIN LATERAL (
               SELECT COALESCE((s.rules #>> CAST(:enabled_path AS text[]))::boolean, true)
                          AS enabled,
                      COALESCE((s.rules #>> CAST(:value_path AS text[]))::float8,
                               CAST(:value_default AS float8)) AS value) cfg
          LEFT JOIN LATERAL (SELECT max(cat.start_at) AS at FROM categories cat
                              WHERE cat.event_id = e.id) last_start ON true
          LEFT JOIN LATERAL (SELECT r.finished_at AS at FROM sync_runs r
                              WHERE r.link_id = l.id AND r.sync_type = 'results_pull'
                                AND r.status = 'succeeded'
                              ORDER BY r.finished_at DESC NULLS LAST LIMIT 1) pulled ON true
         WHERE l.auto_sync
           AND cfg.enabled
           AND e.start_at <= :now
           AND :now < GREATEST(e.start_at, last_start.at) + make_interval(secs => :live * 3600)
           AND GREATEST(e.start_at, pulled.at) < :now - make_interval(secs => cfg.value * 60
               * COALESCE((l.schedule_plan ->> 'planned_interval_minutes')::float8, :cadence))
    """), {"now": now, "cadence": settings.sync_results_pull_interval_minutes,
           "live": float(settings.timing_live_hours),
           **_binds(RESULTS_STALE)}).mappings().all()
    found = []
    for row in rows:
        name = row["provider_event_name"] or row["provider_event_ref"]
        pulled = row["pulled_at"]
        found.append(Finding(
            rule=RESULTS_STALE, tenant_id=row["tenant_id"], subject_type="link",
            subject_id=str(row["id"]), subject_label=f"{row['name']}: {name}",
            subject_url=f"/events/{row['event_id']}/sync",
            summary=(f"{row['event_name']} is live and its results from {row['name']} were "
                     + (f"last pulled {pulled:%Y-%m-%d %H:%M} UTC" if pulled
                        else "never pulled since it started")
                     + f": more than {row['factor']:g} x the results cadence of "
                     f"{_minutes(row['interval_minutes'])}"),
            evidence={"lastPulledAt": _iso(pulled), "eventStart": _iso(row["start_at"]),
                      "intervalMinutes": row["interval_minutes"], "factor": row["factor"],
                      "eventId": str(row["event_id"])},
        ))
    return found


# --- the newest credential key older than N days (platform) ------------------------------------

KEY_AGE = "key_age"


def record_keys(db: Session, keyring: Keyring, now: datetime) -> None:
    """Remember when each configured key id was first seen (keys carry no date)."""
    db.execute(text(
        "INSERT INTO credential_keys (key_id, first_seen_at) "
        "SELECT k, :now FROM unnest(CAST(:ids AS text[])) AS k "
        "ON CONFLICT (key_id) DO NOTHING"), {"ids": keyring.key_ids, "now": now})


def find_old_key(db: Session, now: datetime, settings: Settings,
                 keyring: Keyring) -> list[Finding]:
    record_keys(db, keyring, now)
    first_seen = db.scalar(text("SELECT first_seen_at FROM credential_keys WHERE key_id = :k"),
                           {"k": keyring.primary_id})
    max_age = timedelta(days=settings.alert_key_max_age_days)
    if first_seen is None or now - first_seen <= max_age:
        return []
    age_days = (now - first_seen).days
    return [Finding(
        rule=KEY_AGE, tenant_id=None, subject_type="credential_key",
        subject_id=keyring.primary_id, subject_label=f"key {keyring.primary_id}",
        summary=(f"The newest credential encryption key ({keyring.primary_id}) was first seen "
                 f"{age_days} days ago ({first_seen:%Y-%m-%d}), more than "
                 f"{settings.alert_key_max_age_days:g}: rotate it with `racehub keys rotate`"),
        evidence={"keyId": keyring.primary_id, "firstSeenAt": _iso(first_seen),
                  "ageDays": age_days, "maxAgeDays": settings.alert_key_max_age_days,
                  "development": keyring.development},
    )]


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule(SYNC_FAILURES, "Sync failures",
         "More sync runs of a connection failed in the last hour than the threshold "
         "(runs failed for good, and runs waiting for a retry).", find_sync_failures,
         (Param("threshold", "Failures in an hour", 3, 1, 1000, "runs"),)),
    Rule(STALE_LINK, "Stale link",
         "An auto-synced registration link had no successful sync within this many times "
         "its cadence.", find_stale_links,
         (Param("factor", "Times the cadence", 2, 1, 100, "x"),)),
    Rule(PERMANENT_FAILURE, "Permanent failure",
         "The last run of a link failed for good (retries exhausted, or an error no retry "
         "fixes); resolved when a later run succeeds.", find_permanent_failures),
    Rule(CREDENTIALS_REFUSED, "Credentials refused",
         "A provider refused a connection's credentials at its last check.",
         find_credentials_refused),
    Rule(BUDGET_EXHAUSTED, "Request budget exhausted",
         "A connection's request budget has been exhausted (syncs spaced out beyond their "
         "cadence, or the provider asking racehub to wait) for longer than this.",
         find_budget_exhausted,
         (Param("minutes", "For longer than", 30, 0, 10_080, "min"),)),
    Rule(RESULTS_STALE, "Results not pulled",
         "A live event's results were not pulled within this many times the results "
         "cadence.", find_results_stale,
         (Param("factor", "Times the cadence", 2, 1, 100, "x"),)),
    Rule(KEY_AGE, "Old encryption key",
         "The newest credential encryption key is older than RACEHUB_ALERT_KEY_MAX_AGE_DAYS "
         "(platform admins).", find_old_key, platform=True),
)}

TENANT_RULES = [rule for rule in RULES.values() if not rule.platform]
