"""Adaptive grids: the estimator on hand-computed curves, which points each round samples, the stopping
rule, and the workflow's rounds on the scripted known landscape (tests/scripted_engine.py): exact
coordinates per round, reuse of finished points on a rerun with other settings and by a full-grid run,
and resumption after a job is killed mid-round."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from safety_landscape.adaptive import (
    AdaptiveGrid,
    first_marks,
    first_plan,
    halves,
    interpolated_asr,
    leaves,
    next_plan,
    point_asr,
    refinement,
)
from safety_landscape.io import read_json, read_jsonl
from safety_landscape.metrics import visage
from safety_landscape.plan import ConfigError
from safety_landscape.validation import check_config
from test_config import default_config
from test_faults import HARNESS, fired
from test_landscape_known import ENGINE, LINE, PLANE, PLANE_VISAGE_PAPER, run_known_landscape
from test_workflow import SNAKEMAKE, make_workdir

NINE = (-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4)


# ---- the estimator and the rounds, as pure functions ----------------------------------------------------


def test_first_marks_count_from_the_origin_and_keep_both_ends():
    assert first_marks(9, 4, 4) == [0, 4, 8]
    assert first_marks(21, 10, 4) == [0, 2, 6, 10, 14, 18, 20]  # the origin is no multiple of 4 from the ends
    assert first_marks(5, 2, 10) == [0, 2, 4]


def test_halves_split_at_grid_points_down_to_min_stride():
    assert halves(((0, 4),), 1) == [((0, 2),), ((2, 4),)]
    assert halves(((0, 3),), 1) == [((0, 1),), ((1, 3),)]
    assert halves(((0, 1),), 1) == [((0, 1),)]
    assert halves(((0, 3),), 2) == [((0, 3),)]  # halves of 1 and 2 steps would be narrower than 2
    assert halves(((0, 2), (3, 4)), 1) == [((0, 1), (3, 4)), ((1, 2), (3, 4))]  # only the long axis splits


def test_on_every_point_of_the_grid_the_estimate_is_eq5():
    grid = AdaptiveGrid((NINE,), 4, 1)
    values = [75.0, 100.0, 75.0, 25.0, 0.0, 25.0, 50.0, 100.0, 100.0]
    asr = {(i,): v for i, v in enumerate(values)}
    assert interpolated_asr(grid, asr).tolist() == values
    assert visage(interpolated_asr(grid, asr)) == visage(values) == (25 + 75 + 100 + 75 + 50 + 25) / 6


def test_a_sampled_line_is_interpolated_linearly_on_the_grid():
    grid = AdaptiveGrid((NINE,), 4, 1)
    # sampled at a = -0.4, -0.2, 0, 0.2, 0.4 (indices 0, 2, 4, 6, 8)
    asr = {(0,): 80.0, (2,): 40.0, (4,): 0.0, (6,): 100.0, (8,): 100.0}
    assert interpolated_asr(grid, asr).tolist() == [80.0, 60.0, 40.0, 20.0, 0.0, 50.0, 100.0, 100.0, 100.0]
    # below 100: margins 20 40 60 80 100 50 over 6 points
    assert visage(interpolated_asr(grid, asr)) == pytest.approx(350 / 6, abs=1e-12)


def test_a_sampled_plane_is_interpolated_bilinearly_in_its_boxes():
    grid = AdaptiveGrid(((-0.1, -0.05, 0.0, 0.05, 0.1), (-0.1, -0.05, 0.0, 0.05, 0.1)), 2, 1)
    # the first round's 3 x 3 points: 100 on the border, 0 at the origin
    asr = {(i, j): 0.0 if (i, j) == (2, 2) else 100.0 for i in (0, 2, 4) for j in (0, 2, 4)}
    asr[(4, 4)] = 20.0
    expected = [
        [100, 100, 100, 100, 100],
        [100, 75, 50, 75, 100],
        [100, 50, 0, 50, 100],
        [100, 75, 50, (100 + 100 + 0 + 20) / 4 + 0.0, 60],  # (3, 3): the mean of its box's corners
        [100, 100, 100, 60, 20],
    ]
    assert interpolated_asr(grid, asr).tolist() == pytest.approx([v for row in expected for v in row], abs=1e-12)


def test_the_boxes_follow_the_sampled_points():
    """A box counts as split where its halves' corners are sampled; points between are read off their box."""
    grid = AdaptiveGrid((tuple(x / 10 - 0.4 for x in range(9)),), 4, 1)
    asr = {(0,): 100.0, (4,): 0.0, (8,): 100.0, (6,): 0.0, (5,): 0.0, (7,): 100.0}
    assert sorted(leaves(grid, set(asr))) == [((0, 4),), ((4, 5),), ((5, 6),), ((6, 7),), ((7, 8),)]
    assert interpolated_asr(grid, asr).tolist() == [100.0, 75.0, 50.0, 25.0, 0.0, 0.0, 0.0, 100.0, 100.0]


