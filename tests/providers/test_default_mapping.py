"""Each adapter's DEFAULT_FIELD_MAPPING (the table the mapping page shows) is what its
default mapping reads: a value put at a table's path comes out in that field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from racehub.providers.catalog import PROVIDERS

# Fields read as text as sent (birth dates, genders and times are each provider's format).
TEXT_FIELDS = ("first_name", "last_name", "email", "bib", "team", "city", "region", "country",
               "phone")
EVENT_REFS = {"RUNSIGNUP": "5:7", "RACE_ROSTER": "5:7", "HAKU": "5", "CHRONOTRACK": "5:7",
              "COPERNICO": "race-5:event-7"}


def put(record: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    node: Any = record
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        if following is None:
            node[int(part) if isinstance(node, list) else part] = value
            return
        child: Any = [] if following.isdigit() else {}
        if isinstance(node, list):
            while len(node) <= int(part):
                node.append(child)
            node = node[int(part)]
        else:
            node = node.setdefault(part, child)


@pytest.mark.parametrize("key", list(PROVIDERS))
def test_the_default_mapping_table_is_what_the_adapter_reads(key: str) -> None:
    adapter = PROVIDERS[key].adapter_class()
    table = adapter.default_field_mapping
    record: dict[str, Any] = {}
    put(record, table["ref"], 101)
    if "event_ref" in table:
        put(record, table["event_ref"], 7)
    expected = {}
    for name in TEXT_FIELDS:
        if name in table:
            expected[name] = f"Zq{name.replace('_', '')}"[:3 if name == "country" else 20]
            put(record, table[name], expected[name])
    participant = adapter.participant_from_raw(record, EVENT_REFS[key])
    assert {name: getattr(participant, name) for name in expected} == expected
    assert participant.ref == "101"
