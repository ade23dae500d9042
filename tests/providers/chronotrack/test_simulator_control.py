"""The ChronoTrack simulator's finish control: the race is run for the entries racehub
uploaded (not withdrawn), and the results the adapter reads hold them."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from racehub.providers.base import ResultStatus as Status
from racehub.providers.chronotrack import mapping as m
from racehub.providers.chronotrack.simulator import (
    DEMO_CREDENTIALS,
    ChronoTrackSimulator,
    make_app,
)

AUTH = {"format": "json", "client_id": DEMO_CREDENTIALS["client_id"],
        "user_id": DEMO_CREDENTIALS["user_id"],
        "user_pass": m.hash_password(DEMO_CREDENTIALS["user_pass"])}


def test_finish_gives_results_to_the_uploaded_entries_not_withdrawn() -> None:
    sim = ChronoTrackSimulator(seed=5, events=1, races_per_event=2, entries_per_race=4,
                               results_per_race=2)
    client = TestClient(make_app(simulator=sim))
    race_id = 81_001  # the 10K: split rows too
    rows = [{"entry_external_id": f"ep-{i}", "athlete_first_name": f"Runner{i}",
             "athlete_last_name": "Test", "entry_bib": str(500 + i)} for i in range(50)]
    reply = client.post(f"/api/race/{race_id}/entry", params=AUTH, json={"race_entry": rows})
    assert reply.status_code == 200 and reply.json()["created"] == 50
    client.post(f"/api/race/{race_id}/entry", params=AUTH, json={"race_entry": [
        {"entry_external_id": "ep-0", "entry_status": "DNS"}]})

    counts = client.post(f"/_sim/races/{race_id}/finish").json()

    assert counts["finished"] + counts["dnf"] + counts["dns"] == 49  # ep-0 withdrew
    assert counts["finished"] > 35
    read = client.get(f"/api/race/{race_id}/results", params={**AUTH, "size": 500}).json()
    mapped = [m.map_result(r, f"31000:{race_id}") for r in read["race_results"]]
    uploaded = {e["entry_id"] for e in sim.entries[race_id] if e["entry_external_id"]}
    ours = [r for r in mapped if r.participant_ref in uploaded]
    finish_rows = [r for r in ours if not r.splits]
    assert len(finish_rows) == counts["finished"] + counts["dnf"]
    assert sum(1 for r in finish_rows if r.status is Status.DNF) == counts["dnf"]
    assert sum(1 for r in ours if r.splits) == counts["finished"]  # "Halfway" on a 10K
    ranked = sorted((r for r in mapped if r.status is Status.FINISHED and r.chip_time),
                    key=lambda r: r.chip_time or timedelta(0))
    assert [r.place for r in ranked] == list(range(1, len(ranked) + 1))
    assert all(timedelta(minutes=25) < r.chip_time < timedelta(minutes=110)
               for r in finish_rows if r.chip_time)

    assert client.post(f"/_sim/races/{race_id}/finish").json() == {
        "finished": 0, "dnf": 0, "dns": 0}
    assert client.post("/_sim/races/1/finish").status_code == 404
