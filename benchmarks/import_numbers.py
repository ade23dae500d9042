"""How a manufacturer's number file imports, against Postgres ``COPY FROM`` of the same rows.

Generates a NUMBER_ONBOARDING file (sequence 1..N, a zero-padded number, a 24-hex-char EPC
barcode on ~90% of rows) as CSV and as XLSX for each ``--rows`` size, and runs the whole
import pipeline in-process on it: ``imports.service.create_import`` (the upload) and then
the job body (``run_import``) through the real ``jobs.runner.run_job``, committing every
batch for real. The baseline, timed in the same run, is ``COPY staging FROM STDIN (FORMAT
csv, HEADER)`` of the same CSV bytes into a plain three-column table: the cheapest way
Postgres can take those rows in. The ratio says what parsing, validation, the four tables
an import writes (tags, race numbers, their state log, row results) and the per-batch
commits cost on top of that.

Each import runs in a subprocess of its own (``--child``), so its peak RSS (VmHWM, reset
after start-up) is that run's alone: the pipeline should keep memory flat from 10k to 100k
rows. Before each run the inventory and import tables are truncated.

Planner statistics: the batch lookups (tags by code, race numbers by sequence) are only
fast when the statistics know the tenant owns the rows; with statistics from before the
import the planner scans the whole tenant once per batch, so an import slows down as it
grows. Production's autovacuum keeps them current; a server with autovacuum off (like the
test server) never does. So by default one untimed import of the smallest file primes
them (ANALYZE; TRUNCATE keeps them). ``--stale-stats`` skips that, to see the difference.

    .venv/bin/python benchmarks/import_numbers.py [--url postgresql://...] [--rows 10000 100000]

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) a database named ``racehub_bench_imports``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import xlsxwriter
from _common import (
    child_result,
    copy_from_seconds,
    database_url,
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
from racehub.db.session import make_sessionmaker
from racehub.inventory import service as inventory_service
from racehub.inventory.schemas import NumberTypeCreate
from racehub.settings import Settings

BENCH_DB = "racehub_bench_imports"
FORMATS = ("csv", "xlsx")
DEFAULT_BATCH = Settings.model_fields["job_batch_size"].default
# What one import writes; emptied before each run so every run starts from the same state.
# results: they reference imports (empty here, but TRUNCATE needs every referencing table).
CLEAN = "TRUNCATE race_number_log, race_numbers, tags, import_row_results, results, imports"
ANALYZE = "ANALYZE race_number_log, race_numbers, tags, import_row_results, imports"
STAGING = "CREATE TABLE staging (sequence bigint, number text, barcode text)"
COPY = "COPY staging (sequence, number, barcode) FROM STDIN (FORMAT csv, HEADER)"




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
    with engine.begin() as conn:
        conn.execute(text(CLEAN))
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


# --- the baseline --------------------------------------------------------------------------------




# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--copy-repeat", type=int, default=5, help="COPY runs (median)")
    parser.add_argument("--stale-stats", action="store_true",
                        help="do not prime the planner statistics (see the docstring)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--child", nargs=3, metavar=("FORMAT", "ROWS", "PATH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--number-type", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    admin = server_url(args.url)
    bench_admin = database_url(admin, BENCH_DB)
    with scratch_database(admin, BENCH_DB, keep=args.keep) as url:
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
            files: dict[int, dict[str, Path]] = {}
            for rows in args.rows:
                data = manufactured_rows(rows)
                files[rows] = {fmt: Path(tmp) / f"numbers-{rows}.{fmt}" for fmt in FORMATS}
                write_csv(files[rows]["csv"], data)
                write_xlsx(files[rows]["xlsx"], data)
            if not args.stale_stats:
                smallest = min(args.rows)
                run_child(url, "csv", smallest, files[smallest]["csv"], tenant_id,
                          number_type_id, args.batch_size)
                with psycopg.connect(bench_admin, autocommit=True) as conn:
                    conn.execute(ANALYZE)
            print(f"planner statistics: {'stale' if args.stale_stats else 'primed'}")
            for rows in args.rows:
                paths = files[rows]
                baseline = copy_from_seconds(bench_admin, paths["csv"], COPY, args.copy_repeat)
                for fmt in FORMATS:
                    result = run_child(url, fmt, rows, paths[fmt], tenant_id, number_type_id,
                                       args.batch_size)
                    result["copy_s"] = baseline
                    result["mb"] = paths[fmt].stat().st_size / 1e6
                    results.append(result)
                    _report(result)
        _summary(results, args.batch_size)


def _report(r: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
    print(f"  {r['format']} {r['rows']} rows ({r['mb']:.1f} MB): upload {r['upload_s']:.2f} s, "
          f"job {r['job_s']:.2f} s; {counts}", flush=True)


def _summary(results: list[dict[str, Any]], batch_size: int) -> None:
    print(f"\nbatch size {batch_size}; baseline: COPY of the same CSV into a 3-column table "
          "(median)")
    print(f"{'format':<6} {'rows':>7} {'COPY':>8} {'upload':>8} {'job':>8} {'rows/s':>7} "
          f"{'ratio':>6} {'ratio+up':>8} {'RSS start':>9} {'RSS peak':>8}")
    for r in results:
        ratio = r["job_s"] / r["copy_s"]
        ratio_up = (r["job_s"] + r["upload_s"]) / r["copy_s"]
        print(f"{r['format']:<6} {r['rows']:>7} {r['copy_s'] * 1000:>6.0f}ms "
              f"{r['upload_s']:>7.2f}s {r['job_s']:>7.2f}s {r['rows'] / r['job_s']:>7.0f} "
              f"{ratio:>5.0f}x {ratio_up:>7.0f}x {r['rss_before_mb']:>7.0f}MB "
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
