"""The generic async import pipeline (C05).

``create_import`` stores the upload, checks it can be read and has the columns its type
requires (else 400, nothing kept), and queues the job. ``run_import`` is the job body:

1. Columns: the column map, fixed when uploaded: auto-applied for fixed-schema types,
   auto-detected by header name for the others; when detection falls short (a required
   field without a column, or two columns claiming one field) the upload is kept and its
   job waits PAUSED in Columns until the operator posts a mapping (``apply_mapping``);
2. Cells: one pass over every row (the type's survey), before anything is written;
3. Verifying: identity-flag fingerprinting; skipped for types without identity flags;
4. Processing: batches, each committed with its row results and a checkpoint, so a
   resumed or retried run continues after the last committed row: never twice, never
   skipped;
5. Done.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session, joinedload

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, DomainError, Forbidden, Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import scoped
from racehub.db.bulk import copy_rows
from racehub.imports.exceptions import ImportNotFound, RejectedUpload

__all__ = ["ImportNotFound"]  # raised by pages of the domains whose imports they show
from racehub.imports.models import Import, ImportRowResult
from racehub.imports.reader import Limits, Table, UnreadableFile, check_file_name, open_table
from racehub.imports.registry import (
    IMPORT_TYPES,
    ImportRow,
    ImportType,
    RowOutcome,
    load_import_types,
)
from racehub.jobs import service as jobs_service
from racehub.jobs.exceptions import JobPaused
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobStatus
from racehub.settings import Settings

RUN_IMPORT_KIND = "imports.run"
STAGES = ("Columns", "Cells", "Verifying", "Processing", "Done")
VERIFYING_SKIPPED_DEFAULT = "Skipped — file is from an external system"

# Import.mapping_state: how Stage 1 (Columns) got its column map.
AUTO_APPLIED = "auto_applied"  # fixed schema
AUTO_DETECTED = "auto_detected"  # every required field found by header name
NEEDS_MAPPING = "needs_mapping"  # waiting, paused in Columns, for the operator's mapping
MAPPED = "mapped"  # by the operator
SAMPLE_ROWS = 5
# The upload reads the whole of a file this small (~50 ms) instead of its first rows
# only: a tiny hostile workbook (a stray cell at XFD1048576) is refused at once, not by
# its job. Larger files are checked whole by the job, in the worker.
CHECK_AT_UPLOAD_BYTES = 1024 * 1024
_SAMPLE_CELL_CHARS = 200


def get_import_type(key: str | None) -> ImportType:
    types = load_import_types()
    if not key:
        raise RejectedUpload(f"importType is required; one of: {', '.join(sorted(types))}",
                             field="importType")
    if key not in types:
        raise RejectedUpload(f"unknown importType {key!r}; one of: {', '.join(sorted(types))}",
                             field="importType")
    return types[key]


def _require(ctx: TenantContext, import_type: ImportType) -> None:
    if not ctx.can(import_type.permission):
        raise Forbidden(f"{import_type.label} needs the '{import_type.permission.value}' "
                        "permission")


# --- upload ----------------------------------------------------------------------------------


def _found(header: list[str]) -> str:
    return ", ".join(f'"{h}"' for h in header if h) or "none"


def map_columns(import_type: ImportType, header: list[str]) -> dict[str, int]:
    """Stage 1 for fixed-schema types: find each required column by name (any case)."""
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        positions.setdefault(name.strip().lower(), index)
    missing = [c for c in import_type.columns if c not in positions]
    if missing:
        names = ", ".join(f'"{c}"' for c in missing)
        raise RejectedUpload(
            f"the file has no {names} column{'s' if len(missing) > 1 else ''}; "
            f"required columns: {', '.join(import_type.columns)} (found: {_found(header)})",
            field="file")
    return {column: positions[column] for column in import_type.fields
            if column in positions}


_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_header(name: str) -> str:
    """The key a header is matched by: "Chip Time", "chip_time", "CHIP-TIME" and
    "CHIPTIME" are one name (timing systems disagree on case and separators only)."""
    return _SEPARATORS.sub("", name).casefold()


@dataclass(frozen=True)
class Detection:
    """Stage 1's guess for a type without a fixed schema."""

    column_map: dict[str, int]  # field -> column: the proposal (first claimant if several)
    missing: tuple[str, ...]  # required fields no header names
    ambiguous: dict[str, tuple[int, ...]]  # field -> the columns that all name it

    @property
    def complete(self) -> bool:
        return not self.missing and not self.ambiguous

    def problems(self, header: list[str]) -> list[str]:
        """Why the operator has to map the columns, one sentence each, naming the field."""
        found = [f'required field "{f}" has no column (headers: {_found(header)})'
                 for f in self.missing]
        for name, columns in self.ambiguous.items():
            claimants = " and ".join(f'"{header[c]}" (column {c + 1})' for c in columns)
            found.append(f'columns {claimants} all name field "{name}"; choose one')
        return found


