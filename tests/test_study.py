"""Studies: run configs from shared settings, their checks, the comparison table, and the study workflow end to end."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import ADVBENCH, REPO, build_tiny_model
from safety_landscape.plan import grid_values
from safety_landscape.study import StudyError, compare_summary_table, compare_table, load_study, merge_shared, run_config

STUDY_SCHEMA, RUN_SCHEMA = REPO / "config" / "study.schema.yaml", REPO / "config" / "schema.yaml"
STUDY_SNAKEFILE = REPO / "rules" / "study.smk"


def tiny_study(first: Path, second: Path) -> dict:
    """A study of two tiny models: 2 directions x 3 points, 2 prompts, 4 tokens, one judge."""
    return {
        "study": {
            "name": "tiny-study",
            "shared": {
                "prompts": {"file": str(ADVBENCH), "column": "goal", "start": 0, "count": 2},
                "landscape": {"kind": "1d-random", "directions": 2, "grid": {"min": -0.1, "max": 0.1, "step": 0.1}},
                "generation": {"batch_size": 2, "max_new_tokens": 4, "points_per_job": 3},
                "judges": [{"name": "keyword"}],
                "visage": {"bootstrap": 50},
            },
            "runs": [
                {"run": "tiny-a", "label": "tiny A", "model": {"name": "tiny-a", "source": str(first)}},
                {"run": "tiny-b", "label": "tiny B", "model": {"name": "tiny-b", "source": str(second)}},
            ],
        }
    }


@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-second"), seed=1)


@pytest.fixture
def study(tiny_model_dir, second_model_dir) -> dict:
    return tiny_study(tiny_model_dir, second_model_dir)


def load(config: dict):
    return load_study(config, STUDY_SCHEMA, RUN_SCHEMA, REPO)


def test_run_config_is_shared_plus_the_run_entry():
    shared = {"generation": {"max_new_tokens": 8}, "judges": [{"name": "keyword"}]}
    entry = {"run": "r", "label": "R", "model": {"name": "m", "source": "x"}, "generation": {"threads": 2}}
    assert run_config(shared, entry) == {
        "run": "r",
        "generation": {"max_new_tokens": 8, "threads": 2},
        "judges": [{"name": "keyword"}],
        "model": {"name": "m", "source": "x"},
    }
    assert shared == {"generation": {"max_new_tokens": 8}, "judges": [{"name": "keyword"}]}  # not modified


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"generation": {"max_new_tokens": 16}}, "generation.max_new_tokens"),
        ({"judges": []}, "judges"),
        ({"generation": 1}, "generation"),
    ],
)
def test_a_run_cannot_set_a_shared_key(entry, key):
    shared = {"generation": {"max_new_tokens": 8}, "judges": [{"name": "keyword"}]}
    with pytest.raises(StudyError, match=rf"^{re.escape(key)} is set in study\.shared and again in the run"):
        merge_shared(shared, entry)


def test_each_run_config_is_complete_and_overrides_the_whole_default_config(study, tiny_model_dir):
    loaded = load(study)
    assert [(r.name, r.label) for r in loaded.runs] == [("tiny-a", "tiny A"), ("tiny-b", "tiny B")]
    config = loaded.runs[0].config
    assert config["run"] == "tiny-a" and config["model"]["source"] == str(tiny_model_dir)
    assert config["generation"]["max_new_tokens"] == 4 and config["align"]["enabled"] is False  # defaults filled in
    # the main workflow merges the run config over config/config.yaml: nothing of that file may stay in effect
    merged = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(merged, copy.deepcopy(config))
    assert merged == config


@pytest.mark.parametrize("path", sorted((REPO / "config" / "study").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_study_configs_load(path):
    loaded = load(yaml.safe_load(path.read_text()))
    assert len(loaded.runs) >= 2 and {r.config["landscape"]["kind"] for r in loaded.runs} == {"1d-random"}


def resolved(path: Path) -> dict:
    """A main-workflow config file with the schema's defaults filled in (as the workflow sees it)."""
    config = yaml.safe_load(path.read_text())
    validate(config, str(RUN_SCHEMA))
    return config


def test_paper_fig2_runs_equal_the_single_model_paper_configs():
    study = load(yaml.safe_load((REPO / "config" / "study" / "paper-fig2.yaml").read_text()))
    singles = ["llama2-7b-chat-1d", "llama3-8b-instruct-1d", "mistral-7b-instruct-v0.2-1d", "vicuna-7b-v1.5-1d"]
    for run, single in zip(study.runs, singles, strict=True):
        assert run.config | {"run": single} == resolved(REPO / "config" / "paper" / f"{single}.yaml")


