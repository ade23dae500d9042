"""Copernico (Timingsense) wire values <-> normalized records, and its webhook payload.

Facts from PROVIDERS.md (H unless marked): registrations are pushed as a JSON list to
``POST /race-registrations/{raceId}`` (documented without auth; we send ``x-api-key`` when
the connection has one); a changed registration is removed and re-added (M); preset
results come from a different, public host, times in MILLISECONDS (offsets may be
negative), as a list or ``{"data": [...], "gunTime": ...}``; athlete detail answers
``{"result": {"code": 1, "message": "OK"}, "data": {...}}`` (seen in real responses: success
is code 1), its ``data`` either with the events nested in ``data.events[]`` (the ``/full``
form) or one event flattened into ``data``, ``chip`` a list of numbers or of strings and
``dorsal`` a string; the webhook (M) posts
``{competitionId, copernicoId, type, participantId, participantsIds, extraData{point,
location}, rawTime, apiKey}`` and its text is often double-encoded UTF-8.
Everything marked L or unknown there lives in ASSUMED below: one edit to correct each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from racehub.providers.base import ProviderParticipant, ProviderResult, ResultStatus
from racehub.providers.values import (
    MappingError,
    parse_int,
    text_or_none,
)

# -- documented ---------------------------------------------------------------------------
PUSH_PATH = "race-registrations/{race_id}"
API_KEY_HEADER = "x-api-key"
RESULTS_BASE_URL = "https://public-api.copernico.cloud/api"
RESULTS_PATH = "races/{race}/preset/{owner}:::{preset}/{event}"
ATHLETE_PATH = "races/{race_id}/athlete/{athlete_id}/full"
GENDERS = {"M": "male", "F": "female"}  # and "mixed" (teams), which has no person gender
# ``result.code`` of a successful reply (seen in real responses: 1, not 0).
OK_CODES = frozenset({1})
WEBHOOK_TYPES = frozenset({"detection", "modification", "creation", "deletion"})

# -- ASSUMED (L or not in any public source; one place to correct) -------------------------
ASSUMED: dict[str, Any] = {
    # Rate limits undocumented: stay polite.
    "rate_per_second": 3.0,
    "rate_burst": 6,
    # Registrations per push request (only the 6 MB cap of results is documented).
    "registrations_per_push": 500,
    # The push reply and how it refuses an id that is already registered.
    "push_reply_created": "created",
    "push_reply_errors": "errors",
    "duplicate_code": "DUPLICATED",
    # How a registration is removed (needed for remove-and-re-add).
    "remove_path": "race-registrations/{race_id}/{registration_id}",
    # Athlete detail in the /full form: which key of a ``data.events[]`` item names its
    # event (the real key is not in any reply we have seen; each is tried in turn). With
    # one event, or none matching, the first item is read.
    "athlete_event_keys": ("eventId", "event_id", "event", "id"),
    # The preset column holding the finish time, flat ("times.x") or nested (times: {x}).
    "finish_time_key": "times.official_:::finish:::",
    "place_key": "position",
    # Preset ``status`` words -> racehub statuses (anything else with a time: finished).
    "statuses": {"finished": ResultStatus.FINISHED, "dnf": ResultStatus.DNF,
                 "dns": ResultStatus.DNS, "dsq": ResultStatus.DQ,
                 "dq": ResultStatus.DQ},
    # Preset ``status`` words of an athlete on the course: no result yet, not a row problem
    # ("running" seen in real responses; the others assumed).
    "in_progress_statuses": frozenset({"running", "started", "in_progress", "in progress",
                                       "on course"}),
    # Preset columns "times.<name>" other than the finish: splits and offsets, by name.
    "times_prefix": "times.",
    # The athlete id ``check_credentials`` asks for: a 404 means the key was accepted.
    "probe_athlete_id": "racehub-credential-check",
    "default_preset": "results",
}

DEFAULT_FIELD_MAPPING: dict[str, str] = {
    "ref": "id",
    "first_name": "name",
    "last_name": "surname",
    "birth_date": "birthdate",
    "gender": "gender",
    "bib": "dorsal",
    "team": "club",
}


# -- refs ------------------------------------------------------------------------------------
def event_ref(race_id: str, event_id: str) -> str:
    return f"{race_id}:{event_id}"


def split_event_ref(ref: str) -> tuple[str, str]:
    """``"raceId:eventId"`` (Sportmaniacs UUIDs) -> both parts."""
    race_id, sep, event_id = str(ref).strip().partition(":")
    if not sep or not race_id or not event_id or ":" in event_id or "/" in ref:
        raise ValueError(f"Copernico event ref must be 'raceId:eventId', got {ref!r}")
    return race_id, event_id


def results_path(*, race: str, owner: str, preset: str, event: str) -> str:
    """The preset results path, every segment URL-encoded (``:::`` stays literal)."""
    return RESULTS_PATH.format(race=quote(race, safe=""), owner=quote(owner, safe="@"),
                               preset=quote(preset, safe=""), event=quote(event, safe=""))


# -- scalars ---------------------------------------------------------------------------------
def parse_ms(value: Any, field: str, *, negative: bool = False) -> timedelta | None:
    """Milliseconds (int, float or digits) -> timedelta. ``negative``: the value is an
    offset (e.g. a start offset ``-250``), which may be below zero; a duration may not."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise MappingError(field, f"expected milliseconds, got {value!r}")
    try:
        ms = float(str(value).strip())
    except ValueError:
        raise MappingError(field, f"expected milliseconds, got {value!r}") from None
    if (ms < 0 and not negative) or ms != ms or ms in (float("inf"), float("-inf")):
        raise MappingError(field, f"expected milliseconds, got {value!r}")
    return timedelta(milliseconds=ms)


