"""Project stage: coordinates of further checkpoints (e.g. every finetuning epoch) on a landscape.

For a checkpoint theta_c and directions d_1..d_k, the coordinates c minimise
||theta_c - theta - sum_i c_i d_i||: they solve the normal equations G c = r with G_ij = <d_i, d_j>
and r_i = <d_i, theta_c - theta>. The residual is the distance of the checkpoint off the plane.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .directions import CheckpointReader, Direction


def project_checkpoint(theta: CheckpointReader, checkpoint: CheckpointReader, axes: Sequence[Direction]) -> dict:
    """Least-squares coordinates of `checkpoint` in the affine span theta + span(axes), streamed per tensor."""
    k = len(axes)
    gram, rhs, delta_sq = np.zeros((k, k)), np.zeros(k), 0.0
    for name, weight in theta:
        if not weight.is_floating_point():
            continue
        if name not in checkpoint.location:
            raise KeyError(
                f"landscape.project: {checkpoint.folder} has no tensor {name!r}; it must share the model's architecture"
            )
        delta = checkpoint.get(name).double() - weight.double()
        delta_sq += float((delta * delta).sum())
        ds = [axis.get(name).double() if name in axis.location else None for axis in axes]
        for i, di in enumerate(ds):
            if di is None:
                continue
            rhs[i] += float((di * delta).sum())
            for j, dj in enumerate(ds):
                if dj is not None:
                    gram[i, j] += float((di * dj).sum())
    coords = np.linalg.solve(gram, rhs)
    residual_sq = max(delta_sq - 2 * coords @ rhs + coords @ gram @ coords, 0.0)
    return {
        "coordinates": coords.tolist(),
        "residual_norm": residual_sq**0.5,
        "distance_norm": delta_sq**0.5,
        "relative_residual": (residual_sq / delta_sq) ** 0.5 if delta_sq else 0.0,
    }