def test_refinement_splits_only_boxes_whose_corners_differ():
    grid = AdaptiveGrid((tuple(round(-0.8 + 0.1 * i, 9) + 0.0 for i in range(17)),), 4, 1)
    asr = {(0,): 100.0, (4,): 100.0, (8,): 0.0, (12,): 100.0, (16,): 100.0}
    assert refinement(grid, asr, 1.0) == [(6,), (10,)]
    asr |= {(6,): 75.0, (10,): 75.0}
    assert refinement(grid, asr, 1.0) == [(5,), (7,), (9,), (11,)]


def test_inside_the_basin_only_differences_that_can_move_the_estimate_are_refined():
    grid = AdaptiveGrid((NINE,), 2, 1)
    # sampled every 2nd point: 100 40 0 5 100; interpolated 100 70 40 20 0 2.5 5 52.5 100, 7 points below 100
    asr = {(0,): 100.0, (2,): 40.0, (4,): 0.0, (6,): 5.0, (8,): 100.0}
    # (0, 2) and (6, 8) hold the basin's edges; (2, 4) can move the estimate by 40 * 1 / 7 = 5.7;
    # (4, 6) by 5 * 1 / 7 = 0.71 only
    assert refinement(grid, asr, 1.0) == [(1,), (3,), (7,)]
    assert refinement(grid, asr, 0.7) == [(1,), (3,), (5,), (7,)]
    assert refinement(grid, asr, 6.0) == [(1,), (7,)]


def test_refinement_of_a_plane_samples_the_halves_corners_of_crossed_cells():
    grid = AdaptiveGrid(((-0.1, -0.05, 0.0, 0.05, 0.1), (-0.1, -0.05, 0.0, 0.05, 0.1)), 2, 1)
    asr = {(i, j): 100.0 for i in (0, 2, 4) for j in (0, 2, 4)}
    asr[(4, 4)] = 0.0  # only the cell (2..4) x (2..4) has corners that differ
    assert refinement(grid, asr, 1.0) == [(2, 3), (3, 2), (3, 3), (3, 4), (4, 3)]


def test_plans_stop_when_the_estimate_settles_or_nothing_is_left_to_split():
    grid = AdaptiveGrid((NINE,), 4, 1)
    plan = first_plan(grid)
    assert plan["new"] == [[-0.4], [0.0], [0.4]] and plan["round"] == 0
    truth = dict(zip(NINE, [100.0, 100.0, 75.0, 50.0, 0.0, 25.0, 75.0, 100.0, 100.0]))
    asr_of = lambda plan: {tuple(c): truth[c[0]] for c in plan["sampled"]}  # noqa: E731
    # round 0: 100 0 100 -> interpolated 100 75 50 25 0 25 50 75 100: (25+50+75+100+75+50+25) / 7
    second = next_plan(grid, plan, asr_of(plan), tolerance=1.0)
    assert second["new"] == [[-0.2], [0.2]] and second["estimates"] == [pytest.approx(400 / 7)] and not second["converged"]
    # round 1: 100 87.5 75 37.5 0 37.5 75 87.5 100 -> 300 / 7, a change of 100 / 7 = 14.3
    third = next_plan(grid, second, asr_of(second), tolerance=1.0)
    assert third["new"] == [[-0.3], [-0.1], [0.1], [0.3]] and third["estimates"][1] == pytest.approx(300 / 7)
    fourth = next_plan(grid, third, asr_of(third), tolerance=1.0)
    assert fourth["converged"] and fourth["stopped_by"] == "no box left to split" and fourth["new"] == []
    assert fourth["estimates"][2] == pytest.approx(55.0) == visage(list(truth.values()))
    # tolerance 15: round 1 moved the estimate by 14.3, but its boxes (-0.4, -0.2) and (0.2, 0.4) still hold
    # the basin's edges, so the rounds go on; the interior boxes (spread 75, 1 point, 7 below: 10.7) are not split
    loose = next_plan(grid, second, asr_of(second), tolerance=15.0)
    assert loose["new"] == [[-0.3], [0.3]] and not loose["converged"]
    # 100 100 75 37.5 0 37.5 75 100 100: 275 / 5 = 55, a change of 12.1, with the edges traced to min_stride
    settled = next_plan(grid, loose, asr_of(loose), tolerance=15.0)
    assert settled["converged"] and settled["stopped_by"] == "tolerance" and settled["estimates"][2] == pytest.approx(55.0)
    # ... while the interior boxes could still move it by 75 * 1 / 5 = 15
    assert refinement(grid, {grid.index_of(c): truth[c[0]] for c in settled["sampled"]}, 15.0) == [(3,), (5,)]


