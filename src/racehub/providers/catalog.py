"""The providers racehub speaks to: for each, what a connection needs (credential fields,
settings, default base URL, role) and where its adapter and simulator live.

The ONE list of them: connection forms, validation, the API, the README, the adapter
registry (``registry.build_adapter``) and the demo's simulators all read it;
tests/providers/test_catalog.py checks it against the adapter classes themselves.
Facts from /work/shared/PROVIDERS.md.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from racehub.providers.base import ProviderAdapter
    from racehub.providers.settings import ProviderSettings


class Direction(enum.StrEnum):
    # What racehub does with each today (the connection form says the same): it pulls a
    # registration connection's participants into linked events. A scoring connection (a
    # timing system) is tested and, for Copernico, receives webhook deliveries; pushing
    # start lists to it and reading results back are not built yet (the adapters can).
    REGISTRATION = "registration"
    SCORING = "scoring"


# What the connection form says of each direction: only what racehub does today.
DIRECTION_TEXT: dict[Direction, str] = {
    Direction.REGISTRATION: "Registration platform: racehub pulls its participants into "
                            "the racehub events you link its events to",
    Direction.SCORING: "Timing system: racehub stores the connection and tests its "
                       "credentials; pushing start lists and reading results are not "
                       "available yet",
}

# Settings of features racehub does not offer yet: stored and checked, never read by a sync.
NOT_YET_RESULTS = ("racehub does not read results from providers yet: kept for when it does")
NOT_YET_PUBLISH = ("racehub does not publish results to providers yet: kept for when it does")


def with_article(label: str) -> str:
    return ("an " if label[:1] in "AEIOU" else "a ") + label


@dataclass(frozen=True)
class CredentialField:
    key: str
    label: str
    required: bool = True
    password: bool = False  # a person's password (a secret too)
    help: str = ""
    # A secret shows only "set" to readers of a connection. Only an identifier that is not
    # secret (a client id, a user name) shows its last 4 characters, to tell two apart; a
    # field is a secret unless declared otherwise.
    secret: bool = True

    def __post_init__(self) -> None:
        if self.password and not self.secret:
            raise ValueError(f"credential field {self.key}: a password is always a secret")


class SettingKind(enum.StrEnum):
    TEXT = "text"
    URL = "url"  # where the adapter sends requests (and credentials): platform admins only
    LIST = "list"  # several values: a JSON list, or one per line / comma separated
    MAPPING = "mapping"  # a JSON object, or "key = value" lines
    CHOICE = "choice"
    NUMBER = "number"  # a positive number
    TIME_ZONE = "time_zone"  # an IANA zone name such as America/Chicago


@dataclass(frozen=True)
class SettingField:
    """One provider-specific setting of a connection as the form and API take it; its type
    and bounds are checked by the provider's settings model (providers/settings.py)."""

    key: str
    label: str
    kind: SettingKind = SettingKind.TEXT
    choices: tuple[str, ...] = ()
    help: str = ""
    # Set for a setting of a feature racehub does not offer yet (why, in a line): the form
    # shows it apart, saying so; the API says so too.
    not_yet: str = ""

    def clean(self, value: Any) -> Any:
        """The value to store, or None to remove the setting. Raises ValueError."""
        if value is None or (isinstance(value, str | list | dict) and not value):
            return None
        if self.kind == SettingKind.LIST:
            items = (value.replace("\n", ",").split(",") if isinstance(value, str)
                     else value if isinstance(value, list) else None)
            if items is None:
                raise ValueError("must be a list of values")
            cleaned = [str(v).strip() for v in items if str(v).strip()]
            if len(cleaned) > MAX_LIST_ITEMS or any(len(v) > 200 for v in cleaned):
                raise ValueError(f"at most {MAX_LIST_ITEMS} values of up to 200 characters")
            return cleaned or None
        if self.kind == SettingKind.MAPPING:
            pairs = _mapping_pairs(value)
            if len(pairs) > MAX_LIST_ITEMS:
                raise ValueError(f"at most {MAX_LIST_ITEMS} entries")
            return pairs or None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError("must be text")
        text = str(value).strip()
        if len(text) > 500:
            raise ValueError("longer than 500 characters")
        if self.kind == SettingKind.NUMBER and text:
            try:
                number = float(text)
            except ValueError:
                raise ValueError("must be a number") from None
            if not 0 <= number < float("inf"):
                raise ValueError("must be a number of 0 or more")
            return int(number) if number.is_integer() else number
        if self.kind == SettingKind.TIME_ZONE and text:
            try:
                ZoneInfo(text)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("must be a time zone name such as America/Chicago") from None
        if self.kind == SettingKind.CHOICE and text and text not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        if self.kind == SettingKind.URL and text:
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s) URL such as https://api.example.com/v1")
            text = text.rstrip("/")
        return text or None

    def display(self, value: Any) -> str:
        """The value as the form shows it (the text ``clean`` reads back)."""
        if value is None:
            return ""
        if self.kind == SettingKind.LIST:
            return "\n".join(value)
        if self.kind == SettingKind.MAPPING:
            return "\n".join(f"{k} = {v}" for k, v in value.items())
        return str(value)


