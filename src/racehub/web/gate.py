"""The request gate (pure ASGI): who is calling, and how much body they may send, decided
before a single byte of the body is read.

FastAPI reads and parses a request's body before any dependency runs, so a permission
dependency alone would let an anonymous caller make the server swallow a 48 MB JSON body
before refusing it. Here, in front of the app:

1. The request's database session is opened (lazily) and the caller resolved from the
   ``Authorization`` header or the session cookie, once; the dependencies read that result
   (``core.deps.get_principal``) and share the session (``core.deps.get_db``).
2. A request carrying a body, from nobody, is refused at once (401 for the API, 403 for
   pages) unless its route is in ``ANONYMOUS_BODIES``: the named routes an anonymous caller
   may post to, each with its own small cap. Without a body the app answers as usual (a
   redirect to the login form, a 401, a 405).
3. Every body is capped while it streams in, with or without a Content-Length: file
   uploads (multipart) at ``RACEHUB_MAX_UPLOAD_MB``, anything else (JSON, forms) at
   ``RACEHUB_MAX_JSON_KB``, the anonymous routes at their own cap. Over it: 413.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from racehub.core.deps import (
    SESSION_COOKIE,
    Authentication,
    RequestSession,
    SessionFactory,
    authenticate,
)
from racehub.core.errors import error_response, wants_html
from racehub.settings import Settings
from racehub.sync.webhooks import MAX_BODY_BYTES as WEBHOOK_MAX_BYTES
from racehub.web.middleware import BodyTooLarge

KB = 1024


@dataclass(frozen=True)
class AnonymousBody:
    """A route anyone may send a body to, and the most it may send."""

    method: str
    path: re.Pattern[str]
    max_bytes: int
    what: str  # names the limit in the 413

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.path.fullmatch(path) is not None


# Keep this short: each entry is a deliberate decision (tests/core/test_gate.py pins it).
ANONYMOUS_BODIES = (
    # The login form: an e-mail, a password, the next page and the CSRF token.
    AnonymousBody("POST", re.compile(r"/login"), 8 * KB, "the login form"),
    # Logging out needs no live session (an expired one still clears its cookie).
    AnonymousBody("POST", re.compile(r"/logout"), 8 * KB, "the logout form"),
    # Copernico's deliveries: authenticated by the API key inside the payload.
    AnonymousBody("POST", re.compile(r"/api/connections/[^/]+/webhook"), WEBHOOK_MAX_BYTES,
                  "a webhook delivery"),
)

# Routes that read no caller: the probes, and the metrics scrape, whose bearer is
# RACEHUB_METRICS_TOKEN (checked by the route), not an API token. Looking that bearer up
# among the API tokens was a wasted query (and thread-pool hop) on every scrape.
NO_CALLER_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

NOT_LOGGED_IN = "Log in or send 'Authorization: Bearer <token>'."
NOT_LOGGED_IN_PAGE = ("You are not logged in, or your session has expired. Log in, then "
                      "submit the form again.")


def anonymous_body(method: str, path: str) -> AnonymousBody | None:
    return next((a for a in ANONYMOUS_BODIES if a.matches(method, path)), None)


def _size(n_bytes: int) -> str:
    if n_bytes % (1024 * KB) == 0:
        return f"{n_bytes // (1024 * KB)} MB"
    return f"{n_bytes // KB} KB" if n_bytes % KB == 0 else f"{n_bytes} bytes"


class RequestGate:
    def __init__(self, app: ASGIApp, *, settings: Settings,
                 session_factory: SessionFactory) -> None:
        self.app = app
        self.settings = settings
        self.session_factory = session_factory

    def _limit(self, method: str, path: str, content_type: str) -> tuple[int, str]:
        """The body cap of this request and the 413's words for it."""
        anonymous = anonymous_body(method, path)
        if anonymous is not None:
            return anonymous.max_bytes, f"the {_size(anonymous.max_bytes)} limit of " \
                                        f"{anonymous.what}"
        if content_type.startswith("multipart/form-data"):
            limit = self.settings.max_upload_bytes
            return limit, f"the {_size(limit)} limit (RACEHUB_MAX_UPLOAD_MB)"
        limit = self.settings.max_json_bytes
        return limit, f"the {_size(limit)} limit of a JSON or form body (RACEHUB_MAX_JSON_KB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = scope.setdefault("state", {})
        request_session = RequestSession(self.session_factory)
        state["db"] = request_session
        try:
            await self._handle(scope, receive, send, request, state, request_session)
        finally:
            if request_session.opened:  # closing returns the connection: a blocking call
                await run_in_threadpool(request_session.close)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request: Request,
                      state: dict[str, object], request_session: RequestSession) -> None:
        method, path = scope["method"], scope["path"]
        authorization = request.headers.get("authorization", "")
        cookie = request.cookies.get(SESSION_COOKIE)
        if (authorization or cookie) and not (path.startswith("/static/")
                                              or path in NO_CALLER_PATHS):
            authentication = await run_in_threadpool(
                lambda: authenticate(request_session.get(), self.settings,
                                     authorization=authorization, session_cookie=cookie))
        else:
            authentication = Authentication()
        state["authentication"] = authentication
        state["principal"] = authentication.principal
        if authentication.refreshed_cookie:
            state["session_cookie_refresh"] = authentication.refreshed_cookie

        declared = request.headers.get("content-length")
        has_body = (bool(declared) and declared != "0") or "transfer-encoding" in request.headers
        if authentication.principal is None and has_body and anonymous_body(method, path) is None:
            if wants_html(request):
                await _answer(scope, send, request, 403, "Forbidden", NOT_LOGGED_IN_PAGE)
            else:
                await _answer(scope, send, request, 401, "Not authenticated",
                              authentication.error or NOT_LOGGED_IN)
            return

        limit, words = self._limit(method, path, request.headers.get("content-type", ""))
        detail = f"The request body is larger than {words}."
        if declared and declared.isdigit() and int(declared) > limit:
            await _answer(scope, send, request, 413, "Request body too large", detail)
            return

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(detail)
            return message

        await self.app(scope, capped_receive, send)



async def _answer(scope: Scope, send: Send, request: Request, status: int, title: str,
                  detail: str) -> None:
    """Answer without reading the body, as the app's error handlers would: problem+json for
    the API, the error page for pages."""
    response = error_response(request, status, title, detail)
    # The unread body stays on the wire: the connection cannot serve another request.
    response.headers["connection"] = "close"

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
