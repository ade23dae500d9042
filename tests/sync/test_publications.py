"""Results publication to RunSignUp through a versioned approval gate: prepare (validation,
diff), approval (refused to a RESULTS_OFFICER, warnings named), the publish against the
simulator over HTTP (an HTTP 500 mid-batch then a retry: no duplicate row or result set),
auto-approval within its bound and not beyond."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.exceptions import Invalid
from racehub.core.models import Role, Tenant
from racehub.db.session import lend
from racehub.events.models import Event, EventParticipant, Person
from racehub.jobs.models import JobRun
from racehub.jobs.retry import PROVIDER_OUTAGES, RetryScheduled
from racehub.jobs.runner import run_job
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.settings import Settings
from racehub.sync import publications, publish
from racehub.sync.adapters import build_adapter
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    PublicationRow,
    PublicationStatus,
    ResultPublication,
    RowAnswer,
    SyncedRecord,
    SyncRun,
    SyncStatus,
)
from racehub.timing.models import Result, ResultStatus
from tests.factories import auth, make_event, make_tenant
from tests.sync.engine_helpers import Clock, provider_event_id, sync

Sim = tuple[RunSignUpSimulator, str]


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"participants_per_event": 16, "with_results": False}


# --- helpers --------------------------------------------------------------------------------


def _sync(db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink) -> None:
    """The link's registrations become EPs (a participants sync from the simulator)."""
    connection = db.get(ProviderConnection, event_link.connection_id)
    assert connection is not None
    run = sync(db, TenantContext.system(tenant.id, label="test"), keyring, connection,
               event_link)
    assert run.status == SyncStatus.SUCCEEDED, run.error


def _participants(db: Session, event_link: EventLink) -> list[EventParticipant]:
    """The link's EPs in registration order."""
    return list(db.scalars(select(EventParticipant).join(
        SyncedRecord, SyncedRecord.participant_id == EventParticipant.id)
        .where(SyncedRecord.link_id == event_link.id).order_by(SyncedRecord.source_ref)))


def _finish(db: Session, ep: EventParticipant, place: int | None, *,
            status: ResultStatus = ResultStatus.FINISHED, chip_ms: int | None = None
            ) -> Result:
    """A result of ``ep``: its place and a time growing with it (or none for a DNF/DNS)."""
    result = db.scalar(select(Result).where(Result.event_participant_id == ep.id))
    if result is None:
        result = Result(tenant_id=ep.tenant_id, event_id=ep.event_id,
                        event_participant_id=ep.id, splits={}, warning="")
        db.add(result)
    result.status = status
    result.overall_place = result.file_overall_place = place
    finished = status == ResultStatus.FINISHED
    result.chip_ms = chip_ms if chip_ms is not None else (
        1_500_000 + (place or 0) * 1_250 if finished else None)
    result.gun_ms = result.chip_ms + 4_000 if result.chip_ms is not None else None
    db.flush()
    return result


def _results(db: Session, event_link: EventLink, count: int) -> list[EventParticipant]:
    """``count`` of the link's EPs finish, in registration order (places 1..count)."""
    eps = _participants(db, event_link)[:count]
    for place, ep in enumerate(eps, start=1):
        _finish(db, ep, place)
    return eps


def _prepare(client: TestClient, db: Session, tenant: Tenant, event_link: EventLink,
             clock: Clock | None = None) -> ResultPublication:
    """Prepare through the API (an EVENT_MANAGER), run its job, return the version."""
    response = client.post("/api/sync/manual", headers=auth(db, tenant, Role.EVENT_MANAGER),
                           json={"connectionId": str(event_link.connection_id),
                                 "syncType": "results_publish_prepare",
                                 "eventId": str(event_link.event_id)})
    assert response.status_code == 202, response.text
    [requested] = response.json()["runs"]
    assert requested["run"]["syncType"] == "results_publish_prepare"
    run_job(None, requested["jobId"], partial(publications.run_prepare, clock=clock or Clock()),
            factory=lend(db))  # type: ignore[arg-type]
    run = db.get(SyncRun, uuid.UUID(requested["run"]["id"]))
    assert run is not None
    db.refresh(run)
    assert run.status == SyncStatus.SUCCEEDED, run.error
    publication = db.scalar(select(ResultPublication).where(
        ResultPublication.sync_run_id == run.id))
    assert publication is not None
    return publication


