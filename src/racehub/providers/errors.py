"""Typed provider errors: sync decides retry vs permanent failure from the class alone.

Messages name the operation and what went wrong, never a credential: every message is
passed through the connection's redactor before it is raised (see ``http.py``).
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every provider failure. ``retryable`` tells sync whether to try again later."""

    retryable = False

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        return f"{prefix}{self.message}"


class AuthFailed(ProviderError):
    """Credentials missing, wrong or lacking rights. Permanent until someone fixes them."""


class NotFound(ProviderError):
    """The event/race/record does not exist (or is not visible to these credentials)."""


class Throttled(ProviderError):
    """The provider (or our own budget) says slow down. ``retry_after`` in seconds, if known."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, provider: str = "",
                 status: int | None = None) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class ProviderDown(ProviderError):
    """5xx, time-outs, refused connections: the provider is unwell, try again later.
    ``retry_after`` when a 503 said when."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, provider: str = "",
                 status: int | None = None) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class BadData(ProviderError):
    """The provider answered with something we cannot use (or refused what we sent)."""


class NotSupported(ProviderError):
    """The adapter does not offer this operation (see its ``capabilities``)."""


class RepeatedPage(BadData):
    """A page came back the same as the page before it: the provider ignored our paging
    parameter (or we sent the wrong one). Reading on would return the same rows until the
    page limit, so the read ends here, with this error, not with a partial result."""


class PageLimitReached(BadData):
    """A read went past the adapter's ``max_pages`` without an end: an error, never a
    silent stop (the rows read so far are not all the rows)."""
