"""Async exports of list views: create, read, download, cancel, retry, run and expire.

``create_export`` captures the list as the operator saw it (view, filters, sort, chosen
columns, format) with a creation-time cutoff, and queues the job in the same transaction.
``run_export`` is the job body:

1. Counting: the rows of the snapshot (created at or before the cutoff);
2. Exporting: keyset pages of ``export_batch_size`` rows streamed into a local file (CSV
   UTF-8 with BOM and neutralized formulas, or XLSX in constant-memory mode), progress
   committed and pause/cancel honoured after each page;
3. Uploading: the file goes to the storage (local folder or S3), all or nothing.

Rows written while it runs are left out by the cutoff, and keyset pages never repeat or
skip a row the way OFFSET pages would when rows come and go. A run retried after its
worker died starts the file over with the same cutoff, so it writes the same rows.

One edge, by design: a row's ``created_at`` is its transaction's start (Postgres
``now()``), so a row written by a transaction that began before the cutoff and commits
after it is in the file only if it commits before the export's pages pass its place.
Reading every page in one snapshot would close that gap but hold one transaction open
for the whole export; an import that is still running when an export is asked for is
the case it covers, and its rows are exported by the next export.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import structlog
from sqlalchemy import (
    JSON,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy import Enum as Enum_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, joinedload

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, Forbidden, Invalid
from racehub.core.query import scoped
from racehub.core.spreadsheet import neutralize, neutralized
from racehub.events import service as events_service
from racehub.exports.exceptions import (
    ExportExpired,
    ExportNotFound,
    ExportNotReady,
    ExportStorageUnavailable,
    ExportTooLarge,
)
from racehub.exports.models import Export
from racehub.exports.schemas import ExportCreate
from racehub.exports.storage import StorageError, get_storage
from racehub.exports.views import ExportColumn, ExportView, ViewQuery, get_view
from racehub.jobs import service as jobs_service
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobRun, JobStatus
from racehub.settings import Settings

log = structlog.get_logger(__name__)

EXPORT_KIND = "exports.run"
FORMATS = ("csv", "xlsx")
STAGES = ("Queued", "Counting", "Exporting", "Uploading", "Completed")
XLSX_MAX_ROWS = 1_048_575  # a sheet's rows, less the header
PROGRESS_SECONDS = 0.5
ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
LIST_LIMIT = 50


def _now() -> datetime:
    return datetime.now(UTC)


# --- reading ---------------------------------------------------------------------------------


def require_view(ctx: TenantContext, view: ExportView) -> None:
    if not ctx.can(view.permission):
        raise Forbidden(f"exporting {view.label.lower()} needs the "
                        f"'{view.permission.value}' permission")


def get_export_or_raise(db: Session, ctx: TenantContext, *, export_id: uuid.UUID) -> Export:
    """The tenant's export; reading it needs the permission of its view."""
    exp = db.scalar(scoped(ctx, Export).where(Export.id == export_id)
                    .options(joinedload(Export.job_run)))
    if exp is None:
        raise ExportNotFound()
    require_view(ctx, get_view(exp.view_key))
    return exp


def list_my_exports(db: Session, ctx: TenantContext, *, limit: int = LIST_LIMIT,
                    active_only: bool = False) -> list[Export]:
    """The caller's own exports (their user, or their API token), newest first."""
    stmt = scoped(ctx, Export).options(joinedload(Export.job_run))
    if ctx.user_id is not None:
        stmt = stmt.where(Export.requested_by_user_id == ctx.user_id)
    elif ctx.token_id is not None:
        stmt = stmt.where(Export.requested_by_token_id == ctx.token_id)
    else:
        stmt = stmt.where(Export.requested_by_user_id.is_(None),
                          Export.requested_by_token_id.is_(None))
    if active_only:
        stmt = stmt.join(JobRun, JobRun.id == Export.job_run_id).where(
            JobRun.status.in_([JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED]))
    rows = db.scalars(stmt.order_by(Export.created_at.desc(), Export.id.desc()).limit(limit))
    return list(rows)


def is_expired(exp: Export, now: datetime | None = None) -> bool:
    if exp.expired_at is not None:
        return True
    return exp.expires_at is not None and exp.expires_at <= (now or _now())