def to_ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def parse_date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise MappingError(field, f"expected YYYY-MM-DD, got {value!r}") from None


def parse_gender(value: Any, field: str) -> str | None:
    if value in (None, "", "mixed"):
        return None
    code = str(value).strip().lower()
    for ours, theirs in GENDERS.items():
        if code in (theirs, ours.lower()):
            return ours
    raise MappingError(field, f"expected \"male\", \"female\" or \"mixed\", got {value!r}")


# -- records ---------------------------------------------------------------------------------
def participant_to_registration(participant: ProviderParticipant, race_id: str,
                                event_id: str) -> dict[str, Any]:
    """One row of the documented push body. ``id`` is racehub's stable ref, never the bib."""
    if not participant.ref.strip():
        raise MappingError("id", "a participant needs a stable id")
    if not (participant.first_name or participant.last_name):
        raise MappingError("name", "neither first nor last name given")
    row: dict[str, Any] = {"id": participant.ref.strip(), "name": participant.first_name,
                           "surname": participant.last_name, "raceId": race_id,
                           "eventId": event_id}
    if participant.birth_date is not None:
        row["birthdate"] = participant.birth_date.isoformat()
    if participant.gender in GENDERS:
        row["gender"] = GENDERS[participant.gender]
    if participant.bib:
        row["dorsal"] = participant.bib
    if participant.team:
        row["club"] = participant.team
    if document := participant.extra.get("document"):
        row["document"] = str(document)
    return row


def chip_text(value: Any, field: str = "chip") -> list[str]:
    """``chip``: a list of numbers or of strings (both seen), or one value -> texts."""
    if value in (None, ""):
        return []
    values = value if isinstance(value, list) else [value]
    chips = []
    for i, item in enumerate(values):
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise MappingError(f"{field}[{i}]", f"expected a chip code, got {item!r}")
        if text := str(item).strip():
            chips.append(text)
    return chips


