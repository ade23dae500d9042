"""CSRF protection for every unsafe request made with the session cookie.

Double-submit: a random token lives in an HttpOnly, SameSite=Lax cookie and every form
(hidden ``csrf_token`` field) or htmx/fetch call (``X-CSRF-Token`` header) must echo it.
Bearer-token requests are exempt: a browser never attaches that header cross-site.
It is installed as an app-wide dependency, so no route can forget it. A route whose caller
is another server (a provider's webhook) reads no cookie at all and says so with
``@csrf_exempt``; it must authenticate the request itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

from racehub.core.deps import CSRF_COOKIE
from racehub.core.exceptions import Forbidden
from racehub.core.security import same

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

F = TypeVar("F", bound=Callable[..., Any])


def csrf_exempt(endpoint: F) -> F:
    """Mark an endpoint called server-to-server: no session cookie is read, so there is no
    cross-site request to forge. Put it under the ``@router.post(...)`` line."""
    endpoint.csrf_exempt = True  # type: ignore[attr-defined]
    return endpoint


async def csrf_protect(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    if getattr(request.scope.get("endpoint"), "csrf_exempt", False):
        return
    if request.headers.get("authorization"):
        return
    expected = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get("x-csrf-token")
    if not sent and request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await request.form()  # cached by Starlette; the route reads the same form
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not same(expected, sent):
        raise Forbidden(
            "The form's security token is missing or out of date (CSRF check). "
            "Reload the page and submit again."
        )