def state_of(exp: Export) -> str:
    """queued, running, paused, completed, failed, cancelled, or expired."""
    if is_expired(exp):
        return "expired"
    return exp.job_run.status.value


def stage_of(exp: Export) -> str:
    """Queued, Counting, Exporting, Uploading, Completed, Failed (or Cancelled, Expired)."""
    run = exp.job_run
    if is_expired(exp):
        return "Expired"
    if run.status == JobStatus.COMPLETED:
        return "Completed"
    if run.status == JobStatus.FAILED:
        return "Failed"
    if run.status == JobStatus.CANCELLED:
        return "Cancelled"
    if run.status == JobStatus.PAUSED:
        return "Paused"
    return run.stage if run.stage in STAGES else "Queued"


@dataclass(frozen=True)
class StageView:
    name: str
    state: str  # done, active, pending, failed, cancelled


def stages_of(exp: Export) -> list[StageView]:
    current = stage_of(exp)
    run = exp.job_run
    if current in ("Completed", "Expired"):
        return [StageView(name, "done") for name in STAGES]
    if current in STAGES:
        reached = STAGES.index(current)
    elif run.started_at is None:
        reached = 0  # stopped before a worker took it
    elif run.total is None:
        reached = STAGES.index("Counting")
    elif run.done < run.total:
        reached = STAGES.index("Exporting")
    else:
        reached = STAGES.index("Uploading")  # every row written: the storage refused it
    views = []
    for index, name in enumerate(STAGES):
        state = "done" if index < reached else "active" if index == reached else "pending"
        if index == reached and current in ("Failed", "Cancelled"):
            state = current.lower()
        views.append(StageView(name, state))
    return views


def download_url(exp: Export) -> str | None:
    if exp.job_run.status == JobStatus.COMPLETED and not is_expired(exp):
        return f"/api/exports/{exp.id}/download"
    return None


def list_url(exp: Export) -> str:
    view = get_view(exp.view_key)
    return view.list_url(view.parse_filters(exp.filters), exp.sort or view.sorts[0],
                         exp.descending)


def column_labels(exp: Export) -> list[str]:
    view = get_view(exp.view_key)
    return [view.column(k).label for k in exp.columns]


# --- creating --------------------------------------------------------------------------------


def create_export(db: Session, ctx: TenantContext, *, settings: Settings, data: ExportCreate,
                  retry_of: Export | None = None) -> Export:
    """Capture the list and queue its export (the job commits with the row, or neither)."""
    view = get_view(data.view)
    require_view(ctx, view)
    if data.file_format not in FORMATS:
        raise Invalid(f"format must be one of: {', '.join(FORMATS)}", field="format")
    flt = view.parse_filters(data.filters)
    event_id = getattr(flt, "event_id", None)
    if event_id is not None:
        # An export of an event's list holds the event against deletion until it is
        # queued (events.service.delete_event then sees it running).
        events_service.get_event_or_raise(db, ctx, event_id=event_id, for_writing=True)
    sort = view.choose_sort(data.sort)
    descending = view.default_descending if data.descending is None else data.descending
    columns = view.choose_columns(data.columns)
    title = view.describe(db, ctx, flt)[:300]
    export_id = uuid.uuid4()
    # The snapshot's cutoff: the clock now, not this transaction's start.
    cutoff = _now()
    filename = f"{view.key.replace('_', '-')}-{cutoff:%Y%m%d-%H%M%S}.{data.file_format}"
    filters = flt.model_dump(mode="json", by_alias=True, exclude_none=True)
    run = jobs_service.start_job(db, ctx, kind=EXPORT_KIND,
                                 params={"export_id": str(export_id)},
                                 message=f"Export of {title}", subject_id=export_id)
    exp = Export(
        id=export_id, tenant_id=ctx.tenant_id, view_key=view.key, title=title,
        filters=filters, sort=sort, descending=descending, columns=columns,
        file_format=data.file_format, cutoff_at=cutoff, requested_by_user_id=ctx.user_id,
        requested_by_token_id=ctx.token_id, retry_of_id=retry_of.id if retry_of else None,
        job_run_id=run.id, job_run=run, storage_backend=settings.export_storage,
        storage_key=f"{ctx.tenant_id}/{export_id}/{filename}", filename=filename,
        created_at=cutoff,
    )
    db.add(exp)
    db.flush()  # the audit entry and the caller need the row
    audit.record(db, ctx, action="export.create", target_type="export", target_id=export_id,
                 after={"view": view.key, "filters": filters, "sort": sort,
                        "descending": descending, "columns": columns,
                        "format": data.file_format, "cutoff_at": cutoff.isoformat(),
                        "retry_of": str(retry_of.id) if retry_of else None})
    return exp