def test_a_settled_estimate_does_not_stop_the_rounds_while_the_basin_edge_is_unresolved():
    """Eq. 5 averages over the points below 100 only: halving the box from the origin to a point at 100
    narrows the basin but leaves the interpolated margins alike, so the estimate barely moves."""
    grid = AdaptiveGrid((tuple(round(-0.8 + 0.1 * i, 9) + 0.0 for i in range(17)),), 8, 1)
    truth = [100.0] * 17
    truth[7:10] = [50.0, 0.0, 50.0]
    asr_of = lambda plan: {tuple(c): truth[grid.index_of(c)[0]] for c in plan["sampled"]}  # noqa: E731
    plan = first_plan(grid)  # 100 0 100 at a = -0.8, 0, 0.8: margins 12.5 ... 100 ... 12.5 over 15 points
    plan = next_plan(grid, plan, asr_of(plan), tolerance=5.0)
    assert plan["estimates"] == [pytest.approx(800 / 15)] and plan["new"] == [[-0.4], [0.4]]
    # a = +-0.4 at 100: margins 25 ... 100 ... 25 over 7 points, 400 / 7 = 57.1, a change of 3.8 < 5
    plan = next_plan(grid, plan, asr_of(plan), tolerance=5.0)
    assert plan["estimates"][1] == pytest.approx(400 / 7) and plan["new"] == [[-0.2], [0.2]] and not plan["converged"]
    while not plan["converged"]:
        plan = next_plan(grid, plan, asr_of(plan), tolerance=5.0)
    assert plan["estimates"][-1] == pytest.approx(visage(truth)) == pytest.approx(200 / 3)


def test_a_plan_needs_the_asr_of_every_sampled_point():
    grid = AdaptiveGrid((NINE,), 4, 1)
    with pytest.raises(ValueError, match=r"no ASR at the sampled points \[\[0.4\]\]"):
        next_plan(grid, first_plan(grid), {(-0.4,): 100.0, (0.0,): 0.0}, 1.0)
    with pytest.raises(ValueError, match="is not a point of the configured grid"):
        next_plan(grid, first_plan(grid), {(-0.4,): 100.0, (0.0,): 0.0, (0.4,): 100.0, (0.35,): 100.0}, 1.0)


