"""Who is acting, for which tenant: passed to every service call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from racehub.core.models import Role
from racehub.core.rbac import Perm


@dataclass(frozen=True)
class TenantContext:
    tenant_id: uuid.UUID
    permissions: frozenset[Perm]
    role: Role | None = None
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    actor_label: str = "system"
    is_platform_admin: bool = False
    cross_tenant: bool = False  # a platform admin acting in a tenant they are no member of
    request_id: str | None = None
    ip: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def can(self, perm: Perm) -> bool:
        return perm in self.permissions

    @classmethod
    def system(cls, tenant_id: uuid.UUID, *, label: str = "system") -> TenantContext:
        """For workers and the CLI: full rights inside one tenant, acting as ``label``."""
        return cls(tenant_id=tenant_id, permissions=frozenset(Perm), actor_label=label)
