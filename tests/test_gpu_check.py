"""`bench/gpu_check.py --device cpu`: the smoke form of the GPU check runs every section on tiny models, so that the
real run on a GPU cannot fail on a typo; sections past the time budget are skipped, not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.py"
SECTIONS = ("environment", "parity", "autocast", "attention", "lora", "ray", "bench_model")


def _run(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--device",
            "cpu",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env=env,
    )
    return proc, json.loads(out.read_text()) if out.exists() else {}


@pytest.mark.slow
def test_smoke_run_passes_every_section(tmp_path):
    proc, report = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = report["rows"]
    assert {row["section"] for row in rows} == set(SECTIONS)
    assert not [row for row in rows if row["status"] in ("FAIL", "error", "skipped")]
    lora = next(row for row in rows if row["section"] == "lora")
    assert all(loss == loss for loss in lora["data"]["losses"]) and lora["data"]["trainable"] > 0
    assert "| section | check | result | status |" in proc.stdout


def test_sections_past_the_budget_are_skipped(tmp_path):
    proc, report = _run(tmp_path, "--budget-s", "0", "--sections", "parity,lora")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(row["section"], row["status"]) for row in report["rows"]] == [("parity", "skipped"), ("lora", "skipped")]


def test_unknown_section_is_a_usage_error(tmp_path):
    proc, _ = _run(tmp_path, "--sections", "parity,typo")
    assert proc.returncode == 2 and "unknown sections ['typo']" in proc.stderr
