"""A Race Roster test server speaking the shapes in PROVIDERS.md (API under ``/api/v1``).

Deterministic from ``seed``: events in several North American time zones, each with
sub-events, registrations (a few hundred to 50k) and results. Tokens come from
``POST /api/oauth/authorize`` (``grant_type=access_token`` with client id/secret and
username/password, or ``grant_type=refresh_token``); API calls need ``Authorization:
Bearer <token>``; errors are HTTP statuses with ``{error, error_description, hint}``.

Assumed here exactly as ``mapping.ASSUMED`` assumes it (no public source shows it): the
registrations endpoint and its rows, statuses, sort and ``lastModifiedDateFrom`` filter,
the 100-row page cap, the results rows, and refresh replies wrapped in ``{"data": ...}``.

The public results API v2 is served at ``/v2/api/result-events/{id}/sub-events/{id}/results``
(no login; ``start``/``limit``; ``{"data", "meta": {"totalResults"}}``; the result event id
is the event id here) in the shapes seen in real responses: a gender label, times of
varying precision, trailing spaces, ``divisionPlace`` like ``"1 / 3"``, no bib.

``real_shapes=True`` (the demo's default) also serves the rest as seen in real responses:
every token reply wrapped as ``{"data": [{...}]}``, and pages capped below what is asked
without saying so (events at 40, registrations at 50, v2 results at 250), so only an
empty page or the stated total shows the end.

Faults (``Faults.arm(name, times, **options)``), besides the generic HTTP ones:
- ``repeat_page``: the next list requests ignore their paging parameter and serve the
  first page again (a provider that does not page).
- ``expire_token``: the next API request with a valid token gets 401 and that token is
  dead (its refresh token still works).
- ``malformed_rows``: ``rows=[i, ...]`` corrupts those rows of the next registrations page.
- ``change_between_pages``: after the next registrations page is served, the first row of
  the following page changes and the first row already served is deleted (offsets shift).
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from racehub.providers.raceroster import mapping as m
from racehub.providers.simulator import Faults, simulator_app
from racehub.providers.values import format_duration

BASE_PATH = "/api/v1"
DEMO_CREDENTIALS: dict[str, str] = {
    "client_id": "sim-rr-client", "client_secret": "sim-rr-client-secret",
    "username": "timer@example.org", "password": "sim-rr-password",
}

FIRST_NAMES = ["Amélie", "Brandon", "Chloe", "Devon", "Élise", "Farah", "Gabriel", "Hana",
               "Isaac", "Jasmine", "Kieran", "Léa", "Malik", "Noor", "Olivier", "Parker",
               "Rémi", "Sofia", "Tariq", "Valérie", "William", "Yusuf", "Zoé"]
LAST_NAMES = ["Arsenault", "Bouchard", "Chen", "Desjardins", "Ellis", "Fortin", "Gagnon",
              "Hébert", "Iqbal", "Johnson", "Kaur", "Lavoie", "MacDonald", "Nguyen", "O'Neil",
              "Pelletier", "Roy", "Singh", "Tremblay", "Wong"]
PLACES = [("Toronto", "ON", "CA", "America/Toronto"),
          ("Calgary", "AB", "CA", "America/Edmonton"),
          ("Vancouver", "BC", "CA", "America/Vancouver"),
          ("Halifax", "NS", "CA", "America/Halifax"),
          ("Austin", "TX", "US", "America/Chicago")]
DISTANCES = [("5K", 5000), ("10K", 10000), ("Half Marathon", 21097), ("Marathon", 42195)]
# Weighted like a real field: mostly 1/2, some undisclosed, a few non-binary and co-ed teams.
GENDER_CODES = [1, 2, 1, 2, 1, 2, 0, 9, 8]
EPOCH = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def _oauth_error(status: int, error: str, description: str, hint: str = "") -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description, "hint": hint},
                        status_code=status)


class RaceRosterSimulator:
    def __init__(
        self,
        *,
        seed: int = 1,
        events: int = 2,
        sub_events_per_event: int = 2,
        participants_per_event: int = 400,
        client_id: str = DEMO_CREDENTIALS["client_id"],
        client_secret: str = DEMO_CREDENTIALS["client_secret"],
        username: str = DEMO_CREDENTIALS["username"],
        password: str = DEMO_CREDENTIALS["password"],
        token_lifetime: int = 86_400,
        with_results: bool = True,
        real_shapes: bool = False,
        faults: Faults | None = None,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self.token_lifetime = token_lifetime
        self.real_shapes = real_shapes
        self.faults = faults or Faults()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.seed = seed
        self.events: dict[int, dict[str, Any]] = {}
        self.registrations: dict[int, list[dict[str, Any]]] = {}  # by registrationId
        self.results: dict[int, list[dict[str, Any]]] = {}  # subEventId -> rows
        self.results_v2: dict[int, list[dict[str, Any]]] = {}  # subEventId -> v2 rows
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.tokens_issued = 0
        self._next_registration = 3_100_001
        self._clock = EPOCH
        self._build(events, sub_events_per_event, participants_per_event, with_results)

    # -- seeded data ----------------------------------------------------------------------
    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return m.format_time(self._clock)

    def _build(self, events: int, subs: int, per_event: int, with_results: bool) -> None:
        for e in range(events):
            event_id = 150_000 + e * 31
            city, region, country, tz_name = PLACES[e % len(PLACES)]
            zone = ZoneInfo(tz_name)
            day = (EPOCH + timedelta(days=28 + 7 * e)).date()
            start = datetime(day.year, day.month, day.day, 7, 30, tzinfo=zone)
            sub_events = []
            for s in range(max(1, subs)):
                label, meters = DISTANCES[s % len(DISTANCES)]
                sub_events.append({
                    "subEventId": 410_000 + e * 10 + s, "name": f"{label} Run",
                    "subEventDistance": {"type": "distance", "label": label, "unit": "m",
                                         "inMeters": meters}})
            self.events[event_id] = {
                "eventId": event_id, "name": f"{city} Harbour Run {day.year}", "city": city,
                "region": {"code": region}, "country": {"code": country},
                "startDate": m.format_time(start), "timeZone": tz_name,
                "lastModifiedDate": m.format_time(EPOCH - timedelta(days=e + 1)),
                "url": f"https://raceroster.com/events/{day.year}/{event_id}",
                "subEvents": {"data": sub_events},
            }
            sub_ids = [s["subEventId"] for s in sub_events]
            self.registrations[event_id] = [self._new_row(sub_ids[i % len(sub_ids)])
                                            for i in range(per_event)]
            for row in self.registrations[event_id][4:7] if per_event > 10 else []:
                row["status"] = "cancelled"
            if with_results:
                for sub_id in sub_ids:
                    self._seed_results(event_id, sub_id)

    def _new_row(self, sub_event_id: int) -> dict[str, Any]:
        rng = self.rng
        registration_id = self._next_registration
        self._next_registration += rng.randint(1, 4)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        age = rng.randint(10, 80)
        born = EPOCH.date() - timedelta(days=365 * age + rng.randint(0, 364))
        modified = EPOCH - timedelta(minutes=rng.randint(60, 60 * 24 * 120))
        bib = str(registration_id % 100_000) if rng.random() < 0.75 else None
        return {
            "registrationId": registration_id, "subEventId": sub_event_id,
            "firstName": first, "lastName": last,
            "email": f"{first.lower()}.{registration_id}@example.ca",
            "dateOfBirth": born.isoformat(), "gender": rng.choice(GENDER_CODES),
            "bibNumber": bib, "status": "active",
            "lastModifiedDate": m.format_time(modified),
        }

    def _seed_results(self, event_id: int, sub_id: int) -> None:
        f = m.ASSUMED["result_fields"]
        runners = [r for r in self.registrations[event_id]
                   if r["subEventId"] == sub_id and r["bibNumber"] and r["status"] == "active"]
        rows = []
        for place, row in enumerate(runners[:60], start=1):
            clock = timedelta(seconds=1500 + place * 21.5)
            rows.append({
                f["ref"]: 8_000_000 + row["registrationId"], f["participant_ref"]:
                row["registrationId"], f["bib"]: row["bibNumber"],
                f["first_name"]: row["firstName"], f["last_name"]: row["lastName"],
                f["gender"]: row["gender"], f["age"]: None, f["place"]: place,
                f["clock_time"]: format_duration(clock),
                f["chip_time"]: format_duration(clock - timedelta(seconds=3.25)),
                f["status"]: "FIN", f["division"]: None,
            })
        self.results_v2[sub_id] = self._v2_rows(runners)
        for row in runners[60:62]:
            rows.append({f["ref"]: 8_000_000 + row["registrationId"],
                         f["participant_ref"]: row["registrationId"], f["bib"]: row["bibNumber"],
                         f["first_name"]: row["firstName"], f["last_name"]: row["lastName"],
                         f["gender"]: row["gender"], f["status"]: "DNF"})
        self.results[sub_id] = rows

    @staticmethod
    def _v2_rows(runners: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Public v2 result rows as seen in real responses (no bib, a gender label, text
        places, times of varying precision, trailing spaces)."""
        labels = {1: "Male", 2: "Female", 9: "Non-binary", 0: "", 8: "Co-ed"}
        rows = []
        divisions: dict[str, int] = {}
        for place, row in enumerate(runners, start=1):
            chip = timedelta(seconds=960 + place * 13.7)
            gun = chip + timedelta(seconds=4.2)
            division = f"{'F' if row['gender'] == 2 else 'M'}{20 + place % 4 * 10}-"
            divisions[division] = divisions.get(division, 0) + 1
            rows.append({
                "id": hashlib.sha256(str(row["registrationId"]).encode()).hexdigest()[:16],
                "overallPlace": place, "name": f"{row['firstName']} {row['lastName']} ",
                "gunTime": _v2_time(gun), "chipTime": _v2_time(chip),
                "division": division, "divisionPlace": f"{divisions[division]} / ?",
                "genderSexId": labels[row["gender"]], "genderPlace": f"{place} / {len(runners)}",
                "overallPace": "4:41 ", "fromCity": "Toronto ",
            })
        for row in rows:  # the "of N" is known once all are placed
            count = divisions[str(row["division"])]
            row["divisionPlace"] = str(row["divisionPlace"]).replace("?", str(count))
        return rows

    # -- changes (tests and the demo use these) ----------------------------------------------
    def find(self, registration_id: int) -> dict[str, Any] | None:
        for rows in self.registrations.values():
            for row in rows:
                if row["registrationId"] == registration_id:
                    return row
        return None

    def set_clock(self, when: datetime) -> None:
        """Changes made from now on are stamped ``when`` onwards (one second apart)."""
        with self.lock:
            self._clock = when

    def add_registration(self, event_id: int) -> dict[str, Any]:
        with self.lock:
            sub_id = self.events[event_id]["subEvents"]["data"][0]["subEventId"]
            row = self._new_row(sub_id)
            row["lastModifiedDate"] = self._tick()
            self.registrations[event_id].append(row)
            return row

    def modify(self, registration_id: int, **changes: Any) -> dict[str, Any]:
        with self.lock:
            row = self.find(registration_id)
            if row is None:
                raise KeyError(registration_id)
            row.update(changes)
            row["lastModifiedDate"] = self._tick()
            return row

    def delete(self, registration_id: int) -> None:
        with self.lock:
            for rows in self.registrations.values():
                for i, row in enumerate(rows):
                    if row["registrationId"] == registration_id:
                        del rows[i]
                        return
            raise KeyError(registration_id)

    # -- auth -------------------------------------------------------------------------------
    def _issue(self, *, wrapped: bool) -> JSONResponse:
        self.tokens_issued += 1
        digest = hashlib.sha256(f"{self.seed}:{self.tokens_issued}".encode()).hexdigest()
        access, refresh = f"eyJ0eXAi.{digest[:32]}.rr", f"def50200{digest[32:]}"
        with self.lock:
            self.access_tokens.add(access)
            self.refresh_tokens.add(refresh)
        reply = {"token_type": "Bearer", "expires_in": self.token_lifetime,
                 "access_token": access, "refresh_token": refresh}
        if self.real_shapes:  # seen in real responses: a one-item list
            return JSONResponse({"data": [reply]})
        return JSONResponse({"data": reply} if wrapped else reply)

    async def authorize(self, request: Request) -> Response:
        form = await request.form()
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                  self.client_secret):
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        grant = form.get("grant_type")
        if grant == m.GRANT_PASSWORD:
            if (form.get("username"), form.get("password")) != (self.username, self.password):
                return _oauth_error(400, "invalid_grant",
                                    "The user credentials were incorrect.")
            return self._issue(wrapped=False)
        if grant == m.GRANT_REFRESH:
            token = str(form.get("refresh_token") or "")
            with self.lock:
                if token not in self.refresh_tokens:
                    return _oauth_error(400, "invalid_grant", "The refresh token is invalid.",
                                        "Token has been revoked")
                self.refresh_tokens.discard(token)  # refresh tokens are single use
            return self._issue(wrapped=True)  # assumed: the "sometimes wrapped" reply
        return _oauth_error(400, "unsupported_grant_type",
                            "The authorization grant type is not supported.",
                            "Check that all required parameters have been provided")

    def _denied(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        with self.lock:
            if token not in self.access_tokens:
                return _oauth_error(401, "access_denied", "The resource owner or authorization "
                                    "server denied the request.", "Access token is invalid")
            if self.faults.take("expire_token") is not None:
                self.access_tokens.discard(token)
                return _oauth_error(401, "access_denied", "The resource owner or authorization "
                                    "server denied the request.", "Access token has expired")
        return None

    # -- API --------------------------------------------------------------------------------
    def _window(self, request: Request, cap: int, real_cap: int | None = None,
                *, start: str = "offset") -> tuple[int, int] | Response:
        """(offset, limit) of a list request. Real shapes: a limit above ``real_cap`` is
        served as ``real_cap`` without a word. ``repeat_page``: the offset is ignored."""
        window = self._asked(request, cap, start)
        if isinstance(window, Response):
            return window
        offset, limit = window
        if self.real_shapes and real_cap is not None:
            limit = min(limit, real_cap)
        if self.faults.take("repeat_page") is not None:
            offset = 0
        return offset, limit

    @staticmethod
    def _asked(request: Request, cap: int, start: str) -> tuple[int, int] | Response:
        try:
            offset = int(request.query_params.get(start) or 0)
            limit = int(request.query_params.get("limit") or 20)
        except ValueError:
            return JSONResponse({"message": f"{start} and limit must be integers"},
                                status_code=422)
        if offset < 0 or not 1 <= limit <= cap:
            return JSONResponse({"message": f"limit must be between 1 and {cap}"},
                                status_code=422)
        return offset, limit

    async def events_list(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        window = self._window(request, int(m.ASSUMED["events_limit"]), REAL_CAPS["events"])
        if isinstance(window, Response):
            return window
        offset, limit = window
        events = sorted(self.events.values(), key=lambda e: e["startDate"],
                        reverse=request.query_params.get("order") == "desc")
        return JSONResponse({"data": events[offset:offset + limit]})

    async def registrations_list(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        event_id = int(request.path_params["event_id"])
        if event_id not in self.events:
            return JSONResponse({"message": "Event not found."}, status_code=404)
        window = self._window(request, int(m.ASSUMED["registrations_limit"]),
                              REAL_CAPS["registrations"])
        if isinstance(window, Response):
            return window
        offset, limit = window
        since_text = request.query_params.get(str(m.ASSUMED["modified_since_param"]))
        try:
            since = datetime.fromisoformat(since_text) if since_text else None
        except ValueError:
            return JSONResponse({"message": "lastModifiedDateFrom must be ISO-8601"},
                                status_code=422)
        malformed = self.faults.take("malformed_rows")
        with self.lock:
            rows = self.registrations[event_id]  # kept in registrationId order
            if since is not None:
                rows = [r for r in rows
                        if datetime.fromisoformat(r["lastModifiedDate"]) >= since]
            chunk = copy.deepcopy(rows[offset:offset + limit])
            following = rows[offset + limit:offset + limit + 1]
            if chunk and following and self.faults.take("change_between_pages") is not None:
                following[0]["lastName"] += "-Changed"
                following[0]["lastModifiedDate"] = self._tick()
                self.delete(chunk[0]["registrationId"])
        for index in (malformed or {}).get("rows", []):
            if 0 <= index < len(chunk):
                _corrupt(chunk[index], index)
        return JSONResponse({"data": chunk})

    async def results_list(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        event = self.events.get(int(request.path_params["event_id"]))
        try:
            race_id = int(request.query_params.get("resultsRaceId") or 0)
            page = int(request.query_params.get("page") or 1)
            per_page = int(request.query_params.get("perPage") or 25)
        except ValueError:
            return JSONResponse({"message": "page, perPage and resultsRaceId must be integers"},
                                status_code=422)
        if event is None or race_id not in {s["subEventId"] for s in event["subEvents"]["data"]}:
            return JSONResponse({"message": "Results not found."}, status_code=404)
        rows = self.results.get(race_id, [])
        return JSONResponse({"data": rows[(page - 1) * per_page:page * per_page]})

    async def results_v2_list(self, request: Request) -> Response:
        """The public results API: no login, start/limit, meta.totalResults."""
        event = self.events.get(int(request.path_params["event_id"]))
        sub_id = int(request.path_params["sub_event_id"])
        if event is None or sub_id not in {s["subEventId"] for s in event["subEvents"]["data"]}:
            return JSONResponse({"message": "Result event not found."}, status_code=404)
        window = self._window(request, m.RESULTS_V2_MAX_LIMIT, REAL_CAPS["results_v2"],
                              start="start")
        if isinstance(window, Response):
            return window
        start, limit = window
        rows = self.results_v2.get(sub_id, [])
        return JSONResponse({"data": rows[start:start + limit],
                             "meta": {"totalResults": len(rows), "filteredResults": len(rows)}})

    def routes(self) -> list[Route]:
        return [
            Route("/events", self.events_list),
            Route("/" + str(m.ASSUMED["registrations_path"]).replace("{event_id}",
                                                                     "{event_id:int}"),
                  self.registrations_list),
            Route("/" + str(m.ASSUMED["results_path"]).replace("{event_id}", "{event_id:int}"),
                  self.results_list),
        ]


# Page caps of real-shapes mode: below what the adapter asks, unannounced.
REAL_CAPS = {"events": 40, "registrations": 50, "results_v2": 250}
V2_PATH = "/v2/api/result-events/{event_id:int}/sub-events/{sub_event_id:int}/results"


def _v2_time(value: timedelta) -> str:
    """``16:21.6`` or ``1:08:58.1``: tenths, hours only when there are some."""
    tenths = round(value.total_seconds() * 10)
    hours, rest = divmod(tenths, 36_000)
    minutes, rest = divmod(rest, 600)
    seconds = rest / 10
    return (f"{hours}:{minutes:02d}:{seconds:04.1f}" if hours
            else f"{minutes}:{seconds:04.1f}")


def _corrupt(row: dict[str, Any], index: int) -> None:
    """Realistic bad values, a different one per row so each surfaces its own problem."""
    kind = index % 4
    if kind == 0:
        row["dateOfBirth"] = "1990-13-45"
    elif kind == 1:
        row["gender"] = 5
    elif kind == 2:
        row["lastModifiedDate"] = "yesterday"
    else:
        row["firstName"] = row["lastName"] = None


REAL_SHAPES = True  # make_app() takes real_shapes=True (see providers.demo)


def make_app(*, simulator: RaceRosterSimulator | None = None, **kwargs: Any) -> Starlette:
    """The simulator as an ASGI app; the adapter's base URL is ``<server>/api/v1`` (the
    token endpoint, ``<server>/api/oauth/authorize``, follows from it)."""
    sim = simulator or RaceRosterSimulator(**kwargs)
    return simulator_app(sim, [Route("/api/oauth/authorize", sim.authorize, methods=["POST"]),
                               Route(V2_PATH, sim.results_v2_list),
                               Mount(BASE_PATH, routes=sim.routes())])


def demo_settings(server: str) -> dict[str, Any]:
    """Results from this server's public v2 results API."""
    return {"results_base_url": server + "/v2/api"}


def main(argv: list[str] | None = None) -> None:
    """``python -m racehub.providers.raceroster.simulator --port 8102``: a standalone server
    for the demo and manual testing (base URL ``http://127.0.0.1:<port>/api/v1``)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--participants", type=int, default=400, help="per event")
    args = parser.parse_args(argv)
    app = make_app(seed=args.seed, events=args.events, participants_per_event=args.participants)
    print(f"Race Roster simulator on http://127.0.0.1:{args.port}{BASE_PATH} "
          f"(client_id={DEMO_CREDENTIALS['client_id']}, "
          f"username={DEMO_CREDENTIALS['username']}; "
          f"events {sorted(app.state.simulator.events)})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
