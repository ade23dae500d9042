"""Sending one notice: an e-mail over SMTP, or a signed JSON webhook.

Webhooks: the body is the notice's JSON; ``X-Racehub-Signature: sha256=<hex>`` is the
HMAC-SHA256 of those exact bytes with the tenant's webhook secret. The URL's name is
resolved first and every address it resolves to must be public (not private, loopback,
link-local, reserved, multicast or unspecified) unless RACEHUB_ALERT_WEBHOOK_ALLOW_PRIVATE;
the request then goes to the checked address (the name kept in ``Host`` and, for HTTPS, in
the TLS server name), so a name re-resolving to an internal address in between (DNS
rebinding) is never followed. Redirects are not followed either.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from racehub.settings import Settings

SIGNATURE_HEADER = "X-Racehub-Signature"


class AddressRefused(Exception):
    """The URL may not be called (a private address, a bad scheme): never retried."""


class DeliveryFailed(Exception):
    """This attempt failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Target:
    url: str  # the URL with the checked address in place of the name
    host_header: str
    sni_hostname: str | None


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _refused_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _refused_reason(address.ipv4_mapped)
    for flag in ("is_loopback", "is_link_local", "is_private", "is_multicast", "is_reserved",
                 "is_unspecified"):
        if getattr(address, flag):
            return flag.removeprefix("is_").replace("_", "-")
    if not address.is_global:
        return "not-global"
    return None


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> Target:
    """The URL's address, checked (see the module's doc). Raises AddressRefused naming why;
    DeliveryFailed when the name does not resolve (it may later)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("the webhook URL must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise AddressRefused("the webhook URL must not hold a user name or password")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryFailed(f"the webhook host {host!r} does not resolve ({exc})") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = _refused_reason(address)
        if reason is not None and not allow_private:
            raise AddressRefused(
                f"the webhook host {host!r} resolves to {address}, a {reason} address: "
                "racehub does not call private, loopback or link-local addresses")
        addresses.append(address)
    if not addresses:
        raise DeliveryFailed(f"the webhook host {host!r} has no address")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{port}"
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" + (f":{parts.port}" if parts.port else "")
    return Target(url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
                  host_header=host_header,
                  sni_hostname=host if parts.scheme == "https" else None)


def post_webhook(url: str, *, secret: str, payload: dict[str, Any], delivery_id: str,
                 event: str, settings: Settings) -> str:
    """POST the notice; returns what the receiver answered (for the log). Raises
    AddressRefused, or DeliveryFailed (retryable unless the receiver refused it with a
    4xx other than 408/429)."""
    target = check_url(url, allow_private=settings.alert_webhook_allow_private)
    body = body_bytes(payload)
    headers = {"Content-Type": "application/json", "Host": target.host_header,
               "User-Agent": "racehub-alerts/1", SIGNATURE_HEADER: sign(secret, body),
               "X-Racehub-Delivery": delivery_id, "X-Racehub-Event": event}
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
    try:
        with httpx.Client(timeout=settings.smtp_timeout_seconds, follow_redirects=False,
                          trust_env=False) as client:
            response = client.post(target.url, content=body, headers=headers,
                                   extensions=extensions)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:500]) from None
    if 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}"
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    raise DeliveryFailed(f"the receiver answered HTTP {response.status_code}",
                         retryable=retryable)


def send_email(recipients: list[str], *, subject: str, body: str, settings: Settings) -> str:
    """Send one message to ``recipients`` through RACEHUB_SMTP_HOST; returns the server's
    answer for the log. Raises AddressRefused when no server is configured, DeliveryFailed
    otherwise (a refused recipient or login is not retried)."""
    if not settings.smtp_host:
        raise AddressRefused("no SMTP server is configured (RACEHUB_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.smtp_timeout_seconds) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password \
                    else ""
                smtp.login(settings.smtp_user, password)
            refused = smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(f"the SMTP server refused the login ({exc.smtp_code})",
                             retryable=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed("the SMTP server refused every recipient: "
                             + ", ".join(sorted(exc.recipients)), retryable=False) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}"[:500]) from None
    if refused:
        return "sent; refused: " + ", ".join(sorted(refused))
    return f"sent to {len(recipients)} recipient(s)"
