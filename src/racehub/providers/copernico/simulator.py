"""A Copernico (Timingsense) test server: the push API and the public results API in one.

The real push API (``https://api.copernico.cloud``) and public results host
(``https://public-api.copernico.cloud/api``) are different hosts; here the push routes
sit at the root and the results routes under ``/api``, so a test points the connection's
base URL at ``<server>`` and its ``results_base_url`` setting at ``<server>/api``.

Deterministic from ``seed``: races (UUID ids and a slug) with events, registrations as if
already pushed (hundreds by default, 50k possible) and preset results in milliseconds.

Documented shapes: ``POST /race-registrations/{raceId}`` with a JSON list (no auth needed;
a wrong ``x-api-key`` is refused, assumed); preset results at
``/api/races/{slug}/preset/{owner}:::{preset}/{event}`` as a list or
``{"data": [...], "gunTime": ...}`` (``results_shape``); athlete detail
``/api/races/{raceId}/athlete/{id}/full`` with ``x-api-key`` ->
``{"result": {"code"}, "data": {...}}``.
Success is ``{"result": {"code": 1, "message": "OK"}}`` in every reply (seen in real
responses). With ``real_shapes=True`` (the demo's default) the replies take the forms seen
in real responses: athlete detail alternates between the ``/full`` form (the athlete's
events nested in ``data.events[]``) and one event flattened into ``data``, ``chip`` is a
list of numbers for some athletes and of strings for others, and ``dorsal`` is a string;
preset results hold athletes still on the course (``status: running``, no time) and
negative start offsets (``times.official_:::start:::``, milliseconds).
Assumed (see ``mapping.ASSUMED``; served exactly as the adapter assumes): the push reply
``{"result": {"code": 1}, "data": {"created", "errors": [{"id", "code", "message"}]}}``
refusing known ids with code ``DUPLICATED``; ``DELETE /race-registrations/{raceId}/{id}``;
the ``position`` column and status words; error bodies in the ``result`` envelope.

Faults, besides the generic HTTP ones: ``malformed_rows`` (``rows=[i, ...]``) corrupts
those rows of the next results response. Nothing here pages, so there is no
``change_between_pages``.

Control route (the demo's and the browser tests' way to run the race; not Copernico's
API): ``POST /_sim/races/{raceId}/finish`` (``?event=<eventId>`` for one event) makes the
athletes pushed to the race that have no result yet cross the line (:meth:`finish`).
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from racehub.providers.copernico import mapping as m
from racehub.providers.simulator import Faults, simulator_app

BASE_PATH = ""
RESULTS_PATH = "/api"  # the results base URL is <server>/api
DEMO_CREDENTIALS: dict[str, str] = {"api_key": "sim-copernico-key"}
DEMO_PRESET_OWNER = "timer@example.org"
DEMO_PRESET = "results"

FIRST_NAMES = ["Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Leo", "Paula", "Daniel", "Irene",
               "Álvaro", "Noa", "Pablo", "Carmen", "Iñaki", "Julia", "Joan", "Núria", "Íker"]
LAST_NAMES = ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez",
              "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Muñoz"]
CLUBS = [None, None, "CA Retiro", "Club Triatlón Bilbao", "Runners Sevilla"]
RACES = [("maraton-de-valencia", "Maratón de Valencia", ["Maratón", "10K"]),
         ("behobia-san-sebastian", "Behobia San Sebastián", ["20K"]),
         ("carrera-de-la-mujer", "Carrera de la Mujer", ["5K", "10K"])]
EPOCH = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def _envelope(code: int, message: str, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"result": {"code": code, "message": message}, **extra},
                        status_code=status)


class CopernicoSimulator:
    def __init__(
        self,
        *,
        seed: int = 1,
        races: int = 2,
        registrations_per_event: int = 300,
        api_key: str = DEMO_CREDENTIALS["api_key"],
        preset_owner: str = DEMO_PRESET_OWNER,
        presets: tuple[str, ...] = (DEMO_PRESET,),
        results_shape: str = "data",
        finishers_per_event: int = 50,
        real_shapes: bool = False,
        faults: Faults | None = None,
    ) -> None:
        if results_shape not in ("list", "data"):
            raise ValueError("results_shape is 'list' or 'data'")
        self.api_key = api_key
        self.preset_owner = preset_owner
        self.presets = presets
        self.results_shape = results_shape
        self.real_shapes = real_shapes
        self.faults = faults or Faults()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        # race id -> {"slug", "name", "events": {event id: event name}}
        self.races: dict[str, dict[str, Any]] = {}
        # race id -> registration id -> the row as pushed
        self.registrations: dict[str, dict[str, dict[str, Any]]] = {}
        self.results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.gun_times: dict[tuple[str, str], int] = {}
        self.pushes: list[list[Any]] = []
        self.removals: list[tuple[str, str]] = []
        # race id -> ids of the registrations added through the push API (racehub's)
        self.pushed: dict[str, set[str]] = {}
        self._build(races, registrations_per_event, finishers_per_event)

    # -- seeded data ----------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _build(self, races: int, per_event: int, finishers: int) -> None:
        rng = self.rng
        for r in range(races):
            slug, name, events = RACES[r % len(RACES)]
            race_id = self._uuid()
            event_ids = {self._uuid(): event_name for event_name in events}
            self.races[race_id] = {"slug": slug if r < len(RACES) else f"{slug}-{r}",
                                   "name": name, "events": event_ids}
            self.registrations[race_id] = {}
            for event_id in event_ids:
                rows = [self._new_registration(race_id, event_id, n)
                        for n in range(per_event)]
                for row in rows:
                    self.registrations[race_id][row["id"]] = row
                gun = EPOCH + timedelta(days=30 + r, hours=-3)
                self.gun_times[(race_id, event_id)] = int(gun.timestamp() * 1000)
                self.results[(race_id, event_id)] = [
                    self._result_row(row, place, 1_500_000 + place * 12_345 + rng.randint(0, 999))
                    for place, row in enumerate(rows[:finishers], start=1)]
                if self.real_shapes:
                    self._real_results(rows, finishers, self.results[(race_id, event_id)])

    def _real_results(self, rows: list[dict[str, Any]], finishers: int,
                      results: list[dict[str, Any]]) -> None:
        """What real presets hold besides finishers: start offsets below zero (a runner
        who crossed the start before the gun) and athletes still running."""
        start = "times.official_:::start:::"
        for n, row in enumerate(results):
            row[start] = -250 if n % 5 == 0 else 1_000 + 37 * n
        for row in rows[finishers:finishers + 3]:
            on_course = self._result_row(row, None, None, status="running")
            on_course[start] = -120
            results.append(on_course)

    def _new_registration(self, race_id: str, event_id: str, n: int) -> dict[str, Any]:
        rng = self.rng
        age = rng.randint(16, 75)
        birth = (EPOCH - timedelta(days=365 * age + rng.randint(0, 364))).date()
        row: dict[str, Any] = {
            "id": f"rh-{self._uuid()[:8]}-{n}", "name": rng.choice(FIRST_NAMES),
            "surname": f"{rng.choice(LAST_NAMES)} {rng.choice(LAST_NAMES)}",
            "birthdate": birth.isoformat(), "document": f"{rng.randint(10**7, 10**8 - 1)}X",
            "dorsal": str(1 + n), "gender": rng.choice(["male", "female"]),
            "raceId": race_id, "eventId": event_id,
        }
        if club := rng.choice(CLUBS):
            row["club"] = club
        if self.real_shapes:
            row["chip"] = [str(100_000 + n), str(900_000 + n)]  # number-safe: no 0 lead
        return row

    @staticmethod
    def _result_row(row: dict[str, Any], place: int | None, ms: int | None,
                    status: str = "finished") -> dict[str, Any]:
        decade = (2026 - date.fromisoformat(row["birthdate"]).year) // 10 * 10
        return {
            "id": row["id"], "dorsal": row["dorsal"], "name": row["name"],
            "surname": row["surname"], "birthdate": row["birthdate"], "gender": row["gender"],
            "category": f"{'M' if row['gender'] == 'male' else 'F'}{decade}",
            "status": status, "position": place, str(m.ASSUMED["finish_time_key"]): ms,
        }

    def race_ref(self, race_index: int = 0, event_index: int = 0) -> str:
        race_id = list(self.races)[race_index]
        return m.event_ref(race_id, list(self.races[race_id]["events"])[event_index])

    # -- the race is run (the demo and tests use this) -----------------------------------------
    def finish(self, race_id: str, event_id: str | None = None) -> dict[str, int]:
        """The athletes pushed to the race (to ``event_id``; every event of it by default)
        that have no result yet cross the line, as a timing system records them: most
        finish in a time that fits the event's distance (a pace of 3 to 10 min/km), about
        one in twenty does not finish (``dnf``, no time) and about one in twenty-five never
        starts (``dns``). Positions are then ranked again by finish time over the event's
        finishers, seeded ones included. Returns the counts of what it added."""
        counts = {"finished": 0, "dnf": 0, "dns": 0}
        key = str(m.ASSUMED["finish_time_key"])
        with self.lock:
            race = self.races[race_id]
            events = [event_id] if event_id is not None else list(race["events"])
            for eid in events:
                if eid not in race["events"]:
                    raise KeyError(eid)
                results = self.results.setdefault((race_id, eid), [])
                have = {row["id"] for row in results}
                km = _distance_km(race["events"][eid])
                for ref in sorted(self.pushed.get(race_id, set())):
                    row = self.registrations[race_id].get(ref)
                    if row is None or row.get("eventId") != eid or ref in have:
                        continue  # removed since, another event's, or finished already
                    draw = self.rng.random()
                    if draw < 0.04:
                        status, ms = "dns", None
                    elif draw < 0.09:
                        status, ms = "dnf", None
                    else:
                        pace_s = min(600.0, max(180.0, self.rng.gauss(330, 60)))
                        status, ms = "finished", int(km * pace_s * 1000) + self.rng.randint(0, 999)
                    counts[status] += 1
                    result = _pushed_result(row, race["events"][eid], status, ms)
                    if self.real_shapes and status == "finished":
                        result["times.official_:::start:::"] = self.rng.randint(-500, 90_000)
                    results.append(result)
                finishers = sorted((r for r in results if r.get("status") == "finished"
                                    and isinstance(r.get(key), int)), key=lambda r: r[key])
                for place, row in enumerate(finishers, start=1):
                    row["position"] = place
        return counts

    async def sim_finish(self, request: Request) -> Response:
        """POST /_sim/races/{race_id}/finish[?event=<event id>]: see :meth:`finish`."""
        race_id = request.path_params["race_id"]
        if race_id not in self.races:
            return JSONResponse({"error": f"no race {race_id}"}, 404)
        try:
            counts = self.finish(race_id, request.query_params.get("event") or None)
        except KeyError as exc:
            return JSONResponse({"error": f"race {race_id} has no event {exc.args[0]}"}, 404)
        return JSONResponse(counts)

    # -- HTTP -------------------------------------------------------------------------------
    def _wrong_key(self, request: Request, *, required: bool) -> Response | None:
        sent = request.headers.get(m.API_KEY_HEADER)
        if sent is None and not required:
            return None
        if sent != self.api_key:
            return _envelope(401, "Invalid or missing API key", 401)
        return None

    async def push(self, request: Request) -> Response:
        if (denied := self._wrong_key(request, required=False)) is not None:
            return denied
        race_id = request.path_params["race_id"]
        if race_id not in self.races:
            return _envelope(404, f"Race {race_id} not found", 404)
        try:
            rows = await request.json()
        except ValueError:
            return _envelope(400, "Body is not JSON", 400)
        if not isinstance(rows, list):
            return _envelope(400, "Body must be a JSON list of registrations", 400)
        created, errors = 0, []
        with self.lock:
            self.pushes.append(rows)
            known = self.registrations[race_id]
            for row in rows:
                problem = self._invalid(race_id, row)
                ref = str(row.get("id") or "") if isinstance(row, dict) else ""
                if problem is not None:
                    errors.append({"id": ref, "code": "INVALID", "field": problem[0],
                                   "message": problem[1]})
                elif ref in known:
                    errors.append({"id": ref, "code": m.ASSUMED["duplicate_code"],
                                   "message": f"Registration {ref} already exists"})
                else:
                    known[ref] = dict(row)
                    self.pushed.setdefault(race_id, set()).add(ref)
                    created += 1
        return JSONResponse({"result": {"code": 1, "message": "OK"}, "data": {
            str(m.ASSUMED["push_reply_created"]): created,
            str(m.ASSUMED["push_reply_errors"]): errors}})

    def _invalid(self, race_id: str, row: Any) -> tuple[str, str] | None:
        if not isinstance(row, dict):
            return "row", "expected an object"
        if not row.get("id"):
            return "id", "id is required"
        if row.get("raceId") != race_id:
            return "raceId", f"raceId must be {race_id}"
        if row.get("eventId") not in self.races[race_id]["events"]:
            return "eventId", f"unknown eventId {row.get('eventId')!r}"
        if row.get("gender") not in (None, "male", "female", "mixed"):
            return "gender", "gender must be male, female or mixed"
        if row.get("birthdate"):
            try:
                date.fromisoformat(str(row["birthdate"]))
            except ValueError:
                return "birthdate", "birthdate must be YYYY-MM-DD"
        return None

    async def remove(self, request: Request) -> Response:
        if (denied := self._wrong_key(request, required=False)) is not None:
            return denied
        race_id, ref = request.path_params["race_id"], request.path_params["registration_id"]
        with self.lock:
            if self.registrations.get(race_id, {}).pop(ref, None) is None:
                return _envelope(404, f"Registration {ref} not found", 404)
            self.removals.append((race_id, ref))
        return JSONResponse({"result": {"code": 1, "message": "OK"}})

    async def preset_results(self, request: Request) -> Response:
        race_key = unquote(request.path_params["race"])
        owner, _, preset = unquote(request.path_params["owner_preset"]).partition(":::")
        event_key = unquote(request.path_params["event"])
        race_id = next((rid for rid, race in self.races.items()
                        if race_key in (rid, race["slug"])), None)
        if race_id is None or owner != self.preset_owner or preset not in self.presets:
            return _envelope(404, "Race or preset not found", 404)
        event_id = next((eid for eid, name in self.races[race_id]["events"].items()
                         if event_key in (eid, name)), None)
        if event_id is None:
            return _envelope(404, f"Event {event_key} not found", 404)
        rows = self.results[(race_id, event_id)]
        if (malformed := self.faults.take("malformed_rows")) is not None:
            rows = json.loads(json.dumps(rows))  # corrupt copies only
            for index in malformed.get("rows", [0]):
                if 0 <= index < len(rows):
                    _corrupt(rows, index)
        if self.results_shape == "list":
            return JSONResponse(rows)
        return JSONResponse({"data": rows, "gunTime": self.gun_times[(race_id, event_id)]})

    async def athlete(self, request: Request) -> Response:
        if (denied := self._wrong_key(request, required=True)) is not None:
            return denied
        race_id, ref = request.path_params["race_id"], request.path_params["athlete_id"]
        row = self.registrations.get(race_id, {}).get(ref)
        if row is None:
            return _envelope(404, f"Athlete {ref} not found", 404)
        return JSONResponse({"result": {"code": 1, "message": "OK"},
                             "data": self.athlete_data(race_id, row)})

    def athlete_data(self, race_id: str, row: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of an athlete detail. Plain: the registration as pushed. Real
        shapes: by athlete, nested (``/full``) or flattened, chips as numbers or strings."""
        if not self.real_shapes:
            return row
        kind = sum(row["id"].encode()) % 4
        event_keys = ("dorsal", "category", "status", "chip", "eventId")
        chips = row.get("chip") or []
        chip: list[Any] = ([int(c) for c in chips] if kind % 2 else list(chips))
        event = {"eventId": row["eventId"], "dorsal": str(row["dorsal"]),
                 "category": f"{'M' if row['gender'] == 'male' else 'F'}-Senior",
                 "status": "registered", "chip": chip,
                 "event": self.races[race_id]["events"][row["eventId"]],
                 "times": {"startNetTime": -250}, "distance": 0}
        person = {k: v for k, v in row.items() if k not in event_keys}
        person["Talla de camiseta"] = "M"  # registration answers: root keys, spaces, accents
        if kind < 2:  # the /full form: every event of the athlete under data.events[]
            other = {**event, "eventId": "00000000-0000-4000-8000-000000000000",
                     "dorsal": "9999", "event": "Otra prueba"}
            return {**person, "events": [other, event] if kind == 0 else [event]}
        return {**person, **event}

    def routes(self) -> list[Route]:
        results = RESULTS_PATH
        return [
            Route(f"{BASE_PATH}/" + m.PUSH_PATH, self.push, methods=["POST"]),
            Route(f"{BASE_PATH}/" + str(m.ASSUMED["remove_path"]), self.remove,
                  methods=["DELETE"]),
            Route(results + "/races/{race}/preset/{owner_preset}/{event}", self.preset_results),
            Route(results + "/" + m.ATHLETE_PATH, self.athlete),
            Route("/_sim/races/{race_id}/finish", self.sim_finish, methods=["POST"]),
        ]


