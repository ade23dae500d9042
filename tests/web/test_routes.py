"""Nothing in a request path blocks the event loop.

An ``async def`` route or dependency runs on the loop itself: one synchronous database query
or provider call there stalls every other request of the process meanwhile. Routes and
dependencies are plain ``def`` (FastAPI runs them in its thread pool), except the few async
dependencies below, which only read the request body or what the request gate resolved.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from racehub.core.csrf import csrf_protect
from racehub.core.deps import (
    PermissionDependency,
    get_db,
    get_principal,
    get_settings_dep,
    refuse_hostile_input,
)
from racehub.sync.api import raw_body
from racehub.web.pages import _posted_form

ASYNC_ALLOWED: set[Callable[..., Any]] = {
    # Each awaits the request body (or reads the query) and nothing else.
    csrf_protect, _posted_form, raw_body, refuse_hostile_input,
    # Each reads what the gate put on the request (no I/O), saving a thread hop each.
    get_settings_dep, get_db, get_principal,
}
# Every ``require(Perm.X)``: it checks the context the gate's lookup resolved (no I/O); its
# one rare write (a platform admin's cross-tenant trace) is sent to the thread pool.
ASYNC_ALLOWED_TYPES = (PermissionDependency,)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _is_async(call: Callable[..., Any]) -> bool:
    # A dependency may be an instance whose __call__ is the coroutine (PermissionDependency).
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        type(call).__call__)


def test_no_route_or_dependency_runs_on_the_event_loop(app: FastAPI) -> None:
    offenders = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        if _is_async(route.endpoint):
            offenders.append(f"{route.path}: {route.endpoint.__qualname__}")
        for call in _calls(route.dependant):
            if (_is_async(call) and call not in ASYNC_ALLOWED
                    and not isinstance(call, ASYNC_ALLOWED_TYPES)):
                name = getattr(call, "__qualname__", type(call).__qualname__)
                offenders.append(f"{route.path}: dependency {name}")
    assert offenders == []
