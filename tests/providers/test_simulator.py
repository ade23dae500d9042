"""The shared simulator pieces: the in-thread server and the fault switchboard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from racehub.providers.simulator import Faults, control_routes, fault_middleware, serve_in_thread


def _app(faults: Faults) -> Starlette:
    async def hello(request: Request) -> Response:
        return JSONResponse({"hello": "world"})

    return Starlette(
        routes=[Route("/hello", hello), *control_routes(faults)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=fault_middleware(faults))],
    )


def test_served_app_answers_on_loopback_and_stops_after() -> None:
    with serve_in_thread(_app(Faults())) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{base_url}/hello", timeout=5).json() == {"hello": "world"}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/hello", timeout=2)


def test_faults_armed_over_http_fire_the_given_number_of_times(
        serve_app: Callable[[Any], str]) -> None:
    faults = Faults()
    base_url = serve_app(_app(faults))
    with httpx.Client(base_url=base_url, timeout=5) as client:
        client.post("/_sim/faults", json={"name": "http_429", "times": 2, "retry_after": 1})
        answers = [client.get("/hello") for _ in range(3)]
        assert [a.status_code for a in answers] == [429, 429, 200]
        assert answers[0].headers["Retry-After"] == "1"
        client.post("/_sim/faults", json={"name": "http_500", "times": -1})
        assert client.get("/hello").status_code == 500
        client.delete("/_sim/faults")
        assert client.get("/hello").status_code == 200
    assert [r.path for r in faults.seen("/hello")] == ["/hello"]  # cleared, then one more


def test_recorded_requests_mask_secret_parameters() -> None:
    faults = Faults()
    with serve_in_thread(_app(faults)) as base_url:
        httpx.get(f"{base_url}/hello", params={"api_secret": "abc123", "page": "2"}, timeout=5)
    (seen,) = faults.seen("/hello")
    assert seen.params == {"api_secret": "***", "page": "2"}