def athlete_data(data: Any, event_id: str | None) -> dict[str, Any]:
    """The ``data`` of an athlete detail as one flat row. The ``/full`` form nests the
    athlete's events in ``data.events[]``: the one for ``event_id`` (or the only/first one)
    is laid over the athlete's own keys, so bib, category, status and chip are read from it;
    the flattened form is returned as it is."""
    if not isinstance(data, dict):
        raise MappingError("data", f"expected an object, got {type(data).__name__}")
    events = data.get("events")
    if events is None:
        return data
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise MappingError("data.events", "expected a list of objects")
    if not events:
        raise MappingError("data.events", "the athlete is in no event")
    keys: tuple[str, ...] = ASSUMED["athlete_event_keys"]
    chosen = next((e for e in events if event_id is not None
                   and any(str(e.get(k)) == event_id for k in keys if e.get(k) is not None)),
                  events[0])
    return {**{k: v for k, v in data.items() if k != "events"}, **chosen,
            "id": data.get("id", chosen.get("id"))}


def map_registration(row: Any, ref_of_event: str) -> ProviderParticipant:
    """A registration as pushed, or the ``data`` of an athlete detail (either shape: see
    :func:`athlete_data`)."""
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    _, _, event_id = str(ref_of_event).partition(":")
    raw = row
    row = athlete_data(row, event_id or None)
    ref = text_or_none(row.get("id"))
    if ref is None:
        raise MappingError("id", "missing")
    first, last = text_or_none(row.get("name")), text_or_none(row.get("surname"))
    if not first and not last:
        raise MappingError("name", "neither name nor surname given")
    extra: dict[str, Any] = {k: row[k] for k in ("document", "category", "status")
                             if row.get(k) not in (None, "")}
    chips = chip_text(row.get("chip"))
    if len(chips) > 1:
        extra["chips"] = chips
    return ProviderParticipant(
        ref=ref, event_ref=ref_of_event, first_name=first or "", last_name=last or "",
        birth_date=parse_date(row.get("birthdate"), "birthdate"),
        gender=parse_gender(row.get("gender"), "gender"),
        bib=text_or_none(row.get("dorsal")), team=text_or_none(row.get("club")),
        chip=chips[0] if chips else None, extra=extra, raw=raw,
    )


def _finish_ms(row: dict[str, Any]) -> Any:
    key = str(ASSUMED["finish_time_key"])
    if key in row:
        return row[key]
    head, _, rest = key.partition(".")
    nested = row.get(head)
    return nested.get(rest) if isinstance(nested, dict) else None


def map_result(row: Any, ref_of_event: str) -> ProviderResult:
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    word = (text_or_none(row.get("status")) or "").lower()
    statuses: dict[str, ResultStatus] = ASSUMED["statuses"]
    running = word in ASSUMED["in_progress_statuses"]
    if word and word not in statuses and not running:
        raise MappingError("status", f"unknown status {row.get('status')!r}; known: "
                                     + ", ".join([*statuses, *sorted(
                                         ASSUMED["in_progress_statuses"])]))
    status = ResultStatus.RUNNING if running else statuses.get(word, ResultStatus.FINISHED)
    finish = parse_ms(_finish_ms(row), str(ASSUMED["finish_time_key"]))
    if status is ResultStatus.FINISHED and finish is None and word:
        raise MappingError(str(ASSUMED["finish_time_key"]), "a finisher needs a finish time")
    return ProviderResult(
        event_ref=ref_of_event,
        participant_ref=text_or_none(row.get("id")),
        bib=text_or_none(row.get("dorsal")),
        first_name=text_or_none(row.get("name")),
        last_name=text_or_none(row.get("surname")),
        gender=parse_gender(row.get("gender"), "gender"),
        place=(parse_int(row.get(ASSUMED["place_key"]), str(ASSUMED["place_key"]))
               if status is not ResultStatus.RUNNING else None),
        clock_time=finish if status is ResultStatus.FINISHED else None,
        status=status,
        splits=_splits(row),
        division=text_or_none(row.get("category")),
        raw=row,
    )


def _splits(row: dict[str, Any]) -> dict[str, timedelta]:
    """Every "times.<name>" column but the finish, by name (``official_:::start:::`` ->
    ``start``); offsets may be negative milliseconds."""
    prefix, finish = str(ASSUMED["times_prefix"]), str(ASSUMED["finish_time_key"])
    columns = {k: v for k, v in row.items() if k.startswith(prefix) and k != finish}
    nested = row.get(prefix.rstrip("."))
    if isinstance(nested, dict):
        columns.update({prefix + k: v for k, v in nested.items() if prefix + k != finish})
    splits = {}
    for key, value in columns.items():
        duration = parse_ms(value, key, negative=True)
        if duration is not None:
            name = key[len(prefix):].replace(":::", " ").replace("official_", "").strip()
            splits[name or key] = duration
    return splits


