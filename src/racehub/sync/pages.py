"""HTML pages of provider connections: the list with health, the per-provider form, the
inline "Test connection" and the field-mapping editor with its live preview."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError, Invalid
from racehub.core.rbac import Perm
from racehub.providers.base import ProviderParticipant
from racehub.providers.catalog import DIRECTION_TEXT, PROVIDERS, Direction
from racehub.sync import mapping_editor as editor
from racehub.sync import service, webhooks
from racehub.sync.api import AppKeyring
from racehub.sync.exceptions import ConnectionNotFound, SampleUnavailable
from racehub.sync.links_pages import links_context
from racehub.sync.mapping import connection_rules, default_mapping
from racehub.sync.models import ProviderConnection
from racehub.sync.schemas import ConnectionCreate, ConnectionUpdate
from racehub.sync.transforms import NOTATION_HELP, TARGET_FIELDS, MappingRule
from racehub.web.pages import PostedForm, form_error, render, validate_model
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_READ))]
ManageConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_MANAGE))]


def _redirect(url: str, flash: str) -> Response:
    from urllib.parse import quote_plus

    return RedirectResponse(f"{url}?flash={quote_plus(flash)}", status_code=303)


@router.get("/connections")
def connections_page(request: Request, db: DB, ctx: ReadConnections, keyring: AppKeyring
                     ) -> Response:
    rows = [service.to_read(keyring, c) for c in service.list_connections(db, ctx)]
    return render(request, db, ctx, "sync/list.html", connections=rows,
                  providers=list(PROVIDERS.values()),
                  can_manage=ctx.can(Perm.SYNC_CONNECTION_MANAGE),
                  webhook_providers=webhooks.WEBHOOK_PROVIDERS)


# --- create ---------------------------------------------------------------------------------


@router.get("/connections/new")
def new_connection_page(request: Request, db: DB, ctx: ManageConnections) -> Response:
    provider = request.query_params.get("provider", "").upper()
    spec = PROVIDERS.get(provider)
    return render(request, db, ctx, "sync/form.html", spec=spec, connection=None, values={},
                  providers=list(PROVIDERS.values()), directions=list(Direction),
                  direction_text=DIRECTION_TEXT,
                  can_edit_base_url=ctx.is_platform_admin)


def _credentials_from_form(form: FormData, provider: str) -> dict[str, str]:
    spec = PROVIDERS[provider]
    out = {}
    for f in spec.credentials:
        value = form.get(f"cred_{f.key}")
        if isinstance(value, str) and value.strip():
            out[f.key] = value  # blank inputs keep the stored value
        elif form.get(f"clear_{f.key}") == "on" and not f.required:
            out[f.key] = ""  # an explicit "clear" of an optional credential
    return out


def _settings_from_form(form: FormData, provider: str) -> dict[str, str]:
    """Every setting field of the form as typed (blank removes it; the service checks)."""
    return {f.key: str(form.get(f"setting_{f.key}") or "")
            for f in PROVIDERS[provider].all_settings if f"setting_{f.key}" in form}


def _event_ids(form: FormData) -> list[str]:
    raw = form.get("event_ids")
    text = raw if isinstance(raw, str) else ""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _safe_values(form: FormData) -> dict[str, Any]:
    """What the form may show back after an error: never a credential."""
    return {k: v for k, v in form.items() if not k.startswith("cred_") and k != "csrf_token"}


@router.post("/connections/new")
def create_connection(
    request: Request, db: DB, ctx: ManageConnections, keyring: AppKeyring, form: PostedForm
) -> Response:
    provider = str(form.get("provider", "")).upper()
    spec = PROVIDERS.get(provider)
    try:
        if spec is None:
            raise Invalid(f"provider: choose one of {', '.join(PROVIDERS)}", field="provider")
        data: dict[str, Any] = {
            "provider": provider, "name": form.get("name", ""),
            "credentials": _credentials_from_form(form, provider),
            "direction": form.get("direction") or None, "event_ids": _event_ids(form),
            "settings": _settings_from_form(form, provider)}
        base_url = str(form.get("base_url", "")).strip()
        if base_url:
            data["base_url"] = base_url
        connection = service.create_connection(
            db, ctx, keyring=keyring, data=validate_model(ConnectionCreate, data))
    except DomainError as exc:
        db.rollback()
        return render(request, db, ctx, "sync/form.html", status_code=exc.status_code,
                      spec=spec, connection=None, values=_safe_values(form),
                      providers=list(PROVIDERS.values()), directions=list(Direction),
                      direction_text=DIRECTION_TEXT,
                      can_edit_base_url=ctx.is_platform_admin, **form_error(exc))
    db.commit()
    return _redirect(f"/connections/{connection.id}", "Connection added. Test it now.")


# --- edit, test, delete ---------------------------------------------------------------------


def _edit(request: Request, db: DB, ctx: TenantContext, keyring: Keyring,
          connection: ProviderConnection, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("values", {})
    return render(request, db, ctx, "sync/form.html", status_code=status_code,
                  spec=service.spec_of(connection), connection=service.to_read(keyring, connection),
                  providers=list(PROVIDERS.values()), directions=list(Direction),
                  direction_text=DIRECTION_TEXT,
                  can_edit_base_url=ctx.is_platform_admin,
                  webhook_providers=webhooks.WEBHOOK_PROVIDERS,
                  participant_source=connection.direction == Direction.REGISTRATION,
                  deletion=service.deletion_of(db, ctx, connection_id=connection.id),
                  **links_context(db, ctx, connection.id), **context)


@router.get("/connections/{connection_id}")
def edit_connection_page(connection_id: uuid.UUID, request: Request, db: DB,
                         ctx: ManageConnections, keyring: AppKeyring) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    return _edit(request, db, ctx, keyring, connection)


@router.post("/connections/{connection_id}")
def update_connection(
    connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageConnections,
    keyring: AppKeyring, form: PostedForm
) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    data: dict[str, Any] = {"name": form.get("name") or None,
                            "direction": form.get("direction") or None,
                            # absent from the form (a partial post): the chosen events stay
                            "event_ids": _event_ids(form) if "event_ids" in form else None,
                            "credentials": _credentials_from_form(form, connection.provider),
                            "settings": _settings_from_form(form, connection.provider)}
    base_url = str(form.get("base_url", "")).strip()
    if base_url:  # the field is read-only for everyone but platform admins
        data["base_url"] = base_url
    try:
        service.update_connection(db, ctx, keyring=keyring, connection_id=connection_id,
                                  data=validate_model(ConnectionUpdate, data))
    except DomainError as exc:
        db.rollback()
        connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
        return _edit(request, db, ctx, keyring, connection, status_code=exc.status_code,
                     values=_safe_values(form), **form_error(exc))
    db.commit()
    return _redirect(f"/connections/{connection_id}", "Connection saved")


@router.post("/connections/{connection_id}/test")
def test_connection(connection_id: uuid.UUID, request: Request, db: DB,
                    ctx: ManageConnections, keyring: AppKeyring) -> Response:
    result = service.check_connection(db, ctx, keyring=keyring, connection_id=connection_id)
    db.commit()
    if is_htmx(request):
        return render(request, db, ctx, "sync/_check.html", result=result,
                      connection_id=connection_id)
    return _redirect(f"/connections/{connection_id}",
                     ("Connection works: " if result.ok else "Connection failed: ")
                     + result.message)


@router.post("/connections/{connection_id}/delete")
def delete_connection(connection_id: uuid.UUID, db: DB, ctx: ManageConnections) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    name = connection.name
    gone = service.delete_connection(db, ctx, connection_id=connection_id)  # 409 if syncing
    db.commit()
    return _redirect("/connections", f"Connection {name} deleted with {gone.summary()}")


# --- field mapping --------------------------------------------------------------------------


def _lists_participants(connection: ProviderConnection) -> bool:
    """Whether the provider's adapter can list participants: only then can the editor fetch
    a live sample (Copernico, for one, cannot: it takes a pasted one)."""
    return service.spec_of(connection).lists_participants


def _known_paths(form: FormData) -> list[str]:
    return str(form.get("known_paths", "")).split()


def _mapping(request: Request, db: DB, ctx: TenantContext, connection: ProviderConnection,
             rows: list[editor.EditorRow], status_code: int = 200, *,
             fragment: bool = False, paths: list[str] | None = None, **context: Any
             ) -> Response:
    """The editor page, or (``fragment``, for htmx) only its rules table."""
    context.setdefault("paths_note", None)
    return render(request, db, ctx,
                  "sync/_mapping_rules.html" if fragment else "sync/mapping.html",
                  status_code=status_code, connection=connection,
                  spec=service.spec_of(connection), rows=rows,
                  ignored_rules=connection_rules(connection.field_mapping).ignored,
                  paths=paths or [], step_kinds=editor.STEP_KINDS,
                  date_formats=editor.DATE_FORMATS, gender_labels=editor.GENDER_LABELS,
                  notation_help=NOTATION_HELP, live=_lists_participants(connection),
                  event_ids=service.chosen_events(connection), **context)


def _defaults(connection: ProviderConnection) -> dict[str, str]:
    return default_mapping(connection.provider)


@router.get("/connections/{connection_id}/mapping")
def mapping_page(connection_id: uuid.UUID, request: Request, db: DB,
                 ctx: ManageConnections) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    rules = connection_rules(connection.field_mapping).rules
    return _mapping(request, db, ctx, connection,
                    editor.rows_of_rules(rules, _defaults(connection)))


@router.post("/connections/{connection_id}/mapping")
def save_mapping(
    connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageConnections,
    keyring: AppKeyring, form: PostedForm
) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    defaults = _defaults(connection)
    try:
        rules = editor.rules_of_form(form, defaults)
        service.update_connection(db, ctx, keyring=keyring, connection_id=connection_id,
                                  data=ConnectionUpdate(field_mapping=rules))
    except DomainError as exc:
        db.rollback()
        connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
        return _mapping(request, db, ctx, connection, editor.rows_of_form(form, defaults),
                        status_code=exc.status_code, paths=_known_paths(form),
                        **form_error(exc))
    db.commit()
    return _redirect(f"/connections/{connection_id}/mapping", "Field mapping saved")


def _sample(db: DB, ctx: TenantContext, keyring: Keyring, connection: ProviderConnection,
            form: FormData, rules: list[MappingRule]) -> tuple[list[Any], str, str]:
    """The sample the form names: pasted records, else a few participants fetched live
    (a provider that cannot list participants says so). (sample, origin, event ref)"""
    pasted = str(form.get("sample", "")).strip()
    event_ref = str(form.get("event_id", "")).strip()
    if pasted:
        return _parse_sample(pasted), "pasted", event_ref
    if not _lists_participants(connection):
        raise Invalid(f"sample: {service.spec_of(connection).label} cannot list participants, "
                      "so there is no live sample; paste a few of its records",
                      field="sample")
    sample = service.fetch_sample_participants(
        db, ctx, keyring=keyring, connection_id=connection.id, event_id=event_ref or None,
        mapping_sources=[p for rule in rules for p in rule.sources])
    return sample, "provider", event_ref


@router.post("/connections/{connection_id}/mapping/preview")
def preview_mapping(
    connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageConnections,
    keyring: AppKeyring, form: PostedForm
) -> Response:
    """The mapping as typed (not saved) on a pasted sample or a live one; a partial. No
    rule at all previews what the default mapping alone gives."""
    try:
        connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
        rules = editor.rules_of_form(form, _defaults(connection))
        sample, origin, event_ref = _sample(db, ctx, keyring, connection, form, rules)
        preview = service.preview_mapping(rules, sample, origin=origin,
                                          provider=connection.provider, event_ref=event_ref)
    except ConnectionNotFound:
        raise
    except DomainError as exc:
        return render(request, db, ctx, "sync/_preview.html", status_code=200, preview=None,
                      **form_error(exc))
    return render(request, db, ctx, "sync/_preview.html", preview=preview,
                  targets=list(TARGET_FIELDS), labels=TARGET_FIELDS, rule_count=len(rules))


@router.post("/connections/{connection_id}/mapping/fields")
def mapping_fields(
    connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageConnections,
    keyring: AppKeyring, form: PostedForm
) -> Response:
    """The provider's field paths, found in a sample (pasted, else fetched live), offered
    in every row's dropdown; the rows keep what was typed. The rules table (htmx) or the
    page."""
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    defaults = _defaults(connection)
    rows = editor.rows_of_form(form, defaults)
    known = _known_paths(form)
    try:
        sample, origin, event_ref = _sample(db, ctx, keyring, connection, form, rules=[])
    except DomainError as exc:
        return _mapping(request, db, ctx, connection, rows, fragment=is_htmx(request),
                        paths=known, **form_error(exc))
    records = [item.raw if isinstance(item, ProviderParticipant) else item for item in sample]
    paths = editor.sample_paths(records, known)
    where = (f"{len(records)} participant(s) of provider event {event_ref or 'chosen'}"
             if origin == "provider" else f"{len(records)} pasted record(s)")
    return _mapping(request, db, ctx, connection, rows, fragment=is_htmx(request),
                    paths=paths, paths_note=f"{len(paths)} field paths found in {where}.")


@router.post("/connections/{connection_id}/mapping/steps")
def mapping_steps(
    connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageConnections,
    form: PostedForm
) -> Response:
    """Add the step picked in a row (``add_step`` = the row) or remove one (``remove_step``
    = "row:position"), as notation in the row's steps; nothing is saved. The rules table
    (htmx) or the page."""
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    defaults = _defaults(connection)
    values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    error: dict[str, Any] = {}
    try:
        row, position = _step_target(form)
        values[f"transforms_{row}"] = (editor.add_step(form, row) if position is None
                                       else editor.remove_step(form, row, position))
    except DomainError as exc:
        error = form_error(exc)
    return _mapping(request, db, ctx, connection, editor.rows_of_form(values, defaults),
                    fragment=is_htmx(request), paths=_known_paths(form),
                    status_code=200 if is_htmx(request) or not error else 422, **error)


def _step_target(form: FormData) -> tuple[int, int | None]:
    added = str(form.get("add_step", "")).strip()
    if added.isdigit():
        return int(added), None
    row, _, position = str(form.get("remove_step", "")).partition(":")
    if row.strip().isdigit() and position.strip().isdigit():
        return int(row), int(position)
    raise Invalid("add_step: name the row to add the step to", field="add_step")


def _parse_sample(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"sample: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                      f"{exc.msg})", field="sample") from None
    records = data if isinstance(data, list) else [data]
    if not records or not all(isinstance(r, dict) for r in records):
        raise Invalid("sample: give one JSON object (a provider record) or a list of them",
                      field="sample")
    return records[:50]


@router.get("/connections/{connection_id}/webhook-deliveries")
def webhook_deliveries(connection_id: uuid.UUID, request: Request, db: DB,
                       ctx: ReadConnections) -> Response:
    """The last deliveries, newest first: a fragment of the connection page (htmx), or a
    page of its own for those who may read connections but not edit them."""
    connection, deliveries = webhooks.list_deliveries(db, ctx, connection_id=connection_id)
    template = ("sync/_webhook_deliveries.html" if is_htmx(request)
                else "sync/webhook_deliveries.html")
    return render(request, db, ctx, template, deliveries=deliveries, connection=connection,
                  connection_id=connection_id, limit=webhooks.LIST_LIMIT)


@router.get("/connections/{connection_id}/events")
def provider_events(connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageConnections,
                    keyring: AppKeyring) -> Response:
    """The mapping page loads this fragment: the provider's events as input suggestions
    (a provider that cannot be reached says why instead)."""
    try:
        events = service.list_provider_events(db, ctx, keyring=keyring,
                                              connection_id=connection_id)
    except SampleUnavailable as exc:
        return render(request, db, ctx, "sync/_event_choices.html", events=[],
                      error=exc.detail)
    return render(request, db, ctx, "sync/_event_choices.html", events=events, error=None)
