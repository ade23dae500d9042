"""The OAuth token an adapter keeps (providers.oauth), through a real adapter whose token
endpoint answers what each test needs (an httpx transport, no network)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from racehub.providers.errors import AuthFailed, BadData
from racehub.providers.haku.client import HakuAdapter

CREDENTIALS = {"client_id": "client-1", "client_secret": "secret-Zq81"}
FAST = {"backoff_base": 0.0, "backoff_max": 0.0, "max_attempts": 1}


def adapter_with(token_replies: list[httpx.Response], now: list[float]) -> HakuAdapter:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/oauth2/token"
        return token_replies.pop(0)

    return HakuAdapter(base_url="http://haku.test", credentials=CREDENTIALS, settings=FAST,
                       clock=lambda: now[0], transport=httpx.MockTransport(handle))


def reply(status: int = 200, **body: Any) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body),
                          headers={"Content-Type": "application/json"})


def test_a_token_is_due_before_its_expiry_by_a_margin_of_at_most_half_its_life() -> None:
    now = [100.0]
    adapter = adapter_with([reply(access_token="t-1", expires_in=3600),
                            reply(access_token="t-2", expires_in=40)], now)
    assert adapter.token.due  # none yet
    adapter.refresh_auth()
    assert adapter.http.client.headers["Authorization"] == "t-1"  # Haku's: raw
    now[0] += 3600 - 61
    assert not adapter.token.due
    now[0] += 2
    assert adapter.token.due  # inside the last minute
    adapter.refresh_auth()
    now[0] += 19
    assert not adapter.token.due  # a 40 s token is renewed after 20 s, not never
    now[0] += 2
    assert adapter.token.due


def test_a_reply_without_a_token_is_bad_data_naming_the_endpoint() -> None:
    adapter = adapter_with([reply(token_type="bearer")], [0.0])
    with pytest.raises(BadData, match="POST oauth2/token: no access_token"):
        adapter.refresh_auth()
    assert adapter.token.access_token is None and adapter.token.due


def test_an_unreadable_lifetime_falls_back_to_the_default() -> None:
    now = [0.0]
    adapter = adapter_with([reply(access_token="t-1", expires_in="soon")], now)
    adapter.refresh_auth()
    now[0] += 3600 - 61
    assert not adapter.token.due


def test_a_refusal_by_the_token_endpoint_ends_in_auth_failed_with_its_words() -> None:
    adapter = adapter_with([reply(401, error="invalid_client",
                                  error_description="unknown client")], [0.0])
    with pytest.raises(AuthFailed, match="invalid_client: unknown client"):
        adapter.refresh_auth()
    assert adapter.token.access_token is None


def test_the_token_is_scrubbed_from_messages_once_issued() -> None:
    adapter = adapter_with([reply(access_token="tok-Secret-77", expires_in=3600)], [0.0])
    adapter.refresh_auth()
    assert "tok-Secret-77" not in adapter.http.redact("sent tok-Secret-77 and secret-Zq81")
