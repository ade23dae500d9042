"""Provider settings: one model per provider, read by its adapter and checked when stored."""

from __future__ import annotations

import ast
import importlib
import inspect
from typing import Any

import pytest

from racehub.providers.base import BadData, ProviderAdapter
from racehub.providers.catalog import PROVIDERS
from racehub.providers.registry import build_adapter

CREDENTIALS = {
    "RUNSIGNUP": {"api_key": "k-123456", "api_secret": "s-123456"},
    "RACE_ROSTER": {"client_id": "c", "client_secret": "s", "username": "u", "password": "p"},
    "HAKU": {"client_id": "c", "client_secret": "s"},
    "CHRONOTRACK": {"client_id": "c", "user_id": "u", "user_pass": "p"},
    "COPERNICO": {},
}


def settings_read(cls: type) -> tuple[set[str], list[str]]:
    """(names read as ``self.settings.<name>``, other uses of ``self.settings`` that are
    not an attribute read, e.g. ``.get("x")`` or ``["x"]``) in ``cls``'s module."""
    tree = ast.parse(inspect.getsource(importlib.import_module(cls.__module__)))
    names: set[str] = set()
    other: list[str] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "settings"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            if node.attr in ("get", "model_dump", "items", "keys"):
                other.append(ast.unparse(node))
            else:
                names.add(node.attr)
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "settings"):
            other.append(ast.unparse(node))
    return names, other


@pytest.mark.parametrize("key", list(PROVIDERS))
def test_each_adapter_reads_only_settings_its_model_declares(key: str) -> None:
    adapter = PROVIDERS[key].adapter_class()
    model = adapter.settings_model
    for cls in (adapter, ProviderAdapter):
        read, other = settings_read(cls)
        assert read, cls  # the scan finds the reads (it would pass vacuously otherwise)
        assert read <= set(model.model_fields), (key, read - set(model.model_fields))
        assert other == [], (key, other)


@pytest.mark.parametrize("key", list(PROVIDERS))
def test_every_setting_the_model_declares_can_be_stored_through_the_catalog(key: str) -> None:
    spec = PROVIDERS[key]
    assert spec.settings_model is spec.adapter_class().settings_model
    assert [f.key for f in spec.all_settings] == spec.settings_model.user_fields()


@pytest.mark.parametrize(("key", "settings", "field"), [
    ("RUNSIGNUP", {"race_ids": ["12", "abc"]}, "settings.race_ids"),
    ("RUNSIGNUP", {"time_zone": "Mars/Olympus"}, "settings.time_zone"),
    ("RUNSIGNUP", {"results_per_page": 0}, "settings.results_per_page"),
    ("RACE_ROSTER", {"results_api": "v3"}, "settings.results_api"),
    ("RACE_ROSTER", {"result_event_ids": ["1"]}, "settings.result_event_ids"),
    ("HAKU", {"token_url": "ftp://x"}, "settings.token_url"),
    ("CHRONOTRACK", {"page_size": "lots"}, "settings.page_size"),
    ("COPERNICO", {"max_pages": 0}, "settings.max_pages"),
    ("COPERNICO", {"read_timeout": 10_000}, "settings.read_timeout"),
    ("HAKU", {"shoe_size": 44}, "settings.shoe_size: no such setting"),
])
def test_a_bad_or_unknown_setting_is_refused_naming_it(key: str, settings: dict[str, Any],
                                                        field: str) -> None:
    with pytest.raises(BadData, match=field):
        build_adapter(key, credentials=CREDENTIALS[key], settings=settings)


def test_an_adapter_reads_what_the_model_made_of_the_stored_values() -> None:
    adapter = build_adapter("RUNSIGNUP", credentials=CREDENTIALS["RUNSIGNUP"], settings={
        "race_ids": "77", "include_questions": "yes", "results_per_page": "300",
        "eventIds": ["5:6", " "], "max_pages": 9})
    assert adapter.settings.race_ids == ["77"]  # type: ignore[attr-defined]
    assert adapter.settings.include_questions is True  # type: ignore[attr-defined]
    assert adapter.per_page == 300  # type: ignore[attr-defined]
    assert adapter.settings.eventIds == ["5:6"]
    assert adapter.max_pages == 9
