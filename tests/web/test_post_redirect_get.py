"""A page answering a form's POST names the GET address of the form's page
(``data-page-url``, applied by racehub.js), so the address bar never keeps a POST-only
path: the refused form shown again, and an error page refusing a POST, alike."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from tests.core.conftest import start_browser_session
from tests.factories import make_event, make_user


def _page_url(html: str) -> str | None:
    found = re.search(r'<body[^>]*data-page-url="([^"]*)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_a_refused_form_names_its_page_without_the_flash(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    event = make_event(db, tenant)
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))
    db.commit()  # as in production: the refused form's route rolls its own work back
    referer = f"http://testserver/events/{event.id}?flash=Saved&q=ada"

    refused = client.post(f"/events/{event.id}/categories", headers={"Referer": referer},
                          data={"name": "10K", "bib_range_start": "500",
                                "bib_range_end": "100", "csrf_token": csrf})

    assert refused.status_code == 422
    assert _page_url(refused.text) == f"/events/{event.id}?q=ada"


def test_an_error_page_refusing_a_post_names_the_form_page_too(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    response = client.post(f"/jobs/{uuid.uuid4()}/control", data={
        "action": "cancel", "csrf_token": csrf}, headers={"Referer": "http://testserver/jobs"})
    assert response.status_code == 404
    assert _page_url(response.text) == "/jobs"


def test_no_address_from_another_site_nor_for_htmx_or_a_get(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    event = make_event(db, tenant)
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))
    db.commit()  # as in production: the refused form's route rolls its own work back
    form = {"name": "10K", "bib_range_start": "5", "bib_range_end": "1", "csrf_token": csrf}
    url = f"/events/{event.id}/categories"

    foreign = client.post(url, data=form, headers={"Referer": "https://evil.test/x"})
    htmx = client.post(url, data=form, headers={"Referer": f"http://testserver/events/{event.id}",
                                                "HX-Request": "true"})
    page = client.get(f"/events/{event.id}", headers={"Referer": "http://testserver/jobs"})

    assert foreign.status_code == 422 and _page_url(foreign.text) is None
    assert _page_url(htmx.text) is None
    assert _page_url(page.text) is None
