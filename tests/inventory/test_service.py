"""Inventory rules below HTTP: number types, and onboarding a manufacturer's rows (T06):
create on miss, no-op on hit, every refusal in its bucket with a reason naming the row's
problem, and the state log written for every row that touched a race number."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.models import AuditEntry, Tenant
from racehub.inventory import service
from racehub.inventory.exceptions import NumberTypeNameTaken, NumberTypeNotFound
from racehub.inventory.models import (
    NumberType,
    RaceNumber,
    RaceNumberLogEntry,
    RaceNumberState,
    Tag,
)
from racehub.inventory.schemas import NumberTypeCreate
from racehub.inventory.service import ManufacturedRow, Outcome
from tests.concurrency import second_waits_for_first
from tests.factories import make_number_type, make_tenant, onboard, system_ctx


def outcomes(results: list[service.RowResult]) -> list[str]:
    return [r.outcome.value for r in results]


def count(db: Session, model: type, **where: object) -> int:
    stmt = select(func.count()).select_from(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    return db.scalar(stmt) or 0


# --- number types ---------------------------------------------------------------------------


def test_number_type_names_are_unique_per_tenant(db: Session, tenant: Tenant,
                                                  ctx: TenantContext) -> None:
    service.create_number_type(db, ctx, data=NumberTypeCreate(name="Road bibs"))
    with pytest.raises(NumberTypeNameTaken) as err:
        service.create_number_type(db, ctx, data=NumberTypeCreate(name="Road bibs"))
    assert err.value.field == "name" and "Road bibs" in err.value.detail
    other = make_tenant(db)
    make_number_type(db, other, name="Road bibs")  # another tenant may use the name


def test_creating_a_number_type_is_audited(db: Session, ctx: TenantContext) -> None:
    number_type = service.create_number_type(
        db, ctx, data=NumberTypeCreate(name="Trail", prefix="T", range_start=1, range_end=9))
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "number_type.create"))
    assert entry is not None and entry.target_id == str(number_type.id)
    assert entry.after == {"name": "Trail", "prefix": "T", "range_start": 1, "range_end": 9,
                           "description": None}


def test_another_tenants_number_type_is_not_found(db: Session, number_type: NumberType) -> None:
    stranger = system_ctx(make_tenant(db))
    with pytest.raises(NumberTypeNotFound):
        service.get_number_type_or_raise(db, stranger, number_type_id=number_type.id)
    assert service.list_number_types(db, stranger) == []


# --- onboarding ------------------------------------------------------------------------------


def test_rows_become_manufactured_numbers_with_their_tags(
    db: Session, number_type: NumberType
) -> None:
    results = onboard(db, number_type, ("1", "0001", "012345678901"), ("2", "0002", ""))
    assert outcomes(results) == ["imported", "imported_without_tag"]
    first, second = (db.get(RaceNumber, r.race_number_id) for r in results)
    assert (first.sequence, first.number, first.state) == (1, "0001",
                                                           RaceNumberState.MANUFACTURED)
    assert first.tag is not None and first.tag.code == "012345678901"  # leading zero kept
    assert second.tag_id is None
    log = db.scalars(select(RaceNumberLogEntry).where(
        RaceNumberLogEntry.race_number_id == first.id)).all()
    assert [(e.action, e.to_state) for e in log] == [("manufactured",
                                                      RaceNumberState.MANUFACTURED)]
    assert log[0].detail == {"row": 2, "number": "0001", "barcode": "012345678901"}


def test_reimporting_the_same_rows_changes_nothing_but_the_state_log(
    db: Session, number_type: NumberType
) -> None:
    rows = [("1", "0001", "AAA1"), ("2", "0002", ""), ("3", "0003", "AAA3")]
    first = onboard(db, number_type, *rows)
    before = (count(db, RaceNumber), count(db, Tag))
    again = onboard(db, number_type, *rows)
    assert outcomes(again) == ["already_on_file"] * 3
    assert [r.race_number_id for r in again] == [r.race_number_id for r in first]
    assert (count(db, RaceNumber), count(db, Tag)) == before
    assert count(db, RaceNumberLogEntry, action="reimported") == 3
    assert "already on file as number 0001" in again[0].reason


def test_a_corrected_file_adds_only_the_new_sequences(db: Session,
                                                      number_type: NumberType) -> None:
    onboard(db, number_type, ("1", "0001", "T1"), ("2", "0002", "T2"))
    corrected = onboard(db, number_type, ("2", "0002", "T2"), ("3", "0003", "T3"),
                        ("4", "0004", ""))
    assert outcomes(corrected) == ["already_on_file", "imported", "imported_without_tag"]
    assert count(db, RaceNumber, number_type_id=number_type.id) == 4


def test_a_file_that_says_something_else_for_a_known_sequence_is_noted_not_applied(
    db: Session, number_type: NumberType
) -> None:
    [original] = onboard(db, number_type, ("7", "0007", "TAG7"))
    [again] = onboard(db, number_type, ("7", "7-B", "TAG7-NEW"))
    assert again.outcome is Outcome.ALREADY_ON_FILE
    race_number = db.get(RaceNumber, original.race_number_id)
    db.refresh(race_number)
    assert race_number.number == "0007" and race_number.tag.code == "TAG7"  # no update mode
    entry = db.scalars(select(RaceNumberLogEntry).where(
        RaceNumberLogEntry.action == "reimported")).one()
    assert entry.detail["file_differs"] == {"number": "7-B", "barcode": "TAG7-NEW"}


def test_sequences_duplicated_in_the_file_are_not_imported(db: Session,
                                                           number_type: NumberType) -> None:
    results = onboard(db, number_type, ("5", "0005", "X5"), ("6", "0006", ""),
                      duplicates=frozenset({5}))
    assert outcomes(results) == ["duplicate_sequence", "imported_without_tag"]
    assert "sequence 5 appears on more than one row" in results[0].reason
    assert count(db, RaceNumber, sequence=5) == 0


@pytest.mark.parametrize(("sequence", "reason"), [
    ("0", "sequence 0 is not a positive whole number"),
    ("-3", "'-3' is not a positive whole number"),
    ("abc", "'abc' is not a positive whole number"),
    ("1.5", "'1.5' is not a positive whole number"),
    ("", "'(empty)' is not a positive whole number"),
    ("5001", "sequence 5001 is above the range of Marathon 2027 (1-5000)"),
    ("99999999999999999999", "sequence 99999999999999999999 is too large"),
])
def test_a_bad_sequence_is_an_other_issue(db: Session, number_type: NumberType, sequence: str,
                                          reason: str) -> None:
    [result] = onboard(db, number_type, (sequence, "0001", "Z1"))
    assert result.outcome is Outcome.OTHER_ISSUE
    assert reason in result.reason
    assert result.values == {"sequence": sequence, "number": "0001", "barcode": "Z1"}
    assert count(db, RaceNumber) == 0 and count(db, Tag) == 0


def test_a_number_type_without_a_range_takes_any_positive_sequence(db: Session,
                                                                  tenant: Tenant) -> None:
    open_type = make_number_type(db, tenant, name="Open")
    assert outcomes(onboard(db, open_type, ("987654321", "X", ""))) == ["imported_without_tag"]


def test_an_empty_number_is_an_other_issue(db: Session, number_type: NumberType) -> None:
    [result] = onboard(db, number_type, ("1", "", "Z1"))
    assert (result.outcome, result.reason) == (Outcome.OTHER_ISSUE, "number is empty")


def test_what_the_reader_found_wrong_refuses_the_row(db: Session,
                                                     number_type: NumberType) -> None:
    ctx = TenantContext.system(number_type.tenant_id, label="test")
    issue = 'column "barcode": "1.23457E+11" looks like a number mangled by Excel'
    [result] = service.onboard_manufactured_numbers(db, ctx, number_type=number_type, rows=[
        ManufacturedRow(9, "1", "0001", "1.23457E+11", issues=(issue,))])
    assert (result.row_number, result.outcome, result.reason) == (9, Outcome.OTHER_ISSUE, issue)
    assert count(db, RaceNumber) == 0


def test_a_barcode_paired_elsewhere_is_refused_naming_both_numbers(
    db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    onboard(db, number_type, ("1", "0001", "CHIP-1"))
    other_type = make_number_type(db, tenant, name="Relay")
    [result] = onboard(db, other_type, ("40", "R40", "CHIP-1"))
    assert result.outcome is Outcome.OTHER_ISSUE
    assert result.reason == ("barcode CHIP-1 is already paired to number 0001 (sequence 1, "
                             "Marathon 2027); not re-paired to sequence 40")
    assert count(db, RaceNumber, number_type_id=other_type.id) == 0


def test_a_barcode_on_two_rows_of_a_batch_is_kept_on_the_first(
    db: Session, number_type: NumberType
) -> None:
    results = onboard(db, number_type, ("1", "0001", "SAME"), ("2", "0002", "SAME"))
    assert outcomes(results) == ["imported", "other_issue"]
    assert results[1].reason == "barcode SAME is also on row 2 (sequence of that row wins)"


def test_an_unpaired_tag_already_known_is_reused(db: Session, tenant: Tenant,
                                                 number_type: NumberType) -> None:
    tag = Tag(tenant_id=tenant.id, code="LOOSE-1")
    db.add(tag)
    db.flush()
    [result] = onboard(db, number_type, ("3", "0003", "LOOSE-1"))
    assert result.outcome is Outcome.IMPORTED
    assert db.get(RaceNumber, result.race_number_id).tag_id == tag.id
    assert count(db, Tag) == 1


def test_tenants_share_neither_sequences_nor_tags(db: Session, number_type: NumberType) -> None:
    onboard(db, number_type, ("1", "0001", "CHIP-9"))
    other_type = make_number_type(db, make_tenant(db), name="Marathon 2027")
    assert outcomes(onboard(db, other_type, ("1", "0001", "CHIP-9"))) == ["imported"]
    assert count(db, Tag, code="CHIP-9") == 2


def test_the_state_log_is_append_only(db: Session, number_type: NumberType) -> None:
    onboard(db, number_type, ("1", "0001", ""))
    with pytest.raises(DBAPIError, match="race_number_log is append-only"), db.begin_nested():
        db.execute(text("UPDATE race_number_log SET action = 'forged'"))
    with pytest.raises(DBAPIError, match="race_number_log is append-only"), db.begin_nested():
        db.execute(text("DELETE FROM race_number_log"))



def test_two_imports_at_once_take_turns_instead_of_colliding(
        committed_db: sessionmaker[Session]) -> None:
    """The second import's batch waits for the first to commit, then finds its rows on
    file, where both would otherwise insert the same sequence and one would fail."""
    with committed_db() as db:
        number_type = make_number_type(db, make_tenant(db))
        db.commit()
    rows = [("1", "0001", "E-1"), ("2", "0002", "")]
    with committed_db() as first, committed_db() as second:
        assert outcomes(onboard(first, first.merge(number_type), *rows)) == [
            "imported", "imported_without_tag"]

        def import_again() -> list[str]:
            done = outcomes(onboard(second, second.merge(number_type), *rows))
            second.commit()
            return done

        assert second_waits_for_first(first, import_again) == [
            "already_on_file", "already_on_file"]
    with committed_db() as db:
        assert count(db, RaceNumber, number_type_id=number_type.id) == 2

# --- lists -----------------------------------------------------------------------------------


def test_race_numbers_page_in_sequence_order_and_search(db: Session, ctx: TenantContext,
                                                        number_type: NumberType) -> None:
    onboard(db, number_type, *[(str(n), f"{n:04d}", f"T{n}" if n % 2 else "")
                               for n in range(1, 26)])
    seen, cursor = [], None
    while True:
        rows, cursor = service.list_race_numbers(db, ctx, number_type_id=number_type.id,
                                                 cursor=cursor, limit=10)
        seen += [r.sequence for r in rows]
        if cursor is None:
            break
    assert seen == list(range(1, 26))

    def search(q: str) -> list[int]:
        return [r.sequence for r in service.list_race_numbers(db, ctx, q=q)[0]]

    assert search("001") == [1, *range(10, 20)]  # sequence 1, and numbers starting 001
    assert search("T7") == [7]  # a tag code, exactly
    assert search("12") == [12]  # a sequence
    assert search("%") == []
    stranger = system_ctx(make_tenant(db))
    assert service.list_race_numbers(db, stranger)[0] == []
