"""JSON API of the core domain: who am I, members, API tokens, the audit log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import TypeAdapter

from racehub.core import audit
from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.deps import (
    DB,
    CurrentPrincipal,
    no_tenant_message,
    require,
    require_unless_no_tenant,
)
from racehub.core.models import Membership
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.core.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    AuditEntryRead,
    MemberAdded,
    MemberCreate,
    MemberRead,
    MembershipRead,
    MemberUpdate,
    MeRead,
    SaneDateTime,
)

router = APIRouter(prefix="/api", tags=["core"])


# Encoded here: FastAPI would validate the returned model again, on a thread-pool hop of
# its own (the route is a plain ``def``), before encoding the same bytes.
ME = TypeAdapter(MeRead)


@router.get("/me", response_model=MeRead)
def read_me(
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[TenantContext | None,
                   Depends(require_unless_no_tenant(Perm.CORE_SELF_READ))],
) -> Response:
    """Who is calling, in which tenant. A browser session with no tenant chosen yet (a
    platform admin before choosing, a user with no membership) gets ``tenant`` null and a
    ``message`` saying how to choose one, not a 403. Encoded once, here (the hot path of a
    display's poll)."""
    assert principal is not None
    user = principal.user
    memberships = core_service.list_memberships(db, user_id=user.id) if user else []
    if ctx is None:
        assert user is not None
        alone = MeRead(
            user_id=user.id, email=user.email, full_name=user.full_name, tenant=None,
            role="PLATFORM_ADMIN" if user.is_platform_admin else "NONE",
            is_platform_admin=user.is_platform_admin, permissions=[],
            memberships=[MembershipRead.model_validate(m) for m in memberships],
            message=no_tenant_message(user),
        )
        return Response(ME.dump_json(alone, by_alias=True), media_type="application/json")
    tenant = core_service.get_tenant_read(db, tenant_id=ctx.tenant_id)
    me = MeRead(
        user_id=user.id if user else None,
        email=user.email if user else None,
        full_name=user.full_name if user else None,
        tenant=tenant,
        role=ctx.role.value if ctx.role else "PLATFORM_ADMIN",
        is_platform_admin=ctx.is_platform_admin,
        permissions=sorted(p.value for p in ctx.permissions),
        memberships=[MembershipRead.model_validate(m) for m in memberships],
        cross_tenant=ctx.cross_tenant,
    )
    return Response(ME.dump_json(me, by_alias=True), media_type="application/json")


# --- members -------------------------------------------------------------------------------

ManageMembers = Annotated[TenantContext, Depends(require(Perm.CORE_MEMBER_MANAGE))]


def member_read(membership: Membership) -> MemberRead:
    return MemberRead(user_id=membership.user_id, email=membership.user.email,
                      full_name=membership.user.full_name, role=membership.role,
                      created_at=membership.created_at)


@router.get("/members", response_model=list[MemberRead])
def list_members(db: DB, ctx: ManageMembers) -> list[MemberRead]:
    return [member_read(m) for m in core_service.list_members(db, ctx)]


@router.post("/members", response_model=MemberAdded, status_code=201)
def add_member(data: MemberCreate, db: DB, ctx: ManageMembers) -> MemberAdded:
    membership, created = core_service.add_member(db, ctx, data=data)
    db.commit()
    return MemberAdded(**member_read(membership).model_dump(), user_created=created)


@router.patch("/members/{user_id}", response_model=MemberRead)
def update_member(
    user_id: uuid.UUID, data: MemberUpdate, db: DB, ctx: ManageMembers
) -> MemberRead:
    membership = core_service.update_member_role(db, ctx, user_id=user_id, role=data.role)
    db.commit()
    return member_read(membership)


@router.delete("/members/{user_id}", status_code=204)
def remove_member(user_id: uuid.UUID, db: DB, ctx: ManageMembers) -> Response:
    """Revokes the API tokens the member created in this tenant, too."""
    core_service.remove_member(db, ctx, user_id=user_id)
    db.commit()
    return Response(status_code=204)


# --- API tokens ----------------------------------------------------------------------------


@router.get("/tokens", response_model=list[ApiTokenRead])
def list_tokens(
    db: DB, ctx: Annotated[TenantContext, Depends(require(Perm.CORE_TOKEN_MANAGE))]
) -> list[ApiTokenRead]:
    return [ApiTokenRead.model_validate(t) for t in core_service.list_api_tokens(db, ctx)]


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201)
def create_token(
    data: ApiTokenCreate,
    response: Response,
    db: DB,
    ctx: Annotated[TenantContext, Depends(require(Perm.CORE_TOKEN_MANAGE))],
) -> ApiTokenCreated:
    token, secret = core_service.create_api_token(db, ctx, data=data)
    db.commit()
    response.headers["Cache-Control"] = "no-store"  # the body holds the secret
    return ApiTokenCreated.model_validate({**ApiTokenRead.model_validate(token).model_dump(),
                                          "token": secret})


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: uuid.UUID,
    db: DB,
    ctx: Annotated[TenantContext, Depends(require(Perm.CORE_TOKEN_MANAGE))],
) -> Response:
    core_service.revoke_api_token(db, ctx, token_id=token_id)
    db.commit()
    return Response(status_code=204)


@router.get("/audit", response_model=Page[AuditEntryRead])
def list_audit(
    db: DB,
    ctx: Annotated[TenantContext, Depends(require(Perm.AUDIT_LOG_READ))],
    action: Annotated[str | None, Query(description="Exact action, or a prefix ending in '.'")]
    = None,
    actor: Annotated[str | None, Query(description=audit.ACTOR_FILTER_HELP)] = None,
    target_type: Annotated[str | None, Query(alias="targetType")] = None,
    target_id: Annotated[str | None, Query(alias="targetId")] = None,
    since: Annotated[SaneDateTime | None, Query(description="From (inclusive), ISO 8601")]
    = None,
    until: Annotated[SaneDateTime | None, Query(description="To (exclusive), ISO 8601")]
    = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[AuditEntryRead]:
    rows, next_cursor = audit.list_entries(
        db, ctx, action=action, actor=actor, target_type=target_type,
        target_id=target_id, since=since, until=until, cursor=cursor, limit=limit,
    )
    return Page[AuditEntryRead](items=[AuditEntryRead.model_validate(r) for r in rows],
                                next_cursor=next_cursor)