def test_smollm2_aligned_run_measures_the_embedded_default_at_its_grid_points():
    """Same aligned model, directions, prompts and decoding as the embedded default: its responses come from the cache."""
    aligned = load(yaml.safe_load((REPO / "config" / "study" / "smollm2.yaml").read_text())).runs[0].config
    default = resolved(REPO / "config" / "config.yaml")
    for section in ("model", "align", "prompts", "judges"):
        assert aligned[section] == default[section]
    aligned_grid, default_grid = aligned["landscape"].pop("grid"), default["landscape"].pop("grid")
    assert aligned["landscape"] == default["landscape"] and set(grid_values(aligned_grid)) <= set(grid_values(default_grid))
    same = ("max_new_tokens", "system_prompt", "chat_template", "stop_on_refusal", "dtype", "engine")
    assert {k: aligned["generation"][k] for k in same} == {k: default["generation"][k] for k in same}


def edited(study: dict, edit) -> dict:
    study = copy.deepcopy(study)
    edit(study["study"])
    return study


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("runs"), "study config: study: 'runs' is a required property"),
        (lambda s: s["shared"].pop("judges"), "study config: study.shared: 'judges' is a required property"),
        (lambda s: s["runs"][0].pop("model"), r"study config: study\.runs\[0\]: 'model' is a required property"),
        (
            lambda s: s["shared"]["generation"].update(max_new_tokens=0),
            r"study\.runs\[0\] \(tiny-a\): generation\.max_new_tokens: 0 is less than the minimum of 1",
        ),
        (lambda s: s["shared"]["landscape"].update(kind="2d-random"), r"study\.shared\.landscape\.kind is '2d-random'"),
        (lambda s: s["runs"][1].update(run="tiny-a"), r"the run \['tiny-a'\] is used twice"),
        (lambda s: s["runs"][1].update(label="tiny A"), r"the label \['tiny A'\] is used twice"),
        (lambda s: s["shared"].update(model={"name": "m", "source": "x"}), r"study\.shared\.model: each run has its own model"),
        (
            lambda s: s["runs"][1].update(generation={"max_new_tokens": 8}),
            r"study\.runs\[1\] \(tiny-b\): generation\.max_new_tokens is set in study\.shared",
        ),
        (
            lambda s: s["runs"][1].update(modle={}),
            r"study\.runs\[1\] \(tiny-b\): Additional properties are not allowed \('modle' was unexpected\)$",
        ),
        (
            lambda s: s["runs"][1].update(landscape={"dtype": "bfloat16"}),
            r"landscape\.dtype differs between runs 'tiny-a' and 'tiny-b'",
        ),
        (
            lambda s: s["shared"]["landscape"]["grid"].update(min=-0.05, max=0.15),
            r"study\.runs\[0\] \(tiny-a\): landscape\.grid.*miss a = 0",
        ),
    ],
)
def test_invalid_studies_are_refused_with_the_key(study, edit, message):
    with pytest.raises(StudyError, match=message):
        load(edited(study, edit))


def test_a_config_without_a_study_section_is_refused():
    with pytest.raises(StudyError, match="no study: section"):
        load({"run": "x", "model": {"name": "m", "source": "x"}})


