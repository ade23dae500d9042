"""The OAuth access token an adapter keeps between calls (Race Roster, Haku).

It knows when the token is due (none yet, or about to expire), fetches one from the token
endpoint and puts it on every later request, adds it to the secrets scrubbed from
messages, and guards against recursion: the HTTP layer calls the adapter's
``refresh_auth`` on any 401, so a 401 from the token endpoint itself must end in
``AuthFailed`` instead of another refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from racehub.providers.errors import AuthFailed, BadData
from racehub.providers.http import Redactor

if TYPE_CHECKING:
    from racehub.providers.base import ProviderAdapter

# Renew this long before the token's stated expiry, so a call never races it.
EXPIRY_MARGIN = 60.0


def bearer(token: str) -> str:
    return f"Bearer {token}"


class OAuthToken:
    def __init__(self, adapter: ProviderAdapter, *, url: str, endpoint: str,
                 default_lifetime: float, header: Callable[[str], str] = bearer,
                 secrets: Sequence[str] = ()) -> None:
        self.adapter = adapter
        self.url = url
        self.endpoint = endpoint  # how messages name it: "POST oauth2/token"
        self.default_lifetime = default_lifetime
        self.header = header  # the Authorization value carrying a token
        self.secrets = [*adapter.credentials.values(), *secrets]
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.expires_at = 0.0  # adapter.clock() time
        # What the token endpoint said when it refused (set by the adapter's
        # inspect_response), for the AuthFailed that ends a refresh.
        self.error: str | None = None
        self._fetching = False

    @property
    def due(self) -> bool:
        return self.access_token is None or self.adapter.clock() >= self.expires_at

    def refuse_if_fetching(self) -> None:
        """First thing in ``refresh_auth``: a 401 from the token endpoint leaves nothing
        to refresh with."""
        if self._fetching:
            raise AuthFailed(self.error or "the token endpoint refused the credentials",
                             provider=self.adapter.provider, status=401)

    def fetch(self, form: Mapping[str, str], *, headers: Mapping[str, str] | None = None,
              unwrap: Callable[[Any], Any] = lambda body: body) -> None:
        """Ask the token endpoint (``form`` is the grant) and use the token it gives."""
        http = self.adapter.http
        self._fetching = True
        self.error = None
        try:
            reply = unwrap(http.request_json("POST", "", url=self.url, data=dict(form),
                                             headers=headers))
        finally:
            self._fetching = False
        token = reply.get("access_token") if isinstance(reply, dict) else None
        if not isinstance(token, str) or not token:
            raise BadData(f"{self.endpoint}: no access_token in the reply",
                          provider=self.adapter.provider)
        refresh = reply.get("refresh_token")
        self.access_token = token
        self.refresh_token = refresh if isinstance(refresh, str) and refresh else None
        try:
            lifetime = float(reply.get("expires_in") or self.default_lifetime)
        except (TypeError, ValueError):
            lifetime = self.default_lifetime
        self.expires_at = self.adapter.clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 2)
        http.client.headers["Authorization"] = self.header(token)
        # Tokens are secrets too: keep them out of every message from now on.
        http.redact = Redactor([*self.secrets, token, self.refresh_token or ""])
