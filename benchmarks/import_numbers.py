"""How a manufacturer's number file imports, against the same writes done set-based in Postgres.

Generates a NUMBER_ONBOARDING file (sequence 1..N, a zero-padded number, a 24-hex-char EPC
barcode on ~90% of rows) as CSV and as XLSX for each ``--rows`` size, and runs the whole
import pipeline in-process on it: ``imports.service.create_import`` (the upload) and then
the job body (``run_import``) through the real ``jobs.runner.run_job``, committing every
batch for real.

Two baselines, timed in the same run on the same CSV bytes:

- **set-based** (the target's): ``COPY`` into a staging table, then one ``INSERT ... SELECT``
  per table the import writes (tags, race numbers, their state log, the row results), into
  the real tables with their indexes, foreign keys and triggers, in one transaction. The
  same writes as the job, done the cheapest way Postgres can: the target is the job within
  3x of this.
- **bare COPY**: ``COPY staging FROM STDIN (FORMAT csv, HEADER)`` alone, into an unindexed
  three-column table (the old baseline, kept for comparison with earlier figures).

Every import and every set-based run starts from a fresh database: a clone (``CREATE
DATABASE ... TEMPLATE``) of one migrated database holding the tenant and number type, dropped
after the run. The race-number log is append-only (UPDATE, DELETE and TRUNCATE refused,
migration 0012), so emptying the tables between runs is not an option. The import keeps the
planner statistics current itself (it ANALYZEs as it passes 2k, 4k, 8k... rows).

Each import runs in a subprocess of its own (``--child``), so its peak RSS (VmHWM, reset
after start-up) is that run's alone: the pipeline should keep memory flat from 10k to 100k
rows.

    .venv/bin/python benchmarks/import_numbers.py [--url postgresql://...] [--rows 10000 100000]
    .venv/bin/python benchmarks/import_numbers.py --smoke   # tiny, checks it runs (CI)

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) databases named ``racehub_bench_imports*``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import xlsxwriter
from _common import (
    add_smoke_argument,
    bench_db_name,
    child_result,
    cloned_database,
    copy_from_seconds,
    max_rss_mb,
    print_result,
    reset_peak_rss,
    rss_mb,
    scratch_database,
    server_url,
)
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.db.session import libpq_url, make_sessionmaker
from racehub.inventory import service as inventory_service
from racehub.inventory.schemas import NumberTypeCreate
from racehub.settings import Settings

BENCH_DB = "racehub_bench_imports"
FORMATS = ("csv", "xlsx")
DEFAULT_BATCH = Settings.model_fields["job_batch_size"].default
STAGING = ("CREATE TABLE staging (line bigint GENERATED ALWAYS AS IDENTITY, sequence bigint, "
           "number text, barcode text)")
COPY = "COPY staging (sequence, number, barcode) FROM STDIN (FORMAT csv, HEADER)"
# The job's writes, set-based from the staging table (an empty barcode is NULL in CSV), as
# one would write them by hand: with statistics for each join (without them the planner
# joins 100k rows by nested loops and takes ~10x longer).
SET_BASED = [
    "ANALYZE staging",
    """INSERT INTO tags (id, tenant_id, code)
       SELECT gen_random_uuid(), %(tenant)s, barcode FROM staging WHERE barcode IS NOT NULL""",
    "ANALYZE tags",
    """INSERT INTO race_numbers (id, tenant_id, number_type_id, sequence, number, state, tag_id)
       SELECT gen_random_uuid(), %(tenant)s, %(number_type)s, s.sequence, s.number,
              'MANUFACTURED', t.id
         FROM staging s LEFT JOIN tags t ON t.tenant_id = %(tenant)s AND t.code = s.barcode""",
    "ANALYZE race_numbers",
    """INSERT INTO race_number_log (tenant_id, race_number_id, action, to_state, detail,
                                    actor_label, job_run_id)
       SELECT %(tenant)s, r.id, 'manufactured', 'MANUFACTURED',
              jsonb_build_object('row', s.line, 'number', s.number, 'barcode', s.barcode),
              'bench', %(job_run)s
         FROM staging s JOIN race_numbers r ON r.tenant_id = %(tenant)s
          AND r.number_type_id = %(number_type)s AND r.sequence = s.sequence""",
    """INSERT INTO import_row_results (tenant_id, import_id, row_number, bucket, "values",
                                       reason, target_id)
       SELECT %(tenant)s, %(import)s, s.line,
              CASE WHEN s.barcode IS NULL THEN 'imported_without_tag' ELSE 'imported' END,
              jsonb_build_object('sequence', s.sequence::text, 'number', s.number,
                                 'barcode', coalesce(s.barcode, '')),
              '', r.id
         FROM staging s JOIN race_numbers r ON r.tenant_id = %(tenant)s
          AND r.number_type_id = %(number_type)s AND r.sequence = s.sequence""",
]


# --- the files -------------------------------------------------------------------------------


def manufactured_rows(n: int) -> list[tuple[int, str, str]]:
    """(sequence, number, barcode): every tenth row without a barcode, all barcodes unique."""
    width = len(str(n))
    return [(seq, str(seq).zfill(width), "" if seq % 10 == 0 else f"E2801160600002{seq:010X}")
            for seq in range(1, n + 1)]


def write_csv(path: Path, rows: list[tuple[int, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["sequence", "number", "barcode"])
        writer.writerows(rows)


def write_xlsx(path: Path, rows: list[tuple[int, str, str]]) -> None:
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Numbers")
    for col, name in enumerate(("sequence", "number", "barcode")):
        sheet.write_string(0, col, name)
    for r, (seq, number, barcode) in enumerate(rows, start=1):
        sheet.write_number(r, 0, seq)
        sheet.write_string(r, 1, number)
        if barcode:
            sheet.write_string(r, 2, barcode)
    workbook.close()


# --- one import, in a process of its own ----------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Upload and run one file; print the timings, the outcome and the peak RSS as JSON."""
    from racehub.core.logging import configure_logging
    from racehub.imports import service as imports_service
    from racehub.imports.models import Import
    from racehub.inventory.models import RaceNumber
    from racehub.jobs.models import JobRun
    from racehub.jobs.runner import run_job

    configure_logging("WARNING", json=True)
    fmt, rows, path = args.child[0], int(args.child[1]), Path(args.child[2])
    engine = create_engine(args.db)
    factory = make_sessionmaker(engine)
    ctx = TenantContext.system(uuid.UUID(args.tenant), label="bench")
    rss_before = rss_mb()
    reset_peak_rss()  # the peak is then this import's, not the module imports'

    with tempfile.TemporaryDirectory(prefix="racehub-bench-") as data_dir:
        settings = Settings(database_url=args.db, data_dir=Path(data_dir), log_level="WARNING")
        with factory() as db, path.open("rb") as upload:
            start = time.perf_counter()
            imp = imports_service.create_import(
                db, ctx, settings=settings, import_type_key="NUMBER_ONBOARDING",
                params={"numberTypeId": args.number_type}, filename=path.name, upload=upload)
            db.commit()
            upload_s = time.perf_counter() - start
            import_id, job_run_id = imp.id, imp.job_run_id

        def body(handle: Any, session: Session, ctx: TenantContext, **params: Any) -> None:
            imports_service.run_import(handle, session, ctx, import_id=params["import_id"],
                                       batch_size=args.batch_size, data_dir=settings.data_dir)

        start = time.perf_counter()
        run_job(None, str(job_run_id), body, factory=factory)
        job_s = time.perf_counter() - start
    peak = max_rss_mb()

    with factory() as db:
        run = db.get_one(JobRun, job_run_id)
        created = db.scalar(select(func.count()).select_from(RaceNumber))
        rows_total = db.get_one(Import, import_id).rows_total
        result = {"format": fmt, "rows": rows, "upload_s": upload_s, "job_s": job_s,
                  "status": run.status.value, "done": run.done, "rows_total": rows_total,
                  "counts": run.counts, "race_numbers": created,
                  "rss_before_mb": rss_before, "rss_peak_mb": peak}
    engine.dispose()
    print_result(result)


