"""Shared pieces of the provider simulators (test servers; the demo runs against them too).

- :class:`Faults`: a thread-safe switchboard of faults armed for the next N requests
  (``http_429`` with Retry-After, ``http_500``, ``slow``, plus provider-specific ones a
  simulator consults itself, e.g. ``throttle`` in a 200 body, ``malformed_rows``,
  ``change_between_pages``). It also records each request (path, query keys, time) so
  tests can measure waits.
- :func:`fault_middleware`: applies the generic HTTP faults before the simulator's routes.
- ``/_sim/faults`` control routes (POST to arm, DELETE to clear) for the demo and
  browser tests.
- :func:`serve_in_thread`: runs any ASGI app on 127.0.0.1 on a free port in a thread.

Adapters never know about any of this: they only see the provider's wire format.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

GENERIC_FAULTS = ("http_429", "http_500", "http_503", "slow")


@dataclass
class SeenRequest:
    method: str
    path: str
    params: dict[str, str]  # secret values already masked
    at: float  # time.monotonic()


@dataclass
class _Armed:
    remaining: int
    options: dict[str, Any] = field(default_factory=dict)


SECRET_KEYS = {"api_key", "api_secret", "rsu_api_key", "user_pass", "client_secret",
               "password", "access_token"}


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, _Armed] = {}
        self.requests: list[SeenRequest] = []

    def arm(self, name: str, times: int = 1, **options: Any) -> None:
        """The next ``times`` requests that consult ``name`` get the fault (-1: forever)."""
        with self._lock:
            self._armed[name] = _Armed(times, options)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()
            self.requests.clear()

    def take(self, name: str) -> dict[str, Any] | None:
        """Consume one shot of ``name``; its options if it fired, else None."""
        with self._lock:
            armed = self._armed.get(name)
            if armed is None or armed.remaining == 0:
                return None
            if armed.remaining > 0:
                armed.remaining -= 1
            return dict(armed.options)

    def peek(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            armed = self._armed.get(name)
            return dict(armed.options) if armed and armed.remaining != 0 else None

    def record(self, request: Request) -> None:
        params = {k: ("***" if k in SECRET_KEYS else v) for k, v in request.query_params.items()}
        with self._lock:
            self.requests.append(SeenRequest(request.method, request.url.path, params,
                                             time.monotonic()))

    def seen(self, path_suffix: str = "") -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]


def fault_middleware(faults: Faults) -> Callable[..., Any]:
    """Starlette ``http`` middleware applying the generic faults (not to /_sim routes)."""

    async def middleware(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/_sim"):
            return await call_next(request)
        faults.record(request)
        if (opts := faults.take("slow")) is not None:
            await anyio.sleep(float(opts.get("seconds", 2.0)))
        if (opts := faults.take("http_429")) is not None:
            headers = {}
            if opts.get("retry_after") is not None:
                headers["Retry-After"] = str(opts["retry_after"])
            return JSONResponse({"error": "Too Many Requests"}, status_code=429, headers=headers)
        if faults.take("http_500") is not None:
            return Response("Internal Server Error", status_code=500)
        if (opts := faults.take("http_503")) is not None:
            headers = {}
            if opts.get("retry_after") is not None:
                headers["Retry-After"] = str(opts["retry_after"])
            return Response("Service Unavailable", status_code=503, headers=headers)
        return await call_next(request)

    return middleware


def control_routes(faults: Faults) -> list[Route]:
    async def arm(request: Request) -> Response:
        body = await request.json()
        name = str(body.pop("name"))
        faults.arm(name, int(body.pop("times", 1)), **body)
        return JSONResponse({"armed": name})

    async def clear(request: Request) -> Response:
        faults.clear()
        return JSONResponse({"cleared": True})

    return [Route("/_sim/faults", arm, methods=["POST"]),
            Route("/_sim/faults", clear, methods=["DELETE"])]


def simulator_app(simulator: Any, routes: list[BaseRoute]) -> Starlette:
    """A simulator's ASGI app: its ``routes``, the ``/_sim/faults`` control routes and the
    generic faults in front; ``app.state.simulator`` is the simulator itself (tests arm
    faults and read its data through it)."""
    app = Starlette(
        routes=[*routes, *control_routes(simulator.faults)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=fault_middleware(simulator.faults))],
    )
    app.state.simulator = simulator
    return app


@contextmanager
def serve_in_thread(app: Any, *, port: int = 0,
                    startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:``port`` (0: a free one) in a daemon thread; yields the
    base URL. Binding fails with OSError when a given port is taken."""
    import uvicorn

    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it
    # every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"simulator-{port}")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"simulator did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
