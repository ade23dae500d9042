"""E08 pages and API: the results page (ranking by category, search, reconciliation, the
E11 export button), the upload page and the import summary with every bucket."""

from __future__ import annotations

import html
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Event, EventParticipant, Gender, TimingIdentifier
from tests.factories import auth, make_category, make_event, make_tenant
from tests.timing.conftest import RunImport, UploadResults
from tests.timing.test_results_import import add, plain, set_mode

H = dict[str, str]


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> H:
    return auth(db, tenant, Role.RESULTS_OFFICER)


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    event = make_event(db, tenant, name="Annecy Trail")
    set_mode(db, event, TimingIdentifier.EPID)
    return event


@pytest.fixture
def runners(db: Session, event: Event) -> dict[str, EventParticipant]:
    long, short = make_category(db, event, "42K"), make_category(db, event, "21K")
    return {
        "ada": add(db, event, "Ada", "Lovelace", gender=Gender.FEMALE, bib="10",
                   category_id=long.id),
        "alan": add(db, event, "Alan", "Turing", gender=Gender.MALE, bib="11",
                    category_id=long.id),
        "grace": add(db, event, "Grace", "Hopper", gender=Gender.FEMALE, bib="20",
                     category_id=short.id),
        "edsger": add(db, event, "Edsger", "Dijkstra", gender=Gender.MALE, bib="21",
                      category_id=short.id),
    }


@pytest.fixture
def imported(db: Session, event: Event, headers: H, runners: dict[str, EventParticipant],
             upload_results: UploadResults, run_import: RunImport) -> str:
    """Ada and Alan finish the 42K, Grace's row carries a wrong bib, a stranger's row
    holds Edsger's bib (unmatched, Edsger suggested); Edsger has no result."""
    r = runners
    content = plain([
        [str(r["ada"].id), "10", "3:10:00", "finished"],
        [str(r["alan"].id), "11", "3:05:00.5", "finished"],
        [str(r["grace"].id), "99", "1:40:00", "finished"],
        [str(uuid.uuid4()), "21", "1:50:00", "finished"],
    ])
    response = upload_results(event.id, content, headers=headers)
    assert response.status_code == 201, response.text
    run_import(response.json()["id"])
    return str(response.json()["id"])


def result_rows(html: str) -> list[tuple[str, str]]:
    """(place, name) of each row of the results table, in order."""
    rows = re.findall(r'<td class="place">([^<]*)</td>.*?<td class="name">([^<]*)</td>',
                      html, re.S)
    return [(p.strip(), n.strip()) for p, n in rows]


def test_results_page_ranks_overall_and_by_category(
    client: TestClient, event: Event, headers: H, imported: str,
) -> None:
    page = client.get(f"/events/{event.id}/results", headers=headers)
    assert page.status_code == 200
    assert result_rows(page.text) == [("1", "Grace Hopper"), ("2", "Alan Turing"),
                                      ("3", "Ada Lovelace")]
    assert "3:05:00.500" in page.text and "bib mismatch" in page.text
    # The E11 button is on the results page too.
    assert 'data-timing-export="' + str(event.id) + '"' in page.text
    assert 'id="timing-export-dialog"' in page.text
    assert f'href="/events/{event.id}/results/import"' in page.text

    categories = re.findall(r'<option value="([0-9a-f-]{36})"[^>]*>42K</option>', page.text)
    by_category = client.get(f"/events/{event.id}/results",
                             params={"category": categories[0]},
                             headers={**headers, "HX-Request": "true", "HX-Target": "results"})
    assert by_category.text.lstrip().startswith('<div id="results">')
    assert result_rows(by_category.text) == [("1", "Alan Turing"), ("2", "Ada Lovelace")]


def test_results_page_searches_by_name_and_bib(
    client: TestClient, event: Event, headers: H, imported: str,
) -> None:
    by_name = client.get(f"/events/{event.id}/results", params={"q": "lovel"}, headers=headers)
    assert [n for _, n in result_rows(by_name.text)] == ["Ada Lovelace"]
    by_bib = client.get(f"/events/{event.id}/results", params={"q": "11"}, headers=headers)
    assert [n for _, n in result_rows(by_bib.text)] == ["Alan Turing"]


def test_results_page_shows_the_reconciliation(
    client: TestClient, event: Event, headers: H, imported: str,
    runners: dict[str, EventParticipant],
) -> None:
    page = client.get(f"/events/{event.id}/results", headers=headers)
    assert re.search(r'data-count="without-result">Without a result: <strong>1</strong>',
                     page.text)
    assert re.search(r'data-count="finished">finished: <strong>3</strong>', page.text)
    assert f'<tr data-participant-id="{runners["edsger"].id}">' in page.text