def run_child(url: str, fmt: str, rows: int, path: Path, tenant_id: uuid.UUID,
              number_type_id: uuid.UUID, batch_size: int) -> dict[str, Any]:
    result = child_result(
        __file__, "--child", fmt, str(rows), str(path), "--db", url, "--tenant",
        str(tenant_id), "--number-type", str(number_type_id), "--batch-size", str(batch_size),
        what=f"the {fmt} import of {rows} rows")
    if result["status"] != "completed" or result["race_numbers"] != rows:
        raise SystemExit(f"the {fmt} import of {rows} rows did not import every row: {result}")
    return result


# --- the set-based baseline ----------------------------------------------------------------------


def set_based_seconds(url: str, path: Path, ids: dict[str, str]) -> dict[str, float]:
    """COPY the CSV into the staging table, then the job's four writes as INSERT ... SELECT,
    in one transaction on a fresh clone; seconds of the COPY and of the whole."""
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(COPY) as copy, path.open("rb") as file:
            while chunk := file.read(1 << 20):
                copy.write(chunk)
        copied = time.perf_counter() - start
        for statement in SET_BASED:
            conn.execute(statement, ids)
        conn.commit()
        total = time.perf_counter() - start
        numbers = conn.execute("SELECT count(*) FROM race_numbers").fetchone()
    return {"copy_s": copied, "set_based_s": total, "race_numbers": numbers[0] if numbers else 0}


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--copy-repeat", type=int, default=5, help="bare COPY runs (median)")
    parser.add_argument("--set-repeat", type=int, default=3,
                        help="set-based runs (median), each on a fresh clone")
    parser.add_argument("--keep", action="store_true", help="keep the template database")
    add_smoke_argument(parser)
    parser.add_argument("--child", nargs=3, metavar=("FORMAT", "ROWS", "PATH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--number-type", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.smoke:
        args.rows, args.copy_repeat, args.set_repeat = [40], 1, 1

    admin = server_url(args.url)
    template = bench_db_name(BENCH_DB, args.smoke)
    with scratch_database(admin, template, keep=args.keep) as url:
        engine = create_engine(url)
        with Session(engine) as db:
            tenant = core_service.create_tenant(db, name="Bench", slug="bench")
            ctx = TenantContext.system(tenant.id, label="bench")
            number_type = inventory_service.create_number_type(
                db, ctx, data=NumberTypeCreate(name="Marathon 2027 bibs"))
            tenant_id, number_type_id = tenant.id, number_type.id
            db.execute(text(STAGING))
            db.commit()
        engine.dispose()

        results = []
        with tempfile.TemporaryDirectory(prefix="racehub-bench-files-") as tmp:
            # The set-based runs' row results need an import (and its job run) to belong to.
            ids = {"tenant": str(tenant_id), "number_type": str(number_type_id),
                   **_holder_import(url, tenant_id, number_type_id, Path(tmp))}
            files: dict[int, dict[str, Path]] = {}
            for rows in args.rows:
                data = manufactured_rows(rows)
                files[rows] = {fmt: Path(tmp) / f"numbers-{rows}.{fmt}" for fmt in FORMATS}
                write_csv(files[rows]["csv"], data)
                write_xlsx(files[rows]["xlsx"], data)
            clone = template + "_run"
            for rows in args.rows:
                paths = files[rows]
                # The clones are made before anyone connects to the template.
                set_runs = []
                for _ in range(args.set_repeat):
                    with cloned_database(admin, template, clone) as run_url:
                        run = set_based_seconds(libpq_url(run_url), paths["csv"], ids)
                    if run["race_numbers"] != rows:
                        raise SystemExit(f"the set-based writes made {run['race_numbers']} "
                                         f"race numbers, not {rows}")
                    set_runs.append(run)
                with cloned_database(admin, template, clone) as run_url:
                    baseline = copy_from_seconds(libpq_url(run_url), paths["csv"], COPY,
                                                 args.copy_repeat)
                for fmt in FORMATS:
                    with cloned_database(admin, template, clone) as run_url:
                        result = run_child(run_url, fmt, rows, paths[fmt], tenant_id,
                                           number_type_id, args.batch_size)
                    result["copy_s"] = baseline
                    result["set_based_s"] = statistics.median(r["set_based_s"] for r in set_runs)
                    result["mb"] = paths[fmt].stat().st_size / 1e6
                    results.append(result)
                    _report(result)
        _summary(results, args.batch_size)


def _holder_import(url: str, tenant_id: uuid.UUID, number_type_id: uuid.UUID,
                   tmp: Path) -> dict[str, str]:
    """An import of a one-row file, never run, in the template: the set-based runs hang their
    row results on it. Its ids."""
    from racehub.imports import service as imports_service

    path = tmp / "holder.csv"
    write_csv(path, manufactured_rows(1))
    engine = create_engine(url)
    settings = Settings(database_url=url, data_dir=tmp / "data", log_level="WARNING")
    with Session(engine) as db, path.open("rb") as upload:
        imp = imports_service.create_import(
            db, TenantContext.system(tenant_id, label="bench"), settings=settings,
            import_type_key="NUMBER_ONBOARDING", params={"numberTypeId": str(number_type_id)},
            filename=path.name, upload=upload)
        db.commit()
        ids = {"import": str(imp.id), "job_run": str(imp.job_run_id)}
    engine.dispose()
    return ids


def _report(r: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
    print(f"  {r['format']} {r['rows']} rows ({r['mb']:.1f} MB): upload {r['upload_s']:.2f} s, "
          f"job {r['job_s']:.2f} s; {counts}", flush=True)


def _summary(results: list[dict[str, Any]], batch_size: int) -> None:
    print(f"\nbatch size {batch_size}; baselines (medians): the same writes set-based (COPY to "
          "staging + INSERT ... SELECT, target: job within 3x) and a bare COPY")
    print(f"{'format':<6} {'rows':>7} {'set-based':>9} {'job':>8} {'ratio':>6} {'upload':>8} "
          f"{'rows/s':>7} {'COPY':>8} {'/COPY':>6} {'RSS start':>9} {'RSS peak':>8}")
    for r in results:
        print(f"{r['format']:<6} {r['rows']:>7} {r['set_based_s']:>8.2f}s {r['job_s']:>7.2f}s "
              f"{r['job_s'] / r['set_based_s']:>5.1f}x {r['upload_s']:>7.2f}s "
              f"{r['rows'] / r['job_s']:>7.0f} {r['copy_s'] * 1000:>6.0f}ms "
              f"{r['job_s'] / r['copy_s']:>5.0f}x {r['rss_before_mb']:>7.0f}MB "
              f"{r['rss_peak_mb']:>6.0f}MB")
    sizes = sorted({r["rows"] for r in results})
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        for fmt in FORMATS:
            peak = {r["rows"]: r["rss_peak_mb"] for r in results if r["format"] == fmt}
            growth = peak[big] - peak[small]
            print(f"peak RSS {fmt}: {small} -> {big} rows: {peak[small]:.0f} -> "
                  f"{peak[big]:.0f} MB ({growth:+.0f} MB, {peak[big] / peak[small]:.2f}x)")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