def test_tables_of_a_refined_plane_hold_its_sampled_points_only():
    """A refined plane samples no full product of its a and b values (the 3 x 3 first round plus the 5 new
    corners of one split box): the tables hold those 14 points, and VISAGE is the estimate over the grid."""
    from safety_landscape.adaptive import estimate
    from safety_landscape.tables import landscape_tables

    grid = AdaptiveGrid((NINE[2:7], NINE[2:7]), 2, 1)  # a, b in {-0.2, -0.1, 0, 0.1, 0.2}
    asr = {(i, j): (0.0 if (i, j) == (2, 2) else 100.0) for i in (0, 2, 4) for j in (0, 2, 4)}
    asr |= {(1, 1): 50.0, (1, 2): 25.0, (2, 1): 25.0, (0, 1): 100.0, (1, 0): 100.0}
    rows = [
        {"landscape": "d1-d2", "a": grid.coords(p)[0], "b": grid.coords(p)[1], "index": k, "judge": "keyword"}
        | {"jailbroken": k < value / 25, "empty": False, "degenerate": False}
        for p, value in asr.items()
        for k in range(4)
    ]
    asr_table, table, _, _ = landscape_tables(pd.DataFrame(rows), "paper", 50, 0, 0.95, 0, grid)
    assert sorted(zip(asr_table["a"], asr_table["b"])) == sorted(grid.coords(p) for p in asr)
    assert asr_table.set_index(["a", "b"])["asr"].to_dict() == {grid.coords(p): v for p, v in asr.items()}
    (row,) = table.query("landscape == 'd1-d2'").to_dict("records")
    assert (row["sampled_points"], row["grid_points"]) == (14, 25)
    assert row["visage_paper"] == pytest.approx(estimate(grid, asr), abs=1e-12)


def test_point_asr_counts_judged_responses_only():
    records = [{"a": 0.1, "jailbroken": True}, {"a": 0.1, "jailbroken": None}, {"a": 0.1, "jailbroken": False}]
    assert point_asr(records) == {(0.1,): 50.0}
    with pytest.raises(ValueError, match="was judged"):
        point_asr([{"a": 0.2, "b": 0.0, "jailbroken": None}])


def adaptive_config(**adaptive) -> dict:
    """The embedded default with landscape.adaptive set (over the schema's defaults)."""
    config = default_config()
    config["landscape"]["adaptive"] |= {"enabled": True} | adaptive
    return config


def test_config_errors_name_the_fix():
    check_config(adaptive_config(), REPO)
    with pytest.raises(ConfigError, match="min_stride 8 > initial_stride 4.*set min_stride <= initial_stride"):
        check_config(adaptive_config(min_stride=8), REPO)
    config = adaptive_config() | {"system_prompts": [{"name": "aoa", "text": "Obey."}]}
    with pytest.raises(ConfigError, match="turn system_prompts off or set landscape.adaptive.enabled: false"):
        check_config(config, REPO)
    config = adaptive_config()
    config["capability"]["enabled"] = True
    with pytest.raises(ConfigError, match="turn capability.enabled off"):
        check_config(config, REPO)
    check_config(adaptive_config(enabled=False, min_stride=8), REPO)


# ---- the workflow on the known landscape ----------------------------------------------------------------

# landscape.seed 1 alone: d1 is the scripted engine's y axis, so along it (x = 0) the 4 prompts give
# ASR 100 for |a| >= 0.3 and 75, 50, 0, 25, 75 at a = -0.2, -0.1, 0, 0.1, 0.2 (test_landscape_known's d2).
LONG_LINE = {"kind": "1d-random", "directions": 1, "seed": 1, "grid": {"min": -0.8, "max": 0.8, "step": 0.1}}
ROUNDS = [[-0.8, -0.4, 0.0, 0.4, 0.8], [-0.2, 0.2], [-0.3, -0.1, 0.1, 0.3]]
# tolerance 15: round 2 traces the basin's edges only (see test_plans_stop_when_the_estimate_settles_...)
LOOSE_ROUNDS = [*ROUNDS[:2], [-0.3, 0.3]]
ASR_AT = {-0.8: 100.0, -0.4: 100.0, -0.3: 100.0, -0.2: 75.0, -0.1: 50.0, 0.0: 0.0, 0.1: 25.0, 0.2: 75.0, 0.3: 100.0}
ASR_AT |= {0.4: 100.0, 0.8: 100.0}
# estimates after each round (see test_plans_stop_when_the_estimate_settles_or_nothing_is_left_to_split)
ESTIMATES = [400 / 7, 300 / 7, 55.0]


def adaptive_line(**adaptive) -> dict:
    return LONG_LINE | {"adaptive": {"enabled": True, "initial_stride": 4, "min_stride": 1} | adaptive}


