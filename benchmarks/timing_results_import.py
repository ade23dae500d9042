"""How a timing system's result file imports (E08), against Postgres ``COPY FROM`` of the
same rows.

For each ``--rows`` size an event gets that many active EPs (two categories, both genders),
inserted straight in SQL, and a result file in EPID mode: ExternalReferenceID, Number,
ChipTime, GunTime (``H:MM:SS.fff``), Status (2% DNF) and one split column, as a timing
system writes it. The whole pipeline runs in-process: ``imports.service.create_import``
(the upload, with column detection) and the job body (``run_import``) through the real
``jobs.runner.run_job``, committing every batch: parse, resolve by id, upsert results,
row results, and the places computed at the end. The baseline, timed in the same run, is
``COPY staging FROM STDIN (FORMAT csv, HEADER)`` of the same CSV bytes into a plain
six-column text table.

Each import runs in a subprocess of its own (``--child``), so its peak RSS (VmHWM, reset
after start-up) is that run's alone: memory should stay flat from 10k to 100k rows.
Results, row results and imports are truncated before each run (so every run imports,
none updates).

    .venv/bin/python benchmarks/timing_results_import.py [--url URL] [--rows 10000 100000]

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) a database named ``racehub_bench_results``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    add_smoke_argument,
    bench_db_name,
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
from racehub.events import service as events_service
from racehub.events.models import TimingIdentifier
from racehub.events.schemas import CategoryCreate, EventCreate
from racehub.settings import Settings

BENCH_DB = "racehub_bench_results"
DEFAULT_BATCH = Settings.model_fields["job_batch_size"].default
CLEAN = "TRUNCATE results, import_row_results, imports"
COLUMNS = ["ExternalReferenceID", "Number", "ChipTime", "GunTime", "Status", "Split 5K"]
STAGING = ("CREATE TABLE staging (external_id text, number text, chip text, gun text, "
           "status text, split text)")
COPY = "COPY staging FROM STDIN (FORMAT csv, HEADER)"
# EPs straight in SQL: ids derived from the row number, so the file can name them.
SEED_PERSONS = """
INSERT INTO persons (id, tenant_id, first_name, last_name, gender)
SELECT md5(%(event)s || 'p' || g)::uuid, %(tenant)s, 'Runner', 'N' || g,
       (CASE WHEN g %% 2 = 0 THEN 'F' ELSE 'M' END)::gender
  FROM generate_series(1, %(n)s) g
"""
SEED_EPS = """
INSERT INTO event_participants (id, tenant_id, event_id, person_id, category_id, bib, status)
SELECT md5(%(event)s || 'e' || g)::uuid, %(tenant)s, %(event)s::uuid,
       md5(%(event)s || 'p' || g)::uuid,
       CASE WHEN g %% 3 = 0 THEN %(short)s::uuid ELSE %(long)s::uuid END, g::text, 'active'
  FROM generate_series(1, %(n)s) g
