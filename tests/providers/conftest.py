"""Provider test fixtures: serve any Starlette app (a simulator) over real HTTP on 127.0.0.1.

``serve_app(app)`` returns the base URL of a uvicorn server running ``app`` in a thread on
a free port; every server is stopped at the end of the test. Simulators are built per test,
so their fault switchboards never leak between tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from racehub.providers.simulator import serve_in_thread


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    with ExitStack() as stack:
        def serve(app: Any) -> str:
            return stack.enter_context(serve_in_thread(app))

        yield serve