def _approve(client: TestClient, db: Session, tenant: Tenant, publication: ResultPublication,
             role: Role = Role.EVENT_MANAGER, warnings: list[str] | None = None) -> Any:
    return client.post(
        f"/api/events/{publication.event_id}/publications/{publication.version}/approve",
        headers=auth(db, tenant, role), json={"acknowledgedWarnings": warnings or []})


def _publish(db: Session, keyring: Keyring, publication: ResultPublication, *,
             clock: Clock | None = None, factory: Any = None, batch_size: int | None = 5,
             settings: Settings | None = None) -> ResultPublication:
    """One attempt of the version's publish job, as a worker runs it."""
    db.refresh(publication)
    body = partial(publish.run_publish, keyring=keyring, clock=clock or Clock(),
                   adapter_factory=factory, batch_size=batch_size, settings=settings)
    run_job(None, str(publication.publish_job_run_id), body, factory=lend(db),  # type: ignore[arg-type]
            retry=PROVIDER_OUTAGES, clock=clock or Clock())
    db.refresh(publication)
    return publication


def _rows(db: Session, publication: ResultPublication) -> list[PublicationRow]:
    return list(db.scalars(select(PublicationRow).where(
        PublicationRow.publication_id == publication.id).order_by(PublicationRow.seq)))


def _set_rows(sim: RunSignUpSimulator, set_id: str) -> list[dict[str, Any]]:
    [result_set] = [s for sets in sim.result_sets.values() for s in sets
                    if str(s["individual_result_set_id"]) == set_id]
    return list(result_set["results"])


def _published_v1(client: TestClient, db: Session, tenant: Tenant, keyring: Keyring,
                  event_link: EventLink, count: int) -> ResultPublication:
    _results(db, event_link, count)
    first = _prepare(client, db, tenant, event_link)
    assert first.status == PublicationStatus.READY and not first.warnings, first.validation
    assert _approve(client, db, tenant, first).status_code == 202
    first = _publish(db, keyring, first)
    assert first.status == PublicationStatus.PUBLISHED, first.error
    return first


# --- validation -------------------------------------------------------------------------------


