"""GPUs on clusters: a job in SLURM takes the GPUs SLURM gave it, without locks."""

from __future__ import annotations

import os

import pytest

from safety_landscape.gpus import claim_gpus, visible_gpus


def test_a_slurm_job_takes_its_gpus_without_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # as SLURM sets it for a job given two GPUs
    locks = tmp_path / "locks"
    assert claim_gpus(1, visible_gpus(), locks, timeout=0) == []
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not locks.exists()
    with pytest.raises(RuntimeError, match=r"tensor_parallel_size is 3 but only 2 GPU\(s\) are visible \(\['3', '5'\]\)"):
        claim_gpus(3, ["3", "5"], locks)
