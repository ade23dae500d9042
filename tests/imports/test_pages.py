"""The imports list page (/imports): the imports a role may read (the rule of their job),
filtered by type, state, event and who, keyset-paged, each linking to its page; another
tenant's imports never shown; and the import page's links back to what it belongs to."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.imports.models import Import
from racehub.imports.service import RUN_IMPORT_KIND
from racehub.inventory.importers import NUMBER_ONBOARDING
from racehub.inventory.models import NumberType
from racehub.jobs.models import JobRun, JobStatus
from racehub.timing.importers import TIMING_RESULTS
from tests.factories import auth, make_event, make_number_type, make_tenant

BASE = datetime(2026, 5, 1, tzinfo=UTC)


def make_import(db: Session, tenant: Tenant, import_type: str, params: dict[str, Any], *,
                minute: int = 0, status: JobStatus = JobStatus.COMPLETED,
                who: str = "system", filename: str = "file.csv") -> Import:
    """An import row and its run, as the pipeline leaves them (no file needed to list)."""
    import_id = uuid.uuid4()
    at = BASE + timedelta(minutes=minute)
    run = JobRun(tenant_id=tenant.id, kind=RUN_IMPORT_KIND, status=status,
                 params={"import_id": str(import_id), "import_type": import_type},
                 subject_type="import", subject_id=import_id, requested_by_label=who,
                 counts={}, log=[], checkpoint={}, created_at=at)
    db.add(run)
    db.flush()
    imp = Import(id=import_id, tenant_id=tenant.id, import_type=import_type,
                 filename=filename, stored_path="imports/none", size_bytes=1,
                 file_format="csv", header=["a"], column_map={"a": 0}, params=params,
                 job_run_id=run.id, created_at=at)
    db.add(imp)
    db.flush()
    return imp


def _listed(html: str) -> list[str]:
    return re.findall(r'data-import-id="([0-9a-f-]+)"', html)


def test_imports_page_lists_the_tenants_imports_newest_first_never_another_tenants(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    older = make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)},
                        minute=1, filename="older.csv")
    newer = make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)},
                        minute=2, filename="newer.csv")
    other = make_tenant(db)
    foreign = make_import(db, other, NUMBER_ONBOARDING,
                          {"numberTypeId": str(make_number_type(db, other).id)}, minute=3,
                          filename="foreign.csv")

    response = client.get("/imports", headers=auth(db, tenant, Role.VIEWER))

    assert response.status_code == 200, response.text
    assert _listed(response.text) == [str(newer.id), str(older.id)]
    assert f'<a href="/imports/{newer.id}">newer.csv</a>' in response.text
    assert str(foreign.id) not in response.text and "foreign.csv" not in response.text
    assert 'href="/imports"' in response.text  # the menu entry


def test_imports_page_filters_by_type_state_event_and_who(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    event, other_event = make_event(db, tenant), make_event(db, tenant)
    numbers = make_import(db, tenant, NUMBER_ONBOARDING,
                          {"numberTypeId": str(number_type.id)}, minute=1,
                          who="ada@example.test")
    results = make_import(db, tenant, TIMING_RESULTS,
                          {"eventId": str(event.id), "identifierMode": "PERSON_ID"}, minute=2,
                          status=JobStatus.FAILED)
    elsewhere = make_import(db, tenant, TIMING_RESULTS,
                            {"eventId": str(other_event.id), "identifierMode": "PERSON_ID"},
                            minute=3)
    headers = auth(db, tenant, Role.TENANT_ADMIN)

    def listed(**params: str) -> list[str]:
        response = client.get("/imports", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return _listed(response.text)

    assert listed() == [str(elsewhere.id), str(results.id), str(numbers.id)]
    assert listed(type=NUMBER_ONBOARDING) == [str(numbers.id)]
    assert listed(state="failed") == [str(results.id)]
    assert listed(event=str(event.id)) == [str(results.id)]
    assert listed(who="ada@example.test") == [str(numbers.id)]
    assert "type must be one of" in client.get("/imports", params={"type": "X"},
                                               headers=headers).text


def test_imports_page_pages_by_keyset(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    made = [make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)},
                        minute=i) for i in range(51)]
    headers = auth(db, tenant, Role.VIEWER)

    first = client.get("/imports", headers=headers)
    (next_url,) = re.findall(r'href="(/imports\?[^"]*cursor=[^"]+)"', first.text)
    second = client.get(next_url.replace("&amp;", "&"), headers=headers)

    newest_first = [str(i.id) for i in reversed(made)]
    assert _listed(first.text) == newest_first[:50]
    assert _listed(second.text) == newest_first[50:]


def test_the_jobs_page_of_another_tenant_lists_none_of_its_import_runs(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    mine = make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)})
    other = make_tenant(db)
    page = client.get("/jobs", headers=auth(db, other, Role.TENANT_ADMIN)).text
    assert str(mine.job_run_id) not in page and str(mine.id) not in page


def test_import_page_links_back_to_its_event_or_number_type_and_its_job(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    event = make_event(db, tenant, name="Lake Run")
    results = make_import(db, tenant, TIMING_RESULTS,
                          {"eventId": str(event.id), "identifierMode": "PERSON_ID"})
    numbers = make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)})
    headers = auth(db, tenant, Role.VIEWER)

    results_page = client.get(f"/imports/{results.id}", headers=headers).text
    numbers_page = client.get(f"/imports/{numbers.id}", headers=headers).text
    job_page = client.get(f"/jobs/{numbers.job_run_id}", headers=headers).text

    assert f'<a href="/events/{event.id}">Lake Run</a>' in results_page
    assert f'href="/jobs/{results.job_run_id}"' in results_page
    assert (f'<a href="/inventory/numbers?numberTypeId={number_type.id}">'
            f'{number_type.name}</a>') in numbers_page
    # The import's job page leads to the import and to what it belongs to.
    assert f'<a href="/imports/{numbers.id}">file.csv</a>' in job_page
    assert f'numberTypeId={number_type.id}' in job_page
