"""The connection pages without a browser: errors re-render the form without echoing a
credential, the base URL rule, what the form promises, and the mapping editor (its rows
per racehub field, the step picker, the provider's fields from a sample, notation
errors, and a provider that cannot list participants)."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.sync import service
from racehub.sync.models import ProviderConnection
from tests.core.conftest import start_browser_session
from tests.factories import make_user

TYPED_SECRET = "typed-secret-Gg5Ff4Dd3"


@pytest.fixture
def browser(client: TestClient, db: Session, tenant: Tenant) -> TestClient:
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    client.headers["X-CSRF-Token"] = csrf
    db.commit()  # as in production: a refused form rolls the request's work back
    return client


def test_a_refused_form_names_the_field_and_does_not_echo_the_secret(
    browser: TestClient
) -> None:
    response = browser.post("/connections/new", data={
        "provider": "RUNSIGNUP", "name": "RSU", "cred_api_secret": TYPED_SECRET})
    assert response.status_code == 422
    assert ("credentials.api_key: RunSignUp needs an API key and API secret, or an OAuth "
            "access token") in response.text
    assert TYPED_SECRET not in response.text
    assert 'value="RSU"' in response.text  # the rest of the form is kept


def test_the_form_refuses_a_base_url_change_by_a_tenant_admin(browser: TestClient) -> None:
    page = browser.get("/connections/new?provider=HAKU")
    assert 'name="base_url"' in page.text and "readonly" in page.text
    response = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "base_url": "http://127.0.0.1:9",
        "cred_client_id": "client-123456", "cred_client_secret": TYPED_SECRET})
    assert response.status_code == 403
    assert "baseUrl: only a platform admin" in response.text
    assert TYPED_SECRET not in response.text


def test_blank_credential_inputs_keep_the_stored_values(
    browser: TestClient, db: Session, tenant: Tenant, app  # type: ignore[no-untyped-def]
) -> None:
    created = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "cred_client_id": "client-123456",
        "cred_client_secret": TYPED_SECRET}, follow_redirects=False)
    assert created.status_code == 303
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    saved = browser.post(f"/connections/{connection_id}", data={
        "name": "Haku renamed", "cred_client_id": "", "cred_client_secret": "",
        "event_ids": "E1, E2"}, follow_redirects=False)
    assert saved.status_code == 303
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None and row.name == "Haku renamed"
    assert service.chosen_events(row) == ["E1", "E2"]  # as link rows, not a setting
    assert "eventIds" not in row.settings
    assert service.read_credentials(app.state.keyring, row)["client_secret"] == TYPED_SECRET
    page = browser.get(f"/connections/{connection_id}")
    # The client id is an identifier: its last 4 show. The secret shows only as set.
    assert TYPED_SECRET[:-4] not in page.text and TYPED_SECRET[-4:] not in page.text
    assert "ends in 3456" in page.text


def test_the_mapping_editor_names_the_row_and_step_at_fault(browser: TestClient) -> None:
    created = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "cred_client_id": "client-123456",
        "cred_client_secret": TYPED_SECRET}, follow_redirects=False)
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    response = browser.post(f"/connections/{connection_id}/mapping", data={
        "target_0": "first_name", "sources_0": "person_full_name", "transforms_0": "first",
        "target_1": "gender", "sources_1": "gender", "transforms_1": "trim | gender:f"})
    assert response.status_code == 422
    assert "row 2 (gender): step 2 (&#39;gender:f&#39;)" in response.text
    assert 'value="person_full_name"' in response.text  # what was typed stays
    duplicate = browser.post(f"/connections/{connection_id}/mapping", data={
        "target_0": "city", "sources_0": "a", "target_1": "city", "sources_1": "b"})
    assert duplicate.status_code == 422 and "two rules fill &#39;city&#39;" in duplicate.text
    preview = browser.post(f"/connections/{connection_id}/mapping/preview", data={
        "target_0": "city", "sources_0": "a", "sample": "[{oops"})
    assert preview.status_code == 200  # a partial htmx swaps in, with the error
    assert "sample: not valid JSON (line 1, column 3" in preview.text


def test_the_form_edits_the_providers_own_settings(
    browser: TestClient, db: Session
) -> None:
    page = browser.get("/connections/new?provider=COPERNICO")
    assert 'name="setting_preset_owner"' in page.text
    assert re.search(r'name="setting_results_base_url"[^>]*readonly', page.text)
    created = browser.post("/connections/new", data={
        "provider": "COPERNICO", "name": "Copernico", "setting_preset_owner": "t@example.com",
        "setting_event_names": "E1 = marathon", "setting_results_base_url": ""},
        follow_redirects=False)
    assert created.status_code == 303, created.text
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None
    assert service.provider_settings(row) == {"preset_owner": "t@example.com",
                                              "event_names": {"E1": "marathon"}}
    page = browser.get(f"/connections/{connection_id}")
    assert ">E1 = marathon</textarea>" in page.text

    refused = browser.post(f"/connections/{connection_id}", data={
        "name": "Copernico", "setting_event_names": "just text"})
    assert refused.status_code == 422
    assert "settings.event_names: line 1: write key = value" in refused.text
    assert "just text</textarea>" in refused.text  # what was typed is kept


def test_a_stored_rule_of_a_field_no_longer_offered_is_named_not_a_crash(
    browser: TestClient, db: Session
) -> None:
    created = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "cred_client_id": "client-123456",
        "cred_client_secret": TYPED_SECRET}, follow_redirects=False)
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None
    row.field_mapping = [{"target": "chip", "sources": ["chip_number"], "transforms": []},
                         {"target": "team", "sources": ["team.name"], "transforms": []}]
    db.commit()
    page = browser.get(f"/connections/{connection_id}/mapping")
    assert page.status_code == 200
    assert "rule 1 (chip): racehub participants have no field" in page.text
    # The default mapping the rules override, from the adapter's own table, in its row.
    assert "Default: detail.participant.first_name" in page.text
    assert 'value="team.name"' in page.text
    read = browser.get(f"/api/connections/{connection_id}")
    assert read.status_code == 200
    assert [r["target"] for r in read.json()["fieldMapping"]] == ["chip", "team"]


def create(browser: TestClient, provider: str = "HAKU", **fields: str) -> str:
    data = {"HAKU": {"cred_client_id": "client-123456", "cred_client_secret": TYPED_SECRET},
            "RUNSIGNUP": {"cred_api_key": "key-12345678", "cred_api_secret": TYPED_SECRET},
            "COPERNICO": {}}[provider]
    created = browser.post("/connections/new", data={
        "provider": provider, "name": provider.title(), **data, **fields},
        follow_redirects=False)
    assert created.status_code == 303, created.text
    return created.headers["location"].split("/")[2].split("?")[0]


def rows(page: str) -> dict[str, str]:
    """Each editor row's HTML by its racehub field."""
    return dict(re.findall(r'<tr class="mapping-rule[^"]*" data-target="(\w+)">(.*?)</tr>',
                           page, re.S))


