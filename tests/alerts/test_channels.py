"""The notices as received: e-mail by a real local SMTP server (aiosmtpd), webhooks by a
local HTTP server checking the signature; retries with backoff, every attempt logged;
private addresses refused unless the platform allows them."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.alerts.conftest import Evaluator, alerts_of
from tests.factories import make_tenant
from tests.sync.engine_helpers import T0, connect

from racehub.alerts import channels, service
from racehub.alerts.models import AlertDelivery, DeliveryStatus
from racehub.alerts.schemas import AlertSettingsUpdate
from racehub.alerts.tasks import deliver_due
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.exceptions import Invalid
from racehub.db.session import lend
from racehub.providers.simulator import serve_in_thread
from racehub.settings import Settings
from racehub.sync.models import ConnectionStatus

SMTP_USER, SMTP_PASSWORD = "racehub-mailer", "smtp-pass-Zq81"


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": message_from_bytes(envelope.content)})
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox("127.0.0.1", _free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER
              and auth_data.password.decode() == SMTP_PASSWORD)
        if ok:
            box.logins.append(SMTP_USER)
        return AuthResult(success=ok)

    controller = Controller(box, hostname=box.host, port=box.port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Receiver:
    url: str
    answers: list[int]  # status codes to answer, in order (then 200)
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    async def hook(request: Request) -> JSONResponse:
        target = holder[0]
        target.requests.append({"body": await request.body(),
                                "headers": dict(request.headers)})
        status = target.answers.pop(0) if target.answers else 200
        return JSONResponse({"ok": status < 300}, status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_in_thread(app) as base:
        holder.append(Receiver(f"{base}/hook", []))
        yield holder[0]


def _tenant_with_failed_connection(db: Session, keyring: Keyring) -> TenantContext:
    tenant = make_tenant(db, name="Fast Timing")
    ctx = TenantContext.system(tenant.id, label="test")
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest", name="RunSignUp main")
    connection.status = ConnectionStatus.FAILED
    connection.last_check_message = "RUNSIGNUP: key authentication failed (code 6)"
    db.flush()
    return ctx


def test_an_alert_e_mail_reaches_a_real_smtp_server_with_login(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator, mailbox: Mailbox,
) -> None:
    mail = settings.model_copy(update={
        "smtp_host": mailbox.host, "smtp_port": mailbox.port, "smtp_starttls": False,
        "smtp_user": SMTP_USER, "smtp_password": SecretStr(SMTP_PASSWORD),
        "smtp_from": "alerts@racehub.example", "public_url": "https://racehub.example"})
    ctx = _tenant_with_failed_connection(db, keyring)
    service.update_settings(db, ctx, keyring=keyring, settings=mail, data=AlertSettingsUpdate(
        email_recipients=["ops@fast-timing.example", "Night@Fast-Timing.example"]))
    service.evaluate(db, now=T0, settings=mail, keyring=keyring)
    [alert] = alerts_of(db, "credentials_refused")

    assert deliver_due(lend(db), now=T0, settings=mail, keyring=keyring) == 1
    [received] = mailbox.messages
    assert mailbox.logins == [SMTP_USER]
    assert sorted(received["to"]) == ["night@fast-timing.example", "ops@fast-timing.example"]
    message = received["message"]
    assert message["From"] == "alerts@racehub.example"
    assert message["Subject"] == ("[racehub] FIRING: Credentials refused: RunSignUp main")
    body = message.get_payload(decode=True).decode()
    assert "key authentication failed (code 6)" in body
    assert "Tenant: Fast Timing" in body
    assert f"https://racehub.example/alerts/{alert.id}" in body
    [delivery] = db.scalars(select(AlertDelivery)).all()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 1
    assert delivery.log[0]["ok"] and "sent to 2 recipient(s)" in delivery.log[0]["detail"]


def test_without_an_smtp_server_e_mail_notices_are_logged_as_refused(
    db: Session, settings: Settings, keyring: Keyring,
) -> None:
    ctx = _tenant_with_failed_connection(db, keyring)
    service.update_settings(db, ctx, keyring=keyring, settings=settings,
                            data=AlertSettingsUpdate(email_recipients=["ops@example.org"]))
    service.evaluate(db, now=T0, settings=settings, keyring=keyring)
    [delivery] = db.scalars(select(AlertDelivery)).all()
    assert delivery.status == DeliveryStatus.REFUSED
    assert delivery.error == "no SMTP server is configured (RACEHUB_SMTP_HOST)"


def test_a_webhook_is_signed_retried_with_backoff_and_every_attempt_logged(
    db: Session, settings: Settings, keyring: Keyring, receiver: Receiver,
) -> None:
    ctx = _tenant_with_failed_connection(db, keyring)
    answer = service.update_settings(db, ctx, keyring=keyring, settings=settings,
                                     data=AlertSettingsUpdate(webhook_url=receiver.url))
    secret = answer.webhook_secret
    assert secret and answer.webhook_secret_set
    # Shown once: reading the settings again gives only "set".
    assert service.read_settings(db, ctx, settings=settings).webhook_secret is None
    service.evaluate(db, now=T0, settings=settings, keyring=keyring)
    [alert] = alerts_of(db, "credentials_refused")

    receiver.answers = [503]  # the receiver is down once
    assert deliver_due(lend(db), now=T0, settings=settings, keyring=keyring) == 1
    [delivery] = db.scalars(select(AlertDelivery)).all()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.next_attempt_at == T0 + timedelta(minutes=1)
    assert "HTTP 503" in (delivery.error or "")
    # Not due before its backoff...
    assert deliver_due(lend(db), now=T0 + timedelta(seconds=59), settings=settings,
                       keyring=keyring) == 0
    # ...then sent.
    assert deliver_due(lend(db), now=T0 + timedelta(minutes=1), settings=settings,
                       keyring=keyring) == 1
    sent_row = db.scalars(select(AlertDelivery).execution_options(populate_existing=True)).one()
    assert sent_row.status == DeliveryStatus.SENT and sent_row.attempts == 2
    assert [entry["ok"] for entry in sent_row.log] == [False, True]

    first, second = receiver.requests
    assert first["body"] == second["body"]
    body, headers = second["body"], second["headers"]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-racehub-signature"], expected)
    assert headers["x-racehub-event"] == "alert.firing"
    assert headers["x-racehub-delivery"] == str(sent_row.id)
    assert headers["content-type"] == "application/json"
    sent = json.loads(body)
    assert sent["status"] == "firing" and sent["notice"] == "firing"
    assert sent["alert"]["id"] == str(alert.id)
    assert sent["alert"]["fingerprint"] == alert.fingerprint
    assert sent["tenant"] == {"id": str(ctx.tenant_id), "name": "Fast Timing"}
    # A wrong secret does not verify.
    wrong = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(headers["x-racehub-signature"], wrong)


def test_a_webhook_failing_every_attempt_is_given_up_after_the_last(
    db: Session, settings: Settings, keyring: Keyring, receiver: Receiver,
) -> None:
    ctx = _tenant_with_failed_connection(db, keyring)
    service.update_settings(db, ctx, keyring=keyring, settings=settings,
                            data=AlertSettingsUpdate(webhook_url=receiver.url))
    service.evaluate(db, now=T0, settings=settings, keyring=keyring)
    receiver.answers = [500] * 20
    at = T0
    waits = []
    for _ in range(service.MAX_ATTEMPTS):
        assert deliver_due(lend(db), now=at, settings=settings, keyring=keyring) == 1
        delivery = db.scalars(select(AlertDelivery)).one()
        if delivery.next_attempt_at is None:
            break
        waits.append(delivery.next_attempt_at - at)
        at = delivery.next_attempt_at
    assert waits == list(service.BACKOFF)  # 1, 2, 4, 8, 16 minutes
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == service.MAX_ATTEMPTS == len(receiver.requests)
    assert len(delivery.log) == service.MAX_ATTEMPTS


def test_a_private_webhook_address_is_refused_when_the_setting_is_off(
    db: Session, settings: Settings, keyring: Keyring, receiver: Receiver,
) -> None:
    ctx = _tenant_with_failed_connection(db, keyring)
    public_only = settings.model_copy(update={"alert_webhook_allow_private": False})
    for url in (receiver.url, "http://localhost:8080/hook", "http://10.0.0.5/hook",
                "http://169.254.169.254/latest/meta-data", "http://[::1]/hook",
                "http://[::ffff:127.0.0.1]/hook"):
        with pytest.raises(Invalid) as refused:
            service.update_settings(db, ctx, keyring=keyring, settings=public_only,
                                    data=AlertSettingsUpdate(webhook_url=url))
        assert refused.value.field == "webhookUrl"
        assert "racehub does not call private, loopback or link-local" in refused.value.detail
    with pytest.raises(Invalid, match="http:// or https://"):
        service.update_settings(db, ctx, keyring=keyring, settings=public_only,
                                data=AlertSettingsUpdate(webhook_url="file:///etc/passwd"))

    # Saved while the platform allowed it, then the setting turned off: the delivery is
    # refused (logged, never retried) and the receiver never called.
    service.update_settings(db, ctx, keyring=keyring, settings=settings,
                            data=AlertSettingsUpdate(webhook_url=receiver.url))
    service.evaluate(db, now=T0, settings=public_only, keyring=keyring)
    deliver_due(lend(db), now=T0, settings=public_only, keyring=keyring)
    [delivery] = db.scalars(select(AlertDelivery)).all()
    assert delivery.status == DeliveryStatus.REFUSED and delivery.next_attempt_at is None
    assert "127.0.0.1, a loopback address" in (delivery.error or "")
    assert receiver.requests == []


def test_a_public_address_passes_the_check_and_keeps_its_name() -> None:
    target = channels.check_url("https://93.184.215.14:8443/hooks?x=1", allow_private=False)
    assert target.url == "https://93.184.215.14:8443/hooks?x=1"
    assert target.host_header == "93.184.215.14:8443"