def detect_columns(import_type: ImportType, header: list[str]) -> Detection:
    """Match each header to a field by its name or an alias, ignoring case, spaces,
    underscores and hyphens."""
    names: dict[str, str] = {}
    for name in import_type.fields:
        for spelling in (name, *import_type.column_aliases.get(name, ())):
            names.setdefault(normalize_header(spelling), name)
    claims: dict[str, list[int]] = {}
    for index, heading in enumerate(header):
        key = normalize_header(heading)
        if key and key in names:
            claims.setdefault(names[key], []).append(index)
    return Detection(
        column_map={f: claims[f][0] for f in import_type.fields if f in claims},
        missing=tuple(f for f in import_type.columns if f not in claims),
        ambiguous={f: tuple(c) for f, c in claims.items() if len(c) > 1},
    )


def import_limits(settings: Settings) -> Limits:
    """What an import file may hold (RACEHUB_IMPORT_MAX_*)."""
    return Limits(max_cells=settings.import_max_cells,
                  max_columns=settings.import_max_columns,
                  max_xml_bytes=settings.import_max_xml_mb * 1024 * 1024)


def _sample(table: Table) -> list[list[str]]:
    width = len(table.header)
    return [[cell[:_SAMPLE_CELL_CHARS] for cell in row.cells[:width]]
            for row in islice(table.rows(), SAMPLE_ROWS)]


def create_import(
    db: Session,
    ctx: TenantContext,
    *,
    settings: Settings,
    import_type_key: str | None,
    params: dict[str, str],
    filename: str,
    upload: IO[bytes],
) -> Import:
    """Keep the upload and queue its import, or refuse it (400) keeping nothing."""
    import_type = get_import_type(import_type_key)
    _require(ctx, import_type)
    try:
        check_file_name(filename)
    except UnreadableFile as exc:
        raise RejectedUpload(f"{filename}: {exc.detail}", field="file") from exc
    kept_params = import_type.check_params(db, ctx, params)
    import_id = uuid.uuid4()
    relative = Path("imports") / str(ctx.tenant_id) / str(import_id) / "upload"
    path = settings.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as out:
            shutil.copyfileobj(upload, out, length=1 << 20)
        try:
            # Reads the header and the first rows only; the job checks the whole file.
            table = open_table(path, max_bytes=settings.max_upload_bytes,
                               limits=import_limits(settings))
            if table.unpacked_bytes <= CHECK_AT_UPLOAD_BYTES:
                table.check()
            sample = [] if import_type.fixed_schema else _sample(table)
        except UnreadableFile as exc:
            raise RejectedUpload(f"{filename}: {exc.detail}", field="file") from exc
        problems: list[str] = []
        if import_type.fixed_schema:
            column_map, mapping_state = map_columns(import_type, table.header), AUTO_APPLIED
        else:
            # Never refused for its columns: the operator maps what detection missed.
            detection = detect_columns(import_type, table.header)
            column_map = detection.column_map
            mapping_state = AUTO_DETECTED if detection.complete else NEEDS_MAPPING
            problems = detection.problems(table.header)
        shown_name = filename[:255] or "upload"
        # Queued in this transaction: the worker sees the job only once the import is there.
        run = jobs_service.start_job(
            db, ctx, kind=RUN_IMPORT_KIND,
            params={"import_id": str(import_id), "import_type": import_type.key},
            message=f"{import_type.label}: {shown_name}", subject_id=import_id)
        imp = Import(
            id=import_id, tenant_id=ctx.tenant_id, import_type=import_type.key,
            filename=shown_name, stored_path=str(relative), size_bytes=path.stat().st_size,
            file_format=table.format, encoding=table.encoding, delimiter=table.delimiter,
            header=table.header, column_map=column_map, params=kept_params,
            mapping_state=mapping_state, sample_rows=sample,
            job_run_id=run.id, job_run=run,
            # The clock, not the transaction's start: "recent imports" order by it.
            created_at=datetime.now(UTC),
        )
        if mapping_state == NEEDS_MAPPING:
            # The job's paused state is the wait: the queued task finds the run PAUSED and
            # leaves it; apply_mapping resumes it like the Resume button does.
            run.status, run.stage = JobStatus.PAUSED, "Columns"
            run.message = ("Waiting for a column mapping: " + "; ".join(problems))[:1000]
            jobs_service.append_log(run, "waiting for a column mapping", problems=problems)
        db.add(imp)
        db.flush()
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    audit.record(db, ctx, action="import.create", target_type="import", target_id=import_id,
                 after={"import_type": import_type.key, "filename": imp.filename,
                        "size_bytes": imp.size_bytes, "params": kept_params,
                        "mapping_state": mapping_state})
    return imp


