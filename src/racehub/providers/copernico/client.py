"""Copernico (Timingsense) adapter: registration push, preset results, athlete detail.

Base URL ``https://api.copernico.cloud`` (the push API). Credential ``api_key`` is
optional: the push is documented without auth, but when set it is sent as ``x-api-key``
(the other Copernico APIs need it; athlete detail does).

Event refs are ``"raceId:eventId"`` (Sportmaniacs UUIDs). Settings:
- ``results_base_url``: the public results host, ``https://public-api.copernico.cloud/api``
  unless set (a different host from the push API);
- ``preset_owner`` (the login e-mail the preset belongs to, required for results),
  ``preset`` (default ``results``), ``race_slug`` (the race in results URLs; default the
  raceId), ``event_names`` (``{eventId: name}`` for results URLs; default the eventId).

A changed registration is removed and re-added: a push first sends every row, then each
row refused as already registered is removed and sent again (``replace_existing``; without
it that refusal, DUPLICATED, is the row's problem). A withdrawal removes the registration
(``withdraw_participants``): Copernico documents no status to mark it with. Both may drop
what Copernico recorded for the registration (``changes_by_removal``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from racehub.providers.base import (
    Capability,
    CredentialCheck,
    Page,
    ProviderAdapter,
    ProviderParticipant,
    ProviderResult,
    PushReport,
    RowProblem,
)
from racehub.providers.copernico import mapping as m
from racehub.providers.copernico.settings import CopernicoSettings
from racehub.providers.errors import AuthFailed, BadData, NotFound
from racehub.providers.ratelimit import RateLimit


class CopernicoAdapter(ProviderAdapter):
    provider = "COPERNICO"
    capabilities = frozenset({
        Capability.CHECK_CREDENTIALS, Capability.PUSH_PARTICIPANTS,
        Capability.WITHDRAW_PARTICIPANTS, Capability.GET_RESULTS,
    })
    changes_by_removal = True
    credential_fields = ()
    optional_credential_fields = ("api_key",)
    default_base_url = "https://api.copernico.cloud"
    default_rate_limit = RateLimit(per_second=float(m.ASSUMED["rate_per_second"]),
                                   burst=int(m.ASSUMED["rate_burst"]))
    default_field_mapping = m.DEFAULT_FIELD_MAPPING
    settings_model = CopernicoSettings
    settings: CopernicoSettings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = (self.credentials.get("api_key") or "").strip() or None
        if self.api_key:
            self.http.client.headers[m.API_KEY_HEADER] = self.api_key
        self.results_base_url = (self.settings.results_base_url
                                 or m.RESULTS_BASE_URL).rstrip("/")

    @classmethod
    def participant_from_raw(cls, raw: Any, event_ref: str) -> ProviderParticipant:
        return m.map_registration(raw, event_ref)

    @classmethod
    def check_start_list_ref(cls, event_ref: str) -> None:
        m.split_event_ref(event_ref)  # 'raceId:eventId': registrations name both

    @classmethod
    def push_row(cls, participant: ProviderParticipant) -> dict[str, Any]:
        race_id, event_id = m.split_event_ref(participant.event_ref)
        return m.participant_to_registration(participant, race_id, event_id)

    # -- errors inside the envelope ---------------------------------------------------------
    def inspect_response(self, status: int, body: Any) -> None:
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict) or "code" not in result:
            return
        code = result.get("code")
        if code in m.OK_CODES or (code is None and 200 <= status < 300):
            return
        text = f"Copernico result code {code}: {result.get('message') or 'no message'}"
        if code in (401, 403):
            raise AuthFailed(text)
        if code == 404:
            raise NotFound(text)
        if 200 <= status < 300:
            raise BadData(text)
        # Otherwise the HTTP status decides (5xx retried, 429 throttled).

    # -- credentials ----------------------------------------------------------------------
    def check_credentials(self) -> CredentialCheck:
        """With a key: ask athlete detail for an id that does not exist on the first
        configured race; "not found" means the key was accepted. Without one there is
        nothing to check: the push is documented as open."""
        if not self.api_key:
            # Not "registrations are pushed": racehub does not push to Copernico yet.
            return CredentialCheck(True, "no API key set: nothing to check (Copernico "
                                         "documents its push API as open)")
        race_id = self._first_race_id()
        if race_id is None:
            return CredentialCheck(False, "eventIds: name a Copernico race ('raceId:eventId') "
                                          "to test the API key against")
        try:
            self.get_athlete(race_id, str(m.ASSUMED["probe_athlete_id"]))
        except AuthFailed as exc:
            return CredentialCheck(False, exc.message)
        except NotFound:
            return CredentialCheck(True, f"API key accepted for race {race_id}")
        return CredentialCheck(True, f"API key accepted for race {race_id}")

    def _first_race_id(self) -> str | None:
        for ref in self.settings.eventIds:
            race_id = str(ref).strip().partition(":")[0]
            if race_id:
                return race_id
        return None

    # -- athlete detail -------------------------------------------------------------------
    def get_athlete(self, event_ref: str, athlete_id: str) -> ProviderParticipant:
        """One athlete's registration (``event_ref``: ``raceId`` or ``raceId:eventId``)."""
        race_id, _ = split_race(event_ref)
        path = m.ATHLETE_PATH.format(race_id=race_id, athlete_id=athlete_id)
        body = self.http.request_json("GET", path, url=f"{self.results_base_url}/{path}")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadData(f"GET {path}: no 'data' object in the reply", provider=self.provider)
        try:
            return m.map_registration(data, event_ref)
        except m.MappingError as exc:
            raise BadData(f"GET {path}: {exc}", provider=self.provider) from None

    # -- registration push ------------------------------------------------------------------
    def push_participants(
        self, event_ref: str, participants: Sequence[ProviderParticipant], *,
        replace_existing: bool = True,
    ) -> PushReport:
        race_id, event_id = m.split_event_ref(event_ref)
        rows: list[tuple[int, dict[str, Any]]] = []
        problems: list[RowProblem] = []
        for i, participant in enumerate(participants):
            try:
                rows.append((i, m.participant_to_registration(participant, race_id, event_id)))
            except m.MappingError as exc:
                problems.append(RowProblem(i, exc.message, ref=participant.ref, field=exc.field))
        created, duplicates, refused, replies = self._post(race_id, rows)
        removed = []
        if not replace_existing:
            refused += [(i, RowProblem(
                i, f"{m.ASSUMED['duplicate_code']}: Copernico already holds registration "
                   f"{row['id']} (not replaced: replacing it removes it first)",
                ref=row["id"], field="id")) for i, row in duplicates]
            duplicates = []
        if duplicates:
            # Copernico changes a registration by removing it and adding it again.
            for _, row in duplicates:
                self.remove_registration(race_id, row["id"])
                removed.append(row["id"])
            again, still, refused_again, more = self._post(race_id, duplicates)
            created += again
            replies += more
            refused += refused_again + [
                (i, RowProblem(i, "still registered after removal", ref=row["id"]))
                for i, row in still]
        problems += [p for _, p in refused]
        return PushReport(created, sorted(problems, key=lambda p: p.row),
                          raw={"replies": replies, "re_added": removed})

    def _post(self, race_id: str, rows: list[tuple[int, dict[str, Any]]]) -> tuple[
            int, list[tuple[int, dict[str, Any]]], list[tuple[int, RowProblem]], list[Any]]:
        """POST in chunks. Returns (created, rows refused as duplicates, other refusals,
        replies)."""
        path = m.PUSH_PATH.format(race_id=race_id)
        created = 0
        duplicates: list[tuple[int, dict[str, Any]]] = []
        refused: list[tuple[int, RowProblem]] = []
        replies: list[Any] = []
        chunk = int(m.ASSUMED["registrations_per_push"])
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            body = self.http.request_json("POST", path, json=[row for _, row in part])
            replies.append(body)
            data = body.get("data") if isinstance(body, dict) else None
            data = data if isinstance(data, dict) else {}
            by_id = {str(row["id"]): (i, row) for i, row in part}
            errors = [e for e in data.get(str(m.ASSUMED["push_reply_errors"])) or []
                      if isinstance(e, dict)]
            for error in errors:
                ref = str(error.get("id") or "")
                i, row = by_id.get(ref, (-1, {}))
                if error.get("code") == m.ASSUMED["duplicate_code"] and row:
                    duplicates.append((i, row))
                else:
                    refused.append((i, RowProblem(i, str(error.get("message") or "refused"),
                                                  ref=ref or None,
                                                  field=m.text_or_none(error.get("field")))))
            count = data.get(str(m.ASSUMED["push_reply_created"]))
            created += count if isinstance(count, int) else len(part) - len(errors)
        return created, duplicates, refused, replies

    def withdraw_participants(self, event_ref: str, refs: Sequence[str]) -> PushReport:
        """Remove each registration (one request each: the documented API has no batch
        removal). One Copernico no longer holds counts as removed."""
        race_id, _ = m.split_event_ref(event_ref)
        for ref in refs:
            if not str(ref).strip():
                raise ValueError("withdraw_participants: an empty registration id")
        for ref in refs:
            self.remove_registration(race_id, str(ref).strip())
        return PushReport(len(refs), [], raw={"removed": list(refs)})

    def remove_registration(self, race_id: str, registration_id: str) -> None:
        """Remove one registration (assumed endpoint); gone already is fine."""
        path = str(m.ASSUMED["remove_path"]).format(race_id=race_id,
                                                     registration_id=registration_id)
        with contextlib.suppress(NotFound):
            self.http.request_json("DELETE", path)

    # -- results --------------------------------------------------------------------------
    def results_url(self, event_ref: str) -> str:
        race_id, event_id = m.split_event_ref(event_ref)
        owner = self.settings.preset_owner or ""
        if not owner:
            raise BadData("settings.preset_owner: results need the login e-mail the preset "
                          "belongs to", provider=self.provider)
        path = m.results_path(race=self.settings.race_slug or race_id, owner=owner,
                              preset=self.settings.preset or str(m.ASSUMED["default_preset"]),
                              event=self.settings.event_names.get(event_id) or event_id)
        return f"{self.results_base_url}/{path}"

    def get_results(self, event_ref: str) -> Iterator[Page[ProviderResult]]:
        url = self.results_url(event_ref)
        body = self.http.request_json("GET", "", url=url)
        # Documented as a list, or {"data": [...], "gunTime": ...}; one response, no paging.
        rows = body.get("data") if isinstance(body, dict) else body
        if not isinstance(rows, list):
            raise BadData("GET preset results: expected a list or {'data': [...]}",
                          provider=self.provider)
        items: list[ProviderResult] = []
        problems: list[RowProblem] = []
        for i, row in enumerate(rows):
            try:
                items.append(m.map_result(row, event_ref))
            except m.MappingError as exc:
                ref = (m.text_or_none(row.get("dorsal")) or m.text_or_none(row.get("id"))
                       if isinstance(row, dict) else None)
                problems.append(RowProblem(i, exc.message, ref=ref, field=exc.field, raw=row))
        yield Page(items, problems, number=1, is_last=True, total=len(rows), raw=body)

    def list_participants(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderParticipant]]:
        # Copernico documents no registration listing: it is fed, not read.
        raise self._unsupported(Capability.LIST_PARTICIPANTS)


def split_race(event_ref: str) -> tuple[str, str | None]:
    """A race id alone, or ``raceId:eventId``."""
    race_id, _, event_id = str(event_ref).strip().partition(":")
    if not race_id or "/" in event_ref:
        raise ValueError(f"Copernico race ref must be 'raceId' or 'raceId:eventId', "
                         f"got {event_ref!r}")
    return race_id, event_id or None


__all__ = ["CopernicoAdapter"]
