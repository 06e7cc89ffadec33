"""Judge models named by hub id: planned as models, downloaded by the model rule from a hub stand-in on
127.0.0.1 (safetensors only, at the pinned commit), and judged with in the workflow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from conftest import REPO
from safety_landscape.io import read_json, read_jsonl
from safety_landscape.judges import judge_cache_dir
from safety_landscape.modeling import folder_digest
from safety_landscape.plan import judge_models, judge_specs, model_specs
from test_hub import MAIN, V1, hub, run_model_script  # noqa: F401 (the hub fixture)
from test_workflow import SNAKEMAKE, make_workdir


def test_hub_judge_models_are_planned_as_models_named_after_id_and_revision(tmp_path):
    (tmp_path / "guard-folder").mkdir()
    config = {
        "model": {"name": "m", "source": "org/m", "trust_remote_code": False},
        "landscape": {"endpoints": [], "project": []},
        "judges": [
            {"name": "keyword"},
            {"name": "llama-guard-3", "model": "meta-llama/Llama-Guard-3-8B"},
            {"name": "harmbench", "id": "hb", "model": "cais/HarmBench-Llama-2-13b-cls", "revision": "refs/pr/3"},
            {"name": "guard", "model": str(tmp_path / "guard-folder")},
            {"name": "endpoint", "url": "http://127.0.0.1:1/v1", "model": "served/name"},
        ],
    }
    models = judge_models(config)
    assert models == {
        "llama-guard-3": {
            "name": "meta-llama--Llama-Guard-3-8B",
            "source": "meta-llama/Llama-Guard-3-8B",
            "revision": None,
            "gguf_file": None,
            "trust_remote_code": False,
            "key": "judges[1].model",
        },
        "hb": {
            "name": "cais--HarmBench-Llama-2-13b-cls--refs_pr_3",
            "source": "cais/HarmBench-Llama-2-13b-cls",
            "revision": "refs/pr/3",
            "gguf_file": None,
            "trust_remote_code": False,
            "key": "judges[2].model",
        },
    }
    assert list(model_specs(config)) == ["m", "meta-llama--Llama-Guard-3-8B", "cais--HarmBench-Llama-2-13b-cls--refs_pr_3"]


def judge_model_spec(revision: str | None = "v1") -> dict:
    config = {"judges": [{"name": "keyword"}, {"name": "guard", "id": "lg", "model": "org/tiny", "revision": revision}]}
    return judge_models(config)["lg"]


def last_log_line(folder: Path) -> str:
    return (folder / "model.log").read_text().rstrip().splitlines()[-1]


def test_an_offline_judge_model_fails_naming_the_judge_setting(hub, tmp_path):  # noqa: F811
    run = run_model_script(hub, judge_model_spec(), tmp_path, offline=True)
    assert run.returncode == 1
    assert last_log_line(tmp_path) == (
        "safety_landscape.modeling.ModelSpecError: judges[1].model: hub model 'org/tiny' needs the hub to resolve "
        "revision 'v1', and HF_HUB_OFFLINE is set; unset it, or set judges[1].model to a local copy of the model "
        "(such as the path in its manifest)"
    )
    assert hub.requests == [] and not (tmp_path / "manifest.json").exists()


def test_a_judge_model_without_safetensors_names_the_judge_revision(hub, tmp_path):  # noqa: F811
    spec = judge_model_spec(None) | {"source": "org/pickle-only"}
    run = run_model_script(hub, spec, tmp_path)
    assert run.returncode == 1
    assert last_log_line(tmp_path) == (
        "safety_landscape.modeling.ModelSpecError: judges[1].model: hub model 'org/pickle-only' has no safetensors weights "
        f"(model.safetensors or model.safetensors.index.json) at revision 'main' ({MAIN}), and pickle weights are never "
        "loaded; set judges[1].revision to a revision that has them (such as the safetensors conversion's refs/pr/<number>), "
        "or save the model with save_pretrained(safe_serialization=True) and set judges[1].model to that folder"
    )


def test_a_judge_named_by_hub_id_judges_with_the_download_at_its_commit(hub, tmp_path, tiny_model_dir):  # noqa: F811
    judge = {"name": "guard", "id": "lg", "model": "org/tiny", "revision": "v1", "device": "cpu", "max_new_tokens": 2}
    workdir = make_workdir(
        tmp_path / "wd",
        tiny_model_dir,
        prompts={"count": 2},
        landscape={"directions": 1, "grid": {"min": -0.1, "max": 0.1, "step": 0.1}},
    )
    config = yaml.safe_load((workdir / "config.yaml").read_text()) | {"judges": [{"name": "keyword"}, judge]}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = os.environ | {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(REPO / "src"),
    }
    target = "results/tiny/judgments/lg/d1.jsonl"
    command = [*SNAKEMAKE, "--directory", str(workdir), target, "--configfile", str(workdir / "config.yaml")]
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr

    snapshot = tmp_path / "hub-cache" / "models--org--tiny" / "snapshots" / V1
    assert read_json(workdir / "results/models/org--tiny--v1/manifest.json") == {
        "source": "org/tiny",
        "kind": "hub",
        "revision": V1,
        "path": str(snapshot),
        "digest": folder_digest(tiny_model_dir),
    }
    downloads = sorted(path.rsplit("/", 1)[-1] for method, path in hub.requests if method == "GET" and "/resolve/" in path)
    assert "model.safetensors" in downloads and not [name for name in downloads if name.endswith((".bin", ".pth", ".py"))]
    judgments = read_jsonl(workdir / target)
    assert len(judgments) == 3 * 2 and {j["judge"] for j in judgments} == {"lg"}
    # the verdicts' cache names the commit judged with, not the branch
    from snakemake.utils import validate

    validate(config, str(REPO / "config" / "schema.yaml"))
    spec = judge_specs(config)["lg"]
    cache = judge_cache_dir(workdir / "results/cache/judgments", spec | {"revision": V1})
    assert [p.name for p in (workdir / "results/cache/judgments").iterdir()] == [cache.name]
    responses = read_jsonl(workdir / "results/tiny/responses/d1/job1.jsonl")
    distinct = len({(r["prompt"], r["response"]) for r in responses})  # a verdict per distinct response
    assert len(list(cache.glob("*.json"))) == distinct
    assert f"lg: 6 responses, {distinct} judged now" in (workdir / "results/tiny/logs/judge/lg/d1.log").read_text()
    assert spec["revision"] == "v1"  # the config keeps the revision as written
