"""FastAPI app factory: middleware, error handlers, and every domain's routers."""

from __future__ import annotations

import gc
import json

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import configure_mappers

from racehub.core.crypto import keyring_from_settings
from racehub.core.csrf import csrf_protect
from racehub.core.deps import SessionFactory, refuse_hostile_input
from racehub.core.errors import install_error_handlers
from racehub.core.logging import configure_logging
from racehub.db.session import get_engine, make_sessionmaker
from racehub.settings import Settings, get_settings
from racehub.web.gate import RequestGate
from racehub.web.middleware import RequestContextMiddleware
from racehub.web.templating import STATIC_DIR

API_DESCRIPTION = """
racehub keeps one normalized copy of events, participants, bibs, tags and results per
tenant between registration platforms and timing systems.

**Authentication**: `Authorization: Bearer <token>` (create tokens on the API tokens page
or with `racehub token create`). Each token is bound to one tenant and one role.

**Errors** are `application/problem+json`; `errors[].field` names the field at fault.

**Lists** are keyset-paged: pass the `next_cursor` of a page as `cursor` to get the next.
"""


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: SessionFactory | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if session_factory is None:
        from racehub.db.bootstrap import database_url

        session_factory = make_sessionmaker(get_engine(database_url(settings)))

    app = FastAPI(
        title="racehub",
        version="0.1.0",
        description=API_DESCRIPTION,
        dependencies=[Depends(csrf_protect), Depends(refuse_hostile_input)],
        docs_url=None,  # Swagger UI needs a CDN and inline script; the JSON is enough
        redoc_url=None,
        openapi_url=None,  # served below, encoded once
    )
    app.state.settings = settings
    app.state.sessionmaker = session_factory
    # Refuses to start in production without RACEHUB_SECRET_KEYS (see core/crypto.py).
    app.state.keyring = keyring_from_settings(settings)
    install_error_handlers(app)
    # Inside the request middleware (added last, so outermost): its refusals and 413s get
    # the request id, the security headers and the log line like every other response.
    app.add_middleware(RequestGate, settings=settings, session_factory=session_factory)
    app.add_middleware(
        RequestContextMiddleware,
        secure_cookies=settings.secure_cookies,
        session_seconds=settings.session_hours * 3600,
    )
    if settings.metrics_token is not None:
        # Imported only when on: prometheus_client reads PROMETHEUS_MULTIPROC_DIR at import.
        from racehub.ops.metrics import MetricsMiddleware

        app.add_middleware(MetricsMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    from racehub.alerts import api as alerts_api
    from racehub.alerts import pages as alerts_pages
    from racehub.core import api as core_api
    from racehub.core import pages as core_pages
    from racehub.events import api as events_api
    from racehub.events import pages as events_pages
    from racehub.exports import api as exports_api
    from racehub.exports import pages as exports_pages
    from racehub.imports import api as imports_api
    from racehub.imports import pages as imports_pages
    from racehub.inventory import api as inventory_api
    from racehub.inventory import pages as inventory_pages
    from racehub.jobs import api as jobs_api
    from racehub.jobs import pages as jobs_pages
    from racehub.monitoring import api as monitoring_api
    from racehub.monitoring import pages as monitoring_pages
    from racehub.ops import api as ops_api
    from racehub.sync import api as sync_api
    from racehub.sync import discovery_api as sync_discovery_api
    from racehub.sync import links_api as sync_links_api
    from racehub.sync import links_pages as sync_links_pages
    from racehub.sync import pages as sync_pages
    from racehub.sync import publications_api as sync_publications_api
    from racehub.sync import publications_pages as sync_publications_pages
    from racehub.sync import push_api as sync_push_api
    from racehub.sync import push_pages as sync_push_pages
    from racehub.sync import records_api as sync_records_api
    from racehub.sync import runs_api as sync_runs_api
    from racehub.sync import runs_pages as sync_runs_pages
    from racehub.timing import api as timing_api
    from racehub.timing import pages as timing_pages
    from racehub.timing import results_api as timing_results_api

    # monitoring_api before events_api: its /api/events/unified precedes /api/events/{id}.
    for module in (core_api, monitoring_api, events_api, imports_api, inventory_api, jobs_api,
                   timing_api,
                   core_pages, events_pages, imports_pages, inventory_pages, jobs_pages,
                   exports_api, exports_pages, sync_api, sync_links_api, sync_records_api,
                   sync_runs_api, sync_discovery_api, sync_pages, sync_links_pages,
                   sync_runs_pages, sync_push_api, sync_push_pages, sync_publications_api,
                   sync_publications_pages, timing_results_api, timing_pages, monitoring_pages,
                   ops_api, alerts_api, alerts_pages):
        app.include_router(module.router)
    _serve_openapi_once(app, OPENAPI_URL)
    return app


def create_served_app() -> FastAPI:
    """The app as ``racehub serve`` runs it (uvicorn calls this in each web process): the
    app, with everything built at start-up moved out of the garbage collector's sight.

    A process serving requests holds ~200k objects from its imports and the app (routes,
    models, schemas, SQLAlchemy's mappers). Python's full collection walks all of them each
    time it runs (every few seconds under polling): ~100 ms of CPU each, during which the
    loop answers nothing, so the requests arriving meanwhile waited that long (the p99 of
    20 clients polling). Frozen, they are never walked again; what requests allocate is
    collected as before. These objects live as long as the process, so nothing is leaked.
    """
    app = create_app()
    configure_mappers()  # else the first query builds the ORM's mappers: 17k objects more
    gc.collect()  # the start-up's garbage goes now, not into the frozen generation
    gc.freeze()
    return app


OPENAPI_URL = "/api/openapi.json"


def _serve_openapi_once(app: FastAPI, url: str) -> None:
    """FastAPI keeps the schema as a dict and encodes it to JSON on every request (about
    5 ms for ours); the document never changes while the process runs, so its bytes are
    made on first use and reused."""
    encoded: list[bytes] = []

    async def openapi_document(request: Request) -> Response:  # no I/O: stays on the loop
        if not encoded:
            encoded.append(json.dumps(app.openapi(), separators=(",", ":")).encode())
        return Response(encoded[0], media_type="application/json")

    app.add_route(url, openapi_document, include_in_schema=False)