# --- Stage 1 for types without a fixed schema: the operator's mapping ------------------------


def mapping_of(imp: Import) -> dict[str, str]:
    """Field -> header name of the column map (the proposal while the import waits)."""
    import_type = get_import_type(imp.import_type)
    return {f: imp.header[imp.column_map[f]] for f in import_type.fields
            if f in imp.column_map and imp.column_map[f] < len(imp.header)}


def mapping_problems(imp: Import) -> list[str]:
    """Why the import waits for a mapping (empty once it has one)."""
    if imp.mapping_state != NEEDS_MAPPING:
        return []
    return detect_columns(get_import_type(imp.import_type), imp.header).problems(imp.header)


def resolve_mapping(import_type: ImportType, header: list[str],
                    mapping: dict[str, str | None]) -> dict[str, int]:
    """The operator's field -> header choice as a column map, or Invalid naming the field."""
    fields = import_type.fields
    for name in mapping:
        if name not in fields:
            raise Invalid(f'unknown field "{name}"; the fields are: {", ".join(fields)}',
                          field=f"mapping.{name}")
    positions: dict[str, list[int]] = {}
    for index, heading in enumerate(header):
        if heading:
            positions.setdefault(heading, []).append(index)
    column_map: dict[str, int] = {}
    used: dict[int, str] = {}
    for name in fields:
        heading = (mapping.get(name) or "").strip()
        if not heading:
            if name in import_type.columns:
                raise Invalid(f'required field "{name}" is not mapped to a column',
                              field=f"mapping.{name}")
            continue
        columns = positions.get(heading)
        if not columns:
            raise Invalid(f'field "{name}": the file has no column "{heading}" '
                          f"(headers: {_found(header)})", field=f"mapping.{name}")
        if len(columns) > 1:
            raise Invalid(f'field "{name}": {len(columns)} columns are named "{heading}" '
                          f"(columns {', '.join(str(c + 1) for c in columns)}); rename them "
                          "in the file and upload it again", field=f"mapping.{name}")
        if columns[0] in used:
            raise Invalid(f'column "{heading}" is mapped to both field "{used[columns[0]]}" '
                          f'and field "{name}"', field=f"mapping.{name}")
        used[columns[0]] = name
        column_map[name] = columns[0]
    return column_map


