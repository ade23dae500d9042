"""Domain errors. Services raise these; the web edge maps them to HTTP (see core/errors.py)."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class Invalid(DomainError):
    status_code = 422
    title = "Invalid input"


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class Forbidden(DomainError):
    status_code = 403
    title = "Forbidden"


class NotAuthenticated(DomainError):
    status_code = 401
    title = "Not authenticated"


class TooManyRequests(DomainError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TenantNotChosen(Forbidden):
    """A browser session with no tenant to act in: a platform admin who has not picked one
    yet, or a user whose membership is gone. Pages send the caller to the tenant picker
    (``GET /tenant``) instead of a dead-end 403; the API answers 403."""
