"""Turn errors into ``application/problem+json`` (API) or an error page (HTML)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from racehub.core.exceptions import DomainError, NotAuthenticated, TooManyRequests

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
    from racehub.web.templating import templates

    return templates.TemplateResponse(
        request, "error.html", {"status": status, "title": title, "detail": detail},
        status_code=status,
    )


def error_response(request: Request, status: int, title: str, detail: str,
                   **problem_options: Any) -> Response:
    """The error as the caller reads it: the error page for pages, problem+json for the API."""
    if wants_html(request):
        return _html_error(request, status, title, detail)
    return problem(request, status, title, detail, **problem_options)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    def domain_error(request: Request, exc: DomainError) -> Response:
        login_needed = isinstance(exc, NotAuthenticated) and request.url.path != "/login"
        if login_needed and wants_html(request):
            query = f"?{request.url.query}" if request.url.query else ""
            target = quote(request.url.path + query)
            return RedirectResponse(f"/login?next={target}", status_code=303)
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
