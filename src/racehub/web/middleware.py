"""Pure ASGI middleware: request id + access log, security headers, CSRF cookie; it answers
the 413 of a body over its cap (set by ``web/gate.py``) when the app did not."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from http.cookies import SimpleCookie
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from racehub.core.deps import CSRF_COOKIE, SESSION_COOKIE

log = structlog.get_logger("racehub.request")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

SECURITY_HEADERS = {
    # No inline script anywhere: htmx and our JS are files under /static.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


class BodyTooLarge(HTTPException):
    """Raised while the body streams in (``web/gate.py`` sets the cap). An HTTPException,
    so that FastAPI's body parsing passes it on (it turns other errors into a 400) and the
    error handlers answer 413; raised outside the app, this middleware answers it."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, secure_cookies: bool, session_seconds: int) -> None:
        self.app = app
        self.secure_cookies = secure_cookies
        self.session_seconds = session_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        cookies = SimpleCookie(headers.get("cookie", ""))
        new_csrf = None
        if CSRF_COOKIE in cookies and cookies[CSRF_COOKIE].value:
            state["csrf_token"] = cookies[CSRF_COOKIE].value
        else:
            new_csrf = secrets.token_urlsafe(32)
            state["csrf_token"] = new_csrf
        https = scope.get("scheme") == "https" or self.secure_cookies
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                out = MutableHeaders(scope=message)
                out["x-request-id"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    out.setdefault(name, value)
                if new_csrf:
                    out.append("set-cookie", _cookie(CSRF_COOKIE, new_csrf, secure=https))
                # The session's expiry slid (core.deps.get_principal): the cookie's lifetime
                # follows, unless the response sets the session cookie itself (logout).
                refresh = state.get("session_cookie_refresh")
                if refresh and not any(v.startswith(f"{SESSION_COOKIE}=")
                                       for v in out.getlist("set-cookie")):
                    out.append("set-cookie", _cookie(SESSION_COOKIE, refresh, secure=https,
                                                     max_age=self.session_seconds))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BodyTooLarge as exc:
            if status_holder["started"]:
                raise
            await self._too_large(scope, send, request_id, exc.detail)
            status_holder["status"] = 413
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status_holder["status"],
                ms=round((time.perf_counter() - started) * 1000, 1),
            )

    async def _too_large(self, scope: Scope, send: Send, request_id: str, detail: str) -> None:
        body = json.dumps({
            "type": "about:blank",
            "title": "Request body too large",
            "status": 413,
            "detail": detail,
            "instance": scope["path"],
            "request_id": request_id,
        }).encode()
        headers: list[Any] = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


