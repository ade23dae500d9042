"""Shared by the browser tests: the seeded rows, the console watch and the login steps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from playwright.sync_api import Page, expect

from racehub.core.models import Tenant, User
from racehub.events.models import Event
from tests.factories import PASSWORD


@dataclass
class Seed:
    tenant: Tenant
    admin: User  # an EVENT_MANAGER: may edit events and participants
    viewer: User
    event: Event


@dataclass
class ConsoleWatch:
    """Console errors, page exceptions and CSP violations of one page."""

    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        """Declare an error this test provokes on purpose (a regex searched in the text)."""
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]


def login(page: Page, email: str, password: str = PASSWORD) -> None:
    """Log in through the form and wait for the events list."""
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/events$"))
