"""Clusters and GPUs: a job in SLURM takes the GPUs SLURM gave it, without locks; classifier judges ask
for a GPU; the multi-GPU profile runs as many GPU jobs at once as it has GPUs; the workflow through
profiles/slurm on a single-node SLURM cluster (tests/slurm/cluster.py) equals a local run."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from safety_landscape.gpus import claim_gpus, visible_gpus
from slurm.cluster import LocalSlurm, missing_requirements, start_cluster
from test_workflow import SNAKEMAKE, make_workdir, snakemake

WORKFLOW_TIMEOUT_S = 900
# One direction of 5 points in 2 generation jobs, judged by the keyword and refusal judges; on device "auto"
# every generation job asks for a GPU (the cluster's GPUs are stand-ins: the model runs on the CPU).
SETTINGS = {"landscape": {"directions": 1}, "generation": {"device": "auto"}}
COMPARED = ["tables/asr.csv", "tables/visage.csv", "responses/d1/job1.jsonl", "responses/d1/job2.jsonl"] + [
    f"judgments/{judge}/d1.jsonl" for judge in ("keyword", "refusal")
]


def test_a_slurm_job_takes_its_gpus_without_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # as SLURM sets it for a job given two GPUs
    locks = tmp_path / "locks"
    assert claim_gpus(1, visible_gpus(), locks, timeout=0) == []
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not locks.exists()
    with pytest.raises(RuntimeError, match=r"tensor_parallel_size is 3 but only 2 GPU\(s\) are visible \(\['3', '5'\]\)"):
        claim_gpus(3, ["3", "5"], locks)


def test_classifier_judges_ask_for_a_gpu_unless_on_the_cpu(tmp_path, tiny_model_dir):
    judges = [
        {"name": "keyword"},
        {"name": "guard", "model": str(tiny_model_dir)},
        {"name": "harmbench-cls", "model": str(tiny_model_dir), "device": "cpu"},
        {"name": "endpoint", "model": "judge", "url": "http://127.0.0.1:9/v1"},
    ]
    workdir = make_workdir(tmp_path, tiny_model_dir, landscape={"directions": 1})
    out = snakemake(workdir, "-n", override={"judges": judges}).stdout
    planned = re.findall(r"^rule judge:\n(?:    .*\n)*?    wildcards: judge=(\S+), .*\n    resources: .*?gpu=(\d)", out, re.M)
    assert sorted(planned) == [("endpoint", "0"), ("guard", "1"), ("harmbench-cls", "0"), ("keyword", "0")]


def job_selections(log: str) -> list[tuple[int, int, int, int]]:
    """(ready jobs, selected jobs, free GPUs before, free GPUs after) of every job selection in a --verbose log."""
    pattern = (
        r"Resources before job selection: (\{.*\})\nReady jobs: (\d+)\n(?:.*\n)*?"
        r"Selected jobs: (\d+)\nResources after job selection: (\{.*\})"
    )
    return [
        (int(ready), int(selected), ast.literal_eval(before)["gpu"], ast.literal_eval(after)["gpu"])
        for before, ready, selected, after in re.findall(pattern, log)
    ]


def test_multi_gpu_profile_runs_as_many_gpu_jobs_at_once_as_it_has_gpus(tmp_path, tiny_model_dir):
    profile = REPO / "profiles" / "multi-gpu"
    gpus = yaml.safe_load((profile / "config.yaml").read_text())["resources"]["gpu"]
    # 2 * gpus + 1 points, a generation job each; a --dry-run skips job selection, --touch runs it but no job
    grid = {"min": -gpus / 10, "max": gpus / 10, "step": 0.1}
    workdir = make_workdir(
        tmp_path, tiny_model_dir, landscape={"directions": 1, "grid": grid}, generation={"device": "cuda", "points_per_job": 1}
    )
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--profile", str(profile), "--cores", str(4 * gpus)]  # more cores than GPU jobs: only the GPUs limit them
    cmd += ["--touch", "--verbose", "--configfile", str(workdir / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    gpu_selections = [s for s in job_selections(proc.stderr) if s[2] != s[3]]
    assert gpu_selections == [(2 * gpus + 1, gpus, gpus, 0), (gpus + 1, gpus, gpus, 0), (1, 1, gpus, gpus - 1)]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = missing_requirements()
    if missing:
        reason = f"a local SLURM cluster needs {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run installs the packages")
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def local_cluster_profile(folder: Path, cluster: LocalSlurm) -> Path:
    """profiles/slurm with the local cluster's partition and limits (a CPU and a CPU's share of the
    memory per job), job states from squeue (the cluster keeps no accounting) and status checks every 2 s."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"] |= {
        "slurm_partition": cluster.partition,
        "cpus_per_task": 1,
        "mem_mb": cluster.memory_mb // cluster.cpus,
    }
    profile |= {"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2}
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def run_on_slurm(workdir: Path, profile: Path, cluster: LocalSlurm) -> None:
    cmd = SNAKEMAKE + ["--directory", str(workdir), "--profile", str(profile), "--configfile", str(workdir / "config.yaml")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=WORKFLOW_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise AssertionError(
            f"the workflow on SLURM did not finish within {WORKFLOW_TIMEOUT_S} s; jobs:\n"
            f"{cluster.command('squeue', '--states=all')}\n{err.stderr}\n{cluster.log_tails()}"
        ) from None
    if proc.returncode != 0:
        raise AssertionError(f"the workflow on SLURM failed:\n{proc.stderr}\n{failed_job_logs(workdir)}")


def failed_job_logs(workdir: Path) -> str:
    """The SLURM logs the executor keeps: those of failed jobs."""
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return "\n".join(f"--- {log.relative_to(workdir)}:\n{log.read_text(errors='replace')}" for log in logs)


def slurm_jobs_by_rule(cluster: LocalSlurm, workdir: Path) -> Counter:
    """(rule, GPUs asked for) -> number of the cluster's jobs of the workflow in `workdir`."""
    return Counter(
        (re.fullmatch(r"rule_(.+?)(_wildcards_.*)?", job["Comment"]).group(1), job.get("TresPerJob"))
        for job in cluster.jobs()
        if job["WorkDir"] == str(workdir)
    )


def test_workflow_on_slurm_equals_a_local_run(tmp_path, tiny_model_dir, slurm_cluster):
    local = make_workdir(tmp_path / "local", tiny_model_dir, **SETTINGS)
    snakemake(local)
    on_slurm = make_workdir(tmp_path / "slurm", tiny_model_dir, **SETTINGS)
    run_on_slurm(on_slurm, local_cluster_profile(tmp_path / "profile", slurm_cluster), slurm_cluster)

    for rel in COMPARED:
        assert (on_slurm / "results/tiny" / rel).read_text() == (local / "results/tiny" / rel).read_text(), rel
    # every job that loads a model or reads responses ran on SLURM, generation with a GPU of SLURM's;
    # tables, figures and the bundle ran in Snakemake's own process
    assert slurm_jobs_by_rule(slurm_cluster, on_slurm) == {
        ("model", None): 1,
        ("directions", None): 1,
        ("materialize", None): 1,
        ("generate", "gres:gpu:1"): 2,
        ("judge", None): 2,
    }
    assert (on_slurm / "results/tiny/bundle/MANIFEST.json").is_file()
    assert not (on_slurm / "results/cache/gpu-locks").exists()
