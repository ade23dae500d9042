"""The HTTP layer every adapter shares.

- one ``httpx.Client`` per adapter with connect/read time-outs and connection pooling;
- every attempt first takes a token from the connection's rate limiter;
- tenacity retries 5xx, time-outs, refused connections and throttling with exponential
  backoff and jitter, bounded in attempts, honouring ``Retry-After`` (seconds or HTTP date);
- statuses become typed errors (``errors.py``); ``error_hook`` lets an adapter raise them
  for failures reported inside a 2xx body (RunSignUp's ``{"error": {...}}``);
- nothing logged or raised carries a secret: secret parameters/headers are masked, and the
  connection's credential values are scrubbed from every message (httpx's own request log
  line included; ``core.logging`` masks every credential in every log line besides).
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from racehub.core.logging import scrub
from racehub.providers.errors import (
    AuthFailed,
    BadData,
    NotFound,
    ProviderDown,
    ProviderError,
    Throttled,
)
from racehub.providers.ratelimit import RateLimit, RateLimiter

log = structlog.get_logger(__name__)

SECRET_PARAMS = frozenset({
    "api_key", "api_secret", "rsu_api_key", "user_pass", "client_secret", "password",
    "access_token", "refresh_token", "token", "apikey",
})
SECRET_HEADERS = frozenset({"authorization", "x-rsu-api-secret", "x-api-key", "cookie"})
MASK = "***"

_QUERY_SECRET_RE = re.compile(
    r"(?i)\b(" + "|".join(sorted(SECRET_PARAMS, key=len, reverse=True)) + r")=([^&\s\"'#]*)"
)


def redact_url(url: str | httpx.URL) -> str:
    """The URL with the values of secret query parameters masked."""
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    query = [(k, MASK if k.lower() in SECRET_PARAMS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


class Redactor:
    """Scrubs known secret values and ``secret_param=value`` pairs out of any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Very short values would mask ordinary words; credentials are never that short.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, value: object) -> str:
        out = _QUERY_SECRET_RE.sub(lambda m: f"{m.group(1)}={MASK}", str(value))
        for secret in self.secrets:
            out = out.replace(secret, MASK)
        return out


