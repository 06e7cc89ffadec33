"""GPU assignment for concurrent jobs.

Snakemake's `gpu` resource only counts GPUs; it does not say which one a job may use. On one
machine each GPU job therefore claims free GPU indices itself, with an exclusive file lock per GPU,
and sets CUDA_VISIBLE_DEVICES before CUDA is initialized. Locks vanish with the process, so a killed
job never leaves a GPU claimed. In a SLURM job the GPUs SLURM gave the job (CUDA_VISIBLE_DEVICES,
set by SLURM) are its alone: it takes them without lock files, which on a cluster's shared file
system would tie together the same indices on different nodes.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path
from typing import Sequence


def in_slurm_job() -> bool:
    """Whether this process runs inside a SLURM job."""
    return "SLURM_JOB_ID" in os.environ


def visible_gpus() -> list[str]:
    """GPU indices this process may use: CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists.

    Asks nvidia-smi rather than torch, because CUDA must not be initialized before the claim."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def claim_gpus(count: int, gpus: Sequence[str], lock_dir: str | os.PathLike, timeout: float = 3600.0) -> list:
    """Make `count` of `gpus` the only visible GPUs; in a SLURM job the first `count`, with no lock,
    elsewhere the first free ones, locked (blocking until `count` are free).

    Returns the open lock files (none in a SLURM job); keep them referenced while the GPUs are in use."""
    if count > len(gpus):
        raise RuntimeError(
            f"generation.tensor_parallel_size is {count} but only {len(gpus)} GPU(s) are visible ({list(gpus)}); "
            "lower it or make more GPUs visible"
        )
    if in_slurm_job():
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[:count])
        return []
    return lock_gpus(count, gpus, lock_dir, timeout)


def lock_gpus(count: int, gpus: Sequence[str], lock_dir: str | os.PathLike, timeout: float) -> list:
    """Lock `count` of `gpus` with a file per GPU under `lock_dir` and make them the only visible ones."""
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        held = []
        for gpu in gpus:
            handle = open(Path(lock_dir) / f"gpu-{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            held.append((gpu, handle))
            if len(held) == count:
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(g for g, _ in held)
                return [h for _, h in held]
        for _, handle in held:
            handle.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {count} free GPU(s) among {list(gpus)} after {timeout:.0f} s (locks in {lock_dir})")
        time.sleep(1.0)
