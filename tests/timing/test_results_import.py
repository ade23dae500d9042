"""E08 result import: the round trip from the E11 export in every identifier mode, the
buckets (unmatched with suggestions, bib mismatch, duplicates, other issues), re-imports,
places, column detection and mapping, XLSX."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import time
from typing import Any

import pytest
import xlsxwriter
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import Role, Tenant
from racehub.events import service as events_service
from racehub.events.models import Event, EventParticipant, Gender, TimingIdentifier
from racehub.events.schemas import EventUpdate, ParticipantCreate, PersonIn
from racehub.imports.models import Import, ImportRowResult
from racehub.jobs.models import JobStatus
from racehub.timing import results
from racehub.timing.models import Result, ResultStatus
from tests.concurrency import second_waits_for_first
from tests.factories import auth, make_category, make_event, make_tenant
from tests.timing.conftest import RunImport, UploadResults, system

H = dict[str, str]


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> H:
    return auth(db, tenant, Role.RESULTS_OFFICER)


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant, name="Lyon 10K")


def add(db: Session, event: Event, first: str, last: str, *, gender: Gender | None = None,
        **fields: Any) -> EventParticipant:
    return events_service.create_participant(
        db, system(event.tenant_id), event_id=event.id,
        data=ParticipantCreate(person=PersonIn(first_name=first, last_name=last, gender=gender),
                               **fields))


@pytest.fixture
def field(db: Session, event: Event) -> list[EventParticipant]:
    """Six runners in two categories; one registration id a spreadsheet would run."""
    ten = make_category(db, event, "10K")
    five = make_category(db, event, "5K")
    return [
        add(db, event, "Ada", "Lovelace", gender=Gender.FEMALE, bib="1", category_id=ten.id,
            registration_id="REG-1"),
        add(db, event, "Grace", "Hopper", gender=Gender.FEMALE, bib="2", category_id=ten.id,
            registration_id="=REG-2"),
        add(db, event, "Alan", "Turing", gender=Gender.MALE, bib="3", category_id=ten.id,
            registration_id="-3"),
        add(db, event, "Edsger", "Dijkstra", gender=Gender.MALE, bib="4", category_id=ten.id,
            registration_id="REG-4"),
        add(db, event, "Barbara", "Liskov", gender=Gender.FEMALE, bib="5", category_id=five.id,
            registration_id="@REG-5"),
        add(db, event, "Donald", "Knuth", gender=Gender.MALE, bib="006", category_id=five.id,
            registration_id="REG-6"),
    ]


def export_rows(client: TestClient, event: Event, headers: H) -> list[dict[str, str]]:
    response = client.get(f"/api/events/{event.id}/timing-export",
                          params={"format": "csv"}, headers=headers)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


def european_excel(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    """What a European Excel writes: BOM, ';' between cells, CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def timing_file(exported: list[dict[str, str]], times: dict[str, str] | None = None) -> bytes:
    """A timing system's result file built from the exported CSV: columns reordered, the
    export's own columns kept as extras, times, a status and a split added."""
    rows = []
    for i, row in enumerate(exported):
        chip = (times or {}).get(row["Number"], f"0:{40 + i:02}:{10 + i:02}.250")
        rows.append({**row, "ChipTime": chip, "GunTime": f"0:{41 + i:02}:00",
                     "Status": "Finished", "Split 5K": f"0:{20 + i:02}:00",
                     "Timing Note": "ok"})
    columns = ["Number", "Name", "Timing Note", "ChipTime", "Split 5K", "Category",
               "ExternalReferenceID", "GunTime", "Status", "Gender", "Age", "Email"]
    return european_excel(rows, columns)


def import_file(upload_results: UploadResults, run_import: RunImport, event: Event, headers: H,
                content: bytes | str, *, batch_size: int = 500,
                filename: str = "results.csv") -> dict[str, Any]:
    response = upload_results(event.id, content, headers=headers, filename=filename)
    assert response.status_code == 201, response.text
    run_import(response.json()["id"], batch_size=batch_size)
    return response.json()


def counts(db: Session, import_id: Any) -> dict[str, int]:
    return dict(db.execute(select(ImportRowResult.bucket, func.count())
                           .where(ImportRowResult.import_id == uuid.UUID(str(import_id)))
                           .group_by(ImportRowResult.bucket)).all())


