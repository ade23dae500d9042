"""Every adapter method against its simulator in real-shapes mode: the shapes seen in real
responses (../shared/PROVIDERS.md, "seen in real responses"), which the plain simulators
do not send. Each case here failed before the adapter learned that shape (issue 16)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from racehub.providers.base import ProviderParticipant, ResultStatus
from racehub.providers.copernico import CopernicoAdapter
from racehub.providers.copernico import simulator as cop_sim
from racehub.providers.demo import simulator_options
from racehub.providers.registry import build_adapter

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


def test_every_simulator_of_this_set_offers_real_shapes() -> None:
    for module in (cop_sim,):
        assert simulator_options(module) == {"real_shapes": True}


# -- Copernico ------------------------------------------------------------------------------

@pytest.fixture
def cop(serve_app: Callable[[Any], str]) -> tuple[cop_sim.CopernicoSimulator, CopernicoAdapter]:
    app = cop_sim.make_app(real_shapes=True, seed=3, races=1, registrations_per_event=60)
    url = serve_app(app)
    adapter = build_adapter("COPERNICO", base_url=url, credentials=cop_sim.DEMO_CREDENTIALS,
                            settings={**FAST, **cop_sim.demo_settings(url)})
    assert isinstance(adapter, CopernicoAdapter)
    return app.state.simulator, adapter


def test_copernico_test_connection_accepts_code_1(cop: Any) -> None:
    _, adapter = cop
    check = adapter.check_credentials()
    assert check.ok, check.message


def test_copernico_athlete_detail_in_both_shapes_and_both_chip_forms(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    race_id, event_id = ref.split(":")
    rows = [r for r in sim.registrations[race_id].values() if r["eventId"] == event_id]
    shapes, chip_forms = set(), set()
    for row in rows:
        data = sim.athlete_data(race_id, row)
        shapes.add("nested" if "events" in data else "flat")
        chip_forms.add(type((data["events"][-1] if "events" in data else data)["chip"][0]))
        athlete = adapter.get_athlete(ref, row["id"])
        assert isinstance(athlete, ProviderParticipant)
        assert (athlete.ref, athlete.bib, athlete.chip) == (row["id"], row["dorsal"],
                                                            row["chip"][0])
        assert athlete.extra["chips"] == row["chip"]
        assert athlete.extra["category"].endswith("-Senior")
        assert athlete.extra["status"] == "registered"
    assert shapes == {"nested", "flat"} and chip_forms == {int, str}


def test_copernico_bib_keeps_its_text(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    race_id = ref.split(":")[0]
    row = next(iter(sim.registrations[race_id].values()))
    row["dorsal"] = "0042"
    assert adapter.get_athlete(ref, row["id"]).bib == "0042"


def test_copernico_results_with_runners_on_course_and_negative_offsets(cop: Any) -> None:
    sim, adapter = cop
    [page] = list(adapter.get_results(sim.race_ref()))
    assert not page.problems, [str(p) for p in page.problems]
    running = [r for r in page.items if r.status is ResultStatus.RUNNING]
    assert len(running) == 3
    assert all(r.place is None and r.clock_time is None for r in running)
    assert running[0].splits["start"] == timedelta(milliseconds=-120)
    finished = [r for r in page.items if r.status is ResultStatus.FINISHED]
    assert len(finished) == 50 and finished[0].splits["start"] == timedelta(milliseconds=-250)


def test_copernico_push_reads_the_code_1_reply(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    report = adapter.push_participants(ref, [ProviderParticipant(
        ref="rh-new-1", event_ref=ref, first_name="Ane", last_name="Etxeberria", bib="0007")])
    assert (report.accepted, report.problems) == (1, [])
    assert sim.registrations[ref.split(":")[0]]["rh-new-1"]["dorsal"] == "0007"
