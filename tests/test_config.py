import copy

import pytest
import yaml

from conftest import REPO
from safety_landscape.config import ConfigError, check_config, generation_jobs, grid_values, reused_points
from safety_landscape.modeling import resolve_source
from safety_landscape.prompts import PromptFileError, select_prompts


def default_config():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "config" / "schema.yaml"))
    return config


def test_default_config_is_valid_and_plans_every_point():
    config = default_config()
    check_config(config, REPO)
    assert grid_values(config["landscape"]["grid"]) == pytest.approx([round(-0.3 + 0.05 * i, 4) for i in range(13)])
    jobs = generation_jobs(config)
    points = [p.id for job in jobs for p in job.points]
    assert len(points) == len(set(points)) == 3 * 13 + 2 * 5 + 5 * 5  # the landscape, two finetune lines, their plane
    assert max(len(job.points) for job in jobs) <= config["generation"]["points_per_job"]


def test_points_with_equal_weights_are_generated_once():
    config = default_config()
    check_config(config, REPO)
    reused = reused_points(config)
    # every a = 0 is the unperturbed model; the plane's axes are the two finetune lines
    assert reused["d2/a+0.0000"] == reused["f1/a+0.0000"] == "d1/a+0.0000"
    assert reused["f1-f2/a+1.0000_b+0.0000"] == "f1/a+1.0000" and reused["f1-f2/a+0.0000_b+1.5000"] == "f2/a+1.5000"
    assert "f1-f2/a+0.5000_b+0.5000" not in reused
    assert len(reused) == 4 + 9  # 4 more a = 0, 9 plane points on its axes


def test_finetune_settings_are_checked():
    def refused(change: dict, match: str):
        config = default_config()
        config["finetune"] |= change
        with pytest.raises(ConfigError, match=match):
            check_config(config, REPO)

    refused({"harmful_rows": [30, 60]}, r"finetune.harmful_rows: \[30, 60\) overlaps the evaluation prompts")
    refused({"datasets": [{"name": "h", "kind": "harmful", "shots": 500}]}, r"shots 500 > the 140 rows")
    refused({"datasets": [{"name": "h", "kind": "harmful"}]}, "needs shots")
    refused({"datasets": [{"name": "j", "kind": "jsonl", "file": "missing.jsonl"}]}, "missing.jsonl does not exist")
    refused({"plane": {"datasets": ["harmful10", "nope"], "grid": {"min": 0, "max": 1, "step": 1}}}, "must name two different datasets")
    refused({"datasets": [{"name": "aligned", "kind": "harmful", "shots": 3}], "plane": {"datasets": []}}, "'aligned'")
    refused({"evaluation": {"sets": [{"name": "big", "file": "data/advbench/harmful_behaviors.csv", "column": "goal", "start": 500,
                                      "count": 40, "epochs": "all"}]}}, r"rows 500..539 asked for")


def test_grid_without_zero_is_refused():
    with pytest.raises(ConfigError, match="a = 0"):
        grid_values({"min": -0.25, "max": 0.35, "step": 0.1})
    with pytest.raises(ConfigError, match="whole number"):
        grid_values({"min": -0.3, "max": 0.3, "step": 0.07})


def test_schema_rejects_unknown_and_mistyped_keys():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = default_config()
    bad = copy.deepcopy(config) | {"landscape": config["landscape"] | {"directions": "three"}}
    with pytest.raises(WorkflowError, match="directions"):
        validate(bad, str(REPO / "config" / "schema.yaml"))


def test_missing_model_path_names_the_key(tmp_path):
    config = default_config()
    config["model"]["source"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="model.source"):
        check_config(config, REPO)
    with pytest.raises(ValueError, match="config.json"):
        resolve_source(str(tmp_path))


