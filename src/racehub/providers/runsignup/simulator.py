"""A RunSignUp test server speaking the shapes in PROVIDERS.md (mount point ``/Rest``).

Deterministic from ``seed``: races in several US time zones, events, participants (a few
hundred to 50k), removed registrations and a result set. Auth by ``api_key`` +
``api_secret`` query parameters, ``rsu_api_key`` + ``X-RSU-API-SECRET`` header, or an OAuth
bearer ``access_token``; errors inside HTTP 200 (``{"error": {"error_code", "error_msg"}}``).

Faults (``Faults.arm(name, times, **options)``), besides the generic HTTP ones:
- ``throttle``: error 14 in a 200 body; ``retry_after`` adds a Retry-After header
  (assumed: RunSignUp documents only the code).
- ``malformed_rows``: ``rows=[i, ...]`` corrupts those rows of the next participants page.
- ``change_between_pages``: after the next participants page is served, the first row of
  the following page is changed and the first row already served is removed.
- ``repeat_page``: the next participants, races or results page is the page served before
  it again (a provider ignoring the paging parameter).
- ``results_500_mid_batch``: the next full-results POST stores its first ``rows`` rows
  (default half of them), then answers HTTP 500: a reply lost after the provider saved part
  of the batch, the case a retried publish must not duplicate.
Shapes marked assumed in ``mapping.ASSUMED`` are served exactly as the adapter assumes.
Besides ``/_sim/faults``, control routes change the data as a registrant would (the demo's
walk-through uses them): ``POST /_sim/registrations/{id}`` with the fields to change,
``DELETE /_sim/registrations/{id}?reason=...``, ``POST /_sim/events/{event_id}/registrations``.

``real_shapes=True`` (the demo's default) serves what real RunSignUp replies were seen to
carry (PROVIDERS.md): every fourth participant row without ``registration_id`` (keyed only
by its ``user``), a bib with leading zeros sent as text and a gender code outside M/F; the
first race without ``events`` in ``/races`` (``GET /race/{id}`` has them), the last without
``timezone``; result sets with ``results_headers`` and ``custom-field-<id>`` /
``division-<id>-placement`` columns whose ids differ per set; question responses only with
``include_questions=T``. Off, every row has every documented field.
"""

from __future__ import annotations

import bisect
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from racehub.providers.runsignup import mapping as m
from racehub.providers.simulator import Faults, simulator_app

FIRST_NAMES = ["Ava", "Ben", "Chloé", "Diego", "Emma", "Finn", "Grace", "Hiro", "Isla", "Jamal",
               "Kai", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tess",
               "Uma", "Victor", "Wren", "Xavier", "Yara", "Zoë"]
LAST_NAMES = ["Anders", "Brooks", "Castillo", "Dubois", "Evans", "Fischer", "García", "Hughes",
              "Ibrahim", "Jensen", "Kowalski", "López", "Murphy", "Nguyen", "O'Brien", "Patel",
              "Quintero", "Rossi", "Schmidt", "Tanaka", "Underwood", "Vasquez", "Walker",
              "Xu", "Young", "Zimmermann"]
PLACES = [("Boston", "MA", "America/New_York"), ("Denver", "CO", "America/Denver"),
          ("Portland", "OR", "America/Los_Angeles"), ("Chicago", "IL", "America/Chicago"),
          ("Phoenix", "AZ", "America/Phoenix")]
DISTANCES = ["5K", "10K", "Half Marathon", "Marathon"]
TEAMS = [None, None, None, "Harbor Striders", "Trail Dogs", "Night Owls RC"]
# Data is laid out relative to this instant so a seed always gives the same bytes.
EPOCH = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)

BASE_PATH = "/Rest"  # the adapter's base URL is <server>/Rest
DEMO_CREDENTIALS: dict[str, str] = {"api_key": "sim-api-key", "api_secret": "sim-api-secret"}


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"error_code": code, "error_msg": message}}, headers=headers)