MAX_LIST_ITEMS = 200


def _mapping_pairs(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for number, line in enumerate(value.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, val = line.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"line {number}: write key = value")
            items.append((key, val))
    else:
        raise ValueError("must be an object of key: value")
    return {str(k).strip(): str(v).strip() for k, v in items if str(k).strip()}


# The OAuth token endpoint, when not where the adapter derives it from the base URL. The
# credentials are posted there, so it is a URL setting: platform admins only.
TOKEN_URL = SettingField("token_url", "Token endpoint", SettingKind.URL,
                         help="Default: derived from the base URL")

# Read by every adapter (providers/base.py): the connection's request budget, paging bound,
# retries and time-outs (bounds in providers/settings.py ProviderSettings).
COMMON_SETTINGS = (
    SettingField("rate_per_second", "Requests per second", SettingKind.NUMBER,
                 help="Default: the provider's known or assumed limit"),
    SettingField("rate_burst", "Request burst", SettingKind.NUMBER,
                 help="Requests allowed at once before the rate applies"),
    SettingField("max_pages", "Most pages one read may take", SettingKind.NUMBER,
                 help="Default 10000: a read that goes on past it stops with an error"),
    SettingField("max_attempts", "Tries per request", SettingKind.NUMBER,
                 help="Default 4 (1 to 10), for errors worth retrying"),
    SettingField("max_retry_after", "Longest Retry-After waited (s)", SettingKind.NUMBER,
                 help="Default 120: a longer wait fails the request so the job retries later"),
    SettingField("backoff_base", "First retry delay (s)", SettingKind.NUMBER,
                 help="Default 0.5, doubled at each retry"),
    SettingField("backoff_max", "Longest retry delay (s)", SettingKind.NUMBER,
                 help="Default 30"),
    SettingField("connect_timeout", "Connect time-out (s)", SettingKind.NUMBER,
                 help="Default 5"),
    SettingField("read_timeout", "Read time-out (s)", SettingKind.NUMBER, help="Default 30"),
)


@dataclass(frozen=True)
class ProviderSpec:
    key: str
    label: str
    direction: Direction
    base_url: str
    credentials: tuple[CredentialField, ...]
    adapter: str  # "package.module:ClassName", imported when a connection needs it
    simulator: str  # the module serving a stand-in of the provider's API (tests, demo)
    docs: str = ""
    # Where a provider takes one of several credential sets (each complete by itself):
    # their fields are not required one by one, but one set must be whole.
    credential_sets: tuple[tuple[str, ...], ...] = ()
    settings: tuple[SettingField, ...] = ()

    def adapter_class(self) -> type[ProviderAdapter]:
        module_name, _, class_name = self.adapter.partition(":")
        cls: type[ProviderAdapter] = getattr(importlib.import_module(module_name), class_name)
        return cls

    @property
    def settings_model(self) -> type[ProviderSettings]:
        """The model the adapter reads its settings through; stored settings are checked
        with it too."""
        return self.adapter_class().settings_model

    @property
    def lists_participants(self) -> bool:
        """Whether its adapter can list participants: a registration source, a live sample
        for the mapping editor."""
        from racehub.providers.base import Capability

        return Capability.LIST_PARTICIPANTS in self.adapter_class().capabilities

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions a connection to it may take: its own, and registration when its
        adapter can list participants (a timing system that holds registrations)."""
        extra = (Direction.REGISTRATION,) if (self.direction != Direction.REGISTRATION
                                              and self.lists_participants) else ()
        return (self.direction, *extra)

    def setting(self, key: str) -> SettingField | None:
        return next((f for f in self.all_settings if f.key == key), None)

    @property
    def all_settings(self) -> tuple[SettingField, ...]:
        """The provider's own settings, then those every adapter reads."""
        return self.settings + COMMON_SETTINGS

    @property
    def credential_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.credentials)

    def field(self, key: str) -> CredentialField | None:
        return next((f for f in self.credentials if f.key == key), None)

    @property
    def set_fields(self) -> frozenset[str]:
        return frozenset(k for group in self.credential_sets for k in group)

    def describe_sets(self) -> str:
        """E.g. "an API key and API secret, or an OAuth access token"."""
        return ", or ".join(with_article(" and ".join(f.label for k in group
                                                       if (f := self.field(k))))
                            for group in self.credential_sets)

    def missing_credentials(self, present: set[str]) -> list[str]:
        """Fields still needed: the required ones, and where the provider takes credential
        sets, those of the first set (when no set is whole)."""
        missing = [f.key for f in self.credentials if f.required and f.key not in present]
        if self.credential_sets and not any(set(g) <= present for g in self.credential_sets):
            missing += [k for k in self.credential_sets[0] if k not in present]
        return missing


