"""NUMBER_ONBOARDING (T06): a manufacturer's file of sequence, number and barcode, imported
through the generic pipeline into one number type."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.db.statistics import refresh_while_growing
from racehub.imports.exceptions import RejectedUpload
from racehub.imports.registry import Bucket, ImportRow, ImportType, RowOutcome, register
from racehub.inventory import service
from racehub.inventory.models import RaceNumber, Tag
from racehub.inventory.service import MANUFACTURED_COLUMNS, ManufacturedRow, Outcome
from racehub.jobs.registry import Owner, owner_of

NUMBER_ONBOARDING = "NUMBER_ONBOARDING"


def _check_params(db: Session, ctx: TenantContext, params: dict[str, str]) -> dict[str, Any]:
    raw = (params.get("numberTypeId") or "").strip()
    if not raw:
        raise RejectedUpload("numberTypeId is required: which number type does this batch "
                             "belong to?", field="numberTypeId")
    try:
        number_type_id = uuid.UUID(raw)
    except ValueError as exc:
        raise RejectedUpload(f"numberTypeId {raw!r} is not a valid id",
                             field="numberTypeId") from exc
    service.get_number_type_or_raise(db, ctx, number_type_id=number_type_id,
                                     field="numberTypeId")
    return {"numberTypeId": str(number_type_id)}


def _describe(db: Session, ctx: TenantContext, params: dict[str, Any]) -> str:
    number_type = service.get_number_type_or_raise(
        db, ctx, number_type_id=uuid.UUID(params["numberTypeId"]))
    return number_type.name


def _belongs_to(db: Session, ctx: TenantContext, params: dict[str, Any]) -> list[Owner]:
    def lookup() -> Owner:
        number_type = service.get_number_type_or_raise(
            db, ctx, number_type_id=uuid.UUID(str(params.get("numberTypeId"))))
        return Owner("Number type", number_type.name,
                     f"/inventory/numbers?numberTypeId={number_type.id}")
    return owner_of(lookup)


def _survey(rows: Iterable[ImportRow]) -> dict[str, Any]:
    """Sequences on more than one row of the file: none of those rows is imported."""
    seen = Counter(int(r.values["sequence"]) for r in rows if r.values["sequence"].isdigit())
    return {"duplicate_sequences": sorted(seq for seq, n in seen.items() if n > 1)}


def _process(db: Session, ctx: TenantContext, *, params: dict[str, Any], survey: dict[str, Any],
             rows: list[ImportRow], job_run_id: uuid.UUID | None = None) -> list[RowOutcome]:
    number_type = service.get_number_type_or_raise(
        db, ctx, number_type_id=uuid.UUID(params["numberTypeId"]))
    results = service.onboard_manufactured_numbers(
        db, ctx, number_type=number_type, job_run_id=job_run_id,
        duplicate_sequences=frozenset(survey["duplicate_sequences"]),
        rows=[ManufacturedRow(r.number, r.values["sequence"], r.values["number"],
                              r.values["barcode"], r.issues) for r in rows],
    )
    if rows:  # the next batches look race numbers and tags up by their keys
        refresh_while_growing(db, (RaceNumber.__tablename__, Tag.__tablename__),
                              rows_before=rows[0].number - 1, rows_after=rows[-1].number)
    return [RowOutcome(r.row_number, r.outcome.value, r.values, r.reason, r.race_number_id)
            for r in results]


register(ImportType(
    key=NUMBER_ONBOARDING,
    label="Import manufactured numbers",
    permission=Perm.INVENTORY_NUMBER_MANAGE,
    columns=MANUFACTURED_COLUMNS,
    fixed_schema=True,
    buckets=(
        Bucket(Outcome.IMPORTED, "Rows imported",
               "New race numbers, paired to the tag on their row."),
        Bucket(Outcome.IMPORTED_WITHOUT_TAG, "Rows imported without a tag",
               "New race numbers with no barcode: pair them later by scanning."),
        Bucket(Outcome.ALREADY_ON_FILE, "Rows already on file",
               "This number type already has the sequence: nothing changed (noted in its "
               "state log)."),
        Bucket(Outcome.DUPLICATE_SEQUENCE, "Duplicate sequence",
               "The sequence appears on several rows of the file: none of them was imported."),
        Bucket(Outcome.OTHER_ISSUE, "Other issues",
               "Rows refused for the reason given (bad sequence, barcode paired elsewhere...)."),
    ),
    check_params=_check_params,
    survey=_survey,
    process=_process,
    verifying_skipped_because="Skipped — manufactured-number imports do not need fingerprint "
                              "verification.",
    caller="t06",
    summary_url="/inventory/numbers/onboard/imports/{import_id}/summary",
    describe_params=_describe,
    belongs_to=_belongs_to,
))
