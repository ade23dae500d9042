"""Capturing what the app logs, rendered exactly as production renders it."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """Every line logged through the root logger while the block runs, formatted by the
    configured handler's formatter (JSON lines under the test settings)."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
