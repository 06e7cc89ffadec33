"""Clusters and GPUs: a job in SLURM takes the GPUs SLURM gave it, without locks; classifier judges ask
for a GPU."""

from __future__ import annotations

import os
import re

import pytest

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