class _HttpxRedactingFilter(logging.Filter):
    """httpx logs each request's full URL at INFO: mask the secret query parameters and
    every credential (ChronoTrack sends its client id and user id in the query), whatever
    handler the line goes to. ``core.logging.SecretScrubber`` masks every line besides."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                scrub(redact_url(a)) if isinstance(a, httpx.URL) else
                (scrub(_QUERY_SECRET_RE.sub(lambda m: f"{m.group(1)}={MASK}", a))
                 if isinstance(a, str) else a)
                for a in args
            )
        record.msg = scrub(_QUERY_SECRET_RE.sub(lambda m: f"{m.group(1)}={MASK}",
                                                str(record.msg)))
        return True


_httpx_filter = _HttpxRedactingFilter()
for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _HttpxRedactingFilter) for f in _logger.filters):
        _logger.addFilter(_httpx_filter)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


ErrorHook = Callable[[int, Any], None]


@dataclass(frozen=True)
class ProviderResponse:
    status: int
    headers: httpx.Headers
    body: Any  # decoded JSON, or None for an empty body
    elapsed_ms: int


class ProviderHttp:
    """JSON over HTTP for one connection, with its budget, retries and redaction."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        limiter: RateLimiter,
        rate_key: str,
        rate_limit: RateLimit,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        error_hook: ErrorHook | None = None,
        default_params: Mapping[str, str] | None = None,
        default_headers: Mapping[str, str] | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.rate_key = rate_key
        self.rate_limit = rate_limit
        self.redact = Redactor(secrets)
        self.sleep = sleep
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.error_hook = error_hook
        self.default_params = dict(default_params or {})
        self.on_unauthorized = on_unauthorized
        self.attempts_made = 0  # total HTTP attempts (tests and sync statistics)
        self.client = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"User-Agent": "racehub/0.1", **(default_headers or {})},
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    # -- public --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
        idempotent: bool = True,
    ) -> ProviderResponse:
        """Send with the budget and retries; the decoded body plus status and headers (for
        providers that page with headers), or a typed error.

        ``url`` overrides ``base_url + path`` (token endpoints on another host). If
        ``on_unauthorized`` is set, a 401 calls it once (it refreshes a token and updates
        ``self.client.headers``) and the request is sent again.

        ``idempotent=False`` (a POST that adds rows): only a refusal the provider made
        before doing anything (throttling) is sent again here; a 5xx or a timeout may come
        after the provider did it, so it is raised for the caller to check first.
        """
        target = url or f"{self.base_url}/{path.lstrip('/')}"
        merged = {**self.default_params, **(params or {})}
        try:
            return self._with_retries(method, target, merged, data, json, headers,
                                      idempotent=idempotent)
        except AuthFailed as exc:
            if exc.status != 401 or self.on_unauthorized is None:
                raise
            self.on_unauthorized()
            return self._with_retries(method, target, merged, data, json, headers,
                                      idempotent=idempotent)

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request` returning only the decoded JSON body."""
        return self.request(method, path, **kwargs).body

    def _with_retries(self, method: str, url: str, params: Mapping[str, Any],
                      data: Mapping[str, Any] | None, json: Any,
                      headers: Mapping[str, str] | None, *,
                      idempotent: bool = True) -> ProviderResponse:
        def again(error: BaseException) -> bool:
            if not idempotent:
                return isinstance(error, Throttled)
            return isinstance(error, ProviderError) and error.retryable

        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(again),
            sleep=self.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._attempt, method, url, params, data, json, headers)

    # -- one attempt -----------------------------------------------------------------------
    def _attempt(self, method: str, url: str, params: Mapping[str, Any],
                 data: Mapping[str, Any] | None, json: Any,
                 headers: Mapping[str, str] | None) -> ProviderResponse:
        self.limiter.acquire(self.rate_key, self.rate_limit, max_wait=self.max_retry_after)
        self.attempts_made += 1
        where = f"{method} {urlsplit(url).path}"  # never the query string
        started = time.monotonic()
        try:
            response = self.client.request(method, url, params=params or None, data=data,
                                            json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderDown(f"{where}: timed out ({type(exc).__name__})",
                               provider=self.provider) from None
        except httpx.TransportError as exc:
            raise ProviderDown(f"{where}: connection failed: {self.redact(exc)}",
                               provider=self.provider) from None
        elapsed_ms = round((time.monotonic() - started) * 1000)
        log.debug("provider_http", provider=self.provider, method=method,
                  path=urlsplit(url).path, status=response.status_code, ms=elapsed_ms)
        body = self._decode(where, response)
        return ProviderResponse(response.status_code, response.headers, body, elapsed_ms)

    def _decode(self, where: str, response: httpx.Response) -> Any:
        status = response.status_code
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if self.error_hook is not None and body is not None:
            try:
                self.error_hook(status, body)
            except ProviderError as exc:
                exc.message = self.redact(f"{where}: {exc.message}")
                exc.provider = exc.provider or self.provider
                exc.status = exc.status or status
                if isinstance(exc, Throttled) and exc.retry_after is None:
                    exc.retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise
        if 200 <= status < 300:
            if body is None and response.content.strip():
                raise BadData(f"{where}: the response is not JSON ({self._snippet(response)})",
                              provider=self.provider, status=status)
            return body
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        detail = self._snippet(response)
        message = f"{where}: HTTP {status}" + (f" - {detail}" if detail else "")
        kwargs: dict[str, Any] = {"provider": self.provider, "status": status}
        if status in (401, 403):
            raise AuthFailed(message + " (credentials refused)", **kwargs)
        if status == 404:
            raise NotFound(message, **kwargs)
        if status == 429:
            raise Throttled(message, retry_after=retry_after, **kwargs)
        if status >= 500 or status in (408, 425):
            raise ProviderDown(message, retry_after=retry_after, **kwargs)
        raise BadData(message, **kwargs)

    def _snippet(self, response: httpx.Response, limit: int = 200) -> str:
        text = " ".join(response.text.split())[:limit]
        return self.redact(text)

    # -- tenacity policy -------------------------------------------------------------------
    def _stop(self, state: RetryCallState) -> bool:
        if stop_after_attempt(self.max_attempts)(state):
            return True
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        # A wait longer than we may block a worker for: give up now, sync reschedules.
        return retry_after is not None and retry_after > self.max_retry_after

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        return wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max)(state)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, Throttled) and retry_after:
            # Every process using this connection's budget waits too.
            self.limiter.hold_off(self.rate_key, float(retry_after))
        log.info("provider_retry", provider=self.provider, attempt=state.attempt_number,
                 error=type(exc).__name__, detail=str(exc),
                 wait=round(state.upcoming_sleep, 3))
