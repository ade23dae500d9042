"""A ChronoTrack Live test server speaking the shapes in PROVIDERS.md (mount point ``/api``).

Deterministic from ``seed``: events in several time zones, each with a few races, entries
(a few hundred to 50k per race) and finish results. Every value is a string, as
ChronoTrack sends them. Auth by ``client_id`` + ``user_id`` + ``user_pass`` (SHA-1 hex of
the password) query parameters, or HTTP Basic ``user:password`` plus ``client_id``;
failures are non-2xx with a plain-text body (the real body is undocumented). Lists page
by ``page``/``size`` with the ``X-Ctlive-*`` headers.

Assumed (see ``mapping.ASSUMED``; served exactly as the adapter assumes): the largest page
size, the ``modified_after`` filter and ``entry_modified_time``, event time zone and
location fields, race fields, the entry upload ``POST /race/{id}/entry`` and its reply
(a row with ``entry_status`` DNS withdraws an entry: it is kept, marked DNS, and its bib may
go to another entry; a row naming an unknown external id without the athlete's names is
refused).

``real_shapes=True`` (the demo's default) adds what has been seen in real data: an
athlete's sex may be ``"U"`` (unknown), in entries and results. No real entry list has
been seen: beyond PROVIDERS.md the entry rows stay assumed in both modes.

Faults (``Faults.arm(name, times, **options)``), besides the generic HTTP ones:
- ``malformed_rows``: ``rows=[i, ...]`` corrupts those rows of the next entry page.
- ``change_between_pages``: after the next entry page is served, the first entry served
  is removed (every later row moves up one page slot) and the first row of the following
  page is renamed.
- ``repeat_page``: the next list requests ignore ``page`` and serve the first page again
  (headers included).

Control route (the demo's and the browser tests' way to run the race; not ChronoTrack's
API): ``POST /_sim/races/{race_id}/finish`` makes the entries racehub uploaded to that race
that have no result yet cross the line (:meth:`ChronoTrackSimulator.finish`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from racehub.providers.chronotrack import mapping as m
from racehub.providers.simulator import Faults, simulator_app

BASE_PATH = "/api"
DEMO_CREDENTIALS: dict[str, str] = {"client_id": "sim-ct-client", "user_id": "timer@example.org",
                                    "user_pass": "sim-ct-password"}

FIRST_NAMES = ["Ava", "Ben", "Chloé", "Diego", "Emma", "Finn", "Grace", "Hiro", "Isla", "Jamal",
               "Kai", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Zoë"]
LAST_NAMES = ["Anders", "Brooks", "Castillo", "Dubois", "Evans", "Fischer", "García", "Hughes",
              "Jensen", "Kowalski", "López", "Murphy", "Nguyen", "O'Brien", "Patel", "Tanaka"]
PLACES = [("Minneapolis", "MN", "US", "America/Chicago"),
          ("Salt Lake City", "UT", "US", "America/Denver"),
          ("Seattle", "WA", "US", "America/Los_Angeles"),
          ("Toronto", "ON", "CA", "America/Toronto")]
RACES = [("5K", "5 km"), ("10K", "10 km"), ("Half Marathon", "21.0975 km")]
# Data is laid out relative to this instant so a seed always gives the same bytes.
EPOCH = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def _s(value: Any) -> str:
    return "" if value is None else str(value)


class ChronoTrackSimulator:
    def __init__(
        self,
        *,
        seed: int = 1,
        events: int = 2,
        races_per_event: int = 2,
        entries_per_race: int = 300,
        client_id: str = DEMO_CREDENTIALS["client_id"],
        user_id: str = DEMO_CREDENTIALS["user_id"],
        password: str = DEMO_CREDENTIALS["user_pass"],
        faults: Faults | None = None,
        results_per_race: int = 50,
        paging_headers: bool = True,
        real_shapes: bool = False,
    ) -> None:
        self.client_id = client_id
        self.user_id = user_id
        self.password = password
        self.faults = faults or Faults()
        # Off: answer like a proxy that strips the X-Ctlive-* headers (clients then stop on
        # a short page).
        self.paging_headers = paging_headers
        self.real_shapes = real_shapes
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.events: dict[int, dict[str, str]] = {}
        self.races: dict[int, dict[str, str]] = {}
        self.event_of_race: dict[int, int] = {}
        self.entries: dict[int, list[dict[str, str]]] = {}  # race id -> rows by entry id
        self.results: dict[int, list[dict[str, str]]] = {}  # race id -> finish rows
        self.uploads: list[dict[str, Any]] = []
        self.no_shows: set[str] = set()  # entry ids finish() decided never started
        self._next_entry = 40_000_001
        self._clock = int(EPOCH.timestamp())
        self._build(events, races_per_event, entries_per_race, results_per_race)

    # -- seeded data ----------------------------------------------------------------------
    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _build(self, events: int, races_per_event: int, per_race: int,
               results_per_race: int) -> None:
        for e in range(events):
            event_id = 31_000 + e * 7
            city, region, country, zone = PLACES[e % len(PLACES)]
            day = (EPOCH + timedelta(days=21 + 14 * e)).astimezone(ZoneInfo(zone)).date()
            start = datetime(day.year, day.month, day.day, 7, 0, tzinfo=ZoneInfo(zone))
            self.events[event_id] = {
                "event_id": _s(event_id), "event_name": f"{city} Fall Classic {day.year}",
                "event_start_time": _s(int(start.timestamp())),
                "event_end_time": _s(int((start + timedelta(hours=7)).timestamp())),
                "event_timezone": zone, "location_city": city, "location_region": region,
                "location_country": country,
                "event_modified_time": _s(int((EPOCH - timedelta(days=e)).timestamp())),
            }
            for r in range(races_per_event):
                race_id = 81_000 + e * 10 + r
                name, distance = RACES[r % len(RACES)]
                self.races[race_id] = {
                    "race_id": _s(race_id), "race_name": name, "race_course_distance": distance,
                    "race_planned_start_time": _s(int((start + timedelta(minutes=30 * r))
                                                      .timestamp())),
                }
                self.event_of_race[race_id] = event_id
                self.entries[race_id] = [self._new_entry(race_id) for _ in range(per_race)]
                self.results[race_id] = self._seed_results(race_id, results_per_race)

    def _new_entry(self, race_id: int) -> dict[str, str]:
        rng = self.rng
        entry_id = self._next_entry
        self._next_entry += rng.randint(1, 3)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        age = rng.randint(12, 79)
        birth = (EPOCH - timedelta(days=365 * age + rng.randint(0, 364))).date()
        city, region, _, _ = rng.choice(PLACES)
        modified = EPOCH - timedelta(minutes=rng.randint(60, 60 * 24 * 120))
        status = rng.choice(["CONF", "CONF", "CONF", "UNCONF"])
        sex = rng.choice("MF")  # drawn in both modes: the same seed, the same people
        return {
            "entry_id": _s(entry_id), "entry_bib": _s(1000 + entry_id % 50_000),
            "entry_status": status,
            "entry_race_age": _s(age), "race_id": _s(race_id),
            "race_name": self.races[race_id]["race_name"],
            "athlete_first_name": first, "athlete_last_name": last,
            "athlete_sex": "U" if self.real_shapes and entry_id % 7 == 0 else sex,
            "athlete_birthdate": birth.isoformat(),
            "athlete_email": f"{first.lower()}.{entry_id}@example.org",
            "location_city": city, "location_region": region,
            "entry_external_id": "", "entry_modified_time": _s(int(modified.timestamp())),
        }

    def _seed_results(self, race_id: int, count: int) -> list[dict[str, str]]:
        rows = []
        for rank, entry in enumerate(self.entries[race_id][:count], start=1):
            chip = timedelta(seconds=1080 + rank * 13.5)
            rows.append(self._result_row(entry, rank, chip, chip + timedelta(seconds=6)))
        return rows

    @staticmethod
    def _result_row(entry: dict[str, str], rank: int, chip: timedelta,
                    gun: timedelta) -> dict[str, str]:
        return {
            "results_entry_id": entry["entry_id"], "results_bib": entry["entry_bib"],
            "results_first_name": entry["athlete_first_name"],
            "results_last_name": entry["athlete_last_name"],
            "results_sex": entry["athlete_sex"], "results_age": entry["entry_race_age"],
            "results_race_name": entry["race_name"], "results_interval_name": "Finish",
            "results_time": m.format_duration(chip), "results_gun_time": m.format_duration(gun),
            "results_rank": _s(rank), "results_primary_bracket_name": "Overall",
        }

    # -- changes (tests and the demo use these) ----------------------------------------------
    def find(self, entry_id: int | str) -> dict[str, str] | None:
        wanted = str(entry_id)
        for rows in self.entries.values():
            for row in rows:
                if row["entry_id"] == wanted:
                    return row
        return None

    def add_entry(self, race_id: int) -> dict[str, str]:
        with self.lock:
            row = self._new_entry(race_id)
            row["entry_modified_time"] = _s(self._tick())
            self.entries[race_id].append(row)
            return row

    def modify(self, entry_id: int | str, **changes: str) -> dict[str, str]:
        with self.lock:
            row = self.find(entry_id)
            if row is None:
                raise KeyError(entry_id)
            row.update(changes)
            row["entry_modified_time"] = _s(self._tick())
            return row

    def remove(self, entry_id: int | str) -> None:
        with self.lock:
            for rows in self.entries.values():
                for i, row in enumerate(rows):
                    if row["entry_id"] == str(entry_id):
                        del rows[i]
                        return
            raise KeyError(entry_id)

    def finish(self, race_id: int) -> dict[str, int]:
        """The entries racehub uploaded to the race (those with an external id) that are not
        withdrawn (DNS) and have no result yet cross the line, as ChronoTrack records them:
        most finish (a chip time fitting the race's distance at 3 to 10 min/km, the gun time
        up to two minutes more, and on races from 10 km a "Halfway" split row), about one in
        twenty does not (``results_time`` "DNF") and about one in twenty-five never starts
        (no row at all). Ranks are then given again by chip time over the race's finish
        rows, seeded ones included. Returns the counts of what happened."""
        counts = {"finished": 0, "dnf": 0, "dns": 0}
        external = str(m.ASSUMED["entry_external_field"])
        withdrawn = m.ASSUMED["entry_withdrawn_status"]
        finish = str(m.ASSUMED["finish_interval"])
        with self.lock:
            rows = self.results[race_id]
            have = {r["results_entry_id"] for r in rows}
            km = _distance_km(self.races[race_id].get("race_course_distance", ""))
            for entry in self.entries[race_id]:
                if (not entry.get(external) or entry.get("entry_status") == withdrawn
                        or entry["entry_id"] in have or entry["entry_id"] in self.no_shows):
                    continue
                draw = self.rng.random()
                if draw < 0.04:
                    counts["dns"] += 1
                    self.no_shows.add(entry["entry_id"])
                    continue
                if draw < 0.09:
                    counts["dnf"] += 1
                    row = self._result_row(entry, 0, timedelta(0), timedelta(0))
                    row.update(results_time="DNF", results_gun_time="", results_rank="")
                    rows.append(row)
                    continue
                pace_s = min(600.0, max(180.0, self.rng.gauss(330, 60)))
                chip = timedelta(seconds=round(km * pace_s, 1))
                gun = chip + timedelta(seconds=self.rng.randint(0, 120))
                counts["finished"] += 1
                if km >= 10:
                    split = self._result_row(entry, 0, chip / 2, gun / 2)
                    split.update(results_interval_name="Halfway", results_rank="")
                    rows.append(split)
                rows.append(self._result_row(entry, 0, chip, gun))
            finishers = [r for r in rows if r["results_interval_name"] == finish
                         and r["results_time"] not in ("", "DNF")]
            finishers.sort(key=lambda r: m.parse_duration(r["results_time"], "results_time")
                           or timedelta(0))
            for rank, row in enumerate(finishers, start=1):
                row["results_rank"] = _s(rank)
        return counts

    async def sim_finish(self, request: Request) -> Response:
        """POST /_sim/races/{race_id}/finish: see :meth:`finish`."""
        race_id = self._id(request, "race_id", self.races)
        if isinstance(race_id, Response):
            return race_id
        return JSONResponse(self.finish(race_id))

    # -- HTTP -------------------------------------------------------------------------------
    def _auth(self, request: Request) -> Response | None:
        q = request.query_params
        if q.get("format") != "json" and not request.url.path.endswith(".json"):
            # The real default is XML: a client that forgets format=json cannot read it.
            return Response("<response><error>format</error></response>",
                            media_type="application/xml")
        if q.get("client_id") != self.client_id:
            return Response("Invalid client_id", status_code=401)
        user, password_hash = q.get("user_id"), q.get("user_pass")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return Response("Malformed Basic credentials", status_code=401)
            password_hash = hashlib.sha1(password.encode()).hexdigest()
        expected = hashlib.sha1(self.password.encode()).hexdigest()
        if user != self.user_id or password_hash != expected:
            return Response("Invalid user credentials", status_code=401)
        return None

    def _paged(self, request: Request, wrapper: str, rows: list[dict[str, str]],
               *, faulty: bool = False) -> Response:
        try:
            page = max(1, int(request.query_params.get("page") or 1))
            size = int(request.query_params.get("size") or m.ASSUMED["default_page_size"])
        except ValueError:
            return Response("page and size must be whole numbers", status_code=400)
        size = max(1, min(size, int(m.ASSUMED["max_page_size"])))
        if self.faults.take("repeat_page") is not None:
            page = 1
        modified_after = request.query_params.get(str(m.ASSUMED["since_param"]))
        if modified_after:
            field = str(m.ASSUMED["entry_modified_field"])
            rows = [r for r in rows if int(r.get(field) or 0) >= int(modified_after)]
        total = len(rows)
        chunk = rows[(page - 1) * size: page * size]
        if faulty and (malformed := self.faults.take("malformed_rows")) is not None:
            chunk = [dict(r) for r in chunk]  # corrupt copies only
            for index in malformed.get("rows", [0]):
                if 0 <= index < len(chunk):
                    _corrupt(chunk, index)
        if faulty and chunk and page * size < total and (
                self.faults.take("change_between_pages") is not None):
            following = rows[page * size]
            following["athlete_last_name"] += "-Changed"
            following["entry_modified_time"] = _s(self._tick())
            self.remove(chunk[0]["entry_id"])
        pages = -(-total // size)
        headers = {m.HEADER_ROW_COUNT: str(total), m.HEADER_PAGE_COUNT: str(pages),
                   m.HEADER_PAGE_SIZE: str(size), m.HEADER_CURRENT_PAGE: str(page)}
        return JSONResponse({wrapper: chunk}, headers=headers if self.paging_headers else None)

    def _id(self, request: Request, name: str, known: dict[int, Any]) -> int | Response:
        try:
            value = int(request.path_params[name])
        except ValueError:
            return Response(f"Invalid {name}", status_code=400)
        if value not in known:
            return Response(f"{name} {value} not found", status_code=404)
        return value

    async def events_list(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return self._paged(request, m.WRAP_EVENTS, [self.events[k] for k in sorted(self.events)])

    async def event_get(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        event_id = self._id(request, "event_id", self.events)
        if isinstance(event_id, Response):
            return event_id
        return JSONResponse({m.WRAP_EVENTS: self.events[event_id]})

    async def event_races(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        event_id = self._id(request, "event_id", self.events)
        if isinstance(event_id, Response):
            return event_id
        races = [self.races[r] for r in sorted(self.races) if self.event_of_race[r] == event_id]
        return self._paged(request, m.WRAP_EVENT_RACES, races)

    def _event_entries(self, event_id: int) -> list[dict[str, str]]:
        rows = [row for race_id, rows in self.entries.items()
                if self.event_of_race[race_id] == event_id for row in rows]
        return sorted(rows, key=lambda r: int(r["entry_id"]))

    async def event_entries(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        event_id = self._id(request, "event_id", self.events)
        if isinstance(event_id, Response):
            return event_id
        with self.lock:
            return self._paged(request, m.WRAP_EVENT_ENTRIES, self._event_entries(event_id),
                               faulty=True)

    async def race_entries(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        race_id = self._id(request, "race_id", self.races)
        if isinstance(race_id, Response):
            return race_id
        with self.lock:
            return self._paged(request, m.WRAP_RACE_ENTRIES, self.entries[race_id], faulty=True)

    async def event_results(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        event_id = self._id(request, "event_id", self.events)
        if isinstance(event_id, Response):
            return event_id
        rows = [row for race_id, rows in sorted(self.results.items())
                if self.event_of_race[race_id] == event_id for row in rows]
        return self._paged(request, m.WRAP_EVENT_RESULTS, rows)

    async def race_results(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        race_id = self._id(request, "race_id", self.races)
        if isinstance(race_id, Response):
            return race_id
        return self._paged(request, m.WRAP_RACE_RESULTS, self.results[race_id])

    async def entry_upload(self, request: Request) -> Response:
        """Assumed: ``{"race_entry": [rows]}``; upserts on the external id."""
        if (denied := self._auth(request)) is not None:
            return denied
        race_id = self._id(request, "race_id", self.races)
        if isinstance(race_id, Response):
            return race_id
        try:
            rows = (await request.json())[str(m.ASSUMED["entry_upload_wrapper"])]
            if not isinstance(rows, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return Response("Body must be {\"race_entry\": [...]}", status_code=400)
        external = str(m.ASSUMED["entry_external_field"])
        created = updated = 0
        errors: list[dict[str, str]] = []
        with self.lock:
            self.uploads.append({"race_id": race_id, "rows": rows})
            for row in rows:
                ref = str(row.get(external) or "") if isinstance(row, dict) else ""
                if not ref:
                    errors.append({external: "", "error": "missing external id"})
                    continue
                if any(not isinstance(v, str) for v in row.values()):
                    errors.append({external: ref, "error": "values must be strings"})
                    continue
                bib = row.get("entry_bib")
                existing = next((e for e in self.entries[race_id] if e[external] == ref), None)
                withdrawn = m.ASSUMED["entry_withdrawn_status"]
                if bib and any(e["entry_bib"] == bib and e is not existing
                               and e.get("entry_status") != withdrawn
                               for e in self.entries[race_id]):
                    errors.append({external: ref, "field": "entry_bib",
                                   "error": f"bib {bib} is already in use"})
                    continue
                if existing is None and not (row.get("athlete_first_name")
                                             or row.get("athlete_last_name")):
                    # A withdrawal (status only) of an entry this race does not hold.
                    errors.append({external: ref, "field": external,
                                   "error": f"no entry with external id {ref} to update"})
                    continue
                if existing is None:
                    existing = self._new_entry(race_id)
                    self.entries[race_id].append(existing)
                    created += 1
                else:
                    updated += 1
                existing.update({k: v for k, v in row.items() if k in existing})
                existing["entry_modified_time"] = _s(self._tick())
        return JSONResponse({str(m.ASSUMED["entry_upload_reply_created"]): created,
                             str(m.ASSUMED["entry_upload_reply_updated"]): updated,
                             str(m.ASSUMED["entry_upload_reply_errors"]): errors})

    def routes(self) -> list[Route]:
        return [
            Route("/event", self.events_list),
            Route("/event/{event_id}", self.event_get),
            Route("/event/{event_id}/race", self.event_races),
            Route("/event/{event_id}/entry", self.event_entries),
            Route("/race/{race_id}/entry", self.race_entries, methods=["GET"]),
            Route("/" + str(m.ASSUMED["entry_upload_path"]), self.entry_upload,
                  methods=["POST"]),
            Route("/event/{event_id}/results", self.event_results),
            Route("/race/{race_id}/results", self.race_results),
        ]


def _distance_km(distance: str) -> float:
    """``race_course_distance`` ("5 km", "21.0975 km", "10 mi") in km; 10 when unreadable."""
    found = re.match(r"\s*(\d+(?:\.\d+)?)\s*(km|mi)?", distance or "", re.IGNORECASE)
    if not found:
        return 10.0
    value = float(found.group(1))
    return value * 1.609344 if (found.group(2) or "").lower() == "mi" else value


def _corrupt(chunk: list[Any], index: int) -> None:
    """Realistic bad values, a different one per row so each surfaces its own problem."""
    kind = index % 4
    if kind == 0:
        chunk[index]["athlete_birthdate"] = "1990-13-45"
    elif kind == 1:
        chunk[index]["athlete_sex"] = "Q"
    elif kind == 2:
        chunk[index]["entry_race_age"] = "forty"
    else:
        chunk[index] = json.dumps(chunk[index])  # a row sent as a string, not an object


REAL_SHAPES = True  # make_app() takes real_shapes=True (see providers.demo)


def make_app(*, simulator: ChronoTrackSimulator | None = None, **kwargs: Any) -> Starlette:
    """The simulator as an ASGI app; its base URL for the adapter is ``<server>/api``."""
    sim = simulator or ChronoTrackSimulator(**kwargs)
    return simulator_app(sim, [Mount(BASE_PATH, routes=sim.routes()),
                               Route("/_sim/races/{race_id}/finish", sim.sim_finish,
                                     methods=["POST"])])


def finish_path(ref: str) -> str:
    """The control route running the race of ``ref`` ("event_id:race_id"; see
    :meth:`ChronoTrackSimulator.finish`), after the server's address."""
    _, race_id = m.split_event_ref(ref)
    if race_id is None:
        raise ValueError(f"{ref!r} names a whole event: finish runs one race")
    return f"/_sim/races/{race_id}/finish"


def main(argv: list[str] | None = None) -> None:
    """``python -m racehub.providers.chronotrack.simulator --port 8104``: a standalone server
    for the demo and manual testing (base URL ``http://127.0.0.1:<port>/api``)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8104)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--entries", type=int, default=300, help="per race")
    args = parser.parse_args(argv)
    app = make_app(seed=args.seed, events=args.events, entries_per_race=args.entries)
    print(f"ChronoTrack Live simulator on http://127.0.0.1:{args.port}{BASE_PATH} "
          f"(client_id={DEMO_CREDENTIALS['client_id']}, user_id={DEMO_CREDENTIALS['user_id']}; "
          f"events {sorted(app.state.simulator.events)})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