def test_bad_prompt_files_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("goal,target\n")
    (tmp_path / "blank.csv").write_text('goal,target\n"a",b\n"",c\n')
    (tmp_path / "bad.jsonl").write_text('{"goal": "x"}\n{not json\n')
    with pytest.raises(PromptFileError, match="holds no prompts"):
        select_prompts(tmp_path / "empty.csv", "goal", 0, None)
    with pytest.raises(PromptFileError, match=r"empty 'goal' values in rows \[1\]"):
        select_prompts(tmp_path / "blank.csv", "goal", 0, None)
    with pytest.raises(PromptFileError, match="not a well-formed"):
        select_prompts(tmp_path / "bad.jsonl", "goal", 0, None)
    with pytest.raises(PromptFileError, match="no column 'prompt'"):
        select_prompts(tmp_path / "blank.csv", "prompt", 0, None)


def test_alignment_rows_must_not_overlap_the_evaluation_prompts():
    config = default_config()
    config["align"]["harmful_rows"] = [20, 300]
    with pytest.raises(ConfigError, match="overlaps the evaluation prompts"):
        check_config(config, REPO)


def with_landscape(**landscape):
    """The default config with another landscape and no finetuning experiment."""
    config = default_config()
    config["landscape"] |= landscape
    config["finetune"]["enabled"] = False
    return config


def test_2d_random_plans_one_plane_of_the_product_grid():
    from safety_landscape.config import axes, landscapes

    config = with_landscape(kind="2d-random", grid={"min": -0.5, "max": 0.5, "step": 0.05})
    assert [ls.name for ls in landscapes(config)] == ["d1-d2"]
    assert len(landscapes(config)[0].points) == 21 * 21
    d1, d2 = axes(config)
    assert (d2.partner, d2.orthogonalize) == ("d1", False)  # the paper does not orthogonalize
    config["landscape"]["orthogonalize"] = True
    assert axes(config)[1].orthogonalize


def test_interpolation_kinds_need_their_endpoints():
    from safety_landscape.config import axes

    with pytest.raises(ConfigError, match="needs 2 endpoint"):
        check_config(with_landscape(kind="2d-interpolation", endpoints=[{"name": "x", "source": str(REPO)}]), REPO)
    config = with_landscape(kind="2d-interpolation", endpoints=[{"name": "chat", "source": "org/chat"}, {"name": "ft", "source": "org/ft"}])
    assert [(a.name, a.endpoint, a.partner, a.orthogonalize) for a in axes(config)] == [("i1", "chat", None, False), ("i2", "ft", "i1", True)]


def test_a_model_name_cannot_mean_two_sources():
    from safety_landscape.config import model_specs

    config = with_landscape(kind="1d-interpolation", endpoints=[{"name": "a", "source": "org/x"}], project=[{"name": "a", "source": "org/y"}])
    with pytest.raises(ConfigError, match="two different sources"):
        model_specs(config)


def test_judges_get_ids_and_early_stop_follows_them():
    from safety_landscape.config import resolve_judges

    config = default_config()
    resolve_judges(config)
    assert [j["id"] for j in config["judges"]] == ["keyword", "keyword-robust"]
    assert config["generation"]["stop_on_refusal"] is True  # keyword judges only
    config = default_config()
    config["judges"] = [{"name": "keyword"}, {"name": "guard", "model": "/models/guard"}]
    resolve_judges(config)
    assert config["generation"]["stop_on_refusal"] is False  # a model judge must see whole responses
    config["generation"]["stop_on_refusal"] = True
    with pytest.raises(ConfigError, match="stop_on_refusal"):
        resolve_judges(config)


def test_bad_judge_settings_are_refused():
    from safety_landscape.config import resolve_judges

    config = default_config()
    config["judges"] = [{"name": "keyword"}, {"name": "keyword"}]
    with pytest.raises(ConfigError, match="used twice"):
        resolve_judges(config)
    config["judges"] = [{"name": "endpoint", "url": "http://127.0.0.1:8000/v1"}]
    with pytest.raises(ConfigError, match=r"judges\[0\] \(endpoint\): set model"):
        resolve_judges(config)