PROVIDERS: dict[str, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec(
            "RUNSIGNUP", "RunSignUp", Direction.REGISTRATION, "https://runsignup.com/Rest",
            (CredentialField("api_key", "API key", required=False, secret=False),
             CredentialField("api_secret", "API secret", required=False),
             CredentialField("access_token", "OAuth access token", required=False,
                             help="Tokens last about a month")),
            adapter="racehub.providers.runsignup:RunSignUpAdapter",
            simulator="racehub.providers.runsignup.simulator",
            docs="https://runsignup.com/API",
            credential_sets=(("api_key", "api_secret"), ("access_token",)),
            settings=(
                SettingField("auth_style", "Send the API secret as", SettingKind.CHOICE,
                             choices=("header", "query"),
                             help="header (X-RSU-API-SECRET, the default) keeps it out of "
                                  "URLs; query sends api_key/api_secret parameters"),
                SettingField("individual_result_set_id", "Result set to post into",
                             help="Empty: each publish creates a new result set",
                             not_yet=NOT_YET_PUBLISH),
                SettingField("result_set_name", "Name of new result sets",
                             help="Default: Results", not_yet=NOT_YET_PUBLISH),
                SettingField("time_zone", "Time zone of races that give none",
                             SettingKind.TIME_ZONE,
                             help="An IANA name such as America/Chicago. Without it, such "
                                  "races' event times stay unset (zone unknown)"),
                SettingField("race_ids", "Races to read events from", SettingKind.LIST,
                             help="Default: the races of the connection's events, else every "
                                  "race the key can see"),
                SettingField("include_questions", "Always read question responses",
                             SettingKind.CHOICE, choices=("yes", "no"),
                             help="Default no: read only when a mapping rule uses them"),
                SettingField("results_per_page", "Participants per request", SettingKind.NUMBER,
                             help="Default and most: 2500"),
                SettingField("races_per_page", "Races per request", SettingKind.NUMBER,
                             help="Default and most: 1000"),
            )),
        ProviderSpec(
            "RACE_ROSTER", "Race Roster", Direction.REGISTRATION, "https://raceroster.com/api/v1",
            (CredentialField("client_id", "Client id", secret=False),
             CredentialField("client_secret", "Client secret"),
             CredentialField("username", "Username", secret=False),
             CredentialField("password", "Password", password=True)),
            adapter="racehub.providers.raceroster:RaceRosterAdapter",
            simulator="racehub.providers.raceroster.simulator",
            docs="https://developers.raceroster.com",
            settings=(
                TOKEN_URL,
                SettingField("results_api", "Results API", SettingKind.CHOICE,
                             choices=("v2", "v1"),
                             help="v2 (the default): the public results API, no login; v1: "
                                  "the partner endpoint (assumed, never seen)",
                             not_yet=NOT_YET_RESULTS),
                SettingField("results_base_url", "Public results API", SettingKind.URL,
                             help="Default https://results.raceroster.com/v2/api",
                             not_yet=NOT_YET_RESULTS),
                SettingField("result_event_ids", "Result event ids", SettingKind.MAPPING,
                             help="One per line: eventId = result event id (default: the "
                                  "event id)", not_yet=NOT_YET_RESULTS),
                SettingField("page_size", "Registrations per request", SettingKind.NUMBER,
                             help="Default and most: 100 (at least 2)"),
                SettingField("results_per_page", "Results per request (v1)",
                             SettingKind.NUMBER, help="Default 100", not_yet=NOT_YET_RESULTS),
                SettingField("results_limit", "Results per request (v2)", SettingKind.NUMBER,
                             help="Default and most: 1000", not_yet=NOT_YET_RESULTS),
            )),
        ProviderSpec(
            "HAKU", "Haku", Direction.REGISTRATION, "https://api.hakuapp.com",
            (CredentialField("client_id", "Client id", secret=False),
             CredentialField("client_secret", "Client secret")),
            adapter="racehub.providers.haku:HakuAdapter",
            simulator="racehub.providers.haku.simulator",
            settings=(TOKEN_URL,
                      SettingField("per_page", "Registrations per request",
                                   SettingKind.NUMBER, help="Default and most: 100"))),
        ProviderSpec(
            "CHRONOTRACK", "ChronoTrack Live", Direction.SCORING,
            "https://api.chronotrack.com/api",
            (CredentialField("client_id", "Client id", secret=False),
             CredentialField("user_id", "User id", help="The ChronoTrack login (e-mail)",
                             secret=False),
             # The wire name: the adapter sends its SHA-1 as ``user_pass``.
             CredentialField("user_pass", "Password", password=True)),
            adapter="racehub.providers.chronotrack:ChronoTrackAdapter",
            simulator="racehub.providers.chronotrack.simulator",
            docs="https://api.chronotrack.com/dev/docs",
            settings=(SettingField("page_size", "Rows per request", SettingKind.NUMBER,
                                   help="Default 100, most 250"),)),
        ProviderSpec(
            "COPERNICO", "Copernico (Timingsense)", Direction.SCORING,
            "https://api.copernico.cloud",
            (CredentialField("api_key", "API key", required=False,
                             help="Checks the webhook deliveries Copernico posts (they carry "
                                  "it as apiKey); without one, every delivery is refused"),),
            adapter="racehub.providers.copernico:CopernicoAdapter",
            simulator="racehub.providers.copernico.simulator",
            settings=(
                SettingField("results_base_url", "Results API", SettingKind.URL,
                             help="Default https://public-api.copernico.cloud/api; the key "
                                  "goes there too, so only a platform admin may change it",
                             not_yet=NOT_YET_RESULTS),
                SettingField("preset_owner", "Preset owner (login e-mail)",
                             help="Needed to read results: the account the preset belongs to",
                             not_yet=NOT_YET_RESULTS),
                SettingField("preset", "Results preset", help="Default: results",
                             not_yet=NOT_YET_RESULTS),
                SettingField("race_slug", "Race slug in results URLs",
                             help="Default: the race id", not_yet=NOT_YET_RESULTS),
                SettingField("event_names", "Event names in results URLs", SettingKind.MAPPING,
                             help="One per line: eventId = name (default: the event id)",
                             not_yet=NOT_YET_RESULTS),
            )),
    )
}


def get_spec(provider: str) -> ProviderSpec | None:
    return PROVIDERS.get(provider)