def retry_export(db: Session, ctx: TenantContext, *, settings: Settings,
                 export_id: uuid.UUID) -> Export:
    """A new export of the same list (fresh cutoff) for one that failed, was cancelled or
    expired."""
    old = get_export_or_raise(db, ctx, export_id=export_id)
    if not (old.job_run.status in (JobStatus.FAILED, JobStatus.CANCELLED) or is_expired(old)):
        raise Conflict(f"only a failed, cancelled or expired export can be retried; this one "
                       f"is {state_of(old)}")
    data = ExportCreate(view=old.view_key, filters=old.filters, sort=old.sort,
                        descending=old.descending, columns=old.columns,
                        file_format=old.file_format)
    return create_export(db, ctx, settings=settings, data=data, retry_of=old)


def cancel_export(db: Session, ctx: TenantContext, *, export_id: uuid.UUID) -> Export:
    exp = get_export_or_raise(db, ctx, export_id=export_id)
    jobs_service.cancel_job(db, ctx, job_id=exp.job_run_id)
    return exp


# --- downloading -----------------------------------------------------------------------------


def open_download(db: Session, ctx: TenantContext, *, settings: Settings,
                  export_id: uuid.UUID) -> tuple[Export, Iterator[bytes]]:
    """The export and its file's bytes; refuses clearly when it expired or is not ready."""
    exp = get_export_or_raise(db, ctx, export_id=export_id)
    if is_expired(exp):
        when = exp.expired_at or exp.expires_at
        assert when is not None
        raise ExportExpired(
            f"This export expired on {when:%Y-%m-%d %H:%M} UTC and its file was deleted: "
            f"files are kept {settings.export_expiry_hours:g} hours. Start the export again "
            "(retry) to get a fresh file.")
    run = exp.job_run
    if run.status != JobStatus.COMPLETED or exp.storage_key is None:
        raise ExportNotReady(f"the export has no file yet: it is {run.status.value} "
                             f"({stage_of(exp)}, {run.percent:.0f}%)"
                             + (f": {run.message}" if run.status == JobStatus.FAILED else ""))
    storage = get_storage(settings, exp.storage_backend)
    try:
        chunks = storage.read(exp.storage_key)
        first = next(chunks, b"")  # an unreachable storage fails here, before the 200
    except (StorageError, OSError) as exc:
        raise ExportStorageUnavailable(f"the export file cannot be read now: {exc}") from exc
    audit.record(db, ctx, action="export.download", target_type="export", target_id=exp.id,
                 after={"view": exp.view_key, "rows": exp.row_count})

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return exp, body()


def media_type(exp: Export) -> str:
    if exp.file_format == "xlsx":
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return "text/csv; charset=utf-8"


# --- the job ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def _kind(expr: Any) -> str:
    """What a column holds, for its CSV text: json, bool, number (ids too), datetime,
    date, enum (our own value words) or text."""
    sql_type = expr.type
    if isinstance(sql_type, JSON):
        return "json"
    if isinstance(sql_type, Enum_):
        return "enum"
    try:
        python_type = sql_type.python_type
    except NotImplementedError:
        return "text"
    if python_type is bool:
        return "bool"
    if python_type in (int, float, Decimal, uuid.UUID):
        return "number"
    if python_type is datetime:
        return "datetime"
    if python_type is date:
        return "date"
    return "text"


