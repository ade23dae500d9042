"""Turn errors into ``application/problem+json`` (API) or an error page (HTML)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from racehub.core.exceptions import (
    DomainError,
    NotAuthenticated,
    TenantNotChosen,
    TooManyRequests,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path != "/api"


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def _validation_entry(error: dict[str, Any]) -> dict[str, str]:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        # The location is a character offset, not a field.
        return {"field": "body",
                "message": f"the body is not valid JSON (at character {loc[-1] if loc else 0})"}
    # A validator's own ValueError reads "Value error, <its message>": the message only.
    return {"field": _field_name(loc),
            "message": str(error.get("msg", "")).removeprefix("Value error, ")}


def _html_error(request: Request, status: int, title: str, detail: str) -> Response:
    from racehub.web.pages import form_page_address
    from racehub.web.templating import templates

    # A refused POST shows the form's page address, not the POST's (see form_page_address).
    context: dict[str, Any] = {"status": status, "title": title, "detail": detail,
                               "page_url": form_page_address(request)}
    me = _top_bar_of(request) if status < 500 else None
    if me is not None:
        context["me"] = me
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def _top_bar_of(request: Request) -> dict[str, Any] | None:
    """The menu and Log out on a refusal (a 403, a 404) of someone acting in a tenant, so
    the page is no dead end. Not on a 500: the request's session may be unusable."""
    ctx = getattr(request.state, "ctx", None)
    request_session = getattr(request.state, "db", None)
    if ctx is None or request_session is None:
        return None
    from racehub.web.pages import top_bar

    try:
        db = request_session.get()
        with db.no_autoflush:  # nothing the refused request left pending is written
            return top_bar(request, db, ctx)
    except Exception:  # the refusal matters more than its menu
        log.warning("error_page.top_bar_failed", exc_info=True)
        return None


def error_response(request: Request, status: int, title: str, detail: str,
                   **problem_options: Any) -> Response:
    """The error as the caller reads it: the error page for pages, problem+json for the API."""
    if wants_html(request):
        return _html_error(request, status, title, detail)
    return problem(request, status, title, detail, **problem_options)


TENANT_PICKER = "/tenant"


def _to_tenant_picker(request: Request) -> Response:
    """A page asked of a session with no tenant to act in: the tenant picker, which comes
    back to the page once a tenant is chosen (a form's POST comes back to no page)."""
    target = "/events"
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        target = request.url.path + query
    location = f"{TENANT_PICKER}?next={quote(target)}"
    if request.headers.get("hx-request") == "true":
        # htmx would swap the picker into the fragment it asked for: the whole page instead.
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    def domain_error(request: Request, exc: DomainError) -> Response:
        login_needed = isinstance(exc, NotAuthenticated) and request.url.path != "/login"
        if login_needed and wants_html(request):
            query = f"?{request.url.query}" if request.url.query else ""
            target = quote(request.url.path + query)
            return RedirectResponse(f"/login?next={target}", status_code=303)
        if isinstance(exc, TenantNotChosen) and wants_html(request):
            return _to_tenant_picker(request)
        headers = None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after)}
        errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
        return error_response(request, exc.status_code, exc.title, exc.detail, errors=errors,
                              headers=headers)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [_validation_entry(e) for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return error_response(request, 422, "Invalid input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail)
        return error_response(request, exc.status_code, detail, detail,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        from racehub.web.middleware import SECURITY_HEADERS

        # exc_info given, not taken from sys.exc_info(): this sync handler runs in a thread
        # of its own, outside the except block, where the traceback would be lost.
        log.error("request.unhandled_error", exc_info=exc)
        detail = "Something went wrong on our side. Quote the request id when reporting it."
        response = error_response(request, 500, "Server error", detail)
        # Starlette answers unhandled errors from its outermost middleware, outside the
        # request middleware: add the headers that one gives every other response.
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            response.headers["x-request-id"] = request_id
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
