"""The provider simulators ``racehub demo`` serves, so the demo's connections answer.

Each simulator module offers ``make_app()``, ``BASE_PATH`` (what the adapter's base URL
needs after the server's address) and ``DEMO_CREDENTIALS`` (what it accepts, by the
connection's credential field names). They run in threads of the demo process on
127.0.0.1, on fixed ports when free so the URLs stay the same from one demo to the next.

The demo serves the providers as they really answer: a simulator module that sets
``REAL_SHAPES = True`` takes ``make_app(real_shapes=True)`` and is started so (the shapes
seen in real responses, see ``../shared/PROVIDERS.md``; tests start plain simulators unless
they ask for it). A new simulator option is added the same way: a module flag and a
``make_app`` keyword, passed here. A module's ``demo_settings(server)`` gives the
connection's extra settings, its ``demo_events(simulator)`` the provider events (ref, name)
the demo links. A timing simulator's ``finish_path(ref)`` is its control route running that
race (the athletes racehub pushed cross the line), after the server's address.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import Any

from racehub.providers.catalog import PROVIDERS
from racehub.providers.simulator import serve_in_thread


@dataclass(frozen=True)
class RunningSimulator:
    provider: str  # a providers.catalog key
    label: str
    base_url: str  # what the connection's adapter is pointed at
    credentials: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)  # extra adapter settings
    # The provider events it serves, (ref, name), for the demo to link; empty: none linked.
    events: list[tuple[str, str]] = field(default_factory=list)
    server: str = ""  # the simulator's own address (its control routes hang off it)
    finish_path: Callable[[str], str] | None = None  # a timing simulator's: see above

    def finish_url(self, ref: str) -> str | None:
        """The URL that runs the race ``ref`` on this simulator (None: not a timing one)."""
        return self.server + self.finish_path(ref) if self.finish_path else None


def simulator_options(module: Any, *, real_shapes: bool = True) -> dict[str, Any]:
    """The ``make_app`` keywords a simulator module takes (see the module docstring)."""
    return {"real_shapes": real_shapes} if getattr(module, "REAL_SHAPES", False) else {}


def serve_simulators(stack: ExitStack, *, first_port: int | None = None,
                     real_shapes: bool = True) -> list[RunningSimulator]:
    """Start every provider's simulator (catalog order, ports ``first_port`` onwards, a
    free port when one is taken or ``first_port`` is None), in real-shapes mode unless
    ``real_shapes`` is False; they stop when ``stack`` closes."""
    running = []
    for offset, spec in enumerate(PROVIDERS.values()):
        module = importlib.import_module(spec.simulator)
        app = module.make_app(**simulator_options(module, real_shapes=real_shapes))
        server = None
        if first_port is not None:
            with suppress(OSError):  # taken: any free port will do, the connection follows
                server = stack.enter_context(serve_in_thread(app, port=first_port + offset))
        if server is None:
            server = stack.enter_context(serve_in_thread(app))
        base_url = server + module.BASE_PATH
        settings_for = getattr(module, "demo_settings", None)
        events_of = getattr(module, "demo_events", None)
        running.append(RunningSimulator(
            provider=spec.key, label=spec.label, base_url=base_url,
            credentials=dict(module.DEMO_CREDENTIALS),
            settings=settings_for(server) if settings_for else {},
            events=events_of(app.state.simulator) if events_of else [],
            server=server, finish_path=getattr(module, "finish_path", None)))
    return running