def _distance_km(event_name: str) -> float:
    """An event's distance from its name ("10K", "Maratón", "Media Maratón"); 10 km when
    the name does not tell."""
    name = event_name.lower()
    if "media" in name or "half" in name:
        return 21.0975
    if "marat" in name:
        return 42.195
    found = re.search(r"(\d+(?:[.,]\d+)?)\s*k", name)
    return float(found.group(1).replace(",", ".")) if found else 10.0


def _pushed_result(row: dict[str, Any], event_name: str, status: str,
                   ms: int | None) -> dict[str, Any]:
    """A preset results row of a registration as racehub pushed it (any field it left out
    stays out)."""
    result: dict[str, Any] = {"id": row["id"], "status": status, "position": None,
                              str(m.ASSUMED["finish_time_key"]): ms}
    for name in ("dorsal", "name", "surname", "birthdate", "gender", "club"):
        if row.get(name) not in (None, ""):
            result[name] = row[name]
    letter = {"male": "M", "female": "F"}.get(str(row.get("gender")), "X")
    result["category"] = f"{letter} {event_name}"
    return result


def _corrupt(rows: list[Any], index: int) -> None:
    """Realistic bad values, a different one per row so each surfaces its own problem."""
    kind = index % 3
    if kind == 0:
        rows[index][str(m.ASSUMED["finish_time_key"])] = "1:23:45"  # text, not milliseconds
    elif kind == 1:
        rows[index]["status"] = "lost"
    else:
        rows[index]["gender"] = "unknown"


