"""Pydantic shapes of the core API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from racehub.core.models import Role


class APIModel(BaseModel):
    """camelCase on the wire (``preferredTimingIdentifier``), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              from_attributes=True)


ORMModel = APIModel


class TenantRead(ORMModel):
    id: uuid.UUID
    name: str
    slug: str


class MembershipRead(ORMModel):
    tenant: TenantRead
    role: Role


class MeRead(APIModel):
    user_id: uuid.UUID | None
    email: str | None
    full_name: str | None
    tenant: TenantRead
    role: str
    is_platform_admin: bool
    permissions: list[str]
    memberships: list[MembershipRead]


class ApiTokenCreate(APIModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    expires_at: datetime | None = None


class ApiTokenRead(ORMModel):
    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="The secret. Shown only in this response; store it now.")


class AuditEntryRead(ORMModel):
    id: int
    at: datetime
    actor_user_id: uuid.UUID | None
    actor_label: str
    action: str
    target_type: str | None
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