def apply_mapping(db: Session, ctx: TenantContext, *, import_id: uuid.UUID,
                  mapping: dict[str, str | None]) -> Import:
    """Apply the operator's mapping to an import waiting in Columns and queue the rest of
    its pipeline (Cells, Verifying, Processing) by resuming its job."""
    # Locked: two operators submitting at once must not both apply and resume.
    imp = db.scalar(scoped(ctx, Import).where(Import.id == import_id)
                    .with_for_update(of=Import).execution_options(populate_existing=True))
    if imp is None:
        raise ImportNotFound()
    import_type = get_import_type(imp.import_type)
    # Applying the mapping resumes the run: controlling it, by the jobs' one rule.
    jobs_service.access_of(db, ctx, imp.job_run).require_control()
    if imp.mapping_state != NEEDS_MAPPING:
        raise Conflict("the import is not waiting for a column mapping (its columns are "
                       f"{imp.mapping_state.replace('_', ' ')})", field="mapping")
    run = jobs_service.get_job_or_raise(db, ctx, job_id=imp.job_run_id)
    if run.status != JobStatus.PAUSED:
        raise Conflict(f"the import is {run.status.value}: it no longer waits for a column "
                       "mapping", field="mapping")
    column_map = resolve_mapping(import_type, imp.header, mapping)
    before = mapping_of(imp)
    imp.column_map, imp.mapping_state = column_map, MAPPED
    jobs_service.resume_job(db, ctx, job_id=imp.job_run_id)
    audit.record(db, ctx, action="import.map_columns", target_type="import", target_id=imp.id,
                 before={"proposed": before}, after={"mapping": mapping_of(imp)})
    return imp


# --- reading ---------------------------------------------------------------------------------


def get_import_or_raise(db: Session, ctx: TenantContext, *, import_id: uuid.UUID) -> Import:
    imp = db.scalar(scoped(ctx, Import).where(Import.id == import_id)
                    .options(joinedload(Import.job_run)))
    if imp is None:
        raise ImportNotFound()
    return imp


def list_imports(
    db: Session, ctx: TenantContext, *, import_type: str | None = None, size: int = 20
) -> list[Import]:
    check_limit(size)
    stmt = scoped(ctx, Import).options(joinedload(Import.job_run))
    if import_type:
        stmt = stmt.where(Import.import_type == import_type)
    return list(db.scalars(stmt.order_by(Import.created_at.desc(), Import.id.desc())
                           .limit(size)))


@dataclass(frozen=True)
class StageView:
    name: str
    state: str  # pending, active, done, auto_applied, skipped, failed, cancelled
    tooltip: str = ""


def stages_of(imp: Import) -> list[StageView]:
    """The stage bar: where the run is, which stages were auto-applied or skipped."""
    import_type = IMPORT_TYPES.get(imp.import_type) or get_import_type(imp.import_type)
    run = imp.job_run
    current = run.stage if run.stage in STAGES else None
    reached = STAGES.index(current) if current else (
        len(STAGES) if run.status == JobStatus.COMPLETED else -1)
    if run.status in (JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.PAUSED):
        reached = STAGES.index("Processing") if run.done else reached
    views = []
    for index, name in enumerate(STAGES):
        state = "done" if index < reached else "active" if index == reached else "pending"
        if run.status == JobStatus.COMPLETED:
            state = "done"
        tooltip = ""
        if name == "Columns" and import_type.fixed_schema:
            state, tooltip = "auto_applied", ("Auto-applied — this import has a fixed schema: "
                                              + ", ".join(import_type.columns))
        elif name == "Columns" and imp.mapping_state == NEEDS_MAPPING:
            state = (run.status.value if run.status in (JobStatus.CANCELLED, JobStatus.FAILED)
                     else NEEDS_MAPPING)
            tooltip = "Waiting for a column mapping — " + "; ".join(mapping_problems(imp))
        elif name == "Columns" and imp.mapping_state in (AUTO_DETECTED, MAPPED):
            state = imp.mapping_state
            tooltip = ("Auto-detected — " if state == AUTO_DETECTED else "Mapped — ") + ", ".join(
                f"{f} ← {h}" for f, h in mapping_of(imp).items())
        elif name == "Verifying" and import_type.verifying_skipped_because is not None:
            state, tooltip = "skipped", import_type.verifying_skipped_because
        elif index == reached and run.status in (JobStatus.FAILED, JobStatus.CANCELLED,
                                                 JobStatus.PAUSED):
            state = run.status.value
        views.append(StageView(name, state, tooltip))
    return views


def bucket_counts(imp: Import) -> list[tuple[str, str, int]]:
    """(key, label, count) for every bucket of the type, zeros included, in order."""
    import_type = get_import_type(imp.import_type)
    counts = imp.job_run.counts or {}
    return [(b.key, b.label, int(counts.get(b.key, 0))) for b in import_type.buckets]