def visage_table(rows: list[tuple]) -> pd.DataFrame:
    columns = [
        "judge",
        "landscape",
        "visage_paper",
        "visage_reference",
        "asr_at_origin",
        "visage_ci_low",
        "visage_ci_high",
        "basin_low",
        "basin_high",
        "basin_width",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_compare_table_takes_every_value_from_the_runs_visage_tables():
    tables = {
        "a": visage_table(
            [
                ("keyword", "d1", 80.0, 78.0, 0.0, 70.0, 90.0, -0.2, 0.2, 0.4),
                ("keyword", "d2", 60.0, 58.0, 0.0, 50.0, 70.0, -0.1, 0.1, 0.2),
                ("keyword", "mean", 70.0, 68.0, 0.0, 62.5, 77.5, -0.15, 0.15, 0.3),
            ]
        ),
        "b": visage_table(
            [
                ("keyword", "d1", 10.0, 5.0, 90.0, 5.0, 15.0, np.nan, np.nan, 0.0),
                ("keyword", "d2", 20.0, 5.0, 90.0, 15.0, 25.0, np.nan, np.nan, 0.0),
                ("keyword", "mean", 15.0, 5.0, 90.0, 12.0, 18.0, np.nan, np.nan, 0.0),
            ]
        ),
    }
    runs = [{"run": "a", "label": "A", "model": "m", "aligned": True}, {"run": "b", "label": "B", "model": "m", "aligned": False}]
    table = compare_table(tables, runs, "paper")
    assert table.drop(columns=["basin_low", "basin_high"]).to_dict("records") == [
        {
            "label": "A",
            "run": "a",
            "model": "m",
            "aligned": True,
            "judge": "keyword",
            "visage": 70.0,
            "visage_ci_low": 62.5,
            "visage_ci_high": 77.5,
            "visage_definition": "paper",
            "visage_paper": 70.0,
            "visage_reference": 68.0,
            "visage_std": pytest.approx(np.sqrt(200.0)),
            "directions": 2,
            "asr_at_origin": 0.0,
            "basin_width": 0.3,
        },
        {
            "label": "B",
            "run": "b",
            "model": "m",
            "aligned": False,
            "judge": "keyword",
            "visage": 15.0,
            "visage_ci_low": 12.0,
            "visage_ci_high": 18.0,
            "visage_definition": "paper",
            "visage_paper": 15.0,
            "visage_reference": 5.0,
            "visage_std": pytest.approx(np.sqrt(50.0)),
            "directions": 2,
            "asr_at_origin": 90.0,
            "basin_width": 0.0,
        },
    ]
    assert list(table["basin_low"][:1]) == [-0.15] and table["basin_high"][1:].isna().all()
    assert list(compare_table(tables, runs, "reference")["visage"]) == [68.0, 5.0]
    summary = compare_summary_table(table)
    assert list(summary.columns) == ["model", "judge", "VISAGE", "CI low", "CI high", "ASR at theta (%)", "basin width"]


def study_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(STUDY_SNAKEFILE),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(workdir / "study.yaml"),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_rules(workdir: Path) -> dict[str, int]:
    out = study_snakemake(workdir, "-n").stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M) if m.group(1) != "total"}


def test_study_workflow_end_to_end(tmp_path, study):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    study_snakemake(tmp_path)
    out = tmp_path / "results" / "studies" / "tiny-study"
    table = pd.read_csv(out / "tables" / "compare.csv")
    assert list(table["run"]) == ["tiny-a", "tiny-b"] and list(table["label"]) == ["tiny A", "tiny B"]
    for row in table.to_dict("records"):
        own = pd.read_csv(tmp_path / "results" / row["run"] / "tables" / "visage.csv").query("landscape == 'mean'").iloc[0]
        for column in ("visage_paper", "visage_reference", "visage_ci_low", "visage_ci_high", "asr_at_origin", "basin_width"):
            assert row[column] == pytest.approx(own[column], nan_ok=True)
        assert row["visage"] == pytest.approx(own["visage_paper"])
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / "compare.parquet"), table, check_dtype=False)
    assert len(pd.read_csv(out / "tables" / "compare_asr.csv")) == 2 * 2 * 3  # runs x directions x points
    assert (out / "figures" / "compare_1d.png").stat().st_size > 10_000
    assert (out / "figures" / "compare_1d.pdf").read_bytes().startswith(b"%PDF")
    assert yaml.safe_load((out / "configs" / "tiny-b.yaml").read_text()) == load(study).runs[1].config
    assert (out / "logs" / "compare.log").is_file() and "Finished" in (out / "logs" / "run" / "tiny-a.log").read_text()
    study_snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "compare_1d.png" in html and "Each model" in html and "grid a = -0.1 to 0.1 in steps of 0.1" in html
    assert planned_rules(tmp_path) == {}
    # a new label redraws the comparison only; a changed run config reruns that run's workflow only
    study["study"]["runs"][1]["label"] = "tiny B (renamed)"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    assert planned_rules(tmp_path) == {"compare": 1, "all": 1}
    study["study"]["runs"][1]["figures"] = {"dpi": 100}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    assert planned_rules(tmp_path) == {"study_config": 1, "study_run": 1, "compare": 1, "all": 1}


def test_study_workflow_lints():
    cmd = [sys.executable, "-m", "snakemake", "-s", str(STUDY_SNAKEFILE), "--lint", "--configfile", "config/study/smollm2.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
