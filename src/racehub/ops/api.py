"""Probes and metrics for load balancers, orchestrators and Prometheus.

Unauthenticated and cheap: no session, no tenant, no template. ``/metrics`` is off unless
``RACEHUB_METRICS_TOKEN`` is set, and then answers only that bearer token.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from racehub.core.deps import DB
from racehub.ops import health

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, migrations, a worker",
            responses={503: {"description": "A check failed; the body says which."}})
def readyz(request: Request, db: DB) -> JSONResponse:
    settings = request.app.state.settings
    checks = health.readiness(db, worker_within_seconds=settings.ready_worker_seconds)
    ready = all(check.ok for check in checks)
    return JSONResponse(
        {"status": "ready" if ready else "not ready",
         "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}},
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )


@router.get("/metrics", summary="Prometheus metrics (needs RACEHUB_METRICS_TOKEN)",
            response_class=Response,
            responses={401: {"description": "Missing or wrong bearer token."},
                       404: {"description": "Metrics are off (no RACEHUB_METRICS_TOKEN)."}})
def metrics(
    request: Request,
    db: DB,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    token = request.app.state.settings.metrics_token
    if token is None:
        return Response(status_code=404)
    expected = f"Bearer {token.get_secret_value()}".encode()
    # Constant time: the comparison must not tell how much of a guess was right.
    if not hmac.compare_digest((authorization or "").encode(), expected):
        return Response(status_code=401, headers={"www-authenticate": "Bearer"})

    from racehub.ops import metrics as prom  # imported only when metrics are on

    # Job runs of every tenant: an operator's view of the service, not a tenant's data.
    counts = db.execute(text(
        "SELECT kind, status::text, count(*) FROM job_runs GROUP BY kind, status ORDER BY 1, 2"
    ))
    body = prom.exposition([prom.jobs_family((k, s, int(n)) for k, s, n in counts)])
    return Response(body, media_type=prom.CONTENT_TYPE_LATEST,
                    headers={"cache-control": "no-store"})