def list_row_results(
    db: Session, ctx: TenantContext, *, import_id: uuid.UUID, bucket: str | None = None,
    cursor: str | None = None, limit: int = 50,
) -> tuple[list[ImportRowResult], str | None]:
    check_limit(limit)
    imp = get_import_or_raise(db, ctx, import_id=import_id)
    stmt = scoped(ctx, ImportRowResult).where(ImportRowResult.import_id == imp.id)
    if bucket:
        _check_bucket(imp, bucket)
        stmt = stmt.where(ImportRowResult.bucket == bucket)
    key = SortKey(columns=[ImportRowResult.row_number, ImportRowResult.id])
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda r: [r.row_number, r.id])


def columns_of(imp: Import) -> list[str]:
    """The mapped fields in the file's column order (JSONB does not keep key order), then
    the unmapped columns for types that keep them."""
    mapped = sorted(imp.column_map, key=lambda name: imp.column_map[name])
    if not get_import_type(imp.import_type).keep_unmapped_columns:
        return mapped
    return [*mapped, *_unmapped_columns(imp.header, imp.column_map).values()]


def _unmapped_columns(header: list[str], column_map: dict[str, int]) -> dict[int, str]:
    """Column index -> the name its cells go by in ``ImportRow.extras``: the header, or
    "column N" when blank or repeated."""
    mapped = set(column_map.values())
    names: dict[int, str] = {}
    for index, heading in enumerate(header):
        if index in mapped:
            continue
        name = heading or f"column {index + 1}"
        if name in names.values():
            name = f"{name} (column {index + 1})"
        names[index] = name
    return names


def _check_bucket(imp: Import, bucket: str) -> None:
    keys = [b.key for b in get_import_type(imp.import_type).buckets]
    if bucket not in keys:
        raise DomainError(f"unknown bucket {bucket!r}; one of: {', '.join(keys)}",
                          field="bucket")


def row_results_csv(
    db: Session, ctx: TenantContext, *, import_id: uuid.UUID, bucket: str | None = None,
) -> Iterator[str]:
    """A bucket's rows as CSV (row, bucket, reason, then the file's columns), streamed."""
    imp = get_import_or_raise(db, ctx, import_id=import_id)
    if bucket:
        _check_bucket(imp, bucket)
    columns = columns_of(imp)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(["row", "bucket", "reason", *columns])
    yield "\ufeff" + flush()  # the BOM makes Excel read UTF-8
    cursor = None
    while True:
        rows, cursor = list_row_results(db, ctx, import_id=import_id, bucket=bucket,
                                        cursor=cursor, limit=500)
        for r in rows:
            writer.writerow([r.row_number, r.bucket, r.reason,
                             *[_csv_safe(r.values.get(c, "")) for c in columns]])
        yield flush()
        if cursor is None:
            return


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ would run as a formula when the CSV is opened in Excel.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


# --- control ---------------------------------------------------------------------------------


def control_import(db: Session, ctx: TenantContext, *, import_id: uuid.UUID,
                   action: str) -> Import:
    imp = get_import_or_raise(db, ctx, import_id=import_id)
    # Checked before the state: a caller who may not control the run learns nothing of it.
    jobs_service.access_of(db, ctx, imp.job_run).require_control()
    actions = {"cancel": jobs_service.cancel_job, "pause": jobs_service.pause_job,
               "resume": jobs_service.resume_job}
    if action not in actions:
        raise DomainError("action must be cancel, pause or resume", field="action")
    if action == "resume" and imp.mapping_state == NEEDS_MAPPING:
        raise Conflict("the import waits for its column mapping: choose a column for each "
                       "required field, then Continue", field="mapping")
    actions[action](db, ctx, job_id=imp.job_run_id)
    return imp


# --- the job ---------------------------------------------------------------------------------


def _import_rows(table: Table, column_map: dict[str, int], start_after: int = 0, *,
                 extras: dict[int, str] | None = None) -> Iterator[ImportRow]:
    """Data rows as field -> text, skipping the first ``start_after`` (already processed);
    ``extras`` (column -> name) picks the unmapped cells a type keeps."""
    for index, row in enumerate(table.rows()):
        if index < start_after:
            continue
        yield ImportRow(row.number, {field: row.cells[col] if col < len(row.cells) else ""
                                     for field, col in column_map.items()},
                        tuple(row.issues),
                        {name: row.cells[col] for col, name in (extras or {}).items()
                         if col < len(row.cells)})


