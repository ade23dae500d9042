"""The mapping preview's live sample from the RunSignUp simulator in real-shapes mode (the
shapes seen in real replies), through the real adapter over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.providers.registry import build_adapter as build_provider_adapter
from racehub.providers.runsignup.simulator import RunSignUpSimulator, make_app
from racehub.providers.simulator import serve_in_thread
from racehub.sync import adapters, service
from racehub.sync.exceptions import SampleUnavailable
from racehub.sync.models import ProviderConnection
from racehub.sync.transforms import MappingRule
from tests.sync.conftest import RSU_KEY, RSU_SECRET
from tests.sync.test_service import make


@pytest.fixture
def sim() -> Iterator[tuple[RunSignUpSimulator, str]]:
    simulator = RunSignUpSimulator(api_key=RSU_KEY, api_secret=RSU_SECRET, races=1,
                                   events_per_race=1, participants_per_event=6,
                                   real_shapes=True)
    with ExitStack() as stack:
        yield simulator, stack.enter_context(serve_in_thread(make_app(simulator=simulator)))


def factory_for(base: str):  # type: ignore[no-untyped-def]
    def factory(connection: ProviderConnection, credentials: dict[str, str]) -> Any:
        return build_provider_adapter("RUNSIGNUP", base_url=base + "/Rest",
                                      credentials=credentials,
                                      settings=connection.settings or {})

    return factory


def event_ref(simulator: RunSignUpSimulator) -> str:
    [race] = simulator.races.values()
    return f"{race['race_id']}:{race['events'][0]['event_id']}"


def test_a_sample_that_met_only_problems_shows_the_problems(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str]
) -> None:
    simulator, base = sim
    connection = make(db, ctx, keyring)
    simulator.faults.arm("malformed_rows", 1, rows=[0, 1, 2, 3, 4, 5])
    with pytest.raises(SampleUnavailable) as info:
        service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id,
                             event_id=event_ref(simulator), adapter_factory=factory_for(base))
    message = str(info.value)
    assert "has no participants" not in message
    assert "no participant could be read (6 row problem(s))" in message
    assert "row 1" in message and "registration_date" in message and "user.dob" in message
    assert "and 3 more" in message and info.value.field == "eventId"


def test_a_preview_reading_question_responses_gets_them(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str]
) -> None:
    simulator, base = sim
    connection = make(db, ctx, keyring)
    ref = event_ref(simulator)
    plain = service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id,
                                 event_id=ref, adapter_factory=factory_for(base))
    assert plain and all("question_responses" not in row for row in plain)
    rules = [MappingRule(target="first_name", sources=["question_responses.0.response"])]
    asked = service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id,
                                 event_id=ref, adapter_factory=factory_for(base),
                                 mapping_sources=[p for r in rules for p in r.sources])
    assert all(row["question_responses"] for row in asked)
    # Rows without a registration_id are in the sample too (keyed by their user).
    assert any("registration_id" not in row for row in asked)


def test_a_saved_mapping_reading_question_responses_asks_for_them(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    credentials = {"api_key": RSU_KEY, "api_secret": RSU_SECRET}
    with adapters.build_adapter(connection, credentials) as adapter:
        assert not adapter._include_questions()  # type: ignore[attr-defined]
    connection.field_mapping = [{"target": "first_name", "sources": ["user.first_name"]},
                                {"target": "last_name",
                                 "sources": ["question_responses.1.response"]}]
    with adapters.build_adapter(connection, credentials) as adapter:
        assert adapter._include_questions()  # type: ignore[attr-defined]
