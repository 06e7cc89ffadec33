"""The whole Snakemake chain on a tiny random Llama: outputs, caching, resume, config errors, lint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import ADVBENCH, REPO, build_tiny_model
from safety_landscape.io import read_json, read_jsonl

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]


def make_workdir(path: Path, model_dir: Path, **overrides) -> Path:
    config = {
        "run": "tiny",
        "model": {"name": "tiny", "source": str(model_dir)},
        "prompts": {"file": str(ADVBENCH), "column": "goal", "start": 0, "count": 4},
        "landscape": {"directions": 2, "grid": {"min": -0.2, "max": 0.2, "step": 0.1}},
        "generation": {"batch_size": 4, "max_new_tokens": 6, "points_per_job": 3},
        "judges": [{"name": "keyword"}, {"name": "refusal"}],
    }
    for key, value in overrides.items():
        config[key] = config.get(key, {}) | value
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, override: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir`; `override` is merged over its config.yaml (as a second config file)."""
    configs = [str(workdir / "config.yaml")]
    if override is not None:
        (workdir / "override.yaml").write_text(yaml.safe_dump(override))
        configs.append(str(workdir / "override.yaml"))
    cmd = SNAKEMAKE + ["--directory", str(workdir), *args, "--configfile", *configs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def landscape_records(run: Path, folder: str, landscape: str, **coords) -> list[dict]:
    """Records of one landscape's job files (responses or capability) at the given coordinates, in prompt order."""
    records = [r for path in sorted((run / folder / landscape).glob("job*.jsonl")) for r in read_jsonl(path)]
    return sorted((r for r in records if all(r.get(k) == v for k, v in coords.items())), key=lambda r: r.get("index", 0))


def planned_rules(workdir: Path, override: dict | None = None, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (after a config change, with more command-line arguments)."""
    out = snakemake(workdir, "-n", *args, override=override).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir) -> Path:
    workdir = make_workdir(tmp_path_factory.mktemp("wf"), tiny_model_dir)
    snakemake(workdir)
    return workdir


def test_chain_produces_every_artifact(finished_run):
    run = finished_run / "results" / "tiny"
    asr = pd.read_csv(run / "tables" / "asr.csv")
    assert len(asr) == 2 * 2 * 5 and asr["n"].eq(4).all() and asr["asr"].between(0, 100).all()
    assert {"ci_low", "ci_high", "empty_share", "degenerate_share", "unjudged"} <= set(asr.columns)
    visage = pd.read_csv(run / "tables" / "visage.csv")
    assert list(visage["landscape"]) == ["d1", "d2", "mean"] * 2 and list(visage["judge"][::3]) == ["keyword", "refusal"]
    assert (
        visage["visage_ci_low"].le(visage["visage_paper"] + 1e-9).all()
        and visage["visage_ci_high"].ge(visage["visage_paper"] - 1e-9).all()
    )
    summary = read_json(run / "summary.json")
    assert 0 <= summary["visage"] <= 100 and summary["judge"] == "keyword"
    assert set(summary["judges"]) == {"keyword", "refusal"}
    agreement = pd.read_csv(run / "tables" / "agreement.csv")
    assert list(agreement["landscape"]) == ["d1", "d2"] and agreement["n"].eq(20).all()
    pd.testing.assert_frame_equal(
        pd.read_parquet(run / "tables" / "asr.parquet"), pd.read_csv(run / "tables" / "asr.csv"), check_dtype=False
    )
    assert (run / "figures" / "landscape_1d.png").stat().st_size > 10_000
    assert (run / "figures" / "landscape_1d.pdf").read_bytes().startswith(b"%PDF")
    assert all(p.stat().st_size < 4096 for p in (run / "points").rglob("*.safetensors"))
    assert (run / "directions" / "d1" / "direction.json").is_file()
    # one file per generation job (5 points in jobs of 3: a = -0.2, 0, 0.2 and a = -0.1, 0.1), records labelled with their point
    assert [r["a"] for r in read_jsonl(run / "responses" / "d2" / "job2.jsonl")] == [-0.1] * 4 + [0.1] * 4
    records = landscape_records(run, "responses", "d2", a=-0.1)
    assert [r["index"] for r in records] == [0, 1, 2, 3] and {r["landscape"] for r in records} == {"d2"}
    assert records[0]["provenance"]["terms"][0]["coefficient"] == -0.1
    judgments = read_jsonl(run / "judgments" / "keyword" / "d1.jsonl")
    assert len(judgments) == 4 * 5 and sorted({j["a"] for j in judgments}) == [-0.2, -0.1, 0.0, 0.1, 0.2]
    for log in ("generate/d1/job1.log", "judge/keyword/d1.log", "visage.log", "figures.log"):
        assert (run / "logs" / log).is_file()


def test_nothing_reruns_when_nothing_changed(finished_run):
    assert planned_rules(finished_run) == {}


def test_stages_are_rules_addressed_by_name(finished_run):
    listed = snakemake(finished_run, "--list-rules").stdout.split()
    assert {"directions", "materialize", "generate", "judge", "visage", "figures", "capability", "generate_checkpoints"} <= set(
        listed
    )
    assert not [rule for rule in listed if re.search(r"_d\d|_job\d", rule)]  # no rule per landscape, direction or job
    # 2 landscapes x 2 jobs; -R reruns every generate job and what follows
    assert planned_rules(finished_run, None, "-R", "generate") == {
        "generate": 4,
        "judge": 4,
        "visage": 1,
        "figures": 1,
        "bundle": 1,
        "all": 1,
    }
    assert planned_rules(finished_run, None, "--forcerun", "visage") == {"visage": 1, "figures": 1, "bundle": 1, "all": 1}
    assert planned_rules(finished_run, None, "-R", "generate", "--until", "judge") == {"generate": 4, "judge": 4}


def test_changing_the_figure_style_reruns_only_the_figures(finished_run):
    assert planned_rules(finished_run, {"figures": {"style": "ticks"}}) == {"figures": 1, "bundle": 1, "all": 1}


def test_changing_the_judges_reruns_only_judging_and_what_follows(finished_run):
    judges = {"judges": [{"name": "keyword"}, {"name": "refusal"}, {"name": "keyword", "id": "keyword-again"}]}
    assert planned_rules(finished_run, judges) == {"judge": 2, "visage": 1, "figures": 1, "bundle": 1, "all": 1}


def generation_counts(workdir: Path) -> tuple[int, int]:
    """(points generated, points reused from the cache) according to the last run's generate logs."""
    logs = [p.read_text() for p in (workdir / "results").rglob("generate/*/job*.log")]
    return sum(len(re.findall(r": \d+ responses, \d+ tokens", t)) for t in logs), sum(t.count("reusing cached") for t in logs)


def test_grid_change_generates_only_the_new_points(tmp_path, tiny_model_dir):
    workdir = make_workdir(tmp_path, tiny_model_dir, landscape={"directions": 1})
    snakemake(workdir)
    assert generation_counts(workdir) == (5, 0)
    snakemake(workdir, override={"landscape": {"grid": {"min": -0.2, "max": 0.2, "step": 0.05}}})
    assert generation_counts(workdir) == (4, 5)  # new: -0.15, -0.05, 0.05, 0.15
    assert len(pd.read_csv(workdir / "results" / "tiny" / "tables" / "asr.csv")) == 2 * 9  # two judges


def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path, tiny_model_dir):
    settings = dict(
        landscape={"directions": 1, "grid": {"min": -0.2, "max": 0.2, "step": 0.05}},
        generation={"batch_size": 8, "max_new_tokens": 24, "points_per_job": 9},
        prompts={"count": 8},
    )
    killed = make_workdir(tmp_path / "killed", tiny_model_dir, **settings)
    cache = killed / "results" / "cache" / "responses"
    cmd = SNAKEMAKE + ["--directory", str(killed), "--configfile", str(killed / "config.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (cache.is_dir() and any(cache.glob("*.json"))):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.json")}
    assert 1 <= len(done_before) < 9, "the kill should land inside the generation job"
    assert not (killed / "results" / "tiny" / "tables" / "asr.csv").exists()

    snakemake(killed, "--unlock")
    snakemake(killed)
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.json")}
    assert len(after) == 9
    assert all(after[name] == mtime for name, mtime in done_before.items()), "finished points were regenerated"

    clean = make_workdir(tmp_path / "clean", tiny_model_dir, **settings)
    snakemake(clean)
    for rel in ("tables/asr.csv", "tables/visage.csv"):
        assert (killed / "results/tiny" / rel).read_text() == (clean / "results/tiny" / rel).read_text()
    for path in sorted((clean / "results/tiny/responses").rglob("*.jsonl")):
        other = killed / "results/tiny/responses" / path.relative_to(clean / "results/tiny/responses")
        assert [r["response"] for r in read_jsonl(other)] == [r["response"] for r in read_jsonl(path)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"landscape": {"grid": {"min": -0.25, "max": 0.35, "step": 0.1}}}, "miss a = 0"),
        ({"model": {"source": "/no/such/folder"}}, "model.source"),
        ({"landscape": {"directions": 0}}, "directions"),
        ({"prompts": {"file": "/no/such.csv"}}, "prompts.file"),
    ],
)
def test_bad_config_fails_before_any_work(finished_run, override, message):
    proc = snakemake(finished_run, "-n", override=override, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_lint_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--lint"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """A second checkpoint of the same architecture (another random init): an interpolation endpoint."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-other"), seed=1)