def csv_text(expr: Any) -> Any:
    """A column as the CSV's text, computed in the SELECT (so a ``COPY`` of the same query
    does the same work): text that a spreadsheet would run as a formula gets a leading ',
    numbers stay numbers (a '-' there is no formula), times are ISO 8601 in UTC, JSON is
    Postgres' own text of it. NULL stays NULL: the csv module writes it as empty."""
    kind = _kind(expr)
    if kind in ("json", "number"):
        return cast(expr, Text)
    if kind == "bool":
        return case((expr.is_(True), literal_column("'true'")),
                    (expr.is_(False), literal_column("'false'")))
    if kind == "datetime":
        return func.to_char(func.timezone("UTC", expr), ISO_UTC)
    if kind == "date":
        return func.to_char(expr, "YYYY-MM-DD")
    return neutralized(cast(expr, Text))


class _Writer(Protocol):
    def write(self, rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self) -> None: ...


def _sql_text(sql: str) -> Any:
    # A constant written into the statement (not a parameter: the text stays the same for
    # every page, so psycopg prepares it once), typed so that + renders as ||.
    return literal_column(sql, Text)


def _csv_field(text: Any, *, alone: bool, may_need_quotes: bool = True) -> Any:
    """One field as Python's csv module writes it (QUOTE_MINIMAL): quoted when it holds a
    comma, a quote or a line break, its quotes doubled; NULL empty (``""`` when it is the
    row's only field, so the row is not a blank line). Numbers, ids, dates, times, booleans
    and enum values never hold those characters: ``may_need_quotes=False`` skips the test,
    the costliest part of a row."""
    plain = (func.coalesce(func.nullif(text, _sql_text("''")), _sql_text("'\"\"'"))
             if alone else func.coalesce(text, _sql_text("''")))
    if not may_need_quotes:
        return plain
    quote = _sql_text("'\"'")
    quoted = quote + func.replace(text, quote, _sql_text("'\"\"'"), type_=Text) + quote
    # ``~`` (a boolean) rather than regexp_match (which builds an array for every cell).
    return case((text.op("~")(_sql_text("E'[\",\\r\\n]'")), quoted), else_=plain)


def _may_hold_csv_specials(expr: Any) -> bool:
    """Whether the column's text can hold a comma, a quote or a line break."""
    return _kind(expr) in ("json", "text")


def csv_line(columns: Sequence[ExportColumn]) -> Any:
    """A whole CSV row (CRLF-terminated) built in the SELECT: Python then writes each page
    as one string instead of handling every cell (the export's hottest loop)."""
    fields = [_csv_field(csv_text(c.expr), alone=len(columns) == 1,
                         may_need_quotes=_may_hold_csv_specials(c.expr)) for c in columns]
    line = fields[0]
    for field in fields[1:]:
        line = line + _sql_text("','") + field
    return line + _sql_text("E'\\r\\n'")


