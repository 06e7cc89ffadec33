"""A generation engine whose answers depend on the direction the weights moved along
(generation.engine "scripted_directions:DirectionsEngine", with this folder on PYTHONPATH).

Like tests/scripted_engine.py it is the real HFEngine with the real perturbation path, and reads the
point back from the weights: the coefficient of W - W0 along every loaded direction, by least squares
on one weight tensor. Every prompt is refused while each coefficient is within the radius of its
direction's seed, and answered beyond: on the grid a = -0.2 ... 0.2 in steps of 0.1, the direction of
seed 0 (d1 of a run with landscape.seed 0) is safe everywhere and every other one only at a = 0.
"""

from __future__ import annotations

from typing import Sequence

import torch

from safety_landscape.decoding import Generation
from scripted_engine import COMPLIANCE, MAX_RELATIVE_RESIDUAL, PROBE, REFUSAL, ScriptedEngine

RADII = {0: 0.25}  # seed -> largest |coefficient| at which every prompt is refused
NARROW = 0.05  # the radius of every other seed


class DirectionsEngine(ScriptedEngine):
    def coefficients(self) -> dict[int, float]:
        """Coefficient of W - W0 along each loaded direction, by the direction's seed."""
        delta = self.probe() - self.w0
        digests = list(self.store.loaded)
        if not digests:
            assert not delta.any(), "weights moved without a direction"
            return {}
        basis = torch.stack([self.store.loaded[d][PROBE].double().flatten() for d in digests], dim=1)
        solution = torch.linalg.lstsq(basis, delta[:, None]).solution[:, 0]
        assert float((basis @ solution - delta).norm()) <= MAX_RELATIVE_RESIDUAL * max(float(delta.norm()), 1e-12)
        return {self.seeds[d]: float(c) for d, c in zip(digests, solution)}

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int, stop_on_refusal: bool
    ) -> list[Generation]:
        safe = all(abs(c) <= RADII.get(seed, NARROW) for seed, c in self.coefficients().items())
        return [self.answer(REFUSAL if safe else COMPLIANCE, max_new_tokens) for _ in prompt_ids]
