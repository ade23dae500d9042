"""Pydantic shapes of the core API."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from racehub.core.models import Role

D = TypeVar("D", date, datetime)


INT64_MAX = 2**63 - 1


def hostile_value(value: Any) -> str | None:
    """What is wrong with an input value no column can hold, wherever it is nested: a NUL
    character (PostgreSQL text refuses it) or an integer beyond 64 bits."""
    if isinstance(value, str):
        return "must not contain a NUL character" if "\x00" in value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return "is too large" if not -INT64_MAX <= value <= INT64_MAX else None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return next((p for p in map(hostile_value, value) if p), None)
    return None


class APIModel(BaseModel):
    """camelCase on the wire (``preferredTimingIdentifier``), snake_case in Python.

    Every field of every input refuses NUL characters and integers beyond 64 bits (a 422
    naming the field), which would otherwise fail in the database as a 500."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              from_attributes=True)

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        if _holds_model_field(cls, info.field_name or ""):
            return value  # the nested model checks its own fields, naming them
        if problem := hostile_value(value):
            raise ValueError(problem)
        return value


# (model, field) -> whether the field holds a model. This runs for every field of every
# row a list returns (read models are APIModels too): working it out from the annotation
# each time made validating a page of 50 participants take 2.9 ms instead of 1.2 ms.
_MODEL_FIELDS: dict[tuple[type, str], bool] = {}


def _holds_model_field(model: type[BaseModel], name: str) -> bool:
    key = (model, name)
    known = _MODEL_FIELDS.get(key)
    if known is None:
        field = model.model_fields.get(name)
        known = _MODEL_FIELDS[key] = field is not None and _holds_model(field.annotation)
    return known


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))


ORMModel = APIModel

M = TypeVar("M", bound=BaseModel)
_set_attribute = object.__setattr__
_TRUSTED_OK: set[type[BaseModel]] = set()


def construct_trusted(model: type[M], values: dict[str, Any]) -> M:
    """A read model from values that already are its fields' values (read from the very
    columns it mirrors), in a fraction of ``model_construct``'s time: that one looks up
    every field's aliases in ``values`` (about 40 µs for a participant, most of a page's
    build). Here ``values`` must hold every field; it becomes the instance's fields as they
    are, in the model's field order (the JSON's key order), without validation."""
    if model not in _TRUSTED_OK:
        if (model.__pydantic_root_model__ or model.__pydantic_post_init__
                or model.__private_attributes__ or model.model_config.get("extra") == "allow"):
            raise TypeError(f"{model.__name__} needs model_construct")
        _TRUSTED_OK.add(model)
    fields = model.__pydantic_fields__
    if len(values) != len(fields):
        missing = sorted(set(fields) - set(values)) or sorted(set(values) - set(fields))
        raise TypeError(f"{model.__name__}: fields do not match: {', '.join(missing)}")
    instance = model.__new__(model)
    _set_attribute(instance, "__dict__", {name: values[name] for name in fields})
    _set_attribute(instance, "__pydantic_fields_set__", set(fields))
    _set_attribute(instance, "__pydantic_extra__", None)
    _set_attribute(instance, "__pydantic_private__", None)
    return instance


# Every date and time taken as input is bounded to years a race (or a token's expiry) can
# sanely fall in. Python and PostgreSQL both hold far more (year 1 to 9999, and past
# 294000 AD), but a value near either end breaks whatever reads it back:
# 9999-12-31T23:59:59-14:00 is stored as year 10000, which no Python datetime can hold.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2200
EARLIEST_BIRTH_YEAR = 1900  # nobody born before races


def _today() -> date:
    return date.today()


def years_between(first: int, last: int) -> Callable[[D], D]:
    def check(value: D) -> D:
        # On the value as given (before any change of zone), so the message fits the input.
        if not first <= value.year <= last:
            raise ValueError(f"must be between the years {first} and {last}")
        return value

    return check


sane_year = years_between(EARLIEST_YEAR, LATEST_YEAR)

SaneDateTime = Annotated[datetime, AfterValidator(sane_year)]
"""A date and time between 1900 and 2200 (a 422 naming the field outside)."""

SaneDate = Annotated[date, AfterValidator(sane_year)]
"""A day between 1900 and 2200 (a 422 naming the field outside)."""

def _born(value: date) -> date:
    if value.year < EARLIEST_BIRTH_YEAR:
        raise ValueError(f"must not be before {EARLIEST_BIRTH_YEAR}")
    if value > _today():
        raise ValueError("must not be in the future")
    return value


BirthDate = Annotated[date, AfterValidator(_born)]
"""A birth date: from 1900 to today (a 422 naming the field otherwise)."""

REQUIRED = "is required"


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _required(value: str) -> str:
    if not value:
        raise ValueError(REQUIRED)
    return value


Name = Annotated[str, BeforeValidator(_strip), AfterValidator(_required)]
"""A name people type (an event's, a category's, a person's, a number type's, a
connection's): trimmed, then required, so one of only spaces is refused as missing. Its
length limit goes on the field: ``name: Name = Field(max_length=200)``."""


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
    # None: a browser session with no tenant chosen yet (``message`` says how to choose).
    tenant: TenantRead | None
    role: str
    is_platform_admin: bool
    permissions: list[str]
    memberships: list[MembershipRead]
    # A platform admin acting in a tenant they are no member of (each request audit-logged).
    cross_tenant: bool = False
    message: str | None = None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class MemberCreate(APIModel):
    """Add a user to the tenant: an existing account by e-mail, or a new one (then
    ``password`` is required, with the rules of ``racehub user create``)."""

    email: str = Field(max_length=320)
    role: Role
    password: str | None = Field(
        default=None, max_length=1000,
        description="Only for a new account (at least 10 characters); an existing "
                    "account keeps its password.")
    full_name: str = Field(default="", max_length=200)

    @field_validator("email")
    @classmethod
    def _email_shaped(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError("enter an e-mail address like ada@example.com")
        return value


class MemberUpdate(APIModel):
    role: Role


class MemberRead(APIModel):
    """A membership of this tenant, named by its user's id (the id in ``/api/members/{id}``)."""

    user_id: uuid.UUID
    email: str
    full_name: str
    role: Role
    created_at: datetime = Field(description="When the user joined this tenant")


class MemberAdded(MemberRead):
    user_created: bool = Field(description="A new account was created with the password given")


class ApiTokenCreate(APIModel):
    name: Name = Field(max_length=200)
    role: Role
    expires_at: SaneDateTime | None = Field(
        default=None, description="In the future and at most 5 years away; UTC without an "
                                  "offset.")


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