class CsvWriter:
    """UTF-8 with a BOM (Excel reads it as UTF-8), RFC 4180 quoting, CRLF rows."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self._file = path.open("w", encoding="utf-8-sig", newline="")
        csv.writer(self._file).writerow([neutralize(h) for h in header])

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        # Each row is one column: its CSV line, quoted and neutralized (csv_line).
        self._file.write("".join([row[0] for row in rows]))

    def close(self) -> None:
        self._file.close()


class XlsxWriter:
    """xlsxwriter in constant-memory mode: each row is flushed to disk once written, so
    memory stays flat. Text is written as text, never as a formula."""

    def __init__(self, path: Path, header: list[str]) -> None:
        import xlsxwriter

        self._book = xlsxwriter.Workbook(str(path), {
            "constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
            "strings_to_numbers": False})
        self._sheet = self._book.add_worksheet("Export")
        self._sheet.write_row(0, 0, header, self._book.add_format({"bold": True}))
        self._row = 1

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            for col, value in enumerate(row):
                if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                    self._sheet.write_number(self._row, col, float(value))
                elif value is not None:
                    self._sheet.write_string(self._row, col, _text(value))
            self._row += 1

    def close(self) -> None:
        self._book.close()


def open_writer(file_format: str, path: Path, header: list[str]) -> _Writer:
    return XlsxWriter(path, header) if file_format == "xlsx" else CsvWriter(path, header)


def select_columns(columns: Sequence[ExportColumn], *, as_text: bool) -> list[Any]:
    """The cells as CSV text (csv_text) or as values (XLSX)."""
    return [(csv_text(c.expr) if as_text else c.expr).label(f"c{i}")
            for i, c in enumerate(columns)]


def select_rows(vq: ViewQuery, columns: Sequence[ExportColumn], *, as_csv: bool) -> Any:
    """The row (one CSV line, or the chosen columns' values) followed by the keyset
    columns (labelled: the same expression may be both)."""
    keys = list(vq.key.columns)
    cells = [csv_line(columns).label("line")] if as_csv else select_columns(
        columns, as_text=False)
    return vq.stmt.with_only_columns(*cells,
                                     *[k.label(f"k{i}") for i, k in enumerate(keys)])


class Page(NamedTuple):
    rows: list[Sequence[Any]]  # for the writer: the rows' values, or one string of CSV lines
    count: int  # table rows in the page


def batches(db: Session, vq: ViewQuery, columns: Sequence[ExportColumn], size: int, *,
            as_csv: bool) -> Iterator[Page]:
    """Keyset pages of ``size`` rows in the view's order: each starts strictly after the
    last row of the previous one, so none is read twice or skipped.

    CSV pages arrive as one value: the server joins the page's CSV lines (``csv_line``)
    with ``string_agg`` and sends that text, the row count and the last row's keys, so
    Python handles a page, never a row. XLSX pages are the columns' values, row by row.

    One statement for every page after the first, the last row's keys bound as
    parameters: compiled once, and prepared by psycopg after a few pages.
    """
    keys = list(vq.key.columns)
    bounds = [bindparam(f"_after{i}", type_=k.type) for i, k in enumerate(keys)]
    order = [k.desc() if vq.key.descending else k.asc() for k in keys]
    stmt = select_rows(vq, columns, as_csv=as_csv)
    row, bound = tuple_(*keys), tuple_(*bounds)
    after = stmt.where(row < bound if vq.key.descending else row > bound)
    if len(keys) > 2:
        # As core.pagination: a bound on the leading columns lets their index seek.
        lead, lead_bound = tuple_(*keys[:-1]), tuple_(*bounds[:-1])
        after = after.where(lead <= lead_bound if vq.key.descending else lead >= lead_bound)
    first_page = stmt.order_by(*order).limit(size)
    next_page = after.order_by(*order).limit(size)
    if as_csv:
        first_page, next_page = _joined(first_page, vq), _joined(next_page, vq)
    width = 1 if as_csv else len(columns)
    # On the session's connection (a commit between pages gives it back to the pool), as
    # Core rows: no ORM work per row.
    rows = db.connection().execute(first_page).all()
    while rows:
        if as_csv:
            (text_, count, *last) = rows[0]
            yield Page([(text_,)], count)
        else:
            count, last = len(rows), list(rows[-1][width:])
            yield Page([r[:width] for r in rows], count)
        if count < size:
            return
        rows = db.connection().execute(
            next_page, {f"_after{i}": value for i, value in enumerate(last)}).all()


def _joined(page_stmt: Any, vq: ViewQuery) -> Any:
    """One row for a page of CSV lines: their text joined in order, how many, and the last
    one's keys (no row at all when the page is empty)."""
    page = page_stmt.cte("page")
    key_cols = [page.c[f"k{i}"] for i in range(len(vq.key.columns))]
    forward = [c.desc() if vq.key.descending else c.asc() for c in key_cols]
    backward = [c.asc() if vq.key.descending else c.desc() for c in key_cols]
    text_ = select(func.string_agg(page.c.line, aggregate_order_by(_sql_text("''"), *forward))
                   ).scalar_subquery()
    count = select(func.count()).select_from(page).scalar_subquery()
    last = select(*key_cols).order_by(*backward).limit(1).subquery("last")
    return select(text_, count, *last.c)


def count_rows(db: Session, vq: ViewQuery) -> int:
    return db.scalar(select(func.count()).select_from(
        vq.stmt.with_only_columns(vq.key.columns[-1]).order_by(None).subquery())) or 0


def temp_path(settings: Settings, exp: Export) -> Path:
    """Where the worker writes the file before uploading it (the worker's own disk)."""
    return settings.data_dir / "exports-tmp" / f"{exp.id}.{exp.file_format}.part"


def run_export(handle: RunningJob, db: Session, ctx: TenantContext, *, export_id: str,
               settings: Settings, progress_seconds: float = PROGRESS_SECONDS) -> None:
    exp = db.scalar(scoped(ctx, Export).where(Export.id == uuid.UUID(export_id)))
    if exp is None:
        raise ExportNotFound()
    view = get_view(exp.view_key)
    storage = get_storage(settings, exp.storage_backend)
    assert exp.storage_key is not None
    part = temp_path(settings, exp)
    part.parent.mkdir(parents=True, exist_ok=True)
    # Another attempt (worker killed, resumed) starts over: the same cutoff gives the
    # same rows, and nothing of the earlier attempt survives.
    part.unlink(missing_ok=True)
    if handle.run.attempts > 1:
        storage.delete(exp.storage_key)
    columns = [view.column(k) for k in exp.columns]
    vq = view.query(ctx, view.parse_filters(exp.filters), exp.sort or view.sorts[0],
                    exp.descending, exp.cutoff_at)
    try:
        handle.set_progress(stage="Counting", done=0, message="Counting the rows")
        total = count_rows(db, vq)
        handle.set_progress(total=total, message=f"{total} rows to export")
        handle.check_control()
        if exp.file_format == "xlsx" and total > XLSX_MAX_ROWS:
            raise ExportTooLarge(f"an XLSX sheet holds at most {XLSX_MAX_ROWS:,} rows and this "
                                 f"export has {total:,}: export it as CSV")
        handle.set_progress(stage="Exporting", message=f"Exporting {total} rows")
        done, committed_at = 0, 0.0
        writer = open_writer(exp.file_format, part, [c.label for c in columns])
        try:
            for page in batches(db, vq, columns, settings.export_batch_size,
                                as_csv=exp.file_format == "csv"):
                writer.write(page.rows)
                done += page.count
                # Progress (a commit) and pause/cancel after the first page, then every
                # ``progress_seconds``: a commit per page cost more than reading the page.
                tick = time.monotonic()
                if done == page.count or tick - committed_at >= progress_seconds:
                    handle.set_progress(done=done, message=f"Exported {done} of {total} rows")
                    handle.check_control()
                    committed_at = tick
        finally:
            writer.close()
        handle.set_progress(stage="Uploading", done=done,
                            message=f"Storing the file ({storage.name} storage)")
        size = storage.save(exp.storage_key, part)
    finally:
        part.unlink(missing_ok=True)
    now = _now()
    exp.size_bytes = size
    exp.row_count = done
    exp.completed_at = now
    exp.expires_at = now + timedelta(hours=settings.export_expiry_hours)
    handle.set_progress(stage="Completed", done=done,
                        message=f"{done} rows, {size:,} bytes", commit=False)


# --- expiry ----------------------------------------------------------------------------------


def expire_exports(db: Session, settings: Settings, *, now: datetime | None = None,
                   batch: int = 200) -> int:
    """Delete the files of exports past their expiry and mark them expired (all tenants).

    Idempotent: a file already gone is fine, and a storage that cannot be reached leaves
    the export as it is for the next run.
    """
    now = now or _now()
    expired = 0
    skipped: set[uuid.UUID] = set()
    while True:
        stmt = (select(Export).where(Export.expired_at.is_(None), Export.expires_at <= now)
                .order_by(Export.expires_at).limit(batch).with_for_update(skip_locked=True))
        if skipped:
            stmt = stmt.where(Export.id.not_in(skipped))
        rows = list(db.scalars(stmt))
        if not rows:
            return expired
        for exp in rows:
            try:
                if exp.storage_key:
                    get_storage(settings, exp.storage_backend).delete(exp.storage_key)
            except StorageError as exc:
                log.warning("exports.expire_failed", export_id=str(exp.id), reason=str(exc))
                skipped.add(exp.id)
                continue
            exp.expired_at = now
            expired += 1
            audit.record(db, None, action="export.expired", target_type="export",
                         target_id=exp.id, tenant_id=exp.tenant_id,
                         actor_label="system (export expiry)",
                         after={"file": exp.filename, "expires_at": exp.expires_at})
        db.flush()
