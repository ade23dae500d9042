"""The E11 timing-system CSV export of a 100k-EP event, against Postgres' own COPY.

Seeds two events (``--small`` and ``--participants`` EPs, default 10,000 and 100,000)
with names, birth dates, genders, categories, teams and places into a scratch database,
then times, in the same run:

* the baseline: ``COPY (the export's own SELECT) TO STDOUT WITH (FORMAT csv, HEADER)``
  read to the end by psycopg: the cheapest way Postgres can hand over the same bytes;
* the service: ``timing.service.start_export`` + ``export_csv`` consumed and encoded
  to UTF-8, as the endpoint streams it;
* the endpoint: ``GET /api/events/{id}/timing-export?format=csv`` through the ASGI app
  (in-process TestClient, API token), body read to the end.

It prints each median and its ratio to the baseline (goal <= 1.5x), then the peak RSS
(``resource.getrusage``) of a fresh subprocess exporting the small and the big event
through the service: with a server-side cursor read in batches it should not grow with
the event.

    .venv/bin/python benchmarks/timing_export.py [--url postgresql://...] [--participants N]

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) a database named ``racehub_bench_timing``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import uuid
from datetime import datetime
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
from racehub.core.models import Role
from racehub.core.schemas import ApiTokenCreate
from racehub.db.session import libpq_url
from racehub.events import service as events_service
from racehub.events.schemas import CategoryCreate, EventCreate
from racehub.timing import service

BENCH_DB = "racehub_bench_timing"




def seed_event(db: Session, ctx: TenantContext, name: str, participants: int) -> uuid.UUID:
    event = events_service.create_event(db, ctx, data=EventCreate(
        name=name, start_at=datetime(2026, 10, 4, 9, 0), timezone="Europe/Paris"))
    for cat in ("5K", "10K", "Half Marathon", "Marathon"):
        events_service.create_category(db, ctx, event_id=event.id,
                                       data=CategoryCreate(name=cat))
    db.flush()
    db.execute(text("""
        WITH names AS (
          SELECT g,
                 (ARRAY['Anna','Ben','Chloé','David','Emma','Farid','Greta','Hugo','Inès',
                        'Jonas','Karin','Luca','Maya','Noah','Olga','Pablo'])[1 + g % 16] AS first,
                 (ARRAY['Smith','Müller','Rossi','García','Dubois','Novak','Jensen',
                        'Silva','Kowalski','Nagy','Popescu','Horvat','Murphy','Berg',
                        'Costa'])[1 + (g / 16) % 15] || '-' || (g % 997) AS last
          FROM generate_series(1, :n) AS g
        ), people AS (
          INSERT INTO persons (id, tenant_id, first_name, last_name, email, birth_date, gender,
                               city, region, country)
          SELECT gen_random_uuid(), :t, first, last, 'runner' || g || '@example.org',
                 date '1950-01-01' + (g * 37 % 20000), (ARRAY['M','F','X','U'])[1 + g % 4]::gender,
                 (ARRAY['Lyon','Paris','Annecy','Genève','Torino'])[1 + g % 5],
                 (ARRAY['ARA','IDF','GE','PIE'])[1 + g % 4], (ARRAY['FRA','CHE','ITA'])[1 + g % 3]
          FROM names
          RETURNING id, email
        )
        INSERT INTO event_participants (id, tenant_id, event_id, person_id, bib, registration_id,
                                        team, category_id, status)
        SELECT gen_random_uuid(), :t, :e, p.id,
               CASE WHEN n % 10 = 0 THEN NULL ELSE n::text END,
               'R' || lpad(n::text, 7, '0'),
               CASE WHEN n % 3 = 0 THEN 'Harriers ' || (n % 50) END,
               (SELECT id FROM categories WHERE event_id = :e ORDER BY name OFFSET n % 4 LIMIT 1),
               CASE WHEN n % 50 = 0 THEN 'withdrawn' ELSE 'active' END::participant_status
        FROM (SELECT id, substring(email from 'runner([0-9]+)@')::int AS n FROM people) AS p
    """), {"n": participants, "t": ctx.tenant_id, "e": event.id})
    return event.id




def copy_sql(ctx: TenantContext, plan: service.ExportPlan) -> str:
    stmt = service.export_query(ctx, event_id=plan.event_id, mode=plan.mode,
                                on_date=plan.event_date)
    compiled = stmt.compile(dialect=postgresql.dialect(),
                            compile_kwargs={"literal_binds": True})
    return f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER)"


def export_via_service(factory: sessionmaker[Session], ctx: TenantContext,
                       event_id: uuid.UUID) -> int:
    size = 0
    with factory() as db:
        plan = service.start_export(db, ctx, event_id=event_id)
        db.commit()
        for chunk in service.export_csv(db, ctx, plan=plan):
            size += len(chunk.encode("utf-8"))
        service.record_export(db, ctx, plan=plan, completed=True)
        db.commit()
    return size




def rss_child(url: str, tenant_id: str, event_id: str) -> None:
    """Run in a fresh process: peak RSS before and after one export through the service."""
    engine = create_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    ctx = TenantContext.system(uuid.UUID(tenant_id), label="bench")
    with factory() as db:  # connect and load everything an export touches, but export nothing
        db.execute(text("SELECT 1"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_before = vm_hwm_kb()
    size = export_via_service(factory, ctx, uuid.UUID(event_id))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print_result({"before_kb": before, "peak_kb": after, "bytes": size,
                  "hwm_before_kb": hwm_before, "hwm_kb": vm_hwm_kb()})


def measure_rss(url: str, tenant_id: uuid.UUID, event_id: uuid.UUID) -> dict[str, Any]:
    return child_result(__file__, "--rss-child", url, str(tenant_id), str(event_id),
                        what="the memory measurement")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--rss-child":
        rss_child(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    add_smoke_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.participants, args.small, args.repeat = 60, 20, 1
    admin = server_url(args.url)
    with scratch_database(admin, bench_db_name(BENCH_DB, args.smoke)) as url:
        engine = create_engine(url)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with factory() as db:
            tenant = core_service.create_tenant(db, name="Bench", slug="bench")
            ctx = TenantContext.system(tenant.id, label="bench")
            small = seed_event(db, ctx, "Small 10K", args.small)
            big = seed_event(db, ctx, "Big City Marathon", args.participants)
            _, token = core_service.create_api_token(
                db, ctx, data=ApiTokenCreate(name="bench", role=Role.RESULTS_OFFICER))
            db.commit()
            db.execute(text("ANALYZE"))
            db.commit()
            plan = service.start_export(db, ctx, event_id=big)
            sql = copy_sql(ctx, plan)
            db.rollback()

        def baseline() -> int:
            size = 0
            with (psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cur,
                  cur.copy(sql) as copy):
                for data in copy:
                    size += len(data)
            return size

        from fastapi.testclient import TestClient

        from racehub.app import create_app
        from racehub.settings import Settings

        app = create_app(Settings(database_url=url, log_json=True, log_level="WARNING"),
                         session_factory=factory)
        client = TestClient(app, base_url="http://bench")

        def endpoint() -> int:
            size = 0
            with client.stream("GET", f"/api/events/{big}/timing-export",
                               params={"format": "csv"},
                               headers={"Authorization": f"Bearer {token}"}) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    size += len(chunk)
            return size

        base, base_size = timed(baseline, args.repeat)
        svc, svc_size = timed(lambda: export_via_service(factory, ctx, big), args.repeat)
        api, api_size = timed(endpoint, args.repeat)
        print(f"{args.participants} EPs (2% withdrawn), medians of {args.repeat} runs")
        print(f"  COPY (same SELECT) TO STDOUT  {base * 1000:8.1f} ms  {base_size:>11,} B")
        print(f"  service export_csv            {svc * 1000:8.1f} ms  {svc_size:>11,} B"
              f"  ratio {svc / base:.2f}x")
        print(f"  GET .../timing-export (ASGI)  {api * 1000:8.1f} ms  {api_size:>11,} B"
              f"  ratio {api / base:.2f}x")
        rss = {n: measure_rss(url, ctx.tenant_id, e) for n, e in ((args.small, small),
                                                              (args.participants, big))}
        for n, r in rss.items():
            print(f"  peak RSS exporting {n:>7,} EPs: ru_maxrss {r['peak_kb'] / 1024:6.1f} MiB"
                  f" (before {r['before_kb'] / 1024:.1f}); VmHWM {r['hwm_kb'] / 1024:6.1f} MiB"
                  f" (before {r['hwm_before_kb'] / 1024:.1f},"
                  f" +{(r['hwm_kb'] - r['hwm_before_kb']) / 1024:.1f} MiB)")
        client.close()
        engine.dispose()


if __name__ == "__main__":
    main()