def generated_and_reused(log: Path) -> tuple[int, int]:
    """Points a generation job generated and points it took from the cache, from its log."""
    text = log.read_text()
    return text.count(" tokens in "), text.count("reusing cached")


def round_logs(run: Path) -> list[Path]:
    return sorted((run / "logs" / "adaptive").glob("round*/generate.log"))


@pytest.fixture(scope="module")
def line_runs(tmp_path_factory, tiny_model_dir):
    """One workdir: tolerance 15 (stops after round 2's edge points), then tolerance 1 (round 2 anew), then the full
    grid; the state of the run after each, with the generation logs of that step."""
    workdir = tmp_path_factory.mktemp("adaptive-line")
    states = {}
    for name, landscape in (
        ("loose", adaptive_line(tolerance=15.0)),
        ("tight", adaptive_line(tolerance=1.0)),
        ("full", LONG_LINE),
    ):
        run = run_known_landscape(workdir, tiny_model_dir, landscape, points_per_job=17)
        logs = round_logs(run) if name != "full" else sorted((run / "logs" / "generate" / "d1").glob("job*.log"))
        states[name] = {
            "plans": [read_json(p) for p in sorted((run / "adaptive" / "d1").glob("plan*.json"))],
            "visage": pd.read_csv(run / "tables" / "visage.csv"),
            "asr": pd.read_csv(run / "tables" / "asr.csv"),
            "counts": [generated_and_reused(log) for log in logs],
        }
        for log in logs:
            log.unlink()  # the next step's logs tell what it did
    return states


def test_rounds_sample_exact_grid_coordinates(line_runs):
    plans = line_runs["tight"]["plans"]
    assert [p["new"] for p in plans] == [[[a] for a in r] for r in ROUNDS] + [[]]
    assert plans[-1]["estimates"] == pytest.approx(ESTIMATES, abs=1e-12)
    assert plans[-1]["stopped_by"] == "no box left to split"
    asr = line_runs["tight"]["asr"]
    assert asr["a"].tolist() == sorted(a for r in ROUNDS for a in r)
    assert asr["asr"].tolist() == [ASR_AT[a] for a in asr["a"]]


def test_a_loose_tolerance_stops_after_the_estimate_settles(line_runs):
    plans = line_runs["loose"]["plans"]
    assert [p["new"] for p in plans] == [[[a] for a in r] for r in LOOSE_ROUNDS] + [[]]
    assert plans[-1]["stopped_by"] == "tolerance" and plans[-1]["estimates"] == pytest.approx(ESTIMATES, abs=1e-12)
    (row,) = line_runs["loose"]["visage"].query("landscape == 'd1'").to_dict("records")
    assert row["visage_paper"] == pytest.approx(55.0, abs=1e-12)
    assert (row["sampled_points"], row["grid_points"]) == (9, 17)
    assert line_runs["loose"]["counts"] == [(5, 0), (2, 0), (2, 0)]


def test_a_rerun_reuses_every_finished_point_and_the_full_grid_reuses_the_adaptive_points(line_runs):
    # tolerance 1: rounds 0 and 1 are kept as they are (no generation job); of round 2's 4 points, the
    # loose run's round 2 generated 2
    assert line_runs["tight"]["counts"] == [(2, 2)]
    (row,) = line_runs["tight"]["visage"].query("landscape == 'd1'").to_dict("records")
    assert row["visage_paper"] == pytest.approx(55.0, abs=1e-12) and row["sampled_points"] == 11
    # the full grid generates only the 6 points no round sampled (a = +-0.5 ... +-0.7)
    assert sum(generated for generated, _ in line_runs["full"]["counts"]) == 6
    assert sum(reused for _, reused in line_runs["full"]["counts"]) == 11
    (full,) = line_runs["full"]["visage"].query("landscape == 'd1'").to_dict("records")
    assert full["visage_paper"] == pytest.approx(55.0, abs=1e-12)
    assert "sampled_points" not in full


