"""How many processes ``racehub serve`` starts when nobody says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from racehub import cli


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 2), (8, 8), (64, 8)])
def test_serve_defaults_to_one_process_per_usable_core_at_most_eight(
    monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert cli.default_web_processes() == expected


def test_serve_starts_metrics_from_empty_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"an earlier run's samples")
    cli._prepare_multiprocess_metrics(folder)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert list(folder.iterdir()) == []