# -- webhook ---------------------------------------------------------------------------------
class WebhookError(ValueError):
    """The webhook body is not a delivery we can read; names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CopernicoWebhook:
    type: str
    competition_id: str | None
    copernico_id: str | None
    participant_id: str | None
    participant_ids: list[str]
    point: str | None
    location: str | None
    raw_time: str | None
    api_key: str | None = field(repr=False)  # compare it, never store or show it
    payload: dict[str, Any] = field(repr=False, default_factory=dict)  # repaired, no apiKey


def repair_text(text: str, *, rounds: int = 3) -> str:
    """Undo UTF-8 that was decoded as cp1252/Latin-1 (``"JosÃ©"`` -> ``"José"``), as many
    times as it was done. Only text whose bytes form valid UTF-8 again is changed: real
    accented names never do (a Latin-1 letter is never followed by the 0x80-0xBF symbols a
    UTF-8 sequence needs), so they pass through unchanged."""
    for _ in range(rounds):
        if text.isascii():
            return text
        for codec in ("cp1252", "latin-1"):
            try:
                repaired = text.encode(codec).decode("utf-8")
            except UnicodeError:
                continue
            # A step that brings in C1 control characters went too far: no name holds
            # them. (Text read as Latin-1 may already hold some: that is the mojibake.)
            if not _C1_CONTROLS.search(repaired) or _C1_CONTROLS.search(text):
                text = repaired
                break
        else:
            return text
    return text


_C1_CONTROLS = re.compile("[\x80-\x9f]")


def _repair(value: Any) -> Any:
    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, list):
        return [_repair(v) for v in value]
    if isinstance(value, dict):
        return {k: _repair(v) for k, v in value.items()}
    return value


def _id_text(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WebhookError(field, f"expected an id, got {value!r}")
    return str(value).strip() or None


def parse_webhook(body: bytes) -> CopernicoWebhook:
    """A Copernico webhook delivery. Raises :class:`WebhookError` naming the bad field."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("cp1252", errors="replace")  # some senders post Latin-1 bytes
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise WebhookError("body", f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise WebhookError("body", f"expected a JSON object, got {type(data).__name__}")
    api_key = data.get("apiKey")
    if api_key is not None and not isinstance(api_key, str):
        raise WebhookError("apiKey", "expected a string")
    payload = _repair({k: v for k, v in data.items() if k != "apiKey"})
    kind = payload.get("type")
    if not isinstance(kind, str) or kind.strip().lower() not in WEBHOOK_TYPES:
        raise WebhookError("type", f"expected one of {', '.join(sorted(WEBHOOK_TYPES))}, "
                                   f"got {kind!r}")
    ids = payload.get("participantsIds") or []
    if not isinstance(ids, list):
        raise WebhookError("participantsIds", "expected a list")
    extra = payload.get("extraData") or {}
    if not isinstance(extra, dict):
        raise WebhookError("extraData", "expected an object")
    raw_time = payload.get("rawTime")
    if raw_time is not None and not isinstance(raw_time, str | int | float):
        raise WebhookError("rawTime", f"expected a time, got {raw_time!r}")
    participant_ids = [i for n, v in enumerate(ids)
                       if (i := _id_text(v, f"participantsIds[{n}]")) is not None]
    return CopernicoWebhook(
        type=kind.strip().lower(),
        competition_id=_id_text(payload.get("competitionId"), "competitionId"),
        copernico_id=_id_text(payload.get("copernicoId"), "copernicoId"),
        participant_id=_id_text(payload.get("participantId"), "participantId"),
        participant_ids=participant_ids,
        point=text_or_none(extra.get("point")),
        location=text_or_none(extra.get("location")),
        raw_time=None if raw_time in (None, "") else str(raw_time),
        api_key=api_key,
        payload=payload,
    )
