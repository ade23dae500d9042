"""A list export of 1M rows (the race numbers view) against Postgres' own COPY.

Seeds two number types into a scratch database: one with ``--small`` race numbers
(default 100,000), one with ``--rows`` (default 1,000,000); every tenth has a tag. Then
times, in the same run:

* the baseline: ``COPY (the export's own SELECT, in the export's order) TO STDOUT WITH
  (FORMAT csv, HEADER)`` read to the end by psycopg;
* the export job: ``exports.service.create_export`` then the job body through
  ``jobs.runner.run_job`` (counting, keyset pages of 1,000 rows, CSV with BOM and
  neutralized cells, stored in a local export folder), as a worker runs it.

It prints each median and the ratio (goal <= 2x), then the peak RSS of a fresh
subprocess running one export of the small and of the big number type (goal: flat).

    .venv/bin/python benchmarks/export_list.py [--url postgresql://...] [--rows N]

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) a database named ``racehub_bench_export``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    add_smoke_argument,
    bench_db_name,
    child_result,
    print_result,
    scratch_database,
    server_url,
    timed,
    vm_hwm_kb,
)
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.db.session import libpq_url
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.schemas import ExportCreate
from racehub.exports.views import get_view
from racehub.jobs.runner import run_job
from racehub.settings import Settings

BENCH_DB = "racehub_bench_export"
COLUMNS = ["sequence", "number", "number_type", "tag", "state"]




def seed_numbers(db: Session, tenant_id: uuid.UUID, name: str, rows: int) -> uuid.UUID:
    number_type_id = uuid.uuid4()
    db.execute(text("INSERT INTO number_types (id, tenant_id, name) VALUES (:id, :t, :n)"),
               {"id": number_type_id, "t": tenant_id, "n": name})
    db.execute(text("""
        INSERT INTO tags (id, tenant_id, code)
        SELECT gen_random_uuid(), :t, :n || '-E' || lpad(g::text, 9, '0')
        FROM generate_series(10, :rows, 10) g"""), {"t": tenant_id, "n": name, "rows": rows})
    db.execute(text("""
        INSERT INTO race_numbers (id, tenant_id, number_type_id, sequence, number, state, tag_id,
                                  created_at)
        SELECT gen_random_uuid(), :t, :nt, g, lpad(g::text, 7, '0'),
               (ARRAY['MANUFACTURED','ASSIGNED','RETIRED','LOST'])[1 + g % 4]::race_number_state,
               CASE WHEN g % 10 = 0 THEN (SELECT id FROM tags WHERE tenant_id = :t
                    AND code = :n || '-E' || lpad(g::text, 9, '0')) END,
               now() - interval '1 day'
        FROM generate_series(1, :rows) g"""),
        {"t": tenant_id, "nt": number_type_id, "n": name, "rows": rows})
    return number_type_id




def copy_sql(ctx: TenantContext, number_type_id: uuid.UUID) -> str:
    """The SELECT the export pages through, whole and in the same order, as a COPY."""
    view = get_view("race_numbers")
    vq = view.query(ctx, view.parse_filters({"numberTypeId": str(number_type_id)}),
                    "sequence", False, datetime.now(UTC))
    columns = service.select_columns([view.column(c) for c in COLUMNS], as_text=True)
    stmt = vq.stmt.with_only_columns(*columns).order_by(*vq.key.columns)
    compiled = stmt.compile(dialect=postgresql.dialect(),
                            compile_kwargs={"literal_binds": True})
    return f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER)"


def export_once(factory: sessionmaker[Session], settings: Settings, ctx: TenantContext,
                number_type_id: uuid.UUID) -> int:
    """One export as the worker runs it; returns the stored file's size."""
    with factory() as db:
        exp = service.create_export(db, ctx, settings=settings, data=ExportCreate(
            view="race_numbers", filters={"numberTypeId": str(number_type_id)},
            columns=COLUMNS))
        db.commit()
        export_id, job_run_id = exp.id, exp.job_run_id

    def body(handle, session, job_ctx, **params):  # type: ignore[no-untyped-def]
        service.run_export(handle, session, job_ctx, export_id=params["export_id"],
                           settings=settings)

    run_job(None, str(job_run_id), body, factory=factory)
    with factory() as db:
        exp = db.get(Export, export_id)
        assert exp is not None and exp.size_bytes is not None, "the export did not complete"
        return exp.size_bytes