def _batches(rows: Iterable[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    batch: list[ImportRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_import(
    handle: RunningJob, db: Session, ctx: TenantContext, *, import_id: str, batch_size: int,
    data_dir: Path, limits: Limits | None = None,
) -> None:
    """The job body: the five stages, resumable after any committed batch."""
    imp = get_import_or_raise(db, ctx, import_id=uuid.UUID(import_id))
    import_type = get_import_type(imp.import_type)
    if imp.mapping_state == NEEDS_MAPPING:
        # Resumed (from the jobs page) before anyone mapped the columns: wait again.
        handle.log("waiting for a column mapping")
        raise JobPaused
    try:
        # The whole file, once, before any row is read: the upload read only its start.
        table = open_table(data_dir / imp.stored_path, limits=limits)
        table.check()
    except UnreadableFile as exc:
        raise UnreadableFile(f"{imp.filename}: {exc.detail}") from exc
    checkpoint = handle.checkpoint
    extras = (_unmapped_columns(imp.header, imp.column_map)
              if import_type.keep_unmapped_columns else None)

    handle.set_progress(stage="Columns", message="Columns: " + {
        AUTO_APPLIED: "auto-applied (fixed schema)", AUTO_DETECTED: "auto-detected",
        MAPPED: "mapped by the operator"}.get(imp.mapping_state, imp.mapping_state))

    if "survey" not in checkpoint:
        handle.set_progress(stage="Cells", message="Reading every row")
        rows_total = 0

        def counted() -> Iterator[ImportRow]:
            nonlocal rows_total
            for row in _import_rows(table, imp.column_map, extras=extras):
                rows_total += 1
                yield row

        survey = import_type.survey(counted())
        imp.rows_total = rows_total
        checkpoint = {"survey": survey, "rows_done": 0}
        handle.run.checkpoint = checkpoint
        handle.set_progress(total=rows_total, done=0)
        handle.check_control()

    if import_type.verifying_skipped_because is not None:
        handle.log("Verifying skipped: " + import_type.verifying_skipped_because)
    handle.set_progress(stage="Processing", message="Processing rows")

    rows_done = int(checkpoint["rows_done"])
    counts: dict[str, int] = {k: int(v) for k, v in (handle.run.counts or {}).items()}
    for batch in _batches(_import_rows(table, imp.column_map, start_after=rows_done,
                                       extras=extras), batch_size):
        outcomes = import_type.process(db, ctx, params=imp.params, survey=checkpoint["survey"],
                                       rows=batch, job_run_id=handle.run.id)
        _store_outcomes(db, ctx, imp, outcomes)
        for outcome in outcomes:
            counts[outcome.bucket] = counts.get(outcome.bucket, 0) + 1
        rows_done += len(batch)
        handle.commit_batch(checkpoint={**checkpoint, "rows_done": rows_done}, done=rows_done,
                            counts=counts,
                            message=f"Processed {rows_done} of {imp.rows_total} rows")
    # Committed with the terminal state: a retry after a crash here writes it once.
    audit.record(db, ctx, action="import.completed", target_type="import", target_id=imp.id,
                 after={"importType": imp.import_type, "filename": imp.filename,
                        "params": imp.params, "rowsTotal": imp.rows_total, "counts": counts})
    handle.set_progress(stage="Done", message=_summary_line(import_type, counts),
                        commit=False)


def _store_outcomes(db: Session, ctx: TenantContext, imp: Import,
                    outcomes: list[RowOutcome]) -> None:
    copy_rows(db, ImportRowResult.__table__, [{
        "tenant_id": ctx.tenant_id, "import_id": imp.id, "row_number": o.row_number,
        "bucket": o.bucket, "values": o.values, "reason": o.reason,
        "target_id": o.target_id,
    } for o in outcomes])


def _summary_line(import_type: ImportType, counts: dict[str, int]) -> str:
    parts = [f"{counts.get(b.key, 0)} {b.label.lower()}" for b in import_type.buckets
             if counts.get(b.key)]
    return "; ".join(parts) or "no rows"