def rows_in(db: Session, import_id: Any, bucket: str) -> list[ImportRowResult]:
    return list(db.scalars(select(ImportRowResult).where(
        ImportRowResult.import_id == uuid.UUID(str(import_id)),
        ImportRowResult.bucket == bucket).order_by(ImportRowResult.row_number)))


def result_of(db: Session, ep: EventParticipant) -> Result | None:
    return db.scalar(select(Result).where(Result.event_participant_id == ep.id))


def set_mode(db: Session, event: Event, mode: TimingIdentifier, *, override: bool = False) -> None:
    events_service.update_event(db, system(event.tenant_id), event_id=event.id,
                                data=EventUpdate(preferred_timing_identifier=mode,
                                                 acknowledge_override=override))


# --- the round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(TimingIdentifier))
def test_round_trip_from_the_export_resolves_every_participant(
    mode: TimingIdentifier, db: Session, client: TestClient, event: Event, headers: H,
    field: list[EventParticipant], upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, mode)
    exported = export_rows(client, event, headers)
    assert len(exported) == len(field)
    if mode is TimingIdentifier.REGISTRATION_ID:  # the export neutralized these ids
        assert {"'=REG-2", "'-3", "'@REG-5"} <= {r["ExternalReferenceID"] for r in exported}

    imp = import_file(upload_results, run_import, event, headers, timing_file(exported),
                      batch_size=4)

    assert imp["mappingState"] == "auto_detected"
    assert counts(db, imp["id"]) == {"imported": len(field)}
    stored = {r.event_participant_id: r for r in db.scalars(
        select(Result).where(Result.event_id == event.id))}
    assert set(stored) == {ep.id for ep in field}
    by_number = {r["Number"]: r for r in exported}
    for ep in field:
        result = stored[ep.id]
        # The row that came back for this EP is the one exported with its bib.
        i = exported.index(by_number[ep.bib])
        assert result.chip_ms == ((40 + i) * 60 + 10 + i) * 1000 + 250
        assert result.status is ResultStatus.FINISHED
        assert result.splits == {"Split 5K": (20 + i) * 60 * 1000}
        assert result.warning == ""
    assert results.reconcile(db, system(event.tenant_id), event_id=event.id).missing_count == 0