"""




def _ep_id(event_id: uuid.UUID, g: int) -> str:
    import hashlib

    return str(uuid.UUID(hashlib.md5(f"{event_id}e{g}".encode()).hexdigest()))


def _hms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{seconds:02}.{millis:03}"


def write_csv(path: Path, event_id: uuid.UUID, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for g in range(1, n + 1):
            chip = 1_800_000 + (g * 7919) % 5_400_000  # 0:30 to 2:00, scattered
            dnf = g % 50 == 0
            writer.writerow([_ep_id(event_id, g), g, "" if dnf else _hms(chip),
                             "" if dnf else _hms(chip + 15_000), "DNF" if dnf else "finished",
                             _hms(chip // 2)])


# --- one import, in a process of its own ----------------------------------------------------


def child(args: argparse.Namespace) -> None:
    from racehub.core.logging import configure_logging
    from racehub.imports import service as imports_service
    from racehub.jobs.models import JobRun
    from racehub.jobs.runner import run_job
    from racehub.timing.models import Result

    configure_logging("WARNING", json=True)
    rows, path, event_id = int(args.child[0]), Path(args.child[1]), args.child[2]
    engine = create_engine(args.db)
    with engine.begin() as conn:
        conn.execute(text(CLEAN))
    factory = make_sessionmaker(engine)
    ctx = TenantContext.system(uuid.UUID(args.tenant), label="bench")
    rss_before = rss_mb()
    reset_peak_rss()

    with tempfile.TemporaryDirectory(prefix="racehub-bench-") as data_dir:
        settings = Settings(database_url=args.db, data_dir=Path(data_dir), log_level="WARNING")
        with factory() as db, path.open("rb") as upload:
            start = time.perf_counter()
            imp = imports_service.create_import(
                db, ctx, settings=settings, import_type_key="TIMING_RESULTS",
                params={"eventId": event_id}, filename=path.name, upload=upload)
            db.commit()
            upload_s = time.perf_counter() - start
            job_run_id, mapping_state = imp.job_run_id, imp.mapping_state

        def body(handle: Any, session: Session, ctx: TenantContext, **params: Any) -> None:
            imports_service.run_import(handle, session, ctx, import_id=params["import_id"],
                                       batch_size=args.batch_size, data_dir=settings.data_dir)

        start = time.perf_counter()
        run_job(None, str(job_run_id), body, factory=factory)
        job_s = time.perf_counter() - start
    peak = max_rss_mb()

    with factory() as db:
        run = db.get_one(JobRun, job_run_id)
        stored = db.scalar(select(func.count()).select_from(Result).where(
            Result.event_id == uuid.UUID(event_id)))
        placed = db.scalar(select(func.count()).select_from(Result).where(
            Result.event_id == uuid.UUID(event_id), Result.category_place.is_not(None)))
        result = {"rows": rows, "upload_s": upload_s, "job_s": job_s,
                  "status": run.status.value, "mapping_state": mapping_state,
                  "counts": run.counts, "results": stored, "placed": placed,
                  "rss_before_mb": rss_before, "rss_peak_mb": peak}
    engine.dispose()
    print_result(result)










def run_child(url: str, rows: int, path: Path, tenant_id: uuid.UUID, event_id: uuid.UUID,
              batch_size: int) -> dict[str, Any]:
    result = child_result(
        __file__, "--child", str(rows), str(path), str(event_id), "--db", url, "--tenant",
        str(tenant_id), "--batch-size", str(batch_size), what=f"the import of {rows} rows")
    if result["status"] != "completed" or result["results"] != rows:
        raise SystemExit(f"the import of {rows} rows did not store every result: {result}")
    return result




# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--copy-repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    add_smoke_argument(parser)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.smoke:
        args.rows, args.copy_repeat = [40], 1

    admin = server_url(args.url)
    name = bench_db_name(BENCH_DB, args.smoke)
    bench_admin = database_url(admin, name)
    with scratch_database(admin, name, keep=args.keep) as url:
        engine = create_engine(url)
        events: dict[int, uuid.UUID] = {}
        with Session(engine) as db:
            tenant = core_service.create_tenant(db, name="Bench", slug="bench")
            ctx = TenantContext.system(tenant.id, label="bench")
            tenant_id = tenant.id
            for rows in args.rows:
                event = events_service.create_event(db, ctx, data=EventCreate(
                    name=f"Bench {rows}", start_at=datetime(2026, 6, 1, 8, tzinfo=UTC),
                    preferred_timing_identifier=TimingIdentifier.EPID))
                long = events_service.create_category(db, ctx, event_id=event.id,
                                                      data=CategoryCreate(name="10K"))
                short = events_service.create_category(db, ctx, event_id=event.id,
                                                       data=CategoryCreate(name="5K"))
                params = {"event": str(event.id), "tenant": str(tenant_id), "n": rows,
                          "long": str(long.id), "short": str(short.id)}
                raw = db.connection().connection.driver_connection
                raw.execute(SEED_PERSONS, params)
                raw.execute(SEED_EPS, params)
                events[rows] = event.id
            db.execute(text(STAGING))
            db.commit()
        with psycopg.connect(bench_admin, autocommit=True) as conn:
            conn.execute("ANALYZE persons, event_participants")
        engine.dispose()

        measured = []
        with tempfile.TemporaryDirectory(prefix="racehub-bench-files-") as tmp:
            for rows in args.rows:
                path = Path(tmp) / f"results-{rows}.csv"
                write_csv(path, events[rows], rows)
                baseline = copy_from_seconds(bench_admin, path, COPY, args.copy_repeat)
                result = run_child(url, rows, path, tenant_id, events[rows], args.batch_size)
                result["copy_s"], result["mb"] = baseline, path.stat().st_size / 1e6
                measured.append(result)
                counts = ", ".join(f"{k} {v}" for k, v in sorted(result["counts"].items()))
                print(f"  {rows} rows ({result['mb']:.1f} MB, columns "
                      f"{result['mapping_state']}): upload {result['upload_s']:.2f} s, "
                      f"job {result['job_s']:.2f} s; {counts}; placed {result['placed']}",
                      flush=True)
        _summary(measured, args.batch_size)


def _summary(results: list[dict[str, Any]], batch_size: int) -> None:
    print(f"\nbatch size {batch_size}; baseline: COPY of the same CSV into a 6-column "
          "text table (median)")
    print(f"{'rows':>7} {'COPY':>8} {'upload':>8} {'job':>8} {'rows/s':>7} {'ratio':>6} "
          f"{'ratio+up':>8} {'RSS start':>9} {'RSS peak':>8}")
    for r in results:
        print(f"{r['rows']:>7} {r['copy_s'] * 1000:>6.0f}ms {r['upload_s']:>7.2f}s "
              f"{r['job_s']:>7.2f}s {r['rows'] / r['job_s']:>7.0f} "
              f"{r['job_s'] / r['copy_s']:>5.0f}x "
              f"{(r['job_s'] + r['upload_s']) / r['copy_s']:>7.0f}x "
              f"{r['rss_before_mb']:>7.0f}MB {r['rss_peak_mb']:>6.0f}MB")
    if len(results) > 1:
        small, big = results[0], results[-1]
        print(f"peak RSS: {small['rows']} -> {big['rows']} rows: {small['rss_peak_mb']:.0f} -> "
              f"{big['rss_peak_mb']:.0f} MB ({big['rss_peak_mb'] - small['rss_peak_mb']:+.0f} MB)")


if __name__ == "__main__":
    main()
