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


def with_article(label: str) -> str:
    return ("an " if label[:1] in "AEIOU" else "a ") + label


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
    # Where a provider takes one of several credential sets (each complete by itself):
    # their fields are not required one by one, but one set must be whole.
    credential_sets: tuple[tuple[str, ...], ...] = ()

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
            (CredentialField("api_key", "API key", required=False),
             CredentialField("api_secret", "API secret", required=False),
             CredentialField("access_token", "OAuth access token", required=False,
                             help="Tokens last about a month")),
            docs="https://runsignup.com/API",
            credential_sets=(("api_key", "api_secret"), ("access_token",))),
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
