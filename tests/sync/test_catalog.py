"""The connection catalogue (forms, validation) agrees with the adapter registry."""

from __future__ import annotations

from racehub.providers import registry
from racehub.sync.catalog import PROVIDERS, Direction


def test_every_provider_is_known_to_both_with_the_same_address_and_credentials() -> None:
    assert set(PROVIDERS) == {k.value for k in registry.ProviderKey}
    for key, spec in PROVIDERS.items():
        theirs = registry.get_spec(key)
        assert spec.base_url == theirs.default_base_url, key
        assert [(f.key, f.required) for f in spec.credentials] == [
            (f.name, f.required) for f in theirs.credential_fields], key
        expected = (Direction.REGISTRATION if theirs.kind == registry.ProviderKind.REGISTRATION
                    else Direction.SCORING)
        assert spec.direction == expected, key


def test_a_password_is_never_hinted() -> None:
    passwords = {(k, f.key) for k, s in PROVIDERS.items() for f in s.credentials if f.password}
    assert passwords == {("RACE_ROSTER", "password"), ("CHRONOTRACK", "user_pass")}
