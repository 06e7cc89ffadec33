import os
import subprocess
import sys

import pytest

from safety_landscape.gpus import claim_gpus

CHILD = """
import os, sys, time
from safety_landscape.gpus import claim_gpus
locks = claim_gpus(1, ["0", "1"], sys.argv[1])
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_concurrent_jobs_get_different_gpus(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), "2"], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    assert sorted(p.communicate()[0].strip() for p in procs) == ["0", "1"]


def test_a_released_gpu_can_be_claimed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    locks = claim_gpus(2, ["3", "5"], tmp_path)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    with pytest.raises(TimeoutError):
        claim_gpus(1, ["3", "5"], tmp_path, timeout=0)
    for lock in locks:
        lock.close()
    claim_gpus(1, ["3", "5"], tmp_path, timeout=0)


def test_more_gpus_than_visible_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="tensor_parallel_size"):
        claim_gpus(2, ["0"], tmp_path)
