"""JSON API of results publications: an event's versions (diff counts, validation), one
version's rows (the diff, the platform's answers), approving one. Preparing one is
``POST /api/sync/manual`` with ``syncType: results_publish_prepare``. Thin:
sync/publications.py holds the rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.core.schemas import APIModel
from racehub.sync import publications
from racehub.sync.models import PublicationStatus, ResultPublication, RowAnswer, RowChange

router = APIRouter(prefix="/api/events", tags=["sync"])

ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]
Approve = Annotated[TenantContext, Depends(require(Perm.SYNC_RESULTS_PUBLISH))]


class IssueRead(APIModel):
    code: str
    severity: str = Field(description="error (the version cannot be approved) or warning "
                                      "(approved only when named)")
    message: str = Field(description="Names the row (bib and name) or the category")
    seq: int | None = Field(description="The row of the version it is about")
    category: str | None


class PublicationRead(APIModel):
    id: uuid.UUID
    event_id: uuid.UUID
    link_id: uuid.UUID | None
    connection_id: uuid.UUID | None
    provider: str
    provider_event_ref: str
    version: int
    status: PublicationStatus
    sync_run_id: uuid.UUID | None = Field(description="The prepare run that built it")
    prepared_by_label: str
    created_at: datetime
    base_version: int | None = Field(description="The published version it is diffed "
                                                 "against (null: the link's first)")
    rows_total: int
    added: int
    changed: int
    removed: int
    unchanged: int
    errors: int
    warnings: int
    validation: list[IssueRead]
    approved_by_label: str | None
    approved_at: datetime | None
    acknowledged_warnings: list[str]
    auto_approved: bool
    result_set_id: str | None = Field(description="The platform's result set it went into")
    publish_job_run_id: uuid.UUID | None
    publish_attempts: int
    next_attempt_at: datetime | None
    published_at: datetime | None
    sent: int = Field(description="Rows posted (added or edited)")
    accepted: int = Field(description="Rows the platform holds as prepared")
    refused: int
    error: str | None


class PublicationRowRead(APIModel):
    seq: int
    participant_id: uuid.UUID | None
    registration_ref: str | None = Field(description="The registration on the platform")
    bib: str | None
    name: str
    category: str | None
    status: str
    place: int | None
    chip_ms: int | None
    gun_ms: int | None
    gender: str | None
    age: int | None
    change: RowChange
    previous: dict[str, Any] = Field(description="field -> the value in the base version, "
                                                 "for each field that changed")
    problems: list[str] = Field(description="Validation codes of this row")
    sendable: bool
    answer: RowAnswer = Field(description="What the platform answered")
    answer_message: str | None
    provider_row_id: str | None = Field(description="The platform's id of the row")
    answered_at: datetime | None


class PublicationDetail(PublicationRead):
    answers: dict[str, int] = Field(description="Rows per answer")
    rows: Page[PublicationRowRead]


class ApproveRequest(APIModel):
    acknowledged_warnings: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=20,
        description="Every warning code of the version (none when it has none): approving "
                    "says these were read")


class Approved(APIModel):
    publication: PublicationRead
    job_id: uuid.UUID | None = Field(description="The publish job (GET /api/jobs/{id})")


def _read(publication: ResultPublication) -> PublicationRead:
    return PublicationRead.model_validate(publication)


@router.get("/{event_id}/publications", response_model=list[PublicationRead])
def list_publications(event_id: uuid.UUID, db: DB, ctx: ReadRuns) -> list[PublicationRead]:
    """The event's results versions, newest first: state, diff counts against the base
    version, validation, approval and what the publish did."""
    return [_read(p) for p in publications.list_publications(db, ctx, event_id=event_id)]


@router.get("/{event_id}/publications/{version}", response_model=PublicationDetail)
def read_publication(
    event_id: uuid.UUID, version: int, db: DB, ctx: ReadRuns,
    change: Annotated[list[RowChange] | None, Query(
        description="Only rows of these changes (repeat for several), e.g. the diff: "
                    "added, changed, removed")] = None,
    answer: RowAnswer | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PublicationDetail:
    """One version and a page of its rows, in order, each with its change, its validation
    codes and the platform's answer."""
    publication = publications.get_publication_or_raise(db, ctx, event_id=event_id,
                                                        version=version)
    rows, next_cursor = publications.list_rows(db, ctx, publication=publication,
                                               changes=change, answer=answer, cursor=cursor,
                                               limit=limit)
    return PublicationDetail(
        **_read(publication).model_dump(), answers=publications.answer_counts(db, publication),
        rows=Page[PublicationRowRead](items=[PublicationRowRead.model_validate(r)
                                             for r in rows], next_cursor=next_cursor))


@router.post("/{event_id}/publications/{version}/approve", response_model=Approved,
             status_code=202)
def approve_publication(event_id: uuid.UUID, version: int, db: DB, ctx: Approve,
                        data: ApproveRequest | None = None) -> Approved:
    """Approve a version that passes validation, naming each of its warnings, and queue its
    publish (a version whose publish failed is approved again to retry it). 409 for a
    version with errors, superseded or already out; 422 naming the warnings not named."""
    publication = publications.approve(
        db, ctx, event_id=event_id, version=version,
        acknowledged=data.acknowledged_warnings if data else [])
    db.commit()
    return Approved(publication=_read(publication), job_id=publication.publish_job_run_id)