def test_summary_shows_every_bucket_suggestions_warnings_and_reconciliation(
    client: TestClient, event: Event, headers: H, imported: str,
    runners: dict[str, EventParticipant],
) -> None:
    page = client.get(f"/results/imports/{imported}/summary", headers=headers)
    assert page.status_code == 200
    for label in ("Results imported", "Results updated", "Results already on file",
                  "Imported with a bib mismatch", "Unmatched", "Duplicate results",
                  "Other issues"):
        assert label in page.text
    counts = dict(re.findall(r'<tr data-bucket="(\w+)">.*?<td class="count">(\d+)</td>',
                             page.text))
    assert counts == {"imported": "2", "updated": "0", "unchanged": "0", "bib_mismatch": "1",
                      "unmatched": "1", "duplicate": "0", "invalid": "0"}
    # The unmatched row links to the EP holding its Number; the mismatch row to its EP.
    assert f'class="suggestion" href="/participants/{runners["edsger"].id}/edit"' in page.text
    assert "Edsger Dijkstra" in page.text
    assert f'class="suggestion" href="/participants/{runners["grace"].id}/edit"' in page.text
    assert "Number 99" in page.text
    assert f'<tr data-participant-id="{runners["edsger"].id}">' in page.text  # no result


def test_upload_page_names_the_mode_columns_and_recent_imports(
    client: TestClient, event: Event, headers: H, imported: str,
) -> None:
    page = client.get(f"/events/{event.id}/results/import", headers=headers)
    assert page.status_code == 200
    assert 'data-import-type="TIMING_RESULTS"' in page.text
    assert f'name="eventId" value="{event.id}"' in page.text
    assert '<strong class="identifier-mode">EPID</strong>' in page.text
    assert "Not locked yet" in page.text
    assert "<code>ExternalReferenceID</code>, <code>Number</code>" in page.text
    assert f'href="/results/imports/{imported}/summary"' in page.text


def test_event_page_links_to_its_results(client: TestClient, event: Event, headers: H) -> None:
    page = client.get(f"/events/{event.id}", headers=headers)
    assert f'href="/events/{event.id}/results"' in page.text


def test_viewers_see_results_but_not_the_import_button(
    db: Session, tenant: Tenant, client: TestClient, event: Event, imported: str,
) -> None:
    viewer = auth(db, tenant, Role.VIEWER)
    page = client.get(f"/events/{event.id}/results", headers=viewer)
    assert page.status_code == 200 and "Grace Hopper" in page.text
    assert f'href="/events/{event.id}/results/import"' not in page.text
    assert client.get(f"/events/{event.id}/results/import", headers=viewer).status_code == 403


def test_results_api_pages_in_ranking_order(
    client: TestClient, event: Event, headers: H, imported: str,
) -> None:
    first = client.get(f"/api/events/{event.id}/results", params={"limit": 2},
                       headers=headers).json()
    assert [(i["name"], i["overallPlace"], i["chipTime"]) for i in first["items"]] == [
        ("Grace Hopper", 1, "1:40:00"), ("Alan Turing", 2, "3:05:00.500")]
    assert first["items"][0]["warning"].startswith("bib mismatch")
    rest = client.get(f"/api/events/{event.id}/results",
                      params={"limit": 2, "cursor": first["nextCursor"]},
                      headers=headers).json()
    assert [i["name"] for i in rest["items"]] == ["Ada Lovelace"]
    assert rest["nextCursor"] is None
    rec = client.get(f"/api/events/{event.id}/results/reconciliation", headers=headers).json()
    assert rec["withoutResultCount"] == 1 and rec["byStatus"]["finished"] == 3
    assert rec["bibMismatchWarnings"] == 1


def test_another_tenant_cannot_read_the_results(
    db: Session, client: TestClient, event: Event, imported: str,
) -> None:
    stranger = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    assert client.get(f"/events/{event.id}/results", headers=stranger).status_code == 404
    assert client.get(f"/api/events/{event.id}/results", headers=stranger).status_code == 404
    assert client.get(f"/results/imports/{imported}/summary",
                      headers=stranger).status_code == 404


def test_a_number_import_has_no_results_summary(
    db: Session, client: TestClient, tenant: Tenant, headers: H,
) -> None:
    from tests.factories import make_number_type

    number_type = make_number_type(db, tenant)
    response = client.post("/api/imports", params={"importType": "NUMBER_ONBOARDING",
                                                   "numberTypeId": str(number_type.id)},
                           headers=auth(db, tenant, Role.TENANT_ADMIN),
                           files={"file": ("b.csv", b"sequence,number,barcode\r\n1,1,\r\n")})
    assert response.status_code == 201
    summary = client.get(f"/results/imports/{response.json()['id']}/summary", headers=headers)
    assert summary.status_code == 404


def test_a_summary_asked_for_an_unknown_bucket_names_the_parameter(
    client: TestClient, headers: H, imported: str
) -> None:
    for extra in ({}, {"HX-Request": "true"}):
        response = client.get(f"/results/imports/{imported}/summary?bucket=nope",
                              headers={**headers, **extra})
        assert response.status_code == 422
        message = html.unescape(response.text)
        assert "bucket: no bucket 'nope'" in message
        assert "unmatched" in message  # it names the buckets it does have


def test_a_malformed_filter_is_a_422_naming_it(client: TestClient, event: Event,
                                               headers: H) -> None:
    for params, message in (({"gender": "Q"}, "gender must be one of M, F, X, U"),
                            ({"category": "abc"}, "category is not a valid id")):
        response = client.get(f"/events/{event.id}/results", params=params, headers=headers)
        assert response.status_code == 422
        assert message in html.unescape(response.text)