def test_2d_random_landscape_with_a_projected_checkpoint(tmp_path, tiny_model_dir, other_model_dir):
    workdir = make_workdir(
        tmp_path,
        tiny_model_dir,
        landscape={
            "kind": "2d-random",
            "grid": {"min": -0.2, "max": 0.2, "step": 0.2},
            "grid_b": {"min": -0.4, "max": 0.4, "step": 0.4},
            "project": [{"name": "other", "source": str(other_model_dir)}],
        },
    )
    snakemake(workdir)
    run = workdir / "results" / "tiny"
    asr = pd.read_csv(run / "tables" / "asr.csv")
    assert len(asr) == 2 * 9 and set(asr["landscape"]) == {"d1-d2"} and sorted(asr["b"].unique()) == [-0.4, 0.0, 0.4]
    assert len(landscape_records(run, "responses", "d1-d2", a=-0.2, b=0.4)) == 4
    visage = pd.read_csv(run / "tables" / "visage.csv")
    assert list(visage["landscape"]) == ["d1-d2", "mean"] * 2 and {"basin_area", "basin_mean_radius"} <= set(visage.columns)
    for name in ("contour", "surface"):
        assert (run / "figures" / f"landscape_2d_{name}.png").stat().st_size > 10_000
    projection = read_json(run / "projections" / "other.json")
    assert len(projection["coordinates"]) == 2 and projection["relative_residual"] > 0.9  # a random model is far off the plane
    meta = read_json(run / "directions" / "d2" / "direction.json")["metadata"]
    assert abs(meta["cosine"]) < 0.2 and meta["cosine_with"] == "d1"  # recorded; nearly orthogonal in high dimension
    assert "gram_schmidt_coefficient" not in meta  # the paper does not orthogonalize 2D random directions


