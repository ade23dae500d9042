"""A Haku test server speaking the shapes in PROVIDERS.md (API at the server's root).

Deterministic from ``seed``: events in several US time zones with registrations (a few
hundred to 50k). Tokens from ``POST /oauth2/token`` (Basic ``client_id:client_secret``,
``grant_type=client_credentials``); API calls need the token RAW in ``Authorization`` (a
"Bearer " prefix is refused); JSON arrays paged with ``page``/``per_page``; errors are
HTTP statuses only.

Assumed here exactly as ``mapping.ASSUMED`` assumes it (no public source shows it): the
token endpoint on the API's own host (production has a separate auth host), the
``updated_at`` on list rows, event fields besides ``id``/``name``/``event_date``, gender
words, the 100-row page cap, the 401/400 bodies, and, when ``calls_per_hour`` is set, a
429 with Retry-After once the hour's budget is spent.

``real_shapes=True`` (the demo's default) serves only what PROVIDERS.md states: pages of
at most 25 rows (the spec's figure), whatever ``per_page`` asks, without saying so, so a
short page is not the last one. No reply from the real API has been seen: the shapes
beyond PROVIDERS.md stay assumed in both modes (see ``mapping.ASSUMED``).

Faults (``Faults.arm(name, times, **options)``), besides the generic HTTP ones:
- ``expire_token``: the next API request with a valid token gets 401 and that token dies.
- ``malformed_rows``: ``rows=[i, ...]`` corrupts those rows of the next participants page.
- ``malformed_details``: the next registration detail replies carry a bad ``dob``.
- ``detail_gone``: the next registration detail requests get 404 (deleted meanwhile).
- ``change_between_pages``: after the next participants page is served, the first row of
  the following page changes (and so moves to the top of the list).
- ``repeat_page``: the next list requests ignore ``page`` and serve the first page again.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from racehub.providers.haku import mapping as m
from racehub.providers.simulator import Faults, simulator_app

BASE_PATH = ""
DEMO_CREDENTIALS: dict[str, str] = {"client_id": "sim-haku-client",
                                    "client_secret": "sim-haku-client-secret"}

FIRST_NAMES = ["Ana María", "Brooke", "Carlos", "Dana", "Eli", "Fatima", "Grant", "Hailey",
               "Ivan", "Jade", "Kofi", "Lucía", "Mason", "Nadia", "Owen", "Paige", "Rafael",
               "Sage", "Tyler", "Vivian", "Wesley", "Ximena", "Zane"]
LAST_NAMES = ["Adams", "Baker", "Cruz", "Diaz", "Edwards", "Flores", "Green", "Hall", "Ito",
              "James", "Kim", "Lopez", "Moore", "Nelson", "Ortiz", "Perez", "Reyes", "Smith",
              "Torres", "Walker", "Young"]
PLACES = [("Nashville", "TN", "America/Chicago"), ("Atlanta", "GA", "America/New_York"),
          ("Salt Lake City", "UT", "America/Denver"), ("San Diego", "CA", "America/Los_Angeles")]
CATEGORIES = ["5K", "10K", "Half Marathon"]
GENDERS = ["male", "female", "male", "female", "non-binary", ""]
TEAMS = [None, None, None, "Music City Milers", "Peachtree Pacers"]
EPOCH = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
PER_PAGE_CAP = int(m.ASSUMED["per_page"])
REAL_PER_PAGE_CAP = 25  # "25 in the spec": real-shapes mode serves no more, unannounced


class HakuSimulator:
    def __init__(
        self,
        *,
        seed: int = 1,
        events: int = 2,
        participants_per_event: int = 300,
        client_id: str = DEMO_CREDENTIALS["client_id"],
        client_secret: str = DEMO_CREDENTIALS["client_secret"],
        token_lifetime: int = 3600,
        calls_per_hour: int | None = None,
        real_shapes: bool = False,
        faults: Faults | None = None,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime = token_lifetime
        self.calls_per_hour = calls_per_hour
        self.real_shapes = real_shapes
        self.faults = faults or Faults()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.seed = seed
        self.events: dict[int, dict[str, Any]] = {}
        self.registrations: dict[int, list[dict[str, Any]]] = {}  # internal records
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self._calls: collections.deque[float] = collections.deque()
        self._order_cache: dict[int, tuple[tuple[Any, ...], list[dict[str, Any]]]] = {}
        self._next_number = 7_310_001
        self._clock = EPOCH
        self._build(events, participants_per_event)

    # -- seeded data ----------------------------------------------------------------------
    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    def _build(self, events: int, per_event: int) -> None:
        for e in range(events):
            event_id = 52_000 + e * 7
            city, state, tz_name = PLACES[e % len(PLACES)]
            zone = ZoneInfo(tz_name)
            day = (EPOCH + timedelta(days=35 + 7 * e)).date()
            self.events[event_id] = {
                "id": event_id, "name": f"{city} Sunrise {CATEGORIES[e % 3]}",
                "event_date": m.format_time(datetime(day.year, day.month, day.day, 7, 0,
                                                     tzinfo=zone)),
                "time_zone": tz_name, "city": city, "state": state, "country": "US",
                "is_active": True,
                "updated_at": m.format_time(EPOCH - timedelta(days=e + 1)),
            }
            self.registrations[event_id] = [self._new_record(zone) for _ in range(per_event)]
            for record in self.registrations[event_id][5:8] if per_event > 10 else []:
                record["is_cancelled"] = True

    def _new_record(self, zone: ZoneInfo) -> dict[str, Any]:
        rng = self.rng
        number = self._next_number
        self._next_number += rng.randint(1, 3)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        age = rng.randint(8, 82)
        created = EPOCH - timedelta(minutes=rng.randint(120, 60 * 24 * 150))
        category = rng.randrange(len(CATEGORIES))
        bib = str(1000 * (category + 1) + number % 1000) if rng.random() < 0.8 else None
        return {
            "registration_number": f"R{number}", "zone": zone,
            "created_at": created, "updated_at": created + timedelta(minutes=rng.randint(0, 90)),
            "is_cancelled": False, "first_name": first, "last_name": last,
            "email": f"{first.split()[0].lower()}.{number}@example.com",
            "phone": f"615-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
            "dob": (EPOCH.date() - timedelta(days=365 * age + rng.randint(0, 364))).isoformat(),
            "age": age, "gender": rng.choice(GENDERS), "team": rng.choice(TEAMS),
            "address": {"line1": f"{rng.randint(1, 999)} Oak Ave", "city": PLACES[0][0],
                        "state": PLACES[0][1], "zip_code": f"{rng.randint(10000, 99999)}",
                        "country": "US"},
            "category": {"id": 900 + category, "name": CATEGORIES[category],
                         "wave_name": f"Wave {rng.randint(1, 3)}"},
            "tag_number": bib, "chip_number": f"E2{number:010d}" if bib else None,
            "amount": rng.choice([35.0, 45.5, 60.0, 99.99]),
        }

    @staticmethod
    def list_row(record: dict[str, Any]) -> dict[str, Any]:
        return {
            "registration_number": record["registration_number"],
            "person_full_name": f"{record['first_name']} {record['last_name']}",
            "email": record["email"], "age": record["age"], "gender": record["gender"],
            "team": {"name": record["team"]} if record["team"] else None,
            "event_category_info": dict(record["category"]),
            # Local time of the event, with its offset; changes in UTC.
            "registered_at": m.format_time(record["created_at"].astimezone(record["zone"])),
            "updated_at": m.format_time(record["updated_at"]),
            "is_cancelled": record["is_cancelled"],
            "transaction_amount": record["amount"],
        }

    @staticmethod
    def detail(record: dict[str, Any]) -> dict[str, Any]:
        return {
            "registration_number": record["registration_number"],
            "created_at": m.format_time(record["created_at"]),
            "is_cancelled": record["is_cancelled"],
            "participant": {
                "first_name": record["first_name"], "last_name": record["last_name"],
                "email": record["email"], "phone": record["phone"], "dob": record["dob"],
                "gender": record["gender"], "address": dict(record["address"]),
            },
            "event_categories": [{**record["category"], "tag_number": record["tag_number"],
                                  "chip_number": record["chip_number"]}],
        }

    # -- changes (tests and the demo use these) ----------------------------------------------
    def set_clock(self, when: datetime) -> None:
        """Changes made from now on are stamped ``when`` onwards (one second apart)."""
        with self.lock:
            self._clock = when

    def find(self, registration_number: str) -> dict[str, Any] | None:
        for records in self.registrations.values():
            for record in records:
                if record["registration_number"] == registration_number:
                    return record
        return None

    def add_registration(self, event_id: int) -> dict[str, Any]:
        with self.lock:
            zone = ZoneInfo(self.events[event_id]["time_zone"])
            record = self._new_record(zone)
            record["created_at"] = record["updated_at"] = self._tick()
            self.registrations[event_id].append(record)
            return record

    def modify(self, registration_number: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            record = self.find(registration_number)
            if record is None:
                raise KeyError(registration_number)
            record.update(changes)
            record["updated_at"] = self._tick()
            return record

    # -- HTTP -------------------------------------------------------------------------------
    def _issue(self) -> JSONResponse:
        self.tokens_issued += 1
        token = hashlib.sha256(f"haku:{self.seed}:{self.tokens_issued}".encode()).hexdigest()
        with self.lock:
            self.tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": self.token_lifetime,
                             "token_type": "Bearer"})

    async def token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        form = await request.form()
        if form.get("grant_type") != m.GRANT:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        return self._issue()

    def _denied(self, request: Request) -> Response | None:
        token = request.headers.get("Authorization", "")
        with self.lock:
            if token not in self.tokens:
                return JSONResponse({"message": "Unauthorized"}, status_code=401)
            if self.faults.take("expire_token") is not None:
                self.tokens.discard(token)
                return JSONResponse({"message": "The incoming token has expired"},
                                    status_code=401)
            if self.calls_per_hour is not None:
                now = time.monotonic()
                while self._calls and self._calls[0] <= now - 3600:
                    self._calls.popleft()
                if len(self._calls) >= self.calls_per_hour:
                    wait = max(1, round(self._calls[0] + 3600 - now))
                    return JSONResponse({"message": "Rate limit exceeded"}, status_code=429,
                                        headers={"Retry-After": str(wait)})
                self._calls.append(now)
        return None

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        try:
            page = int(request.query_params.get("page") or 1)
            per_page = int(request.query_params.get("per_page") or 25)
        except ValueError:
            return JSONResponse({"message": "page and per_page must be integers"},
                                status_code=400)
        if page < 1 or not 1 <= per_page <= PER_PAGE_CAP:
            return JSONResponse({"message": f"per_page must be between 1 and {PER_PAGE_CAP}"},
                                status_code=400)
        if self.real_shapes:
            per_page = min(per_page, REAL_PER_PAGE_CAP)
        if self.faults.take("repeat_page") is not None:
            page = 1
        return page, per_page

    async def events_list(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        page, per_page = paging
        events = sorted(self.events.values(), key=lambda e: e["event_date"],
                        reverse=request.query_params.get("sort_direction") != "asc")
        return JSONResponse(events[(page - 1) * per_page:page * per_page])

    def _ordered(self, event_id: int, newest_first: bool) -> list[dict[str, Any]]:
        """Records by (updated_at, registration_number). Every change goes through _tick, so
        the clock and the count tell whether the last sort still holds (50k rows)."""
        key = (event_id, newest_first, self._clock, len(self.registrations[event_id]))
        if self._order_cache.get(event_id, ((), []))[0] != key:
            self._order_cache[event_id] = (key, sorted(
                self.registrations[event_id],
                key=lambda r: (r["updated_at"], r["registration_number"]),
                reverse=newest_first))
        return self._order_cache[event_id][1]

    async def participants_list(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        event_id = int(request.path_params["event_id"])
        if event_id not in self.events:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        page, per_page = paging
        malformed = self.faults.take("malformed_rows")
        with self.lock:
            records = self._ordered(event_id,
                                    request.query_params.get("sort_direction") != "asc")
            chunk = [self.list_row(r) for r in records[(page - 1) * per_page:page * per_page]]
            following = records[page * per_page:page * per_page + 1]
            if chunk and following and self.faults.take("change_between_pages") is not None:
                following[0]["last_name"] += "-Changed"
                following[0]["updated_at"] = self._tick()
        for index in (malformed or {}).get("rows", []):
            if 0 <= index < len(chunk):
                _corrupt(chunk[index], index)
        return JSONResponse(chunk)

    async def registration_get(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        event_id = int(request.path_params["event_id"])
        number = request.path_params["registration_number"]
        record = next((r for r in self.registrations.get(event_id, [])
                       if r["registration_number"] == number), None)
        if record is None or self.faults.take("detail_gone") is not None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        detail = self.detail(record)
        if self.faults.take("malformed_details") is not None:
            detail["participant"]["dob"] = "31/02/1990"
        return JSONResponse(detail)

    def routes(self) -> list[Route]:
        return [
            Route("/" + str(m.ASSUMED["token_path"]), self.token, methods=["POST"]),
            Route("/events", self.events_list),
            Route("/events/{event_id:int}/participants", self.participants_list),
            Route("/events/{event_id:int}/registrations/{registration_number}",
                  self.registration_get),
        ]


def _corrupt(row: dict[str, Any], index: int) -> None:
    """Realistic bad values, a different one per row so each surfaces its own problem."""
    kind = index % 4
    if kind == 0:
        row["registered_at"] = "last Tuesday"
    elif kind == 1:
        row["transaction_amount"] = "forty"
    elif kind == 2:
        row["age"] = "unknown"
    else:
        row["registration_number"] = None


REAL_SHAPES = True  # make_app() takes real_shapes=True (see providers.demo)


def make_app(*, simulator: HakuSimulator | None = None, **kwargs: Any) -> Starlette:
    """The simulator as an ASGI app; the adapter's base URL is the server's address (the
    token endpoint, ``<server>/oauth2/token``, follows from it)."""
    sim = simulator or HakuSimulator(**kwargs)
    return simulator_app(sim, sim.routes())


def demo_settings(server: str) -> dict[str, Any]:
    """Adapter settings for a demo connection to this simulator: the real ~500 calls/hour
    budget would make the demo's first sync (one detail call per person) take an hour."""
    del server  # the token endpoint already follows from the base URL
    return {"rate_per_second": 20.0, "rate_burst": 40}


def main(argv: list[str] | None = None) -> None:
    """``python -m racehub.providers.haku.simulator --port 8103``: a standalone server for
    the demo and manual testing (base URL ``http://127.0.0.1:<port>``)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--participants", type=int, default=300, help="per event")
    parser.add_argument("--calls-per-hour", type=int, default=None,
                        help="refuse calls beyond this hourly budget (429 + Retry-After)")
    args = parser.parse_args(argv)
    app = make_app(seed=args.seed, events=args.events, participants_per_event=args.participants,
                   calls_per_hour=args.calls_per_hour)
    print(f"Haku simulator on http://127.0.0.1:{args.port}{BASE_PATH} "
          f"(client_id={DEMO_CREDENTIALS['client_id']}; "
          f"events {sorted(app.state.simulator.events)})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
