"""The README stays the reference for configuration: every setting is documented there."""

from __future__ import annotations

from pathlib import Path

from racehub.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_has_a_row_in_the_readme_configuration_table() -> None:
    rows = set()
    for line in README.read_text().splitlines():
        if line.startswith("| `RACEHUB_"):  # a row may name two settings: `A` / `B`
            rows |= {name.strip(" `") for name in line.split("|")[1].split("/")}
    settings = {f"RACEHUB_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - rows) == []
    # And no row for a setting that is gone (the test database is the suite's, not the app's).
    assert sorted(rows - settings - {"RACEHUB_TEST_DATABASE_URL"}) == []
