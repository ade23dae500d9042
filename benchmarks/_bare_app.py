"""The baselines of ``api_load.py``: bare routes doing the same database work as
``GET /api/me`` and a participants page, through the same pool, with none of racehub's
middleware, authentication, permissions or serialization.

Served by uvicorn with the same settings as ``racehub serve``:
``uvicorn --factory _bare_app:create_app`` with RACEHUB_DATABASE_URL set.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from fastapi import FastAPI, Header
from sqlalchemy import text

from racehub.core.security import token_digest
from racehub.db.session import get_engine


def create_app() -> FastAPI:
    engine = get_engine(os.environ["RACEHUB_DATABASE_URL"])  # racehub's pool settings
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/bare/me")
    def me(authorization: str = Header()) -> dict[str, Any]:
        # One token lookup by its digest: the least /api/me can do.
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT id, tenant_id, role FROM api_tokens WHERE token_hash = :h"
            ), {"h": token_digest(authorization.removeprefix("Bearer "))}).one()
        return {"id": str(row.id), "tenantId": str(row.tenant_id), "role": row.role}

    @app.get("/bare/events/{event_id}/participants")
    def page(event_id: uuid.UUID, tenant: uuid.UUID) -> dict[str, Any]:
        # One keyset query of 50 rows in the list's default order (last name), on the
        # index the real list walks.
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT ep.id, ep.bib, p.first_name, p.last_name FROM event_participants ep "
                "JOIN persons p ON p.id = ep.person_id "
                "WHERE ep.event_id = :e AND ep.tenant_id = :t AND p.tenant_id = :t "
                "ORDER BY racehub_fold(p.last_name), racehub_fold(p.first_name), p.id, ep.id "
                "LIMIT 51"
            ), {"e": event_id, "t": tenant}).all()
        return {"items": [{"id": str(r.id), "bib": r.bib, "firstName": r.first_name,
                           "lastName": r.last_name} for r in rows[:50]]}

    return app
