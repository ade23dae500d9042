"""Provider key -> adapter class, credential fields and default base URL.

Adapters are imported lazily from ``adapter_path`` so the registry lists every provider
even while an adapter package is being written; ``build_adapter`` then fails with a clear
:class:`NotSupported` instead of an ImportError.
"""

from __future__ import annotations

import enum
import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from racehub.providers.base import ProviderAdapter
from racehub.providers.errors import NotSupported
from racehub.providers.ratelimit import RateLimiter


class ProviderKey(enum.StrEnum):
    RUNSIGNUP = "RUNSIGNUP"
    RACE_ROSTER = "RACE_ROSTER"
    HAKU = "HAKU"
    CHRONOTRACK = "CHRONOTRACK"
    COPERNICO = "COPERNICO"


class ProviderKind(enum.StrEnum):
    REGISTRATION = "registration"
    TIMING = "timing"


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    secret: bool = True  # stored encrypted, never shown back (only "set" / last 4)
    required: bool = True


@dataclass(frozen=True)
class ProviderSpec:
    key: ProviderKey
    label: str
    kind: ProviderKind
    adapter_path: str  # "package.module:ClassName"
    default_base_url: str
    credential_fields: tuple[CredentialField, ...]

    def adapter_class(self) -> type[ProviderAdapter]:
        module_name, _, class_name = self.adapter_path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise NotSupported(f"the {self.label} adapter is not available yet",
                                   provider=self.key) from None
            raise
        cls = getattr(module, class_name, None)
        if cls is None:
            raise NotSupported(f"the {self.label} adapter is not available yet",
                               provider=self.key)
        return cls  # type: ignore[no-any-return]

    @property
    def available(self) -> bool:
        try:
            self.adapter_class()
        except NotSupported:
            return False
        return True


PROVIDERS: dict[ProviderKey, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec(
            ProviderKey.RUNSIGNUP, "RunSignUp", ProviderKind.REGISTRATION,
            "racehub.providers.runsignup:RunSignUpAdapter", "https://runsignup.com/Rest",
            # The key and secret, or an OAuth access token instead (the adapter checks).
            (CredentialField("api_key", "API key", required=False),
             CredentialField("api_secret", "API secret", required=False),
             CredentialField("access_token", "OAuth access token", required=False)),
        ),
        ProviderSpec(
            ProviderKey.RACE_ROSTER, "Race Roster", ProviderKind.REGISTRATION,
            "racehub.providers.raceroster:RaceRosterAdapter", "https://raceroster.com/api/v1",
            (CredentialField("client_id", "Client id", secret=False),
             CredentialField("client_secret", "Client secret"),
             CredentialField("username", "Username", secret=False),
             CredentialField("password", "Password")),
        ),
        ProviderSpec(
            ProviderKey.HAKU, "Haku", ProviderKind.REGISTRATION,
            "racehub.providers.haku:HakuAdapter", "https://api.hakuapp.com",
            (CredentialField("client_id", "Client id", secret=False),
             CredentialField("client_secret", "Client secret")),
        ),
        ProviderSpec(
            ProviderKey.CHRONOTRACK, "ChronoTrack Live", ProviderKind.TIMING,
            "racehub.providers.chronotrack:ChronoTrackAdapter", "https://api.chronotrack.com/api",
            (CredentialField("client_id", "Client id", secret=False),
             CredentialField("user_id", "User id (e-mail)", secret=False),
             CredentialField("user_pass", "Password")),
        ),
        ProviderSpec(
            ProviderKey.COPERNICO, "Copernico", ProviderKind.TIMING,
            "racehub.providers.copernico:CopernicoAdapter", "https://api.copernico.cloud",
            (CredentialField("api_key", "API key (x-api-key)", required=False),),
        ),
    )
}


def get_spec(provider: str | ProviderKey) -> ProviderSpec:
    try:
        return PROVIDERS[ProviderKey(str(provider).upper())]
    except ValueError:
        raise NotSupported(f"unknown provider {provider!r}; known: "
                           f"{', '.join(k.value for k in ProviderKey)}") from None


def build_adapter(
    provider: str | ProviderKey,
    *,
    base_url: str | None = None,
    credentials: Mapping[str, str],
    settings: Mapping[str, Any] | None = None,
    limiter: RateLimiter | None = None,
    rate_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ProviderAdapter:
    """An adapter for one connection. ``rate_key`` should be the connection id, so every
    process using the connection shares one budget; ``base_url`` None means the provider's
    production URL."""
    spec = get_spec(provider)
    cls = spec.adapter_class()
    return cls(base_url=base_url or spec.default_base_url, credentials=credentials,
               settings=settings, limiter=limiter, rate_key=rate_key, clock=clock, sleep=sleep)
