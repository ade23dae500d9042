"""Credential encryption: MultiFernet keys from settings, newest first, rotation."""

from __future__ import annotations

import io
import json
import logging

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from racehub.app import create_app
from racehub.core.crypto import (
    DecryptError,
    KeyConfigError,
    Keyring,
    dev_key,
    key_id,
    keyring_from_settings,
    parse_keys,
)
from racehub.core.logging import configure_logging
from racehub.settings import Settings


def _settings(**kw: object) -> Settings:
    return Settings(database_url="postgresql://unused@127.0.0.1/none", **kw)  # type: ignore[arg-type]


def test_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token_by_old = Keyring([old]).encrypt("s3cret-value")
    keyring = keyring_from_settings(
        _settings(secret_keys=SecretStr(f"{new.decode()}, {old.decode()}")))

    assert keyring.primary_id == key_id(new)
    assert keyring.decrypt(token_by_old) == "s3cret-value"  # the old key still decrypts
    token_by_new = keyring.encrypt("other")
    assert Keyring([new]).decrypt(token_by_new) == "other"  # written with the newest key
    with pytest.raises(DecryptError):
        Keyring([old]).decrypt(token_by_new)


def test_rotation_reencrypts_under_the_new_key_so_the_old_one_can_go() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = Keyring([old]).encrypt("api-secret-123")
    rotated = Keyring([old]).with_new_primary(new).rotate(token)

    assert rotated != token
    assert Keyring([new]).decrypt(rotated) == "api-secret-123"  # old key removed: still fine
    with pytest.raises(DecryptError, match="RACEHUB_SECRET_KEYS"):
        Keyring([old]).decrypt(rotated)


def test_production_refuses_to_start_without_a_key() -> None:
    with pytest.raises(KeyConfigError, match="RACEHUB_SECRET_KEYS is not set"):
        keyring_from_settings(_settings(environment="production"))
    with pytest.raises(KeyConfigError, match="RACEHUB_SECRET_KEYS"):
        create_app(_settings(environment="production"))


def test_production_starts_with_a_key() -> None:
    key = Fernet.generate_key().decode()
    keyring = keyring_from_settings(_settings(environment="production",
                                              secret_keys=SecretStr(key)))
    assert not keyring.development
    assert keyring.key_ids == [key_id(key)]


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_derive_a_public_key_and_say_so(environment: str) -> None:
    configure_logging("INFO", json=True)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)
    try:
        keyring = keyring_from_settings(_settings(environment=environment))
    finally:
        logging.getLogger().removeHandler(handler)
    assert keyring.development and keyring.keys == [dev_key()]
    [line] = [json.loads(x) for x in buffer.getvalue().splitlines()
              if "crypto.development_key" in x]
    assert line["level"] == "warning" and "publicly known development key" in line["detail"]


def test_a_malformed_key_is_refused_by_position_without_echoing_it() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(KeyConfigError) as info:
        parse_keys(f"{good},not-a-real-key-abcdef")
    assert "key #2" in str(info.value)
    assert "not-a-real-key" not in str(info.value)
