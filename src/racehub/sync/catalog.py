"""What each provider needs from a connection: credential fields, default base URL, role.

The ONE place that lists them (forms, validation, the API and the README read it). The
adapter registry in ``racehub.providers`` maps the same keys to adapters; the two are
checked against each other in tests/sync/test_catalog.py once the registry exists.
Facts from /work/shared/PROVIDERS.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(enum.StrEnum):
    REGISTRATION = "registration"  # pull registrations (and publish results back)
    SCORING = "scoring"  # push start lists to a timing system (and pull results)


@dataclass(frozen=True)
class CredentialField:
    key: str
    label: str
    required: bool = True
    # Passwords never show even their last 4 characters; keys and ids do (to tell two apart).
    password: bool = False
    help: str = ""


@dataclass(frozen=True)
class ProviderSpec:
    key: str
    label: str
    direction: Direction
    base_url: str
    credentials: tuple[CredentialField, ...]
    docs: str = ""

    @property
    def credential_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.credentials)

    def field(self, key: str) -> CredentialField | None:
        return next((f for f in self.credentials if f.key == key), None)


PROVIDERS: dict[str, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec(
            "RUNSIGNUP", "RunSignUp", Direction.REGISTRATION, "https://runsignup.com/Rest",
            (CredentialField("api_key", "API key"),
             CredentialField("api_secret", "API secret")),
            docs="https://runsignup.com/API"),
        ProviderSpec(
            "RACE_ROSTER", "Race Roster", Direction.REGISTRATION, "https://raceroster.com/api/v1",
            (CredentialField("client_id", "Client id"),
             CredentialField("client_secret", "Client secret"),
             CredentialField("username", "Username"),
             CredentialField("password", "Password", password=True)),
            docs="https://developers.raceroster.com"),
        ProviderSpec(
            "HAKU", "Haku", Direction.REGISTRATION, "https://api.hakuapp.com",
            (CredentialField("client_id", "Client id"),
             CredentialField("client_secret", "Client secret"))),
        ProviderSpec(
            "CHRONOTRACK", "ChronoTrack Live", Direction.SCORING,
            "https://api.chronotrack.com/api",
            (CredentialField("client_id", "Client id"),
             CredentialField("user_id", "User id", help="The ChronoTrack login (e-mail)"),
             # The wire name: the adapter sends its SHA-1 as ``user_pass``.
             CredentialField("user_pass", "Password", password=True)),
            docs="https://api.chronotrack.com/dev/docs"),
        ProviderSpec(
            "COPERNICO", "Copernico (Timingsense)", Direction.SCORING,
            "https://api.copernico.cloud",
            (CredentialField("api_key", "API key", required=False,
                             help="Optional: the registrations push is documented without one"),)),
    )
}


def get_spec(provider: str) -> ProviderSpec | None:
    return PROVIDERS.get(provider)