def rss_child(url: str, tenant_id: str, number_type_id: str, data_dir: str) -> None:
    """In a fresh process: peak RSS before and after one export."""
    engine = create_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    settings = Settings(database_url=url, data_dir=Path(data_dir), log_level="WARNING")
    ctx = TenantContext.system(uuid.UUID(tenant_id), label="bench")
    from racehub.jobs.queue import load_tasks

    load_tasks()
    with factory() as db:
        db.execute(text("SELECT 1"))
    before, hwm_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, vm_hwm_kb()
    size = export_once(factory, settings, ctx, uuid.UUID(number_type_id))
    print_result({"before_kb": before, "hwm_before_kb": hwm_before, "bytes": size,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "hwm_kb": vm_hwm_kb()})


def measure_rss(url: str, tenant_id: uuid.UUID, number_type_id: uuid.UUID,
                data_dir: str) -> dict[str, Any]:
    return child_result(__file__, "--rss-child", url, str(tenant_id), str(number_type_id),
                        data_dir, what="the memory measurement")


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--rss-child":
        rss_child(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[1000],
                        help="keyset page sizes to time (RACEHUB_EXPORT_BATCH_SIZE)")
    add_smoke_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.small, args.repeat, args.batch = 60, 20, 1, [25]
    admin = server_url(args.url)
    with scratch_database(admin, bench_db_name(BENCH_DB, args.smoke)) as url:
        engine = create_engine(url)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with factory() as db:
            tenant = core_service.create_tenant(db, name="Bench", slug="bench")
            ctx = TenantContext.system(tenant.id, label="bench")
            small = seed_numbers(db, tenant.id, "Small", args.small)
            big = seed_numbers(db, tenant.id, "Big", args.rows)
            db.commit()
            db.execute(text("ANALYZE"))
            db.commit()
        sql = copy_sql(ctx, big)

        def baseline() -> int:
            size = 0
            with (psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cur,
                  cur.copy(sql) as copy):
                for data in copy:
                    size += len(data)
            return size

        with tempfile.TemporaryDirectory(prefix="racehub-bench-export-") as data_dir:
            settings = Settings(database_url=url, data_dir=Path(data_dir), log_level="WARNING")
            from racehub.core.logging import configure_logging

            configure_logging("WARNING", True)
            base, base_size = timed(baseline, args.repeat)
            print(f"{args.rows:,} race numbers, medians of {args.repeat} runs")
            print(f"  COPY (same SELECT) TO STDOUT  {base * 1000:9.1f} ms  {base_size:>12,} B")
            for batch in args.batch:
                paged = settings.model_copy(update={"export_batch_size": batch})
                job, job_size = timed(lambda s=paged: export_once(factory, s, ctx, big),
                                      args.repeat)
                print(f"  export job, pages of {batch:<6,}  {job * 1000:9.1f} ms  "
                      f"{job_size:>12,} B  ratio {job / base:.2f}x")
            for n, number_type_id in ((args.small, small), (args.rows, big)):
                r = measure_rss(url, tenant.id, number_type_id, data_dir)
                print(f"  peak RSS exporting {n:>9,} rows: ru_maxrss "
                      f"{r['peak_kb'] / 1024:6.1f} MiB (before {r['before_kb'] / 1024:.1f});"
                      f" VmHWM +{(r['hwm_kb'] - r['hwm_before_kb']) / 1024:.1f} MiB")
        engine.dispose()


if __name__ == "__main__":
    main()
