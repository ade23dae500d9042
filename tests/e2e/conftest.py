"""Browser tests: the real app under uvicorn in a thread, driven by headless Chromium.

- ``live_server``: one uvicorn per xdist worker (session scope) on a free loopback port,
  serving ``create_app(settings)`` on that worker's database. The app opens its own
  sessions, so test data must be committed: use ``committed_db`` (which empties every
  table after each test).
- ``browser``: one Debian Chromium per worker; ``page``: a fresh context (cookies) per test.
- ``console``: every console error, uncaught exception and CSP violation seen by ``page``
  fails the test at teardown unless the test declared it with ``console.expect(...)``.

Without Chromium (``/usr/bin/chromium``, or ``RACEHUB_CHROMIUM``) the tests are skipped
with that reason, except when the browser is required: ``RACEHUB_REQUIRE_BROWSER=1`` (set
by ``.ci/run``) or ``CI`` set. Then every browser test fails, before any other fixture.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from racehub.app import create_app
from racehub.core.models import Role
from racehub.db.bootstrap import database_url as app_database_url
from racehub.db.session import get_engine
from racehub.settings import Settings
from tests.e2e.helpers import ConsoleWatch, Seed
from tests.factories import make_event, make_tenant, make_user

CHROMIUM = Path(os.environ.get("RACEHUB_CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
E2E_DIR = Path(__file__).resolve().parent
SERVER_START_TIMEOUT = 15.0
EXPECT_TIMEOUT_MS = 5_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives the pages in headless Chromium")


def browser_required() -> bool:
    """Whether a missing browser fails the browser tests instead of skipping them."""
    flag = os.environ.get("RACEHUB_REQUIRE_BROWSER", "").strip().lower()
    return flag not in ("", "0", "false", "no") or bool(os.environ.get("CI"))


def chromium_missing() -> str | None:
    """Why Chromium cannot be run, or None when it can."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not executable"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = chromium_missing()
    if missing is None or browser_required():
        return  # a required but missing browser fails each test (``_browser_present``)
    skip = pytest.mark.skip(reason=f"browser tests skipped: {missing}")
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _browser_present() -> None:
    """Fails every browser test, before the server and database fixtures start, when the
    browser is required but missing (when it is not required, the tests were skipped)."""
    missing = chromium_missing()
    if missing is not None:
        pytest.fail(f"the browser tests need Chromium and it is required here "
                    f"(RACEHUB_REQUIRE_BROWSER or CI set): {missing}", pytrace=False)


# --- server --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("e2e-data"),
                    log_json=True, log_level="WARNING")


@pytest.fixture(scope="session")
def live_server(e2e_settings: Settings) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>``) of the app served by uvicorn in a thread."""
    app = create_app(e2e_settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the socket is handed to uvicorn: no port race
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            pytest.fail(f"uvicorn did not start within {SERVER_START_TIMEOUT:.0f} s "
                        "(see the captured log above)")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT)
        sock.close()
        # The app's pooled connections would otherwise linger until the database is dropped.
        get_engine(app_database_url(e2e_settings)).dispose()


# --- browser -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# Runs before the page's own scripts; reports each violation to Python, then counts it
# (so a test can wait for the count and know the report was sent first).
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__e2eReportCsp(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
                        + ` at ${e.sourceFile || document.location.pathname}:${e.lineNumber}`);
  window.__e2eCspViolations = (window.__e2eCspViolations || 0) + 1;
});
"""


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def page(
    browser: Browser,
    live_server: str,
    committed_db: sessionmaker[Session],
    console: ConsoleWatch,
) -> Iterator[Page]:
    # ``committed_db`` first: its truncation runs after the context (and its requests) ended.
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(EXPECT_TIMEOUT_MS * 2)
    context.expose_binding("__e2eReportCsp",
                           lambda _source, text: console.errors.append(f"CSP: {text}"))
    context.add_init_script(CSP_REPORTER)
    pg = context.new_page()
    pg.on("console", lambda msg: console.errors.append(
        f"console.error: {msg.text} ({msg.location.get('url')})") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    try:
        yield pg
    finally:
        context.close()
    bad = console.unexpected()
    if bad:
        pytest.fail("browser reported errors:\n  " + "\n  ".join(bad), pytrace=False)


# --- data ----------------------------------------------------------------------------------


@pytest.fixture
def seed(committed_db: sessionmaker[Session]) -> Seed:
    """A committed tenant with an event manager, a viewer and one event."""
    with committed_db() as db:
        tenant = make_tenant(db, name="Alpine Timing")
        admin = make_user(db, tenant, Role.EVENT_MANAGER, email="manager@alpine.test")
        viewer = make_user(db, tenant, Role.VIEWER, email="viewer@alpine.test")
        event = make_event(db, tenant, name="Lake Run 2026", location="Annecy",
                           timezone="Europe/Paris")
        db.commit()
    return Seed(tenant=tenant, admin=admin, viewer=viewer, event=event)
