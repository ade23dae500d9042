"""Every benchmark script still runs: each one, at a tiny size (``--smoke``), in a process of
its own, all at once. No figure is checked (timings stay out of tests); a script that fails
or no longer accepts ``--smoke`` fails here instead of rotting until someone measures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
TIMEOUT_S = 300


def test_every_benchmark_script_runs_in_smoke_mode(admin_url: str) -> None:
    assert BENCHMARKS, "no benchmark scripts found"
    env = {**os.environ, "RACEHUB_BENCH_DATABASE_URL": admin_url}
    # All at once: each spends most of its time starting up and creating its database.
    running = {script.name: subprocess.Popen(
        [sys.executable, str(script), "--smoke"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for script in BENCHMARKS}
    failed = {}
    for name, proc in running.items():
        try:
            output, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            failed[name] = f"timed out after {TIMEOUT_S} s\n{output}"
            continue
        if proc.returncode != 0:
            failed[name] = f"exit {proc.returncode}\n{output}"
    assert not failed, "\n\n".join(f"--- {name}: {why}" for name, why in failed.items())
