"""What providers posted to a connection's webhook (sync.webhooks), newest first: the
whole history behind the connection page's last-twenty list, for a race's post-mortem."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, column, func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.pagination import SortKey
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register
from racehub.sync import service as sync_service
from racehub.sync.models import ProviderConnection, WebhookDelivery

delivery = WebhookDelivery


class WebhookDeliveryExportFilters(ExportFilters):
    connection_id: uuid.UUID | None = None
    type: str | None = None


# A delivery names one participant or, for a batch change, a list of them.
_participants = func.coalesce(delivery.participant_id, select(
    func.string_agg(column("value", Text), ", ")).select_from(
    func.jsonb_array_elements_text(delivery.participant_ids)).scalar_subquery())


def _query(ctx: TenantContext, flt: WebhookDeliveryExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    stmt = (scoped(ctx, delivery)
            .join(ProviderConnection, ProviderConnection.id == delivery.connection_id)
            .where(delivery.received_at <= cutoff))
    if flt.connection_id is not None:
        stmt = stmt.where(delivery.connection_id == flt.connection_id)
    if flt.type:
        stmt = stmt.where(delivery.type == flt.type)
    return ViewQuery(stmt, SortKey(columns=[delivery.received_at, delivery.id],
                                   descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: WebhookDeliveryExportFilters) -> str:
    if flt.connection_id is None:
        return "Webhook deliveries"
    connection = sync_service.get_connection_or_raise(db, ctx,
                                                      connection_id=flt.connection_id)
    return f"Webhook deliveries — {connection.name}"


def _list_url(flt: WebhookDeliveryExportFilters, sort: str, descending: bool) -> str:
    if flt.connection_id is None:
        return "/connections"
    return f"/connections/{flt.connection_id}/webhook-deliveries"


VIEW = register(ExportView(
    key="webhook_deliveries",
    label="Webhook deliveries",
    permission=Perm.SYNC_CONNECTION_READ,
    columns=(
        ExportColumn("received_at", "Received at (UTC)", delivery.received_at),
        ExportColumn("connection", "Connection", ProviderConnection.name),
        ExportColumn("type", "Type", delivery.type),
        ExportColumn("participant", "Participant", _participants),
        ExportColumn("point", "Point", delivery.point),
        ExportColumn("location", "Location", delivery.location),
        ExportColumn("raw_time", "Raw time", delivery.raw_time),
        ExportColumn("payload", "Payload (JSON)", delivery.payload, default=False),
        ExportColumn("id", "Delivery ID", delivery.id, default=False),
    ),
    filters=WebhookDeliveryExportFilters,
    sorts=("received_at",),
    query=_query,
    describe=_describe,
    list_url=_list_url,
    default_descending=True,
))