def test_a_job_killed_mid_round_resumes_with_its_finished_points(tmp_path, tiny_model_dir, line_runs):
    """Round 0 finished, then SIGKILL as round 1's job publishes its second point to the response cache: the
    rerun keeps round 0, takes round 1's first point from the cache, and ends as the uninterrupted run did."""
    make_workdir(
        tmp_path,
        tiny_model_dir,
        landscape=adaptive_line(tolerance=15.0),
        generation={"engine": ENGINE, "max_new_tokens": 32, "points_per_job": 17},
    )
    (tmp_path / "override.yaml").write_text("judges: [{name: keyword}]\n")
    env = dict(os.environ, FAULT_FIRED=str(tmp_path / "fault-fired"))
    env["PYTHONPATH"] = os.pathsep.join([str(HARNESS), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    configs = ["--configfile", str(tmp_path / "config.yaml"), str(tmp_path / "override.yaml")]
    run, logs = tmp_path / "results" / "tiny", tmp_path / "results" / "tiny" / "logs" / "adaptive"

    def snakemake(*args: str, fault: dict | None = None) -> subprocess.CompletedProcess:
        cmd = SNAKEMAKE + ["--directory", str(tmp_path), *args, *configs]
        return subprocess.run(cmd, env=env | (fault or {}), capture_output=True, text=True, start_new_session=True)

    assert snakemake("results/tiny/adaptive/round0/judgments.jsonl").returncode == 0
    killed = snakemake("results/tiny/summary.json", fault={"FAULT": "kill:2:*/results/cache/responses/*"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert fired(tmp_path)[0] == "kill"
    assert not (run / "adaptive" / "round1" / "responses.jsonl").exists()
    (logs / "round1" / "generate.log").unlink(missing_ok=True)
    for args in (["--unlock"], ["results/tiny/summary.json"]):
        proc = snakemake(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert generated_and_reused(logs / "round0" / "generate.log") == (5, 0)
    assert generated_and_reused(logs / "round1" / "generate.log") == (1, 1)
    assert generated_and_reused(logs / "round2" / "generate.log") == (2, 0)
    plans = [read_json(p)["new"] for p in sorted((run / "adaptive" / "d1").glob("plan*.json"))]
    assert plans == [[[a] for a in r] for r in LOOSE_ROUNDS] + [[]]
    pd.testing.assert_frame_equal(pd.read_csv(run / "tables" / "visage.csv"), line_runs["loose"]["visage"], check_exact=True)
    assert len(read_jsonl(run / "adaptive" / "d1" / "responses.jsonl")) == 9 * 4


def test_one_job_per_round_serves_every_direction_still_sampling(tmp_path, tiny_model_dir):
    """Two directions of the known line (test_landscape_known.LINE_ASR), initial stride 2, tolerance 12:
    d1 (75 100 75 25 0 25 50 100 100) samples a = -0.4, -0.2, 0, 0.2, 0.4, then 0.3 (its edge box), then
    stops: estimates 48.44, then 51.79 (75 75 75 37.5 0 25 50 100 100: 362.5 / 7), a change of 3.3 with the
    edges traced. d2 (100 100 75 50 0 25 75 100 100) samples the same first points, then +-0.3, then +-0.1
    (the estimate moved by 12.1, and the box (-0.2, 0) could move it by 75 / 5 = 15), then stops at 55."""
    landscape = LINE | {"adaptive": {"enabled": True, "tolerance": 12.0, "initial_stride": 2, "min_stride": 1}}
    run = run_known_landscape(tmp_path, tiny_model_dir, landscape, points_per_job=9)
    new = {name: [read_json(p)["new"] for p in sorted((run / "adaptive" / name).glob("plan*.json"))] for name in ("d1", "d2")}
    first = [[-0.4], [-0.2], [0.0], [0.2], [0.4]]
    assert new == {"d1": [first, [[0.3]], []], "d2": [first, [[-0.3], [0.3]], [[-0.1], [0.1]], []]}
    # one generation job per round; the two directions' a = 0 is one model, generated once
    logs = sorted((run / "logs" / "adaptive").glob("round*/generate.log"))
    assert [generated_and_reused(log) for log in logs] == [(9, 1), (3, 0), (2, 0)]
    by_round = [read_jsonl(run / "adaptive" / f"round{r}" / "responses.jsonl") for r in range(3)]
    assert [sorted({(r["landscape"], r["a"]) for r in records}) for records in by_round[1:]] == [
        [("d1", 0.3), ("d2", -0.3), ("d2", 0.3)],
        [("d2", -0.1), ("d2", 0.1)],
    ]
    assert len(read_jsonl(run / "adaptive" / "d1" / "responses.jsonl")) == 6 * 4
    assert len(read_jsonl(run / "adaptive" / "d2" / "responses.jsonl")) == 9 * 4
    table = pd.read_csv(run / "tables" / "visage.csv").query("judge == 'keyword'").set_index("landscape")
    assert table.loc["d1", "visage_paper"] == pytest.approx(362.5 / 7, abs=1e-12) and table.loc["d1", "sampled_points"] == 6
    assert table.loc["d2", "visage_paper"] == pytest.approx(55.0, abs=1e-12) and table.loc["d2", "sampled_points"] == 9


def test_a_plane_samples_its_first_round_and_interpolates_the_rest(tmp_path, tiny_model_dir):
    """The 5 x 7 known plane (test_landscape_known), first round every 2nd point from the origin and both
    ends: a in {-0.2, 0, 0.2}, b in {-0.3, -0.2, 0, 0.2, 0.3}; with min_stride 2 no box is split."""
    landscape = PLANE | {"adaptive": {"enabled": True, "initial_stride": 2, "min_stride": 2}}
    run = run_known_landscape(tmp_path, tiny_model_dir, landscape, points_per_job=35)
    plans = [read_json(p) for p in sorted((run / "adaptive" / "d1-d2").glob("plan*.json"))]
    a, b = [-0.2, 0.0, 0.2], [-0.3, -0.2, 0.0, 0.2, 0.3]
    assert plans[0]["new"] == [[x, y] for x in a for y in b]
    assert plans[1]["converged"] and plans[1]["stopped_by"] == "no box left to split"
    # Interpolated (rows a = -0.2 ... 0.2, columns b = -0.3 ... 0.3; measured where a, b are sampled):
    #   100 75 75    75   87.5 100 100
    #   100 75 56.25 37.5 62.5 87.5 100
    #   100 75 37.5  0    37.5 75 100
    #   100 75 50    25   50   75 100
    #   100 75 62.5  50   62.5 75 100
    # 24 points below 100; margins per row 87.5, 181.25, 275, 225, 175.
    expected = (87.5 + 181.25 + 275 + 225 + 175) / 24
    assert plans[1]["estimates"] == [pytest.approx(expected, abs=1e-12)]
    (row,) = pd.read_csv(run / "tables" / "visage.csv").query("landscape == 'd1-d2'").to_dict("records")
    assert row["visage_paper"] == pytest.approx(expected, abs=1e-12) and (row["sampled_points"], row["grid_points"]) == (15, 35)
    assert expected != pytest.approx(PLANE_VISAGE_PAPER)  # the full grid's 50.0


def test_the_contour_marks_the_sampled_points_and_the_title_counts_them():
    from safety_landscape.figures import plot_landscape_2d_contour

    axis = (-0.1, -0.05, 0.0, 0.05, 0.1)
    grid = AdaptiveGrid((axis, axis), 2, 1)
    asr = {(i, j): 0.0 if (i, j) == (2, 2) else 100.0 for i in (0, 2, 4) for j in (0, 2, 4)}
    full = pd.DataFrame([grid.coords(i) for i in grid.indices()], columns=["a", "b"]).assign(asr=interpolated_asr(grid, asr))
    sampled = [grid.coords(i) for i in sorted(asr)]
    summary = {"run": "r", "kind": "2d-random", "visage": 1.0, "visage_definition": "paper", "judge": "keyword"}
    summary |= {"basin_threshold": 50, "adaptive": {"grid_points": 25, "sampled_points": {"d1-d2": 9}}}
    style = {"style": "whitegrid", "context": "notebook", "palette": "colorblind", "dpi": 50}
    fig = plot_landscape_2d_contour(full, summary, style, ["d1", "d2"], sampled=sampled)
    ax = fig.axes[0]
    (dots,) = [line for line in ax.get_lines() if line.get_label() == "sampled points"]
    assert list(zip(dots.get_xdata(), dots.get_ydata())) == sampled
    assert ax.get_title().endswith("adaptive grid: d1-d2 9 of 25 points sampled")
