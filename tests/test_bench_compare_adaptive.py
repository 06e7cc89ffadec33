"""bench/compare_adaptive.py on hand-written run folders."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from safety_landscape.adaptive import AdaptiveGrid

LINE = "2026-11-30 23:00:00,000 INFO safety_landscape.generate: 40 responses, {tokens} tokens in {s} s (1.0 tokens/s), "
LINE += "weight update {u} s\n"
REUSED = "2026-11-30 23:00:00,000 INFO safety_landscape.points: {'landscape': 'd1', 'a': 0.0}: reusing cached x.json\n"


def write_run(run: Path, visage: str, logs: dict[str, str]) -> Path:
    (run / "tables").mkdir(parents=True)
    (run / "tables" / "visage.csv").write_text(visage)
    for name, text in logs.items():
        (run / "logs" / name).parent.mkdir(parents=True, exist_ok=True)
        (run / "logs" / name).write_text(text)
    return run


def test_compare_adaptive_table(tmp_path):
    coarse = write_run(
        tmp_path / "coarse",
        "judge,landscape,visage_paper\nkeyword,d1,80.0\nkeyword,mean,80.0\nrobust,d1,1.0\nrobust,mean,1.0\n",
        {"generate/d1/job1.log": LINE.format(tokens=10, s=10.0, u=1.0) * 3},
    )
    fine = write_run(
        tmp_path / "fine",
        "judge,landscape,visage_paper\nkeyword,d1,81.5\nkeyword,mean,81.5\n",
        {"generate/d1/job1.log": REUSED * 3 + LINE.format(tokens=10, s=20.0, u=0.5) * 2},
    )
    adaptive = write_run(
        tmp_path / "adaptive",
        "judge,landscape,visage_paper,sampled_points,grid_points\nkeyword,d1,81.0,4,5\nkeyword,mean,81.0,4.0,5.0\n",
        {
            "adaptive/round0/generate.log": LINE.format(tokens=5, s=3.0, u=0.25) * 3,
            "adaptive/round1/generate.log": REUSED + LINE.format(tokens=5, s=4.5, u=0.5),
        },
    )
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "compare_adaptive.py"),
            "--adaptive",
            str(adaptive),
            "--full",
            str(coarse),
            str(fine),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == [
        "| landscape | VISAGE full grid | VISAGE adaptive | difference | points measured (adaptive / full; mean: all) |",
        "|---|---|---|---|---|",
        "| d1 | 81.50 | 81.00 | -0.50 | 4 / 5 |",
        "| mean | 81.50 | 81.00 | -0.50 | 4 / 5 |",
        "",
        "Generated: adaptive 4 points in 15 s; full grid 5 points in 74 s.",
    ]


def test_replay_adaptive_follows_the_rounds_of_the_known_line(tmp_path):
    """The line of test_adaptive.test_plans_stop_when_the_estimate_settles_or_nothing_is_left_to_split."""
    (tmp_path / "tables").mkdir()
    values = [100.0, 100.0, 75.0, 50.0, 0.0, 25.0, 75.0, 100.0, 100.0]
    rows = [f"keyword,d1,{a},{v}" for a, v in zip((-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4), values)]
    (tmp_path / "tables" / "asr.csv").write_text("judge,landscape,a,asr\n" + "\n".join(rows) + "\n")
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "replay_adaptive.py"), str(tmp_path), "--tolerance", "1", "15"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[2:] == [
        "| 4 | 1 | d1 | 9 / 9 | 3 | 55.00 | 55.00 | +0.00 |",  # rounds of 3, 2 and 4 points
        "| 4 | 15 | d1 | 7 / 9 | 3 | 55.00 | 55.00 | +0.00 |",  # round 2 traces the edges only, then stops
    ]


MEASURED = REPO / "docs" / "data" / "adaptive"


def load_replay():
    spec = importlib.util.spec_from_file_location("replay_adaptive", REPO / "bench" / "replay_adaptive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "run", ["smollm2-wide-1d", "smollm2-paper-1d", "smollm2-wide-2d", "smollm2-wide-2d-s1", "smollm2-wide-2d-s2"]
)
def test_replays_of_the_measured_full_grids_reproduce_the_measured_adaptive_runs(run):
    """docs/adaptive.md: the adaptive runs on the GPU (initial_stride 4, tolerance 1) sampled exactly the points,
    and found exactly the VISAGE, that replaying the rounds on the full-grid runs' ASR gives."""
    replay = load_replay()
    full = pd.read_csv(MEASURED / run / "tables" / "asr.csv").query("judge == 'keyword'")
    adaptive = MEASURED / f"{run}-adaptive" / "tables"
    sampled = pd.read_csv(adaptive / "asr.csv").query("judge == 'keyword'")
    measured = pd.read_csv(adaptive / "visage.csv").query("judge == 'keyword'").set_index("landscape")
    axes = [c for c in ("a", "b") if c in full]
    for name, points in full.groupby("landscape"):
        grid = AdaptiveGrid(tuple(tuple(sorted(points[c].unique())) for c in axes), 4, 1)
        result = replay.replay(points.sort_values(axes), grid, 1.0)
        expected = sorted(sampled[sampled.landscape == name][axes].itertuples(index=False, name=None))
        assert np.allclose(sorted(tuple(p) for p in result["points"]), expected, rtol=0, atol=1e-9)
        assert result["estimate"] == pytest.approx(measured.loc[name, "visage_paper"], abs=1e-9)
        assert result["sampled"] == measured.loc[name, "sampled_points"]
    total = measured.loc[measured.index != "mean", "sampled_points"].sum()
    assert (2 * total <= len(full)) == (run != "smollm2-paper-1d")  # 55 of 123, 37 of 63; 121, 141, 118 of 441