def test_the_editor_has_a_row_per_racehub_field_showing_its_default_path(
    browser: TestClient, db: Session
) -> None:
    connection_id = create(browser, "RUNSIGNUP")
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None
    row.field_mapping = [{"target": "team", "sources": ["questions.0.answer"],
                          "transforms": [{"op": "trim"}]}]
    db.commit()
    page = browser.get(f"/connections/{connection_id}/mapping")
    found = rows(page.text)
    assert list(found) == ["first_name", "last_name", "email", "birth_date", "gender", "bib",
                           "team", "city", "region", "country"]
    # Each row offers its default, pre-selected while no rule fills the field...
    assert '<option value="">Default: user.dob</option>' in found["birth_date"]
    assert 'name="sources_3" value=""' in found["birth_date"]
    assert ">default<" in found["birth_date"] and "rule-mark" not in found["birth_date"]
    # ...and a saved rule shows in its own row, chosen in the dropdown and in words.
    assert '<option value="questions.0.answer" selected>' in found["team"]
    assert 'value="trim"' in found["team"] and "Trim spaces" in found["team"]
    assert "rule-mark" in found["team"]
    assert "<details class=\"default-mapping\"" not in page.text


def test_a_step_picked_from_the_list_is_written_as_notation_and_can_be_removed(
    browser: TestClient
) -> None:
    connection_id = create(browser, "RUNSIGNUP")
    url = f"/connections/{connection_id}/mapping/steps"
    htmx = {"HX-Request": "true"}
    # birth_date is row 3: a date step with its format chosen from the list.
    dated = browser.post(url, headers=htmx, data={
        "target_3": "birth_date", "transforms_3": "trim", "add_step": "3",
        "step_kind_3": "date", "step_date_3": "%m/%d/%Y", "known_paths": "user.dob user.x"})
    assert dated.status_code == 200
    birth = rows(dated.text)["birth_date"]
    assert 'value="trim | date:%m/%d/%Y"' in birth
    assert "Date from MM/DD/YYYY to YYYY-MM-DD" in birth
    assert '<option value="user.x" ' in birth  # the fields found earlier stay offered
    assert not dated.text.lstrip().startswith("<!doctype")  # the rules table only
    # The provider's gender codes, typed per racehub code; other codes become U.
    gendered = browser.post(url, headers=htmx, data={
        "target_4": "gender", "add_step": "4", "step_kind_4": "gender",
        "step_gender_M_4": "1, male", "step_gender_F_4": "2", "step_gender_other_4": "U"})
    gender = rows(gendered.text)["gender"]
    assert 'value="gender:1=M,2=F,male=M,*=U"' in gender
    assert "Gender: 1 → M, 2 → F, male → M; others → U" in gender
    # A step is removed by its position; the rest stays as it was.
    removed = browser.post(url, headers=htmx, data={
        "target_3": "birth_date", "transforms_3": "trim | date:%m/%d/%Y",
        "remove_step": "3:0"})
    assert 'value="date:%m/%d/%Y"' in rows(removed.text)["birth_date"]
    # A format of one's own is checked, and the error names it in the table.
    bad = browser.post(url, headers=htmx, data={
        "target_3": "birth_date", "add_step": "3", "step_kind_3": "date",
        "step_date_custom_3": "dd/mm/yyyy"})
    assert "a date format needs strftime directives" in bad.text
    assert 'value=""' in rows(bad.text)["birth_date"].split("Steps for")[1][:200]
    # A post without htmx gets the whole page back.
    page = browser.post(url, data={"target_3": "birth_date", "add_step": "3",
                                   "step_kind_3": "upper"})
    assert page.status_code == 200 and page.text.lstrip().startswith("<!doctype")
    assert 'value="upper"' in rows(page.text)["birth_date"]