def test_interpolation_landscape_reaches_the_endpoint(tmp_path, tiny_model_dir, other_model_dir):
    endpoint = {"name": "other", "source": str(other_model_dir)}
    workdir = make_workdir(
        tmp_path,
        tiny_model_dir,
        landscape={
            "kind": "1d-interpolation",
            "endpoints": [endpoint],
            "grid": {"min": -0.5, "max": 1.5, "step": 0.5},
            "project": [endpoint],
        },
    )
    snakemake(workdir)
    run = workdir / "results" / "tiny"
    assert sorted(pd.read_csv(run / "tables" / "asr.csv")["a"].unique()) == [-0.5, 0.0, 0.5, 1.0, 1.5]
    projection = read_json(run / "projections" / "other.json")
    assert projection["coordinates"] == pytest.approx([1.0], abs=1e-6) and projection["relative_residual"] < 1e-6

    snakemake(workdir, "results/tiny/export/i1/a+1.0000/model", "results/tiny/export/i1/a+0.5000/delta.safetensors")
    from safety_landscape.directions import CheckpointReader

    exported, target = CheckpointReader(run / "export/i1/a+1.0000/model"), CheckpointReader(other_model_dir)
    for name in target.names:
        assert torch.allclose(exported.get(name), target.get(name), atol=1e-6)
    delta = CheckpointReader(run / "export/i1/a+0.5000")
    name = "model.layers.0.mlp.down_proj.weight"
    base = CheckpointReader(tiny_model_dir).get(name)
    assert torch.allclose(delta.get(name), 0.5 * (target.get(name) - base), atol=1e-6)


