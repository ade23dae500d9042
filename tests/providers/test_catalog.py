"""The provider catalogue (forms, validation, registry, demo) agrees with the adapters and
simulators it names."""

from __future__ import annotations

import importlib

from racehub.providers.catalog import PROVIDERS


def test_each_adapter_is_the_providers_with_its_address_and_credentials() -> None:
    for key, spec in PROVIDERS.items():
        adapter = spec.adapter_class()
        assert adapter.provider == key
        assert adapter.default_base_url == spec.base_url, key
        # What the adapter insists on is what the form requires; the rest is optional.
        assert set(adapter.credential_fields) == {f.key for f in spec.credentials
                                                  if f.required}, key
        assert set(adapter.credential_fields) | set(adapter.optional_credential_fields) == set(
            spec.credential_keys), key


def test_each_simulator_can_stand_in_for_its_provider() -> None:
    for spec in PROVIDERS.values():
        simulator = importlib.import_module(spec.simulator)
        assert callable(simulator.make_app), spec.key
        assert set(simulator.DEMO_CREDENTIALS) <= set(spec.credential_keys), spec.key


def test_a_password_is_never_hinted() -> None:
    passwords = {(k, f.key) for k, s in PROVIDERS.items() for f in s.credentials if f.password}
    assert passwords == {("RACE_ROSTER", "password"), ("CHRONOTRACK", "user_pass")}