def test_a_row_with_steps_and_no_path_applies_them_to_the_default_path(
    browser: TestClient, db: Session
) -> None:
    connection_id = create(browser, "RUNSIGNUP")
    saved = browser.post(f"/connections/{connection_id}/mapping", data={
        "target_0": "first_name", "path_0": "", "sources_0": "", "transforms_0": "",
        "target_3": "birth_date", "path_3": "", "sources_3": "", "transforms_3": "date:%m/%d/%Y",
        "target_7": "city", "path_7": "user.address.town", "sources_7": "",
        "transforms_7": ""}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None
    db.refresh(row)
    assert row.field_mapping == [
        {"target": "birth_date", "sources": ["user.dob"],
         "transforms": [{"op": "date", "source": "%m/%d/%Y", "target": "%Y-%m-%d"}]},
        # The dropdown's choice counts when nothing is typed (a browser without script).
        {"target": "city", "sources": ["user.address.town"], "transforms": []}]


def test_the_providers_fields_come_from_a_sample_into_every_rows_dropdown(
    browser: TestClient
) -> None:
    connection_id = create(browser, "RUNSIGNUP")
    sample = ('[{"registration_id": 7, "event_id": 2, "user": {"first_name": "Ada", '
              '"dob": "12/10/1990", "address": {"town": "Lyon"}}}]')
    found = browser.post(f"/connections/{connection_id}/mapping/fields",
                         headers={"HX-Request": "true"}, data={
                             "target_0": "first_name", "sources_0": "user.nick",
                             "target_7": "city", "sample": sample})
    assert found.status_code == 200
    assert "5 field paths found in 1 pasted record(s)." in found.text
    by_field = rows(found.text)
    for html in by_field.values():
        assert '<option value="user.address.town" ' in html
    assert 'value="user.nick"' in by_field["first_name"]  # what was typed stays
    assert '<option value="user.address.town"></option>' in found.text  # typed paths
    assert 'name="known_paths" value="registration_id event_id user.first_name user.dob ' \
        'user.address.town"' in found.text
    bad = browser.post(f"/connections/{connection_id}/mapping/fields",
                       headers={"HX-Request": "true"}, data={"sample": "{oops"})
    assert "sample: not valid JSON" in bad.text


def test_the_preview_shows_the_default_mapping_before_any_rule_and_marks_rule_values(
    browser: TestClient
) -> None:
    connection_id = create(browser, "RUNSIGNUP")
    record = ('{"registration_id": 7, "event_id": 2, "user": {"user_id": 5, '
              '"first_name": "Ada", "last_name": "Lovelace", "gender": "F", '
              '"dob": "1990-12-10", "address": {"town": "Lyon"}}}')
    blank = {f"target_{i}": t for i, t in enumerate(
        ["first_name", "last_name", "email", "birth_date", "gender", "bib", "team", "city",
         "region", "country"])}
    before = browser.post(f"/connections/{connection_id}/mapping/preview",
                          data={**blank, "sample": record, "event_id": "1:2"})
    assert "No rule yet: this is what the default mapping alone gives" in before.text
    assert '<td  data-field="first_name">Ada</td>' in before.text
    assert '<td  data-field="birth_date">1990-12-10</td>' in before.text
    assert 'class="from-rule' not in before.text.split("</thead>")[1]
    after = browser.post(f"/connections/{connection_id}/mapping/preview", data={
        **blank, "path_7": "user.address.town", "sample": record, "event_id": "1:2"})
    assert '<td  data-field="city">Lyon <span class="from-rule muted">rule</span></td>' in (
        after.text)
    assert '<td  data-field="first_name">Ada</td>' in after.text


def test_a_provider_that_cannot_list_participants_offers_no_live_sample(
    browser: TestClient
) -> None:
    connection_id = create(browser, "COPERNICO")
    page = browser.get(f"/connections/{connection_id}/mapping")
    assert "cannot list participants, so racehub cannot fetch a live sample" in page.text
    assert 'name="event_id"' not in page.text and f"{connection_id}/events" not in page.text
    live = browser.post(f"/connections/{connection_id}/mapping/preview",
                        data={"target_0": "first_name"})
    assert ("sample: Copernico (Timingsense) cannot list participants, so there is no live "
            "sample") in live.text
    fields = browser.post(f"/connections/{connection_id}/mapping/fields",
                          headers={"HX-Request": "true"}, data={"target_0": "first_name"})
    assert "cannot list participants" in fields.text
    pasted = browser.post(f"/connections/{connection_id}/mapping/preview", data={
        "target_0": "first_name", "sample": '{"id": "p1", "name": "Ada", "surname": "L"}'})
    assert '<td  data-field="first_name">Ada</td>' in pasted.text


def test_the_form_promises_only_what_racehub_does(browser: TestClient) -> None:
    # A registration platform: racehub pulls its participants, and nothing else is offered.
    rsu = browser.get("/connections/new?provider=RUNSIGNUP").text
    options = re.findall(r'<select name="direction"[^>]*>(.*?)</select>', rsu, re.S)[0]
    assert re.findall(r'<option value="(\w+)"', options) == ["registration"]
    assert "racehub pulls its participants into the racehub events" in options
    assert "Publishing results and pushing start lists are not available yet." in rsu
    # Settings of result publishing are shown apart, saying racehub does not use them yet.
    later = rsu.split('<details class="settings not-yet">')[1].split("</details>")[0]
    assert 'name="setting_individual_result_set_id"' in later
    assert "racehub does not publish results to providers yet" in later
    assert 'name="setting_include_questions"' not in later  # read by every sync

    # A timing system that cannot list participants cannot be a registration source.
    copernico = browser.get("/connections/new?provider=COPERNICO").text
    options = re.findall(r'<select name="direction"[^>]*>(.*?)</select>', copernico, re.S)[0]
    assert re.findall(r'<option value="(\w+)"', options) == ["scoring"]
    assert "pushing start lists and reading results are not available yet" in options
    assert "Copernico (Timingsense) cannot list participants" in copernico
    assert "registrations push" not in copernico
    refused = browser.post("/connections/new", data={
        "provider": "COPERNICO", "name": "Copernico", "direction": "registration"})
    assert refused.status_code == 422
    assert "direction: Copernico (Timingsense) cannot list participants" in refused.text
    # ChronoTrack lists participants: it may be either.
    chrono = browser.get("/connections/new?provider=CHRONOTRACK").text
    options = re.findall(r'<select name="direction"[^>]*>(.*?)</select>', chrono, re.S)[0]
    assert re.findall(r'<option value="(\w+)"', options) == ["scoring", "registration"]
    # The connections list says the same.
    assert "timing systems it pushes to" not in browser.get("/connections").text
