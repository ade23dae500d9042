"""Encryption of secrets at rest (provider credentials) with a rotating ``MultiFernet``.

Keys come from ``RACEHUB_SECRET_KEYS`` (comma separated, newest first). The first key
encrypts; every key decrypts, so a new key can be deployed first and old tokens
re-encrypted later (``racehub keys rotate``) without downtime. Outside production, a
missing setting falls back to a key derived from a public constant: fine for the demo and
the tests, worthless as protection, and said so in the log.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from functools import lru_cache

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from racehub.settings import Settings, get_settings

log = structlog.get_logger(__name__)

# Public on purpose: anyone can rebuild this key, so it protects nothing.
_DEV_KEY_LABEL = b"racehub development key - not a secret - never use in production"


class KeyConfigError(RuntimeError):
    """The secret-key setting is missing or malformed; the message names the setting."""


class DecryptError(Exception):
    """A token none of the configured keys opens (a removed key, or tampered data)."""


def dev_key() -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(_DEV_KEY_LABEL).digest())


def generate_key() -> str:
    return Fernet.generate_key().decode()


def key_id(key: bytes | str) -> str:
    """A short, non-reversible name for a key (shown in logs, audit entries and the CLI)."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:12]


def parse_keys(value: str) -> list[bytes]:
    keys = [part.strip().encode() for part in value.split(",") if part.strip()]
    if not keys:
        raise KeyConfigError("RACEHUB_SECRET_KEYS is empty")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # Never echo the value: it may be a real key with a typo.
            raise KeyConfigError(
                f"RACEHUB_SECRET_KEYS: key #{position} is not a Fernet key (32 url-safe "
                "base64-encoded bytes; make one with `racehub keys generate`)"
            ) from None
    return keys


class Keyring:
    """The configured keys, newest first."""

    def __init__(self, keys: Sequence[bytes], *, development: bool = False) -> None:
        if not keys:
            raise KeyConfigError("at least one key is needed")
        self.keys = list(keys)
        self.development = development
        self._fernet = MultiFernet([Fernet(k) for k in self.keys])

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def key_ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise DecryptError(
                "none of the configured RACEHUB_SECRET_KEYS decrypts this value "
                "(was the key that encrypted it removed?)"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the primary key (any configured key may open it)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise DecryptError(
                "none of the configured RACEHUB_SECRET_KEYS decrypts this value"
            ) from None

    def with_new_primary(self, key: bytes) -> Keyring:
        return Keyring([key, *[k for k in self.keys if k != key]],
                       development=self.development)

    def setting_value(self) -> str:
        """What RACEHUB_SECRET_KEYS must hold for this keyring."""
        return ",".join(k.decode() for k in self.keys)


def keyring_from_settings(settings: Settings) -> Keyring:
    if settings.secret_keys is not None and settings.secret_keys.get_secret_value().strip():
        return Keyring(parse_keys(settings.secret_keys.get_secret_value()))
    if settings.environment == "production":
        raise KeyConfigError(
            "RACEHUB_SECRET_KEYS is not set: production refuses to store provider "
            "credentials without a key. Generate one with `racehub keys generate`."
        )
    log.warning("crypto.development_key",
                detail="RACEHUB_SECRET_KEYS unset: provider credentials are encrypted with a "
                       "publicly known development key. Set RACEHUB_SECRET_KEYS for real use.",
                environment=settings.environment)
    return Keyring([dev_key()], development=True)


@lru_cache
def get_keyring() -> Keyring:
    """The keyring of the process settings (workers, CLI); the web app keeps its own."""
    return keyring_from_settings(get_settings())
