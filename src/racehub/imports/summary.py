"""What an import's summary page (T07 and its twins) shows, for any import type.

Each bucket with its first rows, or, when the page asks for one bucket (its "more" link),
that bucket's next page. A page helper: it reads the request's query, never renders.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.imports import service
from racehub.web.templating import is_htmx

BUCKET_PAGE_SIZE = 20


def summary_context(request: Request, db: Session, ctx: TenantContext, *,
                    import_id: uuid.UUID, import_type: str) -> tuple[dict[str, Any], bool]:
    """The template context of ``import_type``'s summary page, and whether the request is
    for one bucket's next rows only (htmx), which the page renders as that bucket's partial.

    An import of another type is not found here: each summary page shows its own kind.
    """
    imp = service.get_import_or_raise(db, ctx, import_id=import_id)
    if imp.import_type != import_type:
        raise service.ImportNotFound()
    buckets = service.get_import_type(import_type).buckets
    only = request.query_params.get("bucket")
    if only and only not in {b.key for b in buckets}:
        raise Invalid(f"bucket: no bucket {only!r} in this summary; it has "
                      f"{', '.join(b.key for b in buckets)}", field="bucket")
    sections = []
    for bucket in buckets:
        if only and bucket.key != only:
            continue
        cursor = request.query_params.get("cursor") if only else None
        rows, next_cursor = service.list_row_results(
            db, ctx, import_id=imp.id, bucket=bucket.key, cursor=cursor,
            limit=BUCKET_PAGE_SIZE)
        more = None
        if next_cursor:
            more = f"{request.url.path}?" + urlencode({"bucket": bucket.key,
                                                       "cursor": next_cursor})
        sections.append({"bucket": bucket, "rows": rows, "more": more})
    context = {
        "imp": imp, "run": imp.job_run, "sections": sections,
        "columns": service.columns_of(imp),
        "counts": {key: count for key, _, count in service.bucket_counts(imp)},
        "not_processed": max(0, (imp.rows_total or 0) - imp.job_run.done),
    }
    return context, bool(only and is_htmx(request))
