"""Provider connections in Chromium: the per-provider form, write-only credentials,
"Test connection" inline against the RunSignUp simulator, and the field-mapping editor
previewing on a live sample."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.crypto import keyring_from_settings
from racehub.core.models import Role, Tenant
from racehub.providers.runsignup.simulator import make_app
from racehub.providers.simulator import serve_in_thread
from racehub.settings import Settings
from racehub.sync import service
from racehub.sync.models import ProviderConnection
from racehub.sync.schemas import ConnectionCreate, ConnectionUpdate
from tests.e2e.helpers import login
from tests.factories import make_tenant, make_user, system_ctx

pytestmark = pytest.mark.e2e

API_KEY = "sim-key-Rt5Yh8Jk3001"
API_SECRET = "sim-secret-Mn4Bv7Cx2002"
WRONG = "sim-wrong-Zz0Qq9Ww8003"
ADMIN = "admin@alpine.test"


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[str, Any]]:
    app = make_app(api_key=API_KEY, api_secret=API_SECRET, races=1, events_per_race=1,
                   participants_per_event=6, with_results=False)
    with serve_in_thread(app) as url:
        yield url + "/Rest", app.state.simulator


@pytest.fixture
def seeded(committed_db: sessionmaker[Session], e2e_settings: Settings,
           simulator: tuple[str, Any]) -> dict[str, str]:
    """A tenant admin and a RunSignUp connection at the simulator with a wrong secret (set
    up by a platform admin: only they may point a connection at another address)."""
    base_url, sim = simulator
    event_id, race_id = next(iter(sim.race_of_event.items()))
    with committed_db() as db:
        tenant = make_tenant(db, name="Alpine Timing")
        make_user(db, tenant, Role.TENANT_ADMIN, email=ADMIN)
        platform = dataclasses.replace(system_ctx(tenant), is_platform_admin=True)
        connection = service.create_connection(
            db, platform, keyring=keyring_from_settings(e2e_settings), data=ConnectionCreate(
                provider="RUNSIGNUP", name="RunSignUp (simulator)", base_url=base_url,
                credentials={"api_key": SecretStr(API_KEY), "api_secret": SecretStr(WRONG)},
                event_ids=[f"{race_id}:{event_id}"]))
        db.commit()
    return {"id": str(connection.id), "event_ref": f"{race_id}:{event_id}",
            "event_id": str(event_id)}


def test_test_connection_shows_the_result_inline_and_secrets_stay_hidden(
    page: Page, seeded: dict[str, str]
) -> None:
    login(page, ADMIN)
    page.get_by_role("link", name="Connections").click()
    row = page.locator(f'tr[data-connection-id="{seeded["id"]}"]')
    expect(row).to_contain_text("RunSignUp (simulator)")
    expect(row).to_contain_text("UNTESTED")

    row.get_by_role("button", name="Test connection").click()
    expect(row).to_contain_text("FAILED")
    expect(row.locator(".check-message")).to_contain_text("Key authentication failed")
    expect(page).to_have_url(re.compile(r"/connections$"))  # inline: no navigation

    row.get_by_role("link", name="RunSignUp (simulator)").click()
    base_url = page.get_by_label("Base URL")
    expect(base_url).to_have_attribute("readonly", "")
    secret_input = page.get_by_label("API secret", exact=True)
    # A secret reads only "set"; the API key, an identifier, shows its last 4.
    expect(secret_input).to_have_attribute("placeholder", "set — leave blank to keep")
    expect(page.get_by_label("API key", exact=True)).to_have_attribute(
        "placeholder", re.compile(r"ends in " + API_KEY[-4:]))
    expect(secret_input).to_have_value("")  # never filled back in
    secret_input.fill(API_SECRET)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("Connection saved")
    expect(page.locator("#check-result")).to_contain_text("UNTESTED")

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#check-result")).to_contain_text("OK")
    expect(page.locator("#check-result")).to_contain_text("key accepted")
    html = page.content()
    for secret in (API_KEY, API_SECRET, WRONG):
        assert secret[:-4] not in html


def test_the_form_asks_only_for_the_providers_own_credentials(page: Page, seeded: dict[str, str]
                                                              ) -> None:
    login(page, ADMIN)
    page.goto("/connections")
    page.get_by_label("Provider").select_option("RACE_ROSTER")
    page.get_by_role("button", name="Add connection").click()
    fields = page.locator(".connection-form fieldset.credentials input")
    expect(fields).to_have_count(4)
    # Beside the credentials, the settings every adapter reads (its request budget).
    expect(page.get_by_label("Requests per second")).to_be_visible()
    for label in ("Client id", "Client secret", "Username", "Password"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()

    page.goto("/connections/new?provider=HAKU")
    expect(fields).to_have_count(2)
    expect(page.get_by_label("Username")).to_have_count(0)
    page.get_by_label("Name").fill("Haku spring")
    page.get_by_label("Client id", exact=True).fill("haku-client-00042")
    page.get_by_label("Client secret").fill("haku-secret-Pp8Oo7Ii6")
    page.get_by_role("button", name="Add connection").click()
    expect(page.get_by_role("status").first).to_contain_text("Connection added")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Haku spring")
    # The secret reads only "set"; the client id, an identifier, shows its last 4.
    expect(page.get_by_label("Client secret")).to_have_attribute(
        "placeholder", "set — leave blank to keep")
    expect(page.get_by_label("Client id", exact=True)).to_have_attribute(
        "placeholder", re.compile(r"^set · ends in 0042 "))
    assert "haku-secret-Pp8" not in page.content() and "7Ii6" not in page.content()

    page.get_by_role("button", name="Delete connection").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete connection").click()
    expect(page).to_have_url(re.compile(r"/connections\?flash="))
    expect(page.locator("table.connections")).not_to_contain_text("Haku spring")


def connection_tenant(db: Session, connection_id: str) -> Tenant:
    connection = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert connection is not None
    return db.get(Tenant, connection.tenant_id)  # type: ignore[return-value]


def test_the_mapping_editor_previews_on_a_live_sample_before_saving(
    page: Page, seeded: dict[str, str], simulator: tuple[str, Any],
    committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    _, sim = simulator
    first_names = [p["user"]["first_name"] for p in sim.participants[int(seeded["event_id"])]]
    login(page, ADMIN)
    page.goto(f"/connections/{seeded['id']}/mapping")
    expect(page.get_by_label("Provider event id")).to_have_value(seeded["event_ref"])

    # One row per racehub field, each showing the default mapping it keeps until changed.
    expect(page.get_by_label("RunSignUp field for First name")).to_contain_text(
        "Default: user.first_name")
    page.get_by_label("path(s) for First name").fill("user.first_name")
    page.get_by_label("Steps for First name").fill("trim | upper")
    page.get_by_label("path(s) for Gender").fill("user.gender")
    page.get_by_label("Steps for Gender").fill("gender:M=M")  # F is missing on purpose
    # The connection's secret is wrong: the live sample fails and says why, inline.
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#mapping-preview")).to_contain_text("Key authentication failed")

    with committed_db() as db:
        connection = service.get_connection_or_raise(
            db, system_ctx(connection_tenant(db, seeded["id"])),
            connection_id=uuid.UUID(seeded["id"]))
        service.update_connection(
            db, system_ctx(connection_tenant(db, seeded["id"])),
            keyring=keyring_from_settings(e2e_settings), connection_id=connection.id,
            data=ConnectionUpdate(credentials={"api_secret": SecretStr(API_SECRET)}))
        db.commit()
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("table.mapping-preview")
    expect(page.locator("#mapping-preview h2")).to_contain_text("fetched from the provider")
    cells = preview.locator('td[data-field="first_name"]')
    # Values a row gave carry its mark.
    expect(cells.first).to_have_text(f"{first_names[0].upper()} rule")
    genders = [(p.get("user") or {}).get("gender")
               for p in sim.participants[int(seeded["event_id"])][:5]]
    assert set(genders) - {"M"}, genders  # the sample exercises an unmapped code
    gender_cells = preview.locator('td[data-field="gender"]')
    expect(gender_cells).to_have_count(len(genders))
    for i, code in enumerate(genders):
        if code == "M":
            expect(gender_cells.nth(i)).to_have_text("M rule")
        elif not code:
            expect(gender_cells.nth(i)).to_have_text("empty rule")
        else:
            expect(gender_cells.nth(i)).to_contain_text(f"gender code '{code}' is not in the map")

    page.get_by_label("Steps for Gender").fill("gender:M=M,F=F,*=U")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_role("status").first).to_contain_text("Field mapping saved")
    expect(page.get_by_label("Steps for First name")).to_have_value("trim | upper")
    # codes sorted
    expect(page.get_by_label("Steps for Gender")).to_have_value("gender:F=F,M=M,*=U")

    # A pasted sample needs no provider at all; a bad step is named with its row.
    page.get_by_label("paste raw provider records").fill(
        '{"user": {"first_name": " zoë ", "gender": "X"}}')
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#mapping-preview h2")).to_contain_text("pasted")
    expect(page.locator('td[data-field="first_name"]')).to_have_text("ZOË rule")
    page.get_by_label("Steps for First name").fill("trim | shout")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#mapping-preview")).to_contain_text("row 1 (first_name): step 2")


def test_the_mapping_editor_offers_the_providers_fields_and_steps_from_lists(
    page: Page, seeded: dict[str, str], simulator: tuple[str, Any],
    committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    """An operator maps birth dates from a field of the provider's own, in US format,
    without typing a path or a step: both are chosen from lists."""
    _, sim = simulator
    rows = sim.participants[int(seeded["event_id"])]
    with sim.lock:  # a field the adapter does not read: only a rule can use it
        for n, row in enumerate(rows):
            row["birthday_us"] = f"0{n + 1}/2{n}/1990"
    with committed_db() as db:
        ctx = system_ctx(connection_tenant(db, seeded["id"]))
        service.update_connection(db, ctx, keyring=keyring_from_settings(e2e_settings),
                                  connection_id=uuid.UUID(seeded["id"]),
                                  data=ConnectionUpdate(credentials={
                                      "api_secret": SecretStr(API_SECRET)}))
        db.commit()
    login(page, ADMIN)
    page.goto(f"/connections/{seeded['id']}/mapping")

    # Before any rule, the preview shows what the default mapping gives.
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#mapping-preview")).to_contain_text("No rule yet")
    births = page.locator('table.mapping-preview td[data-field="birth_date"]')
    expect(births.first).to_have_text(rows[0]["user"]["dob"])

    page.get_by_role("button", name="Load the provider's fields").click()
    expect(page.locator(".paths-note")).to_contain_text(
        "found in 5 participant(s) of provider event")
    birth_row = page.locator('tr[data-target="birth_date"]')
    page.get_by_label("RunSignUp field for Birth date").select_option("birthday_us")
    expect(page.get_by_label("path(s) for Birth date")).to_have_value("birthday_us")

    birth_row.get_by_text("Add a step").click()
    expect(birth_row.get_by_label("Provider's code(s) for M")).to_be_hidden()
    birth_row.get_by_label("Step", exact=True).select_option(label="Date format")
    expect(birth_row.get_by_label("Provider's code(s) for M")).to_be_hidden()
    birth_row.get_by_label("Provider's date format").select_option(
        label="MM/DD/YYYY (12/31/1990)")
    birth_row.get_by_role("button", name="Add step").click()
    expect(page.get_by_label("Steps for Birth date")).to_have_value("date:%m/%d/%Y")
    expect(page.locator('tr[data-target="birth_date"] .step-list')).to_have_text(
        re.compile(r"Date from MM/DD/YYYY to YYYY-MM-DD"))
    # The chosen field stays chosen after the table came back.
    expect(page.get_by_label("RunSignUp field for Birth date")).to_have_value("birthday_us")

    page.get_by_role("button", name="Preview").click()
    expect(births.first).to_have_text("1990-01-20 rule")
    expect(births.nth(1)).to_have_text("1990-02-21 rule")
    expect(page.locator('table.mapping-preview td[data-field="first_name"]').first).to_have_text(
        rows[0]["user"]["first_name"])  # the default mapping, unmarked

    # Enter in an input saves (the picker's buttons are not the form's default button).
    page.get_by_label("Steps for Birth date").press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("Field mapping saved")
    expect(page.get_by_label("RunSignUp field for Birth date")).to_have_value("birthday_us")
    expect(page.locator('tr[data-target="birth_date"] .rule-mark')).to_be_visible()
    with committed_db() as db:
        row = db.get(ProviderConnection, uuid.UUID(seeded["id"]))
        assert row is not None
        assert row.field_mapping == [{"target": "birth_date", "sources": ["birthday_us"],
                                      "transforms": [{"op": "date", "source": "%m/%d/%Y",
                                                      "target": "%Y-%m-%d"}]}]
