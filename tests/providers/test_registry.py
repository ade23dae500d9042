"""The registry builds adapters from plain connection config; the base class refuses
what an adapter does not offer."""

from __future__ import annotations

import pytest

from racehub.providers.base import Capability, ProviderAdapter
from racehub.providers.errors import AuthFailed, NotSupported
from racehub.providers.ratelimit import InMemoryRateLimiter
from racehub.providers.registry import build_adapter
from racehub.providers.runsignup import RunSignUpAdapter

RSU_CREDENTIALS = {"api_key": "key-1234", "api_secret": "secret-5678"}


def test_build_adapter_uses_the_default_base_url_and_the_given_limiter() -> None:
    limiter = InMemoryRateLimiter()
    adapter = build_adapter("runsignup", credentials=RSU_CREDENTIALS, limiter=limiter,
                            rate_key="connection-1")
    assert isinstance(adapter, RunSignUpAdapter)
    assert adapter.base_url == "https://runsignup.com/Rest"
    assert adapter.http.limiter is limiter
    assert adapter.http.rate_key == "connection-1"
    assert adapter.supports(Capability.LIST_PARTICIPANTS)
    adapter.close()


def test_settings_override_the_rate_limit() -> None:
    adapter = build_adapter("RUNSIGNUP", base_url="http://127.0.0.1:1/Rest",
                            credentials=RSU_CREDENTIALS,
                            settings={"rate_per_second": 0.5, "rate_burst": 2})
    assert (adapter.rate_limit.per_second, adapter.rate_limit.burst) == (0.5, 2)
    assert adapter.base_url == "http://127.0.0.1:1/Rest"
    adapter.close()


def test_a_missing_credential_is_named_without_showing_the_others() -> None:
    with pytest.raises(AuthFailed) as info:
        build_adapter("RUNSIGNUP", credentials={"api_key": "key-1234", "api_secret": " "})
    assert "api_secret" in str(info.value)
    assert "key-1234" not in str(info.value)


def test_unknown_provider_is_refused_with_the_known_ones() -> None:
    with pytest.raises(NotSupported, match="'strava'; known: RUNSIGNUP, RACE_ROSTER"):
        build_adapter("strava", credentials={})


def test_operations_an_adapter_does_not_offer_raise_not_supported() -> None:
    class ReadOnly(ProviderAdapter):
        provider = "READONLY"
        capabilities = frozenset({Capability.LIST_EVENTS})

    adapter = ReadOnly(base_url="http://127.0.0.1:1", credentials={})
    with pytest.raises(NotSupported, match="post_results"):
        adapter.post_results("e1", [])
    with pytest.raises(NotSupported, match="list_withdrawn"):
        adapter.list_withdrawn("e1")
    assert not adapter.supports(Capability.POST_RESULTS)
    adapter.close()