class RunSignUpSimulator:
    def __init__(
        self,
        *,
        seed: int = 1,
        races: int = 2,
        events_per_race: int = 2,
        participants_per_event: int = 300,
        api_key: str = DEMO_CREDENTIALS["api_key"],
        api_secret: str = DEMO_CREDENTIALS["api_secret"],
        access_token: str = "sim-oauth-token",
        faults: Faults | None = None,
        with_results: bool = True,
        real_shapes: bool = False,
    ) -> None:
        self.real_shapes = real_shapes
        self._last_served: dict[str, Any] = {}  # path -> the last page body (repeat_page)
        self.api_key = api_key
        self.api_secret = api_secret
        self.access_token = access_token
        self.faults = faults or Faults()
        self.lock = threading.RLock()  # re-entrant: remove() is called while paging
        self.rng = random.Random(seed)
        self.races: dict[int, dict[str, Any]] = {}
        self.participants: dict[int, list[dict[str, Any]]] = {}  # event_id -> rows by reg id
        self.removed: dict[int, list[dict[str, Any]]] = {}
        self.result_sets: dict[int, list[dict[str, Any]]] = {}
        self.race_of_event: dict[int, int] = {}
        self._next_registration = 5_000_001
        self._next_result_set = 900_001
        self._next_result = 70_000_001
        self._clock = int(EPOCH.timestamp())
        self._build(races, events_per_race, participants_per_event, with_results)

    # -- seeded data ----------------------------------------------------------------------
    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def pass_time(self, seconds: int) -> None:
        """Move the simulator's clock on: the next change is stamped ``seconds`` later."""
        with self.lock:
            self._clock += seconds

    def _build(self, races: int, events_per_race: int, per_event: int,
               with_results: bool) -> None:
        rng = self.rng
        for r in range(races):
            race_id = 100_000 + r * 17
            city, state, tz_name = PLACES[r % len(PLACES)]
            tz = ZoneInfo(tz_name)
            day = (EPOCH + timedelta(days=30 + 7 * r)).astimezone(tz).date()
            events = []
            for e in range(events_per_race):
                event_id = 660_000 + r * 100 + e
                start = datetime(day.year, day.month, day.day, 7 + e, 30, tzinfo=tz)
                events.append({
                    "event_id": event_id, "race_event_days_id": 240_000 + r, "name":
                    DISTANCES[e % len(DISTANCES)], "details": None,
                    "start_time": m.format_local(start, tz),
                    "end_time": m.format_local(start + timedelta(hours=6), tz),
                    "distance": DISTANCES[e % len(DISTANCES)],
                })
                self.race_of_event[event_id] = race_id
                self.participants[event_id] = [self._new_row(event_id, rng)
                                               for _ in range(per_event)]
                self.removed[event_id] = []
                self.result_sets[event_id] = []
            self.races[race_id] = {
                "race_id": race_id, "name": f"{city} City Run {2026 + r // len(PLACES)}",
                # real shapes: the first race's /races row lacks "events" (see races_list)
                "_events_missing_in_list": self.real_shapes and r == 0,
                "next_date": day.strftime("%m/%d/%Y"), "next_end_date": day.strftime("%m/%d/%Y"),
                "is_draft_race": "F", "is_private_race": "F", "is_registration_open": "T",
                "timezone": tz_name,
                "created": m.format_local(EPOCH - timedelta(days=200), m.EASTERN),
                "last_modified": m.format_local(EPOCH - timedelta(days=r), m.EASTERN),
                "address": {"street": f"{r + 1} Main St", "city": city, "state": state,
                            "zipcode": f"{10000 + r * 1111}", "country_code": "US"},
                "events": events,
            }
        if self.real_shapes and races > 1:
            del self.races[max(self.races)]["timezone"]  # seen: races without timezone
        if self.real_shapes:
            self._real_participant_shapes()
        # A few withdrawals and a result set, so every read has something to show.
        for event_id, rows in self.participants.items():
            for row in rows[3:6] if len(rows) > 10 else []:
                self.remove(row["registration_id"], reason="Transferred to another event")
            if with_results and rows:
                self._seed_results(event_id)

    def _real_participant_shapes(self) -> None:
        for rows in self.participants.values():
            for i, row in enumerate(rows):
                if i % 4 == 3:
                    row["_keyless"] = True  # served without registration_id
            if len(rows) > 8:
                rows[1]["bib_num"] = "0042"  # a bib with leading zeros, as text
                rows[2]["user"]["gender"] = "U"  # a code outside M/F

    def give_registration_id(self, registration_id: int) -> dict[str, Any]:
        """A row served without its registration id starts to carry it (the sync must see
        the same registration, not a new one)."""
        with self.lock:
            row = self.find(registration_id)
            if row is None:
                raise KeyError(registration_id)
            row.pop("_keyless", None)
            row["last_modified"] = self._tick()
            return row

    def _new_row(self, event_id: int, rng: random.Random) -> dict[str, Any]:
        registration_id = self._next_registration
        self._next_registration += rng.randint(1, 3)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        gender = rng.choice("MF")
        age = rng.randint(12, 79)
        dob = (EPOCH - timedelta(days=365 * age + rng.randint(0, 364))).date()
        registered = EPOCH - timedelta(minutes=rng.randint(60, 60 * 24 * 180))
        place = rng.choice(PLACES)
        bib = registration_id % 100_000 if rng.random() < 0.7 else None
        return {
            "registration_id": registration_id,
            "event_id": event_id,
            "bib_num": bib,
            "chip_num": f"A{registration_id:08d}" if bib else None,
            "age": age,
            "registration_date": m.format_local(registered, m.EASTERN),
            "last_modified": int(registered.timestamp()),
            "team_name": rng.choice(TEAMS),
            "amount_paid": f"${rng.choice([35, 45, 57.75, 89, 1050]):,.2f}",
            "imported": rng.choice(["F", "F", "F", "T"]),
            "question_responses": [{"question_id": 11, "question_text": "T-shirt size",
                                    "response": rng.choice(["S", "M", "L", "XL"])}],
            "user": {
                "user_id": 18_000_000 + registration_id,
                "first_name": first, "middle_name": None, "last_name": last,
                "email": f"{first.lower()}.{registration_id}@example.org",
                "dob": dob.isoformat(), "gender": gender,
                "phone": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                "address": {"street": f"{rng.randint(1, 999)} Elm St", "city": place[0],
                            "state": place[1], "zipcode": f"{rng.randint(10000, 99999)}",
                            "country_code": "US"},
            },
        }

    def _seed_results(self, event_id: int) -> None:
        rows = [r for r in self.participants[event_id] if r["bib_num"]][:50]
        results = []
        set_id = self._next_result_set
        # real shapes: columns whose ids change per result set, named in results_headers
        team_col, division_col = f"custom-field-{set_id % 997 + 3}", \
            f"division-{set_id % 991 + 11}-placement"
        division_places: dict[str, int] = {}
        for place, row in enumerate(sorted(rows, key=lambda r: r["registration_id"]), start=1):
            seconds = 1200 + place * 17.25
            result = self._result_row(row, place, timedelta(seconds=seconds),
                                      timedelta(seconds=seconds - 4.5))
            if self.real_shapes:
                gender = row["user"]["gender"]
                division_places[gender] = division_places.get(gender, 0) + 1
                result[team_col] = row["team_name"] or ""
                result[division_col] = division_places[gender]
            results.append(result)
        result_set: dict[str, Any] = {
            "individual_result_set_id": set_id,
            "individual_result_set_name": "Overall Results", "results": results}
        if self.real_shapes:
            result_set["results_headers"] = {
                "place": "Place", "bib": "Bib", "first_name": "First Name",
                "last_name": "Last Name", "gender": "Gender", "age": "Age",
                "clock_time": "Clock Time", "chip_time": "Chip Time", "pace": "Pace",
                team_col: "Team", division_col: "Age Group Place"}
        self.result_sets[event_id].append(result_set)
        self._next_result_set += 1

    def _result_row(self, row: dict[str, Any], place: int | None, clock: timedelta | None,
                    chip: timedelta | None, status: str | None = None) -> dict[str, Any]:
        result_id = self._next_result
        self._next_result += 1
        result = {
            "result_id": result_id, "place": place, "bib": row["bib_num"],
            "registration_id": row["registration_id"],
            "first_name": row["user"]["first_name"], "last_name": row["user"]["last_name"],
            "gender": row["user"]["gender"], "age": row["age"],
            "clock_time": status or (m.format_duration(clock) if clock else None),
            "chip_time": m.format_duration(chip) if chip and not status else None,
            "pace": None,
        }
        if self.real_shapes:
            result["chip_time"] = result["chip_time"] or ""  # seen: a missing chip time is ""
            if row.get("_keyless"):
                del result["registration_id"]
        return result

    # -- changes (tests and the demo use these) ----------------------------------------------
    def find(self, registration_id: int) -> dict[str, Any] | None:
        for rows in self.participants.values():
            for row in rows:
                if row["registration_id"] == registration_id:
                    return row
        return None

    def add_participant(self, event_id: int) -> dict[str, Any]:
        with self.lock:
            row = self._new_row(event_id, self.rng)
            row["last_modified"] = self._tick()
            self.participants[event_id].append(row)
            return row

    def modify(self, registration_id: int, **user_changes: Any) -> dict[str, Any]:
        with self.lock:
            row = self.find(registration_id)
            if row is None:
                raise KeyError(registration_id)
            for key, value in user_changes.items():
                if key in row["user"]:
                    row["user"][key] = value
                else:
                    row[key] = value
            row["last_modified"] = max(self._tick(), int(row["last_modified"]) + 1)
            return row

    def remove(self, registration_id: int, reason: str = "Cancelled by participant") -> None:
        with self.lock:
            self._remove(registration_id, reason)

    def _remove(self, registration_id: int, reason: str) -> None:
        for event_id, rows in self.participants.items():
            for i, row in enumerate(rows):
                if row["registration_id"] == registration_id:
                    del rows[i]
                    removed = {
                        "registration_id": registration_id, "event_id": event_id,
                        "removed_reason": reason, "last_modified_ts": self._tick(),
                        "user": row["user"]}
                    if row.get("_keyless"):
                        del removed["registration_id"]
                    self.removed[event_id].append(removed)
                    return
        raise KeyError(registration_id)

    # -- HTTP -------------------------------------------------------------------------------
    def _auth(self, request: Request, required: bool = True) -> Response | None:
        q = request.query_params
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            if bearer.removeprefix("Bearer ") != self.access_token:
                # assumed: RunSignUp does not document a bad token's reply
                return _error(int(m.ASSUMED["bad_token_error_code"]), "Invalid access token.")
            return None
        key = q.get("api_key") or q.get("rsu_api_key")
        secret = q.get("api_secret") or request.headers.get(m.SECRET_HEADER)
        if key is None and secret is None:
            return _error(m.ERROR_NOT_LOGGED_IN, "Not logged in.") if required else None
        if key != self.api_key or secret != self.api_secret:
            return _error(m.ERROR_KEY_AUTH_FAILED, "Key authentication failed.")
        return None

    def _common(self, request: Request, required: bool = True) -> Response | None:
        if request.query_params.get("format") != "json":
            # The real default is XML; a client that forgets format=json gets XML.
            return Response("<error><error_code>3</error_code></error>",
                            media_type="application/xml")
        if (opts := self.faults.take("throttle")) is not None:
            headers = {}
            if opts.get("retry_after") is not None:
                headers["Retry-After"] = str(opts["retry_after"])
            return _error(m.ERROR_THROTTLED, "Request throttled.", headers)
        return self._auth(request, required)

    def _authorized_race(self, request: Request, *, required: bool = True
                         ) -> dict[str, Any] | Response:
        """The race of the path, or the error RunSignUp answers (auth first)."""
        if (denied := self._common(request, required=required)) is not None:
            return denied
        try:
            race_id = int(request.path_params["race_id"])
        except ValueError:
            return _error(m.ERROR_INVALID_ID, "Invalid id.")
        race = self.races.get(race_id)
        if race is None:
            return _error(m.ERROR_RACE_NOT_FOUND, "Race not found.")
        return race

    @staticmethod
    def _int_param(request: Request, name: str, default: int | None) -> int | None:
        value = request.query_params.get(name)
        if value in (None, ""):
            return default
        return int(value)

    async def races_list(self, request: Request) -> Response:
        if (denied := self._common(request, required=False)) is not None:
            return denied
        try:
            page = self._int_param(request, "page", 1) or 1
            per_page = self._int_param(request, "results_per_page", 50) or 50
        except ValueError:
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid parameters.")
        if per_page > m.MAX_RACES_PER_PAGE:
            return _error(m.ERROR_INVALID_PARAMETERS, "results_per_page is too large.")
        with_events = request.query_params.get("events") == "T"
        races = sorted(self.races.values(), key=lambda r: r["race_id"])
        chunk = races[(page - 1) * per_page: page * per_page]
        return self._page("races", {"races": [
            {"race": _public(r) if with_events and not r["_events_missing_in_list"]
             else {k: v for k, v in _public(r).items() if k != "events"}}
            for r in chunk]})

    def _page(self, path: str, body: Any) -> JSONResponse:
        """A page body, or with ``repeat_page`` armed the page served before on ``path``."""
        if self.faults.take("repeat_page") is not None and path in self._last_served:
            body = self._last_served[path]
        self._last_served[path] = body
        return JSONResponse(body)

    def _served_row(self, row: dict[str, Any], include_questions: bool) -> dict[str, Any]:
        """A participant row as RunSignUp serves it (see ``real_shapes``)."""
        out = _public(row)
        if row.get("_keyless"):
            del out["registration_id"]
        if self.real_shapes and not include_questions:
            out.pop("question_responses", None)
        return out

    async def race_get(self, request: Request) -> Response:
        race = self._authorized_race(request, required=False)
        return race if isinstance(race, Response) else JSONResponse({"race": _public(race)})

    async def participants_get(self, request: Request) -> Response:
        race = self._authorized_race(request)
        if isinstance(race, Response):
            return race
        q = request.query_params
        try:
            event_ids = [int(x) for x in (q.get("event_id") or "").split(",") if x.strip()]
            page = self._int_param(request, "page", 1) or 1
            per_page = self._int_param(request, "results_per_page", 50) or 50
            after = self._int_param(request, "after_registration_id", None)
            modified_after = self._int_param(request, "modified_after_timestamp", None)
        except ValueError:
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid parameters.")
        if not event_ids:
            return _error(m.ERROR_INVALID_PARAMETERS, "event_id is required.")
        if per_page > m.MAX_PARTICIPANTS_PER_PAGE:
            return _error(m.ERROR_INVALID_PARAMETERS, "results_per_page is too large.")
        own = {e["event_id"] for e in race["events"]}
        if any(e not in own for e in event_ids):
            return _error(m.ERROR_EVENT_NOT_FOUND, "Event not found.")
        descending = q.get("sort", "registration_id ASC").strip().upper().endswith("DESC")
        questions = q.get("include_questions") == "T"
        malformed = self.faults.take("malformed_rows")
        blocks = []
        served: list[dict[str, Any]] = []
        with self.lock:
            for event_id in event_ids:
                # Rows are kept in registration_id order (ids only grow).
                rows = self.participants[event_id]
                if after is not None:
                    start = bisect.bisect_right(rows, after,
                                                key=lambda r: r["registration_id"])
                    rows = rows[start:]
                if descending:
                    rows = rows[::-1]
                if modified_after is not None:
                    rows = [r for r in rows if int(r["last_modified"]) >= modified_after]
                chunk = rows[(page - 1) * per_page: page * per_page]
                served_chunk = [self._served_row(r, questions) for r in chunk]
                if malformed is not None:
                    served_chunk = [json.loads(json.dumps(r)) for r in served_chunk]
                    for index in malformed.get("rows", [0]):
                        if 0 <= index < len(served_chunk):
                            _corrupt(served_chunk[index], index)
                served.extend(chunk)
                blocks.append({"event": {"event_id": event_id, "participants": []},
                               "participants": served_chunk})
                next_rows = rows[page * per_page:]
                if served and next_rows and self.faults.take("change_between_pages") is not None:
                    following = next_rows[0]
                    following["user"]["last_name"] = following["user"]["last_name"] + "-Changed"
                    following["last_modified"] = self._tick()
                    self.remove(served[0]["registration_id"], reason="Removed while paging")
        return self._page(f"participants:{race['race_id']}", blocks)

    async def removed_get(self, request: Request) -> Response:
        race = self._authorized_race(request)
        if isinstance(race, Response):
            return race
        try:
            event_id = int(request.query_params.get("event_id") or 0)
            page = self._int_param(request, "page", 1) or 1
            per_page = self._int_param(request, "results_per_page", 50) or 50
            modified_after = self._int_param(request, "modified_after_timestamp", None)
        except ValueError:
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid parameters.")
        if event_id not in {e["event_id"] for e in race["events"]}:
            return _error(m.ERROR_EVENT_NOT_FOUND, "Event not found.")
        rows = sorted(self.removed[event_id], key=lambda r: r["last_modified_ts"])
        if modified_after is not None:
            rows = [r for r in rows if r["last_modified_ts"] >= modified_after]
        chunk = rows[(page - 1) * per_page: page * per_page]
        return JSONResponse({str(m.ASSUMED["removed_list_key"]): chunk})

    async def bib_chip_post(self, request: Request) -> Response:
        race = self._authorized_race(request)
        if isinstance(race, Response):
            return race
        form = await request.form()
        try:
            payload = json.loads(str(form.get("request") or ""))
            rows = payload[str(m.ASSUMED["bib_chip_request_key"])]
        except (ValueError, KeyError, TypeError):
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid request JSON.")
        updated, errors = 0, []
        with self.lock:
            for row in rows:
                participant = self.find(int(row.get("registration_id", 0)))
                if participant is None:
                    errors.append({"registration_id": row.get("registration_id"),
                                   "error_msg": "Registration not found."})
                    continue
                bib = row.get("bib_num")
                clash = bib is not None and any(
                    p["bib_num"] == bib and p is not participant
                    for p in self.participants[participant["event_id"]])
                if clash:
                    errors.append({"registration_id": row["registration_id"],
                                   "error_msg": f"Bib {bib} is already assigned."})
                    continue
                if "bib_num" in row:
                    participant["bib_num"] = bib
                if "chip_num" in row:
                    participant["chip_num"] = row["chip_num"]
                participant["last_modified"] = self._tick()
                updated += 1
        return JSONResponse({str(m.ASSUMED["bib_chip_reply_updated_key"]): updated,
                             str(m.ASSUMED["bib_chip_reply_errors_key"]): errors})

    def _authorized_event(self, request: Request, value: str | None) -> int | Response:
        """The path's race, then its event ``value``; or the error RunSignUp answers."""
        race = self._authorized_race(request)
        return race if isinstance(race, Response) else self._event_of(race, value)

    def _event_of(self, race: dict[str, Any], value: str | None) -> int | Response:
        try:
            event_id = int(value or 0)
        except ValueError:
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid event_id.")
        if event_id not in {e["event_id"] for e in race["events"]}:
            return _error(m.ERROR_EVENT_NOT_FOUND, "Event not found.")
        return event_id

    async def result_sets_get(self, request: Request) -> Response:
        event_id = self._authorized_event(request, request.query_params.get("event_id"))
        if isinstance(event_id, Response):
            return event_id
        return JSONResponse({"individual_results_sets": [
            {k: v for k, v in s.items() if k != "results"} | {"num_results": len(s["results"])}
            for s in self.result_sets[event_id]]})

    async def results_get(self, request: Request) -> Response:
        event_id = self._authorized_event(request, request.query_params.get("event_id"))
        if isinstance(event_id, Response):
            return event_id
        try:
            set_id = self._int_param(request, "individual_result_set_id", None)
            page = self._int_param(request, "page", 1) or 1
            per_page = self._int_param(request, "results_per_page", 100) or 100
        except ValueError:
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid parameters.")
        sets = [s for s in self.result_sets[event_id]
                if set_id is None or s["individual_result_set_id"] == set_id]
        return self._page(f"results:{event_id}", {"individual_results_sets": [
            {"individual_result_set_id": s["individual_result_set_id"],
             "individual_result_set_name": s["individual_result_set_name"],
             **({"results_headers": s["results_headers"]} if "results_headers" in s else {}),
             "results": s["results"][(page - 1) * per_page: page * per_page]}
            for s in sets]})

    async def new_result_set_post(self, request: Request) -> Response:
        race = self._authorized_race(request)
        if isinstance(race, Response):
            return race
        form = await request.form()
        event_id = self._event_of(race, str(form.get("event_id") or ""))
        if isinstance(event_id, Response):
            return event_id
        with self.lock:
            set_id = self._next_result_set
            self._next_result_set += 1
            self.result_sets[event_id].append({
                "individual_result_set_id": set_id,
                "individual_result_set_name": str(form.get("individual_result_set_name")
                                                  or "Results"),
                "results": []})
        return JSONResponse({str(m.ASSUMED["new_result_set_reply_key"]): set_id})

    async def full_results_post(self, request: Request) -> Response:
        event_id = self._authorized_event(request, request.query_params.get("event_id"))
        if isinstance(event_id, Response):
            return event_id
        form = await request.form()
        if form.get("request_format") != "json":
            return _error(m.ERROR_INVALID_PARAMETERS, "request_format must be json.")
        try:
            set_id = int(str(form.get("individual_result_set_id")))
            rows = json.loads(str(form.get("request") or ""))["results"]
        except (ValueError, KeyError, TypeError):
            return _error(m.ERROR_INVALID_PARAMETERS, "Invalid request JSON.")
        target = next((s for s in self.result_sets[event_id]
                       if s["individual_result_set_id"] == set_id), None)
        if target is None:
            return _error(m.ERROR_INVALID_ID, "Result set not found.")
        cut = self.faults.take("results_500_mid_batch")
        if cut is not None:
            rows = rows[:int(cut.get("rows", len(rows) // 2))]
        added, errors = 0, []
        with self.lock:
            people = self.participants[event_id]
            for row in rows:
                match = next((p for p in people if
                              ("registration_id" in row
                               and p["registration_id"] == row["registration_id"])
                              or ("bib" in row and p["bib_num"] == row["bib"])
                              or ("chip_num" in row and p["chip_num"] == row["chip_num"])), None)
                if match is None:
                    errors.append({"bib": row.get("bib"), "registration_id":
                                   row.get("registration_id"),
                                   "error_msg": "No participant matches this row."})
                    continue
                clock = str(row.get("clock_time") or "")
                status = clock.upper() if clock.upper() in ("DQ", "DNS", "DNF") else None
                try:
                    clock_td = None if status else m.parse_duration(clock, "clock_time")
                    chip_td = m.parse_duration(row.get("chip_time"), "chip_time")
                except m.MappingError as exc:
                    errors.append({"bib": row.get("bib"), "error_msg": str(exc)})
                    continue
                new = self._result_row(match, row.get("place"), clock_td, chip_td, status)
                for key, value in row.items():
                    if key.startswith("split-"):
                        new[key] = value
                existing = next((r for r in target["results"]
                                 if "result_id" in row and r["result_id"] == row["result_id"]),
                                None)
                if existing is not None:
                    new["result_id"] = existing["result_id"]
                    target["results"][target["results"].index(existing)] = new
                else:
                    target["results"].append(new)
                added += 1
        if cut is not None:
            return Response("Internal Server Error", status_code=500)
        return JSONResponse({"num_results_added": added,
                             str(m.ASSUMED["full_results_reply_errors_key"]): errors})

    # -- control routes (the demo's way to change its data; not RunSignUp's API) -------------
    async def sim_modify(self, request: Request) -> Response:
        """POST /_sim/registrations/{id} {"team_name": ..., "first_name": ...}: a change on
        the provider side (user fields go in the row's user), seen by the next sync."""
        changes = await request.json()
        if not isinstance(changes, dict) or not changes:
            return JSONResponse({"error": "send an object of fields to change"}, 400)
        try:
            row = self.modify(int(request.path_params["registration_id"]), **changes)
        except (KeyError, ValueError):
            return JSONResponse({"error": "no such registration"}, 404)
        return JSONResponse(_public(row))

    async def sim_remove(self, request: Request) -> Response:
        """DELETE /_sim/registrations/{id}?reason=...: the registration is removed (a
        withdrawal the next sync reads)."""
        try:
            self.remove(int(request.path_params["registration_id"]),
                        reason=request.query_params.get("reason") or "Cancelled by participant")
        except (KeyError, ValueError):
            return JSONResponse({"error": "no such registration"}, 404)
        return JSONResponse({"removed": int(request.path_params["registration_id"])})

    async def sim_add(self, request: Request) -> Response:
        """POST /_sim/events/{event_id}/registrations: a new registration in that event."""
        try:
            event_id = int(request.path_params["event_id"])
        except ValueError:
            event_id = -1
        if event_id not in self.participants:
            return JSONResponse({"error": "no such event"}, 404)
        return JSONResponse(_public(self.add_participant(event_id)))

    def control_routes(self) -> list[Route]:
        return [
            Route("/_sim/registrations/{registration_id}", self.sim_modify, methods=["POST"]),
            Route("/_sim/registrations/{registration_id}", self.sim_remove,
                  methods=["DELETE"]),
            Route("/_sim/events/{event_id}/registrations", self.sim_add, methods=["POST"]),
        ]

    def routes(self) -> list[Route]:
        return [
            Route("/races", self.races_list),
            Route("/race/{race_id}", self.race_get),
            Route("/race/{race_id}/participants", self.participants_get, methods=["GET"]),
            Route("/race/{race_id}/participants", self.bib_chip_post, methods=["POST"]),
            Route("/" + str(m.ASSUMED["removed_path"]), self.removed_get),
            Route("/race/{race_id}/results/get-result-sets", self.result_sets_get),
            Route("/race/{race_id}/results/get-results", self.results_get),
            Route("/race/{race_id}/results/new-result-set", self.new_result_set_post,
                  methods=["POST"]),
            Route("/race/{race_id}/results/full-results", self.full_results_post,
                  methods=["POST"]),
        ]


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record without the simulator's own ``_`` marks."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _corrupt(row: dict[str, Any], index: int) -> None:
    """Realistic bad values, a different one per row so each surfaces its own problem."""
    kind = index % 4
    if kind == 0:
        row["registration_date"] = "31/31/2026 99:99"
    elif kind == 1:
        row["user"]["dob"] = "1990-13-45"
    elif kind == 2:
        row["amount_paid"] = "fifty dollars"
    else:
        row["user"] = None


REAL_SHAPES = True  # make_app() takes real_shapes=True (see providers.demo)


def demo_events(sim: RunSignUpSimulator) -> list[tuple[str, str]]:
    """(ref, name) of every event the simulator serves, first race first, named as the
    connection's event list names them ("<race> · <event>"): the demo links the first to a
    racehub event and leaves the next unlinked."""
    return [(m.event_ref(race_id, event["event_id"]), f"{race['name']} · {event['name']}")
            for race_id, race in sorted(sim.races.items()) for event in race["events"]]


def make_app(*, simulator: RunSignUpSimulator | None = None, **kwargs: Any) -> Starlette:
    """The simulator as an ASGI app; its base URL for the adapter is ``<server>/Rest``."""
    sim = simulator or RunSignUpSimulator(**kwargs)
    return simulator_app(sim, [Mount(BASE_PATH, routes=sim.routes()), *sim.control_routes()])


def main(argv: list[str] | None = None) -> None:
    """``python -m racehub.providers.runsignup.simulator --port 8101``: a standalone server
    for the demo and manual testing (base URL ``http://127.0.0.1:<port>/Rest``)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--races", type=int, default=2)
    parser.add_argument("--participants", type=int, default=300, help="per event")
    parser.add_argument("--api-key", default=DEMO_CREDENTIALS["api_key"])
    parser.add_argument("--api-secret", default=DEMO_CREDENTIALS["api_secret"])
    parser.add_argument("--real-shapes", action=argparse.BooleanOptionalAction, default=True,
                        help="serve the shapes seen in real replies (default on)")
    args = parser.parse_args(argv)
    app = make_app(seed=args.seed, races=args.races, participants_per_event=args.participants,
                   api_key=args.api_key, api_secret=args.api_secret,
                   real_shapes=args.real_shapes)
    print(f"RunSignUp simulator on http://127.0.0.1:{args.port}/Rest "
          f"(api_key={args.api_key}; races {sorted(app.state.simulator.races)})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
