"""The lists of runs (``/jobs``, ``/imports``): their filters read from the query string,
the choices of their filter form, and their keyset pager's links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.events import service as events_service
from racehub.jobs.models import JobStatus
from racehub.web.pages import query_enum, query_uuid

PAGE_SIZE = 50
EVENT_CHOICES = 100


@dataclass(frozen=True)
class ListQuery:
    """A list of runs' filters as the page's query string has them (``kind`` named by the
    page: ``kind`` for jobs, ``type`` for imports), checked."""

    kind: str | None
    status: JobStatus | None
    event_id: uuid.UUID | None
    who: str | None
    cursor: str | None
    raw: dict[str, str]

    def url(self, path: str, **more: str) -> str:
        params = {**{k: v for k, v in self.raw.items() if v}, **more}
        return path + ("?" + urlencode(params) if params else "")


def list_query(request: Request, db: Session, ctx: TenantContext, *,
               kind_name: str) -> ListQuery:
    params = request.query_params
    raw = {name: (params.get(name) or "").strip()
           for name in (kind_name, "state", "event", "who")}
    event_id = query_uuid(raw["event"], "event")
    if event_id is not None:  # another tenant's event is not found (404), like its page
        events_service.get_event_or_raise(db, ctx, event_id=event_id)
    return ListQuery(kind=raw[kind_name] or None,
                     status=query_enum(raw["state"], JobStatus, "state"),
                     event_id=event_id, who=raw["who"] or None,
                     cursor=params.get("cursor") or None, raw=raw)


def filter_choices(db: Session, ctx: TenantContext, query: ListQuery) -> dict[str, Any]:
    """The choices of the filter form: states, the latest events (and the chosen one),
    the members as "who" suggestions."""
    events, _ = events_service.list_events(db, ctx, limit=EVENT_CHOICES)
    if query.event_id is not None and all(e.id != query.event_id for e in events):
        events.append(events_service.get_event_or_raise(db, ctx, event_id=query.event_id))
    actors = [m.user.email for m in core_service.list_members(db, ctx)]
    return {"states": list(JobStatus), "events": events, "actors": actors,
            "filters": query.raw}


def paged(query: ListQuery, path: str,
           next_cursor: str | None) -> dict[str, str | None]:
    return {"next_url": query.url(path, cursor=next_cursor) if next_cursor else None,
            "first_url": query.url(path) if query.cursor else None}