def test_interpolation_without_an_endpoint_is_refused(finished_run):
    proc = snakemake(finished_run, "-n", override={"landscape": {"kind": "1d-interpolation"}}, check=False)
    assert proc.returncode != 0 and "landscape.endpoints" in proc.stdout + proc.stderr


SHIPPED = sorted(
    str(p.relative_to(REPO))
    for p in [
        *(REPO / "config" / "paper").glob("*.yaml"),
        *(REPO / "config").glob("smollm2-*.yaml"),
    ]
)
STANDIN = "config/overlays/finetune-advbench.yaml"  # the paper finetune configs' data, substituted
ADAPTIVE_OVERLAY = "config/overlays/adaptive.yaml"  # samples the main landscape only: planned on its own
OVERLAYS = sorted(
    str(p.relative_to(REPO))
    for p in (REPO / "config" / "overlays").glob("*.yaml")
    if p.name not in (Path(STANDIN).name, Path(ADAPTIVE_OVERLAY).name)
)


@pytest.mark.parametrize(
    "configfiles",
    [[c, STANDIN] if c.endswith("-finetune.yaml") else [c] for c in SHIPPED]
    + [["config/config.yaml", *OVERLAYS], ["config/paper/llama2-7b-chat-1d.yaml", *OVERLAYS]]
    + [[c, ADAPTIVE_OVERLAY] for c in ("config/config.yaml", "config/smollm2-2d.yaml", "config/smollm2-wide-2d.yaml")],
)
def test_shipped_configs_plan_without_errors(configfiles):
    proc = subprocess.run(SNAKEMAKE + ["-n", "--configfile", *configfiles], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_paper_finetune_config_without_its_data_stops_before_any_work():
    proc = subprocess.run(
        SNAKEMAKE + ["-n", "--configfile", "config/paper/llama2-7b-chat-finetune.yaml"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode != 0
    assert (
        "data/pure_bad/pure_bad_10.jsonl does not exist" in proc.stdout + proc.stderr
        and "Qi et al. 2023" in proc.stdout + proc.stderr
    )


def test_slurm_profile_plans_gpu_jobs(tmp_path, tiny_model_dir):
    workdir = make_workdir(tmp_path, tiny_model_dir, generation={"device": "cuda", "tensor_parallel_size": 2})
    proc = snakemake(workdir, "-n", "--profile", str(REPO / "profiles" / "slurm"))
    assert re.search(r"^generate\s+4$", proc.stdout, re.M)  # 2 landscapes x 2 jobs
    assert "gpu=2" in proc.stdout.replace(" ", "")


def test_html_report_builds(finished_run):
    snakemake(finished_run, "--report", str(finished_run / "report.html"))
    html = (finished_run / "report.html").read_text(errors="replace")
    assert "judges keyword, refusal (the first headlines)" in html and "landscape_1d.png" in html
    # captions state the setup and the VISAGE of the run
    judge, visage = (
        (finished_run / "results" / "tiny" / "tables" / "visage_summary.csv").read_text().splitlines()[1].split(",")[:2]
    )
    assert float(visage) == pytest.approx(read_json(finished_run / "results" / "tiny" / "summary.json")["visage"], abs=0.01)
    assert "along 2 random directions" in html and "grid a = -0.2 to 0.2 in steps of 0.1" in html
    assert f"<td>{judge}</td>\\n<td>{visage}</td>" in html  # the caption's VISAGE table (JSON-escaped in the page)
    assert "Safety landscape" in html


def test_bundle_holds_every_artifact_and_verifies(finished_run):
    bundle = finished_run / "results" / "tiny" / "bundle"
    manifest = read_json(bundle / "MANIFEST.json")
    paths = {e["path"] for e in manifest["files"]}
    assert {
        "config.yaml",
        "summary.json",
        "tables/visage.csv",
        "figures/landscape_1d.png",
        "directions/d1/direction.json",
        "responses/d2/job2.jsonl.gz",
        "judgments/refusal/d1.jsonl.gz",
    } <= paths
    assert not any(p.endswith(".safetensors") for p in paths) and len([p for p in paths if p.startswith("responses/")]) == 2 * 2
    assert manifest["config"]["run"] == "tiny" and manifest["git"]["commit"] and manifest["versions"]["snakemake"]
    verify = [sys.executable, "-m", "safety_landscape.bundle", str(bundle)]
    assert subprocess.run(verify, capture_output=True).returncode == 0


def test_finetune_experiment_end_to_end(tmp_path, tiny_model_dir):
    finetune = {
        "enabled": True,
        "datasets": [{"name": "harm3", "kind": "harmful", "shots": 3}, {"name": "mix3", "kind": "mix", "shots": 3}],
        "epochs": 2,
        "batch_size": 3,
        "learning_rate": 1e-3,
        "threads": 1,
        "harmful_file": str(ADVBENCH),
        "refusals": str(REPO / "data" / "align" / "refusals.txt"),
        "evaluation": {
            "sets": [
                {"name": "adv4", "file": str(ADVBENCH), "count": 4},
                {"name": "held", "file": str(ADVBENCH), "start": 500, "count": 3, "epochs": "last"},
            ]
        },
        "interpolation": {"grid": {"min": 0.0, "max": 1.0, "step": 0.5}, "dtype": "bfloat16"},
        "plane": {"datasets": ["harm3", "mix3"], "grid": {"min": 0.0, "max": 1.0, "step": 1.0}},
    }
    workdir = make_workdir(tmp_path, tiny_model_dir, landscape={"directions": 1}, finetune=finetune)
    snakemake(workdir)
    run = workdir / "results" / "tiny"
    table1 = pd.read_csv(run / "tables" / "table1.csv")
    assert list(table1.columns) == ["model", "judge", "eval_set", "prompts", "n", "aligned", "harm3", "mix3"]
    assert len(table1) == 2 * 2 and table1[["aligned", "harm3", "mix3"]].stack().between(0, 100).all()
    assert set(table1["prompts"]) == {"all"} and list(table1["n"]) == [4, 3, 4, 3]  # no evaluation prompt was trained on
    asr = pd.read_csv(run / "tables" / "finetune_asr.csv")
    assert len(asr) == 2 * ((1 + 2 * 2) + (1 + 2)) and set(asr[asr.eval_set == "held"]["epoch"]) == {0, 2}
    mix = read_jsonl(run / "finetune" / "mix3" / "pairs.jsonl")
    assert [p["kind"] for p in mix] == ["harmful"] * 3 + ["safe"] * 3 and all(p["refusal_source"] for p in mix[3:])
    manifest = read_json(run / "finetune" / "harm3" / "epoch1" / "manifest.json")
    assert (
        manifest["kind"] == "finetuned"
        and manifest["epoch"] == 1
        and (run / "finetune" / "harm3" / "epoch1" / "model" / "model.safetensors").is_file()
    )
    assert len(read_json(run / "finetune" / "harm3" / "training.json")["losses"]) == 2
    # the last epochs span the plane: they project onto (1, 0) and (0, 1) with no residual
    for name, expected in (("harm3-epoch2", [1.0, 0.0]), ("mix3-epoch2", [0.0, 1.0])):
        projection = read_json(run / "finetune" / "projections" / f"{name}.json")
        assert projection["coordinates"] == pytest.approx(expected, abs=1e-4) and projection["relative_residual"] < 1e-3
    assert read_json(run / "finetune" / "projections" / "harm3-epoch1.json")["relative_residual"] > 1e-3
    # plane points on its axes are the finetune lines' points: taken from the cache, not generated again
    plane_logs = "".join(p.read_text() for p in (run / "logs" / "generate" / "f1-f2").glob("job*.log"))
    assert plane_logs.count("reusing cached") == 3
    on_axis, on_line = (
        landscape_records(run, "responses", "f1-f2", a=1.0, b=0.0),
        landscape_records(run, "responses", "f1", a=1.0),
    )
    assert [r["response"] for r in on_axis] == [r["response"] for r in on_line] and on_axis[0]["landscape"] == "f1-f2"
    # the lines and the plane generate in finetune.interpolation.dtype, the main landscape in generation.dtype
    dtypes = {
        name: landscape_records(run, "responses", name)[0]["provenance"]["decoding"]["dtype"] for name in ("d1", "f1", "f1-f2")
    }
    assert dtypes == {"d1": "float32", "f1": "bfloat16", "f1-f2": "bfloat16"}
    for name in ("finetune_asr_by_epoch", "finetune_interpolation", "finetune_trajectories"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
    # a new plane grid or evaluation set evaluates and draws again, but retrains nothing
    wider = {"finetune": finetune | {"plane": finetune["plane"] | {"grid": {"min": -1.0, "max": 1.0, "step": 1.0}}}}
    planned = planned_rules(workdir, wider)
    assert planned["generate"] >= 1 and not {"finetune", "finetune_data"} & set(planned)


def test_system_prompt_and_capability_landscapes(tmp_path, tiny_model_dir):
    variants = [{"name": "aoa", "file": str(REPO / "data" / "system_prompts" / "aoa.txt")}, {"name": "empty", "text": ""}]
    capability = {
        "enabled": True,
        "references": str(REPO / "data" / "capability" / "benign_qa.jsonl"),
        "questions": str(REPO / "data" / "capability" / "mc_questions.csv"),
    }
    workdir = make_workdir(tmp_path, tiny_model_dir, capability=capability)
    (workdir / "config.yaml").write_text((workdir / "config.yaml").read_text() + yaml.safe_dump({"system_prompts": variants}))
    planned = planned_rules(workdir)
    # the variants answer at the main landscape's point artifacts: no materialize rule of their own
    assert planned["materialize"] == 2  # d1 and d2
    # jobs of 3 points: 2 per landscape, for 2 main landscapes and 2 x 2 variant landscapes; capability on the main ones
    assert (planned["generate"], planned["judge"], planned["capability"], planned["system_prompt_tables"]) == (12, 12, 4, 1)
    snakemake(workdir)
    run = workdir / "results" / "tiny"
    aoa = landscape_records(run, "responses", "d1@aoa", a=0.1)
    assert aoa[0]["provenance"]["decoding"]["system_prompt"] == (REPO / "data" / "system_prompts" / "aoa.txt").read_text().strip()
    assert landscape_records(run, "responses", "d2@empty", a=-0.1)[0]["provenance"]["decoding"]["system_prompt"] == ""
    assert aoa[0]["provenance"]["terms"] == landscape_records(run, "responses", "d1", a=0.1)[0]["provenance"]["terms"]
    table2 = pd.read_csv(run / "tables" / "system_prompts.csv", keep_default_na=False)
    assert list(zip(table2["variant"], table2["judge"])) == [
        (v, j) for v in ("default", "aoa", "empty") for j in ("keyword", "refusal")
    ]
    assert table2["visage"].between(0, 100).all()
    assert len(pd.read_csv(run / "tables" / "system_prompts_asr.csv")) == 3 * 2 * 2 * 5  # variants x judges x directions x points
    main = pd.read_csv(run / "tables" / "visage.csv").query("landscape == 'mean'")
    assert list(table2[table2.variant == "default"]["visage"]) == pytest.approx(list(main["visage_paper"]))
    capability = pd.read_csv(run / "tables" / "capability.csv")
    assert len(capability) == 2 * 5 and capability["mc_accuracy"].between(0, 100).all() and (capability["perplexity"] > 1).all()
    origin = capability[capability.a == 0.0]
    assert origin["perplexity"].nunique() == 1  # theta is scored once and taken from the cache for the other direction
    assert capability["perplexity"].nunique() == 2 * 4 + 1  # every perturbed point has weights of its own
    capability_logs = "".join(p.read_text() for p in (run / "logs" / "capability" / "d2").glob("job*.log"))
    assert capability_logs.count("reusing cached") == 1
    for name in ("system_prompts", "capability"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
    paths = {e["path"] for e in read_json(run / "bundle" / "MANIFEST.json")["files"]}
    assert {"responses/d1@aoa/job1.jsonl.gz", "capability/d2/job2.jsonl.gz", "tables/system_prompts.csv"} <= paths
    snakemake(workdir, "--report", str(workdir / "report.html"))
    html = (workdir / "report.html").read_text(errors="replace")
    assert "System prompts" in html and "Capability" in html and "system_prompts.png" in html