REAL_SHAPES = True  # make_app() takes real_shapes=True (see providers.demo)


def make_app(*, simulator: CopernicoSimulator | None = None, **kwargs: Any) -> Starlette:
    """The simulator as an ASGI app: push API at ``<server>``, results at ``<server>/api``."""
    sim = simulator or CopernicoSimulator(**kwargs)
    return simulator_app(sim, sim.routes())


def demo_settings(server: str) -> dict[str, Any]:
    """The connection settings the demo needs beside base URL and key: the results host
    (this server's ``/api``), the preset, and the seeded races (``make_app()`` defaults)."""
    sim = CopernicoSimulator()  # the same seed as make_app(): the same race and event ids
    return {"results_base_url": server + RESULTS_PATH, "preset_owner": sim.preset_owner,
            "preset": DEMO_PRESET,
            "eventIds": [m.event_ref(race_id, event_id) for race_id, race in sim.races.items()
                         for event_id in race["events"]]}


def demo_events(sim: CopernicoSimulator) -> list[tuple[str, str]]:
    """(ref, name) of every race event the simulator serves, as "<race> · <event>": the
    demo links one to a racehub event, to push its start list and pull its results."""
    return [(m.event_ref(race_id, event_id), f"{race['name']} · {name}")
            for race_id, race in sim.races.items() for event_id, name in race["events"].items()]


def finish_path(ref: str) -> str:
    """The control route running the race of ``ref`` (see :meth:`CopernicoSimulator.finish`),
    after the server's address."""
    race_id, event_id = m.split_event_ref(ref)
    return f"/_sim/races/{race_id}/finish?event={event_id}"


def main(argv: list[str] | None = None) -> None:
    """``python -m racehub.providers.copernico.simulator --port 8105``: a standalone server
    for the demo and manual testing (base URL ``http://127.0.0.1:<port>``, results base URL
    ``http://127.0.0.1:<port>/api``)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8105)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--races", type=int, default=2)
    parser.add_argument("--registrations", type=int, default=300, help="per event")
    args = parser.parse_args(argv)
    app = make_app(seed=args.seed, races=args.races, registrations_per_event=args.registrations)
    sim: CopernicoSimulator = app.state.simulator
    refs = [m.event_ref(race_id, event_id) for race_id, race in sim.races.items()
            for event_id in race["events"]]
    print(f"Copernico simulator on http://127.0.0.1:{args.port} (results base "
          f"http://127.0.0.1:{args.port}{RESULTS_PATH}, preset owner {sim.preset_owner}, "
          f"preset {DEMO_PRESET}; event refs {refs})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
