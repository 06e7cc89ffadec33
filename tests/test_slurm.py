"""Clusters and GPUs: a job in SLURM takes the GPUs SLURM gave it, without locks; classifier judges ask
for a GPU; the multi-GPU profile runs as many GPU jobs at once as it has GPUs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from safety_landscape.gpus import claim_gpus, visible_gpus
from test_workflow import make_workdir, snakemake


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