def test_validation_catches_a_dnf_with_a_place_and_a_missing_gender(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    _sync(db, tenant, keyring, event_link)
    eps = _results(db, event_link, 6)
    _finish(db, eps[2], 3, status=ResultStatus.DNF, chip_ms=None)  # a DNF keeping place 3
    person = db.get(Person, eps[4].person_id)
    assert person is not None
    person.gender = None
    db.flush()

    version = _prepare(client, db, tenant, event_link)

    assert version.status == PublicationStatus.INVALID
    listed = client.get(f"/api/events/{event_link.event_id}/publications",
                        headers=auth(db, tenant, Role.VIEWER)).json()
    [read] = listed
    by_code = {i["code"]: i for i in read["validation"]}
    assert by_code["status_with_place"]["severity"] == "error"
    assert by_code["missing_gender"]["severity"] == "warning"
    dnf = db.get(Person, eps[2].person_id)
    assert dnf is not None
    assert (f"bib {eps[2].bib}" if eps[2].bib else dnf.last_name) in \
        by_code["status_with_place"]["message"]
    assert "DNF with place 3" in by_code["status_with_place"]["message"]
    assert person.last_name in by_code["missing_gender"]["message"]
    rows = _rows(db, version)
    assert rows[by_code["status_with_place"]["seq"] - 1].participant_id == eps[2].id
    # A version with errors is not approved, by anyone.
    refused = _approve(client, db, tenant, version, Role.TENANT_ADMIN, ["missing_gender"])
    assert refused.status_code == 409 and "validation error" in refused.json()["detail"]


# --- diff -------------------------------------------------------------------------------------


def test_a_second_version_is_diffed_against_the_published_one(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    _sync(db, tenant, keyring, event_link)
    first = _published_v1(client, db, tenant, keyring, event_link, 6)
    eps = _participants(db, event_link)
    _finish(db, eps[1], 2, chip_ms=1_499_000)  # a corrected time
    db.execute(delete(Result).where(Result.event_participant_id == eps[5].id))  # gone
    _finish(db, eps[6], 6)  # a new finisher takes place 6

    second = _prepare(client, db, tenant, event_link)

    assert (second.base_version, second.added, second.changed, second.removed,
            second.unchanged) == (first.version, 1, 1, 1, 4)
    assert second.status == PublicationStatus.READY
    assert [i["code"] for i in second.validation] == ["removed_rows"]
    url = f"/api/events/{event_link.event_id}/publications/{second.version}"
    viewer = auth(db, tenant, Role.VIEWER)
    changed = client.get(url, params={"change": "changed"}, headers=viewer).json()
    [row] = changed["rows"]["items"]
    assert row["participantId"] == str(eps[1].id)
    assert row["previous"] == {"chip_ms": 1_502_500, "gun_ms": 1_506_500}
    assert (row["chipMs"], row["gunMs"]) == (1_499_000, 1_503_000)
    diff = client.get(url, params=[("change", "added"), ("change", "removed")],
                      headers=viewer).json()["rows"]["items"]
    assert {(r["change"], r["participantId"]) for r in diff} == {
        ("added", str(eps[6].id)), ("removed", str(eps[5].id))}
    [removed] = [r for r in diff if r["change"] == "removed"]
    assert removed["answer"] == "not_sent" and removed["sendable"] is False


# --- approval ---------------------------------------------------------------------------------


def test_a_version_goes_out_only_when_approved_and_never_by_a_results_officer(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    simulator_, _ = sim
    _sync(db, tenant, keyring, event_link)
    eps = _results(db, event_link, 5)
    person = db.get(Person, eps[0].person_id)
    assert person is not None
    person.birth_date = None  # a warning: approved only when named
    db.flush()
    version = _prepare(client, db, tenant, event_link)
    assert version.status == PublicationStatus.READY
    posted = len([r for r in simulator_.faults.requests if r.path.endswith("full-results")])

    officer = _approve(client, db, tenant, version, Role.RESULTS_OFFICER, ["missing_age"])
    unnamed = _approve(client, db, tenant, version)

    assert officer.status_code == 403
    assert unnamed.status_code == 422
    assert "missing_age" in unnamed.json()["detail"]
    db.refresh(version)
    assert version.status == PublicationStatus.READY and version.publish_job_run_id is None
    approved = _approve(client, db, tenant, version, warnings=["missing_age"])
    assert approved.status_code == 202, approved.text
    body = approved.json()
    assert body["publication"]["status"] == "approved"
    assert body["publication"]["acknowledgedWarnings"] == ["missing_age"]
    assert body["publication"]["approvedByLabel"] and body["jobId"]
    # Approved, not yet sent: the job sends it.
    assert len([r for r in simulator_.faults.requests
                if r.path.endswith("full-results")]) == posted
    done = _publish(db, keyring, version)
    assert done.status == PublicationStatus.PUBLISHED, done.error
    assert done.accepted == 5 and done.refused == 0 and done.approved_at is not None
    assert all(r.answer == RowAnswer.ACCEPTED and r.provider_row_id for r in _rows(db, done))
    again = _approve(client, db, tenant, version)
    assert again.status_code == 409


def test_the_publish_batch_size_is_the_setting(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    simulator_, _ = sim
    _sync(db, tenant, keyring, event_link)
    _results(db, event_link, 7)
    version = _prepare(client, db, tenant, event_link)
    assert _approve(client, db, tenant, version).status_code == 202
    before = len(simulator_.faults.seen("full-results"))

    done = _publish(db, keyring, version, batch_size=None,
                    settings=Settings(publish_batch_size=3))

    assert done.status == PublicationStatus.PUBLISHED and done.accepted == 7, done.error
    assert len(simulator_.faults.seen("full-results")) - before == 3  # 3 + 3 + 1 rows
    assert Settings().publish_batch_size == 100


# --- publish: a 500 mid-batch, then the retry -----------------------------------------------------


def test_a_publish_cut_by_a_500_mid_batch_is_retried_without_duplicates(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    simulator_, _ = sim
    _sync(db, tenant, keyring, event_link)
    _results(db, event_link, 12)
    version = _prepare(client, db, tenant, event_link)
    assert _approve(client, db, tenant, version).status_code == 202
    posts: list[int] = []

    def second_post_cut(connection: ProviderConnection, credentials: dict[str, str]) -> Any:
        """The real adapter; its second full-results POST stores 2 rows, then answers 500."""
        adapter = build_adapter(connection, credentials)
        post = adapter.post_results

        def counted(*args: Any, **kwargs: Any) -> Any:
            posts.append(len(args[1]))
            if len(posts) == 2:
                simulator_.faults.arm("results_500_mid_batch", rows=2)
            return post(*args, **kwargs)

        adapter.post_results = counted  # type: ignore[method-assign]
        return adapter

    clock = Clock()
    with pytest.raises(RetryScheduled):
        _publish(db, keyring, version, clock=clock, factory=second_post_cut)

    assert version.status == PublicationStatus.PUBLISHING and version.next_attempt_at
    assert "500" in (version.error or "")
    event_sets = simulator_.result_sets[provider_event_id(simulator_)]
    assert len(event_sets) == 1 and len(event_sets[0]["results"]) == 7  # 5 + 2 of 5
    clock.now = version.next_attempt_at
    done = _publish(db, keyring, version, clock=clock)

    assert done.status == PublicationStatus.PUBLISHED, done.error
    assert done.publish_attempts == 2 and done.accepted == 12
    stored = _set_rows(simulator_, done.result_set_id or "")
    registrations = [r["registration_id"] for r in stored]
    assert len(stored) == 12 and len(set(registrations)) == 12
    assert len(simulator_.result_sets[provider_event_id(simulator_)]) == 1
    rows = _rows(db, done)
    assert {r.provider_row_id for r in rows} == {str(r["result_id"]) for r in stored}
    assert [r["place"] for r in sorted(stored, key=lambda r: r["place"])] == list(range(1, 13))

    # Publishing the same results again (a new version, nothing changed) sends nothing.
    repeat = _prepare(client, db, tenant, event_link)
    assert (repeat.added, repeat.changed, repeat.removed) == (0, 0, 0)
    assert _approve(client, db, tenant, repeat).status_code == 202
    repeated = _publish(db, keyring, repeat)
    assert repeated.status == PublicationStatus.PUBLISHED and repeated.sent == 0
    assert repeated.result_set_id == done.result_set_id
    assert len(_set_rows(simulator_, done.result_set_id or "")) == 12


# --- auto-approval ----------------------------------------------------------------------------


def test_auto_approval_within_its_bound_and_not_beyond(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    _sync(db, tenant, keyring, event_link)
    response = client.patch(
        f"/api/events/{event_link.event_id}/links/{event_link.id}",
        headers=auth(db, tenant, Role.EVENT_MANAGER),
        json={"syncSettings": {"resultsAutoApproveBelow": 3}})
    assert response.status_code == 200, response.text
    db.refresh(event_link)
    _results(db, event_link, 8)
    beyond_first = _prepare(client, db, tenant, event_link)  # 8 rows added: not below 3
    assert beyond_first.status == PublicationStatus.READY and not beyond_first.auto_approved
    assert _approve(client, db, tenant, beyond_first).status_code == 202
    assert _publish(db, keyring, beyond_first).status == PublicationStatus.PUBLISHED
    eps = _participants(db, event_link)

    _finish(db, eps[0], 1, chip_ms=1_400_000)
    _finish(db, eps[1], 2, chip_ms=1_400_500)  # two rows changed: below 3
    within = _prepare(client, db, tenant, event_link)

    assert within.changed == 2
    assert within.status == PublicationStatus.APPROVED and within.auto_approved
    assert within.approved_by_label == "auto-approve (fewer than 3 changed rows)"
    job = db.get(JobRun, within.publish_job_run_id)
    assert job is not None and job.kind == publications.PUBLISH_KIND
    assert _publish(db, keyring, within).status == PublicationStatus.PUBLISHED

    for index in range(3):  # three rows changed: not below 3
        _finish(db, eps[index], index + 1, chip_ms=1_300_000 + index * 500)
    beyond = _prepare(client, db, tenant, event_link)

    assert beyond.changed == 3
    assert beyond.status == PublicationStatus.READY and not beyond.auto_approved
    assert beyond.publish_job_run_id is None


# --- tenancy ----------------------------------------------------------------------------------


def test_another_tenant_cannot_read_or_approve_a_version(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    _sync(db, tenant, keyring, event_link)
    _results(db, event_link, 3)
    version = _prepare(client, db, tenant, event_link)
    other = make_tenant(db)
    make_event(db, other)
    headers = auth(db, other, Role.TENANT_ADMIN)
    base = f"/api/events/{event_link.event_id}/publications"

    assert client.get(base, headers=headers).status_code == 404
    assert client.get(f"{base}/{version.version}", headers=headers).status_code == 404
    assert client.post(f"{base}/{version.version}/approve", headers=headers,
                       json={}).status_code == 404
    assert db.get(Event, event_link.event_id) is not None


def test_a_link_being_published_prepares_no_other_version_until_it_ends(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Sim,
) -> None:
    _sync(db, tenant, keyring, event_link)
    _results(db, event_link, 3)
    version = _prepare(client, db, tenant, event_link)
    assert _approve(client, db, tenant, version).status_code == 202

    refused = client.post("/api/sync/manual", headers=auth(db, tenant, Role.EVENT_MANAGER),
                          json={"connectionId": str(event_link.connection_id),
                                "syncType": "results_publish_prepare",
                                "eventId": str(event_link.event_id)})

    assert refused.status_code == 409
    assert f"version {version.version}" in refused.json()["detail"]
    assert _publish(db, keyring, version).status == PublicationStatus.PUBLISHED
    assert _prepare(client, db, tenant, event_link).version == version.version + 1


def test_a_prepare_whose_link_lost_its_event_fails_saying_so(
    client: TestClient, db: Session, tenant: Tenant, event_link: EventLink,
) -> None:
    response = client.post("/api/sync/manual", headers=auth(db, tenant, Role.EVENT_MANAGER),
                           json={"connectionId": str(event_link.connection_id),
                                 "syncType": "results_publish_prepare"})
    assert response.status_code == 202, response.text
    [requested] = response.json()["runs"]
    event_link.event_id = None
    db.flush()

    with pytest.raises(Invalid):
        run_job(None, requested["jobId"], publications.run_prepare,
                factory=lend(db))  # type: ignore[arg-type]

    run = db.get(SyncRun, uuid.UUID(requested["run"]["id"]))
    assert run is not None
    db.refresh(run)
    assert run.status == SyncStatus.FAILED
    assert run.error == "the provider event is no longer linked to a racehub event"
    assert db.scalar(select(ResultPublication)) is None
