"""How the participants table pages on a 50k-EP event, against a bare primary-key page.

Seeds one event with ``--participants`` EPs (default 50,000) into a scratch database,
then times one page (50 rows, with the filtered total the table shows) of each view the
event page offers. The baseline, timed in the same run, is the cheapest page Postgres can
serve: 50 EPs read in primary-key order. The ratio says what our filters, joins, sort and
count cost on top of that.

    .venv/bin/python benchmarks/participant_list.py [--url postgresql://...] [--participants N]

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) a database named ``racehub_bench``.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from datetime import datetime

from _common import add_smoke_argument, bench_db_name, scratch_database, server_url, timed
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.events import service
from racehub.events.schemas import EventCreate
from racehub.events.service import ParticipantFilter, ParticipantSort
from racehub.sync import people as sync_people

BENCH_DB = "racehub_bench"
REPEAT = 15  # runs per case (median)




def seed(db: Session, participants: int) -> tuple[uuid.UUID, uuid.UUID]:
    """One tenant, one event, ``participants`` people with realistic-looking names and bibs."""
    tenant = core_service.create_tenant(db, name="Bench", slug="bench")
    ctx = TenantContext.system(tenant.id, label="bench")
    event = service.create_event(db, ctx, data=EventCreate(
        name="Big City Marathon", start_at=datetime(2026, 10, 4, 9, 0), timezone="UTC"))
    tenant_id, event_id = tenant.id, event.id
    db.execute(text("""
        WITH names AS (
          SELECT g,
                 (ARRAY['Anna','Ben','Chloe','David','Emma','Farid','Greta','Hugo','Ines',
                        'Jonas','Karin','Luca','Maya','Noah','Olga','Pablo'])[1 + g % 16] AS first,
                 (ARRAY['Smith','Muller','Rossi','Garcia','Dubois','Novak','Jensen','Silva',
                        'Kowalski','Nagy','Popescu','Horvat','Murphy','Berg','Costa'])
                   [1 + (g / 16) % 15]
                   || '-' || (g % 997) AS last
          FROM generate_series(1, :n) AS g
        ), people AS (
          INSERT INTO persons (id, tenant_id, first_name, last_name, email)
          SELECT gen_random_uuid(), :t, first, last, 'runner' || g || '@example.org' FROM names
          RETURNING id, email
        )
        INSERT INTO event_participants (id, tenant_id, event_id, person_id, bib,
                                        registration_id, status)
        SELECT gen_random_uuid(), :t, :e, id,
               CASE WHEN n % 10 = 0 THEN NULL ELSE n::text END,
               'R' || lpad(n::text, 7, '0'), 'active'
        FROM (SELECT id, substring(email from 'runner([0-9]+)@')::int AS n FROM people) AS p
    """), {"n": participants, "t": tenant_id, "e": event_id})
    # Each EP came from a provider registration (what the API lists as its sources).
    db.execute(text("""
        INSERT INTO synced_records (id, tenant_id, provider, source_ref, ref_is_fallback,
            event_id, participant_id, synced_values, content_hash, last_synced_at,
            created_at, updated_at)
        SELECT gen_random_uuid(), :t, 'RUNSIGNUP', registration_id, false, event_id, id,
               '{}', repeat('0', 64), now(), now(), now()
        FROM event_participants WHERE event_id = :e
    """), {"t": tenant_id, "e": event_id})
    db.execute(text("ANALYZE"))
    db.commit()
    return tenant_id, event_id




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="keep the database to EXPLAIN")
    add_smoke_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.participants = 60
    admin = server_url(args.url)
    with scratch_database(admin, bench_db_name(BENCH_DB, args.smoke), keep=args.keep) as url:
        engine = create_engine(url)
        with Session(engine) as db:
            tenant_id, event_id = seed(db, args.participants)
            ctx = TenantContext.system(tenant_id, label="bench")

            def page(sort: ParticipantSort = ParticipantSort.LAST_NAME, q: str | None = None,
                     deep: bool = False) -> Callable[[], object]:
                cursor = None
                if deep:  # the cursor of a page halfway down the list
                    cursor = _cursor_at(db, ctx, event_id, sort, args.participants // 2)

                def run() -> object:
                    return service.list_participants(
                        db, ctx, event_id=event_id, flt=ParticipantFilter(q=q), sort=sort,
                        cursor=cursor, limit=50)
                return run

            def with_sources() -> object:
                # What GET /api/events/{id}/participants does: the page, then its entries'
                # provider registrations in one query.
                rows, _, _ = service.list_participants(db, ctx, event_id=event_id, limit=50,
                                                       with_total=False)
                return sync_people.sources_of(db, ctx,
                                              participant_ids=[r.id for r in rows])

            def without_sources() -> object:
                return service.list_participants(db, ctx, event_id=event_id, limit=50,
                                                 with_total=False)

            baseline, _ = timed(lambda: db.execute(text(
                "SELECT * FROM event_participants ORDER BY id LIMIT 51")).all(), REPEAT)
            cases = {
                "by last name, first page": page(),
                "by last name, halfway": page(deep=True),
                "by bib, first page": page(ParticipantSort.BIB),
                "by bib, halfway": page(ParticipantSort.BIB, deep=True),
                "search a name ('rossi-4')": page(q="rossi-4"),
                "search a bib ('12345')": page(q="12345"),
                "search a registration id": page(q="R0012345"),
                "API page, no total": without_sources,
                "API page + its sources": with_sources,
            }
            print(f"{args.participants} participants; baseline (50 EPs by primary key): "
                  f"{baseline * 1000:.2f} ms")
            for name, fn in cases.items():
                took, _ = timed(fn, REPEAT)
                print(f"  {name:<28} {took * 1000:8.2f} ms  ratio {took / baseline:6.1f}x")
        engine.dispose()


def _cursor_at(db: Session, ctx: TenantContext, event_id: uuid.UUID, sort: ParticipantSort,
               position: int) -> str | None:
    cursor = None
    for _ in range(position // 500):
        _, cursor, _ = service.list_participants(db, ctx, event_id=event_id, sort=sort,
                                                 cursor=cursor, limit=500)
    return cursor


if __name__ == "__main__":
    main()