def test_overriding_the_mode_after_export_sends_old_ids_to_unmatched_not_to_wrong_eps(
    db: Session, client: TestClient, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    exported = export_rows(client, event, headers)  # locks EPID
    set_mode(db, event, TimingIdentifier.PERSON_ID, override=True)

    imp = import_file(upload_results, run_import, event, headers, timing_file(exported))

    assert counts(db, imp["id"]) == {"unmatched": len(field)}
    assert db.scalar(select(func.count()).select_from(Result)
                     .where(Result.event_id == event.id)) == 0
    # Each row suggests the EP holding its Number, and says so, without applying it.
    by_bib = {ep.bib: ep for ep in field}
    for row in rows_in(db, imp["id"], "unmatched"):
        assert row.target_id == by_bib[row.values["Number"]].id
        assert "PERSON_ID mode" in row.reason and "Suggestion" in row.reason
        # The row is kept as the file had it, unmapped columns included.
        assert row.values["Timing Note"] == "ok"
        assert row.values["Name"] == by_bib[row.values["Number"]].person.first_name + " " + \
            by_bib[row.values["Number"]].person.last_name
    assert results.reconcile(db, system(event.tenant_id),
                             event_id=event.id).missing_count == len(field)


# --- the buckets ------------------------------------------------------------------------------


def plain(rows: list[list[str]], header: str = "ExternalReferenceID,Number,ChipTime,Status"
          ) -> str:
    return header + "\r\n" + "".join(",".join(r) + "\r\n" for r in rows)


def test_each_row_lands_in_its_bucket(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    ada, grace, alan, edsger, barbara, donald = field
    content = plain([
        [str(ada.id), "1", "0:40:00", "finished"],
        [str(grace.id), "99", "0:41:00", "finished"],  # bib mismatch
        [str(uuid.uuid4()), "3", "0:42:00", "finished"],  # unmatched, Alan suggested
        [str(uuid.uuid4()), "777", "0:43:00", "finished"],  # unmatched, nobody suggested
        [str(edsger.id), "4", "0:44:00", "DNF"],
        [str(edsger.id), "4", "0:45:00", "finished"],  # duplicate id: neither row imported
        [str(barbara.id), "5", "0:4x:00", "finished"],  # bad time
        [str(donald.id), "6", "", "walked"],  # unknown status; "6" would match bib "006"
    ])

    imp = import_file(upload_results, run_import, event, headers, content, batch_size=3)

    assert counts(db, imp["id"]) == {"imported": 1, "bib_mismatch": 1, "unmatched": 2,
                                     "duplicate": 2, "invalid": 2}
    [mismatch] = rows_in(db, imp["id"], "bib_mismatch")
    assert mismatch.target_id == grace.id
    assert "Number 99" in mismatch.reason and "bib is 2" in mismatch.reason
    stored = result_of(db, grace)
    assert stored is not None and stored.file_bib == "99" and "bib mismatch" in stored.warning
    suggested, nobody = rows_in(db, imp["id"], "unmatched")
    assert suggested.target_id == alan.id and "Alan Turing" in suggested.reason
    assert nobody.target_id is None
    assert result_of(db, alan) is None  # a suggestion is never applied
    assert result_of(db, edsger) is None
    bad_time, bad_status = rows_in(db, imp["id"], "invalid")
    assert "ChipTime '0:4x:00'" in bad_time.reason
    assert "Status 'walked'" in bad_status.reason
    rec = results.reconcile(db, system(event.tenant_id), event_id=event.id)
    assert rec.missing_count == 4 and rec.warnings == 1
    assert {m.id for m in rec.missing} == {alan.id, edsger.id, barbara.id, donald.id}


def test_digits_bibs_match_without_leading_zeros(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    donald = field[5]
    imp = import_file(upload_results, run_import, event, headers,
                      plain([[str(donald.id), "6", "0:30:00", ""]]))
    assert counts(db, imp["id"]) == {"imported": 1}


def test_reimporting_a_corrected_file_updates_and_never_duplicates(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    ada, grace = field[:2]
    first = plain([[str(ada.id), "1", "0:40:00", "finished"],
                   [str(grace.id), "2", "0:41:00", "finished"]])
    import_file(upload_results, run_import, event, headers, first)

    same = import_file(upload_results, run_import, event, headers, first)
    assert counts(db, same["id"]) == {"unchanged": 2}

    corrected = plain([[str(ada.id), "1", "0:42:00", "finished"],
                       [str(grace.id), "2", "0:41:00", "finished"]])
    fixed = import_file(upload_results, run_import, event, headers, corrected)
    assert counts(db, fixed["id"]) == {"updated": 1, "unchanged": 1}
    assert db.scalar(select(func.count()).select_from(Result)
                     .where(Result.event_id == event.id)) == 2
    ada_result, grace_result = result_of(db, ada), result_of(db, grace)
    assert ada_result is not None and grace_result is not None
    assert ada_result.chip_ms == 42 * 60 * 1000
    assert ada_result.import_id == uuid.UUID(fixed["id"])
    # Places follow the correction: Grace is now first.
    assert (grace_result.overall_place, ada_result.overall_place) == (1, 2)


# --- places -----------------------------------------------------------------------------------


def test_places_are_computed_per_category_and_gender_ties_share_and_file_places_win(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    ada, grace, alan, edsger, barbara, donald = field
    content = plain([
        [str(ada.id), "1", "0:40:00", "finished", "", ""],
        [str(grace.id), "2", "0:40:00.000", "finished", "", ""],  # tie with Ada
        [str(alan.id), "3", "2430000", "finished", "", "1"],  # 0:40:30 in ms; file's 1
        [str(edsger.id), "4", "", "DNS", "", ""],
        [str(barbara.id), "5", "", "finished", "0:25:00", ""],  # gun time only
        [str(donald.id), "006", "0:26:00", "DQ", "", ""],
    ], header="ExternalReferenceID,Number,ChipTime,Status,GunTime,GenderPlace")

    import_file(upload_results, run_import, event, headers, content, batch_size=2)

    def places(ep: EventParticipant) -> tuple[int | None, int | None, int | None]:
        r = result_of(db, ep)
        assert r is not None
        return r.overall_place, r.category_place, r.gender_place

    assert places(barbara) == (1, 1, 1)  # ranked on her gun time
    assert places(ada) == (2, 1, 1)
    assert places(grace) == (2, 1, 1)
    assert places(alan) == (4, 3, 1)  # gender place from the file
    assert places(edsger) == (None, None, None)
    assert places(donald) == (None, None, None)


def test_a_dnf_dns_or_dq_keeps_no_place_and_finishers_after_it_move_up(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    """A timing system that places a DNF (2nd here) would leave a gap in the ranking (1, 3,
    4): the DNF gets no place, with a warning, and the finishers read 1, 2, 3."""
    set_mode(db, event, TimingIdentifier.EPID)
    ada, grace, alan, edsger, barbara, donald = field
    content = plain([
        [str(ada.id), "1", "0:40:00", "finished", "1", "1", "1"],
        [str(grace.id), "2", "0:41:00", "DNF", "2", "2", "2"],
        [str(alan.id), "3", "0:42:00", "finished", "3", "3", "1"],
        [str(edsger.id), "4", "0:43:00", "finished", "4", "4", "2"],
        [str(barbara.id), "5", "0:44:00", "DQ", "5", "1", "1"],  # 5K
        [str(donald.id), "006", "0:45:00", "finished", "6", "1", "1"],  # 5K
    ], header="ExternalReferenceID,Number,ChipTime,Status,OverallPlace,CategoryPlace,"
              "GenderPlace")

    imp = import_file(upload_results, run_import, event, headers, content, batch_size=4)

    def places(ep: EventParticipant) -> tuple[int | None, int | None, int | None]:
        r = result_of(db, ep)
        assert r is not None
        return r.overall_place, r.category_place, r.gender_place

    assert [places(ep) for ep in (ada, alan, edsger, donald)] == [
        (1, 1, 1), (2, 2, 1), (3, 3, 2), (4, 1, 1)]
    assert places(grace) == places(barbara) == (None, None, None)
    dnf = result_of(db, grace)
    assert dnf is not None and dnf.file_overall_place == 2  # what the file said, kept
    assert dnf.warning == ("DNF with OverallPlace 2, GenderPlace 2, CategoryPlace 2 in the "
                           "file: only finishers are placed, so it has no place and the "
                           "finishers after it move up")
    assert counts(db, imp["id"]) == {"imported": 6}
    reasons = {r.target_id: r.reason for r in rows_in(db, imp["id"], "imported")}
    assert reasons[grace.id] == dnf.warning and reasons[barbara.id].startswith("DQ with")
    assert reasons[ada.id] == ""
    rec = results.reconcile(db, system(event.tenant_id), event_id=event.id)
    assert rec.warnings == 2


# --- columns ----------------------------------------------------------------------------------


def test_headers_are_detected_by_alias_ignoring_case_spaces_and_underscores(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    ada = field[0]
    content = plain([[str(ada.id), "1", "0:40:00", "dnf", "3"]],
                    header="external_reference_id,BIB, Chip Time ,RESULT-STATUS,place")
    imp = import_file(upload_results, run_import, event, headers, content)
    assert imp["mappingState"] == "auto_detected"
    assert imp["mapping"] == {"ExternalReferenceID": "external_reference_id", "Number": "BIB",
                              "ChipTime": "Chip Time", "Status": "RESULT-STATUS",
                              "OverallPlace": "place"}
    stored = result_of(db, ada)
    assert stored is not None and stored.status is ResultStatus.DNF
    assert stored.file_overall_place == 3
    assert stored.overall_place is None  # a DNF is never placed


def test_a_file_with_other_headers_waits_for_the_operators_mapping(
    db: Session, client: TestClient, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    ada = field[0]
    content = plain([[str(ada.id), "1", "0:40:00"]], header="Transponder Ref,Start No,Net")
    response = upload_results(event.id, content, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mappingState"] == "needs_mapping"
    assert any('"ExternalReferenceID"' in p for p in body["mappingProblems"])

    mapped = client.post(f"/api/imports/{body['id']}/mapping", headers=headers, json={
        "mapping": {"ExternalReferenceID": "Transponder Ref", "Number": "Start No",
                    "ChipTime": "Net"}})
    assert mapped.status_code == 200, mapped.text
    run_import(body["id"])

    assert counts(db, body["id"]) == {"imported": 1}
    stored = result_of(db, ada)
    assert stored is not None and stored.chip_ms == 40 * 60 * 1000


def test_an_xlsx_result_file_is_imported(
    db: Session, event: Event, headers: H, field: list[EventParticipant], tmp_path: Any,
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.REGISTRATION_ID)
    path = tmp_path / "results.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    for col, name in enumerate(["ExternalReferenceID", "Number", "ChipTime", "Status"]):
        sheet.write(0, col, name)
    sheet.write(1, 0, "REG-1")
    sheet.write_number(1, 1, 1)
    sheet.write(1, 2, "0:40:01.5")
    sheet.write(1, 3, "Finished")
    sheet.write(2, 0, "'=REG-2")  # neutralized by the export, sent back as it was
    sheet.write_number(2, 1, 2)
    sheet.write_number(2, 2, 2_402_000)  # milliseconds
    sheet.write(3, 0, "REG-4")
    sheet.write_number(3, 1, 4)
    # A time-of-day cell, as a timing system's own export may write it.
    sheet.write_datetime(3, 2, time(0, 40, 3, 250_000),
                         book.add_format({"num_format": "h:mm:ss.000"}))
    book.close()

    imp = import_file(upload_results, run_import, event, headers, path.read_bytes(),
                      filename="results.xlsx")

    assert counts(db, imp["id"]) == {"imported": 3}
    ada, grace = result_of(db, field[0]), result_of(db, field[1])
    assert ada is not None and ada.chip_ms == 2_401_500
    assert grace is not None and grace.chip_ms == 2_402_000
    edsger = result_of(db, field[3])
    assert edsger is not None and edsger.chip_ms == 2_403_250


def test_only_results_officers_event_managers_and_admins_import_results(
    db: Session, tenant: Tenant, event: Event, upload_results: UploadResults,
) -> None:
    content = plain([["x", "1", "0:40:00", ""]])
    refused = upload_results(event.id, content, headers=auth(db, tenant, Role.VIEWER))
    assert refused.status_code == 403
    for role in (Role.RESULTS_OFFICER, Role.EVENT_MANAGER, Role.TENANT_ADMIN):
        assert upload_results(event.id, content,
                              headers=auth(db, tenant, role)).status_code == 201


def test_another_tenants_event_cannot_receive_results(
    db: Session, tenant: Tenant, headers: H, upload_results: UploadResults,
) -> None:
    other = make_event(db, make_tenant(db))
    response = upload_results(other.id, plain([["x", "1", "0:40:00", ""]]), headers=headers)
    assert response.status_code == 404
    assert db.scalar(select(func.count()).select_from(Import)
                     .where(Import.tenant_id == tenant.id)) == 0


def test_the_upload_keeps_the_mode_of_its_moment(
    db: Session, event: Event, headers: H, field: list[EventParticipant],
    upload_results: UploadResults, run_import: RunImport,
) -> None:
    set_mode(db, event, TimingIdentifier.EPID)
    response = upload_results(event.id, plain([[str(field[0].id), "1", "0:40:00", ""]]),
                              headers=headers)
    set_mode(db, event, TimingIdentifier.PERSON_ID)  # not locked yet: no override needed
    run_import(response.json()["id"])
    imp = db.get(Import, uuid.UUID(response.json()["id"]))
    assert imp is not None and imp.params["identifierMode"] == "EPID"
    assert imp.job_run.status is JobStatus.COMPLETED
    assert counts(db, imp.id) == {"imported": 1}


def test_two_imports_into_one_event_at_once_take_turns(
        committed_db: sessionmaker[Session]) -> None:
    """A double-clicked upload: the second import's batch waits for the first one's commit
    and finds the results on file, instead of inserting them again and failing."""
    with committed_db() as db:
        event = make_event(db, make_tenant(db), name="Night Run",
                           preferred_timing_identifier=TimingIdentifier.EPID)
        runner = add(db, event, "Ada", "Lovelace", bib="1")
        db.commit()
    row = results.ParsedRow(row_number=2, external_id=str(runner.id), number="1",
                            status=ResultStatus.FINISHED, chip_ms=2_400_000,
                            gun_ms=2_401_000, overall_place=None, gender_place=None,
                            category_place=None)

    def store(session: Session) -> list[str]:
        return [r.outcome.value for r in results.store_rows(
            session, system(event.tenant_id), event_id=event.id, mode=TimingIdentifier.EPID,
            rows=[row], duplicates=frozenset(), import_id=None)]

    with committed_db() as first, committed_db() as second:
        assert store(first) == ["imported"]

        def import_again() -> list[str]:
            done = store(second)
            second.commit()
            return done

        assert second_waits_for_first(first, import_again) == ["unchanged"]
    with committed_db() as db:
        assert db.scalar(select(func.count()).select_from(Result).where(
            Result.event_id == event.id)) == 1
