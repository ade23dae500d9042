"""The Monitoring page: the sync summary per connection, runs per hour by outcome over the
last 48 h (inline SVG), and a page per connection. Thin: service.py holds the queries;
the permissions are the API's (``sync:run:read``, see api.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.monitoring import chart, service
from racehub.web.pages import render

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]


@router.get("/monitoring")
def monitoring_page(request: Request, db: DB, ctx: ReadRuns) -> Response:
    """``?scope=all``: a platform admin also sees every tenant's row (audit-logged)."""
    all_tenants = request.query_params.get("scope") == "all" and ctx.is_platform_admin
    summary = service.sync_summary(db, ctx, all_tenants=all_tenants)
    if all_tenants:
        db.commit()  # the audit entry of a cross-tenant read
    return render(request, db, ctx, "monitoring/index.html", summary=summary,
                  chart=chart.layout(service.runs_per_hour(db, ctx)),
                  legend=chart.LABELS, can_see_tenants=ctx.is_platform_admin)


@router.get("/monitoring/connections/{connection_id}")
def connection_page(connection_id: uuid.UUID, request: Request, db: DB,
                    ctx: ReadRuns) -> Response:
    """One connection: its figures, its linked provider events with their last 24 h, and
    its runs per hour; its run history is on its Sync tab."""
    summary = service.connection_summary(db, ctx, connection_id=connection_id)
    return render(request, db, ctx, "monitoring/connection.html", row=summary,
                  links=service.connection_links(db, ctx, connection_id=connection_id),
                  chart=chart.layout(service.runs_per_hour(db, ctx,
                                                           connection_id=connection_id)),
                  legend=chart.LABELS)
