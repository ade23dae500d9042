"""The shared HTTP layer over real HTTP: retries, Retry-After, typed errors, redaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from racehub.providers.errors import (
    AuthFailed,
    BadData,
    NotFound,
    ProviderDown,
    Throttled,
)
from racehub.providers.http import ProviderHttp, Redactor, parse_retry_after, redact_url
from racehub.providers.ratelimit import InMemoryRateLimiter, RateLimit
from racehub.providers.simulator import Faults, fault_middleware
from tests.providers.clock import FakeClock

SECRET = "s3cr3t-VALUE-9f8e"


def _app(faults: Faults) -> Starlette:
    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True, "n": len(faults.requests)})

    async def status(request: Request) -> Response:
        code = int(request.path_params["code"])
        # Echo the whole URL back, as careless providers do in error pages.
        return PlainTextResponse(f"failed for {request.url}", status_code=code)

    async def not_json(request: Request) -> Response:
        return PlainTextResponse("<html>maintenance</html>")

    async def body_error(request: Request) -> Response:
        return JSONResponse({"error": {"code": 14}}, headers={"Retry-After": "1"})

    async def guarded(request: Request) -> Response:
        if request.headers.get("Authorization") != "Bearer fresh-token":
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse([1, 2], headers={"X-Ctlive-Page-Count": "7"})

    return Starlette(
        routes=[Route("/ok", ok), Route("/status/{code}", status), Route("/html", not_json),
                Route("/body-error", body_error), Route("/guarded", guarded)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=fault_middleware(faults))],
    )


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def make_http(serve_app: Callable[[Any], str], faults: Faults) -> Callable[..., ProviderHttp]:
    base_url = serve_app(_app(faults))

    def make(**kwargs: Any) -> ProviderHttp:
        options: dict[str, Any] = {
            "provider": "TEST", "base_url": base_url, "limiter": InMemoryRateLimiter(),
            "rate_key": "test", "rate_limit": RateLimit(per_second=100, burst=100),
            "secrets": [SECRET], "backoff_base": 0.01, "backoff_max": 0.05,
            "default_params": {"api_secret": SECRET},
        }
        options.update(kwargs)
        return ProviderHttp(**options)

    return make


@pytest.mark.parametrize("fault", ["http_429", "http_503"])
def test_throttled_request_waits_retry_after_seconds_then_succeeds(
        make_http: Callable[..., ProviderHttp], faults: Faults, fault: str) -> None:
    faults.arm(fault, 1, retry_after="1")
    clock = FakeClock()
    http = make_http(sleep=clock.sleep,
                     limiter=InMemoryRateLimiter(clock=clock, sleep=clock.sleep))
    assert http.request_json("GET", "/ok")["ok"] is True
    assert len(faults.seen("/ok")) == 2
    # One wait of exactly Retry-After; the limiter's hold-off had passed by then.
    assert clock.sleeps == [1.0]
    assert http.attempts_made == 2


def test_retry_after_longer_than_allowed_fails_at_once_with_the_wait(
        make_http: Callable[..., ProviderHttp], faults: Faults) -> None:
    faults.arm("http_429", 1, retry_after="600")
    http = make_http(max_retry_after=30)
    with pytest.raises(Throttled) as info:
        http.request_json("GET", "/ok")
    assert info.value.retry_after == 600
    assert info.value.retryable
    assert len(faults.seen("/ok")) == 1


def test_server_errors_are_retried_then_raised_as_provider_down(
        make_http: Callable[..., ProviderHttp], faults: Faults) -> None:
    faults.arm("http_500", -1)
    with pytest.raises(ProviderDown) as info:
        make_http(max_attempts=3).request_json("GET", "/ok")
    assert info.value.status == 500 and info.value.retryable
    assert len(faults.seen("/ok")) == 3


def test_a_passing_server_error_is_invisible_to_the_caller(
        make_http: Callable[..., ProviderHttp], faults: Faults) -> None:
    faults.arm("http_500", 2)
    assert make_http(max_attempts=3).request_json("GET", "/ok")["ok"] is True
    assert len(faults.seen("/ok")) == 3


def test_a_slow_response_times_out_as_provider_down(
        make_http: Callable[..., ProviderHttp], faults: Faults) -> None:
    faults.arm("slow", -1, seconds=1.5)
    clock = FakeClock()
    with pytest.raises(ProviderDown, match="timed out"):
        make_http(read_timeout=0.3, max_attempts=2, sleep=clock.sleep).request_json("GET", "/ok")
    # Two attempts, each given up at the read timeout, with one bounded backoff between.
    assert len(faults.seen("/ok")) == 2
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] <= 0.05


@pytest.mark.parametrize(("code", "error"), [
    (401, AuthFailed), (403, AuthFailed), (404, NotFound), (400, BadData), (422, BadData),
    (429, Throttled), (502, ProviderDown),
])
def test_statuses_become_typed_errors(make_http: Callable[..., ProviderHttp], code: int,
                                      error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        make_http(max_attempts=1).request_json("GET", f"/status/{code}")
    assert f"HTTP {code}" in str(info.value)
    assert SECRET not in str(info.value)


def test_non_json_success_is_bad_data(make_http: Callable[..., ProviderHttp]) -> None:
    with pytest.raises(BadData, match="not JSON"):
        make_http().request_json("GET", "/html")


def test_error_hook_turns_a_200_body_into_a_throttle_with_its_retry_after(
        make_http: Callable[..., ProviderHttp], faults: Faults) -> None:
    def hook(status: int, body: Any) -> None:
        if isinstance(body, dict) and "error" in body:
            raise Throttled("throttled in body")

    with pytest.raises(Throttled) as info:
        make_http(error_hook=hook, max_attempts=2).request_json("GET", "/body-error")
    assert info.value.retry_after == 1.0
    assert len(faults.seen("/body-error")) == 2


def test_secrets_never_reach_logs_or_error_messages(
        make_http: Callable[..., ProviderHttp], faults: Faults,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    faults.arm("http_500", 1)
    http = make_http(max_attempts=2, default_headers={"X-RSU-API-SECRET": SECRET,
                                                      "Authorization": f"Bearer {SECRET}"})
    http.request_json("GET", "/ok", params={"api_key": "key-abc", "client_secret": SECRET})
    with pytest.raises(AuthFailed) as info:
        http.request_json("GET", "/status/401", params={"password": SECRET})
    out, err = capsys.readouterr()
    captured = caplog.text + out + err + str(info.value)
    assert "provider_retry" in captured  # the retry was logged...
    assert "HTTP Request" in caplog.text  # ...and so was httpx's own request line
    assert SECRET not in captured  # ...without the secret anywhere
    assert "api_secret=***" in caplog.text


def test_redaction_masks_secret_parameters_and_known_values() -> None:
    url = "https://x.test/a?api_key=K1234&format=json&user_pass=abcd1234&page=2"
    assert redact_url(url) == "https://x.test/a?api_key=***&format=json&user_pass=***&page=2"
    redact = Redactor(["abcd1234", "ab"])  # too-short values are not masked
    assert redact("password=hunter22 then abcd1234 and ab") == "password=*** then *** and ab"


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True),
                             now=now.timestamp()) == pytest.approx(90)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True),
                             now=now.timestamp()) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_request_gives_status_and_headers_for_header_paged_providers(
        make_http: Callable[..., ProviderHttp]) -> None:
    http = make_http(default_headers={"Authorization": "Bearer fresh-token"})
    response = http.request("GET", "/guarded")
    assert (response.status, response.body) == (200, [1, 2])
    assert response.headers["X-Ctlive-Page-Count"] == "7"


def test_a_401_refreshes_the_token_once_and_sends_again(
        make_http: Callable[..., ProviderHttp], faults: Faults) -> None:
    refreshed: list[int] = []
    http: ProviderHttp

    def refresh() -> None:
        refreshed.append(1)
        http.client.headers["Authorization"] = "Bearer fresh-token"

    http = make_http(default_headers={"Authorization": "Bearer expired"}, on_unauthorized=refresh)
    assert http.request_json("GET", "/guarded") == [1, 2]
    assert refreshed == [1] and len(faults.seen("/guarded")) == 2


def test_a_401_after_refreshing_is_auth_failed(make_http: Callable[..., ProviderHttp]) -> None:
    calls: list[int] = []
    http = make_http(on_unauthorized=lambda: calls.append(1))
    with pytest.raises(AuthFailed):
        http.request_json("GET", "/guarded")
    assert calls == [1]
