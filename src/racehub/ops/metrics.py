"""Prometheus metrics: requests by route template, jobs by kind and state.

Several ``racehub serve`` processes each count their own requests; with
``PROMETHEUS_MULTIPROC_DIR`` set (``racehub serve`` sets it when metrics are on) every
process writes its samples to files there and a scrape of any process adds them all up.
The variable must be set before ``prometheus_client`` is imported, which is why this
module is imported only when metrics are on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "MetricsMiddleware", "exposition"]

REQUESTS = Counter(
    "racehub_http_requests", "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "racehub_http_request_duration_seconds", "Time to answer, by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# Paths no route matched are counted under one label, so scanners cannot grow the series.
UNMATCHED = "<unmatched>"


class MetricsMiddleware:
    """Counts and times every HTTP request under its route's template (``/api/events/{id}``),
    read from the scope once routing has run."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)


class _Fixed(Collector):
    """Hands over metric families computed for one scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def jobs_family(counts: Iterable[tuple[str, str, int]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "racehub_jobs", "Job runs recorded, by kind and state (all tenants).",
        labels=["kind", "state"],
    )
    for kind, state, count in counts:
        family.add_metric([kind, state], count)
    return family


def exposition(extra: Iterable[Metric] = ()) -> bytes:
    """The text format of this process's (or, in multiprocess mode, every process's)
    metrics, plus the families computed for this scrape."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped library
        registry.register(_Fixed(extra))
        return generate_latest(registry)
    scrape = CollectorRegistry()
    scrape.register(_Fixed(extra))
    return generate_latest(REGISTRY) + generate_latest(scrape)
