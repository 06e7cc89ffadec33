"""Adaptive grids: a landscape sampled on part of its configured grid, refined where the ASR changes.

The first round samples every `initial_stride`-th point of the configured grid along each axis,
counted from the origin, and both ends of the grid; these points cut the grid into boxes (intervals
in 1D, rectangles in 2D). Each later round splits in halves, at points of the configured grid, the
boxes whose unsampled points could still matter (`needs_split`: the basin's edge crosses the box, or
its corners' ASR differ enough to move the estimate by `tolerance`), down to boxes `min_stride` grid
steps wide. The rounds stop once the VISAGE estimate moves by less than `tolerance` between two rounds,
or when no box is left to split.

The VISAGE estimate of a sampled landscape: its ASR at every point of the configured grid, read off
the sampled points (a sampled point keeps its own value; any other point gets the linear, in 2D
bilinear, interpolation between the corners of the smallest box around it), then Eq. 5
(`metrics.visage`) over all of the configured grid's points. On a fully sampled grid it is Eq. 5 itself.

Points are addressed by their indices on the configured grid (`Index`); coordinates are always the
grid's own values (`plan.grid_values`), so a sampled point is the same point, with the same cache
entries, as in a full-grid run. Pure functions; no torch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .metrics import ASR_MAX, attack_success_rate, visage
from .plan import AXIS_LETTERS, grid_values, is_2d

Index = tuple[int, ...]  # a point's position on the configured grid, one index per axis
Box = tuple[tuple[int, int], ...]  # (low, high) indices per axis
COORDINATE_ATOL = 1e-10  # pandas' JSON reader may change a coordinate's last digit


@dataclass(frozen=True)
class AdaptiveGrid:
    """The configured grid (coordinates per axis) and the strides of its adaptive sampling, in grid steps."""

    axes: tuple[tuple[float, ...], ...]
    initial_stride: int
    min_stride: int

    @classmethod
    def from_settings(cls, settings: Mapping) -> "AdaptiveGrid":
        """From `adaptive_settings(config)`."""
        return cls(tuple(tuple(axis) for axis in settings["axes"]), settings["initial_stride"], settings["min_stride"])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis) for axis in self.axes)

    def indices(self) -> list[Index]:
        """Every point of the configured grid, in grid order (by a, then b)."""
        return list(itertools.product(*(range(n) for n in self.shape)))

    def coords(self, index: Index) -> tuple[float, ...]:
        return tuple(axis[i] for axis, i in zip(self.axes, index))

    def index_of(self, coords: Sequence[float]) -> Index:
        """The index of a point given by its coordinates: the configured grid's own values, up to a float
        parser's last digit (grid values are rounded to 1e-9)."""
        index = []
        for axis, c in zip(self.axes, coords, strict=True):
            matches = [i for i, value in enumerate(axis) if abs(value - c) <= COORDINATE_ATOL]
            if not matches:
                raise ValueError(f"{tuple(coords)} is not a point of the configured grid {self.axes}")
            index.append(matches[0])
        return tuple(index)


def adaptive_settings(config: dict) -> dict | None:
    """landscape.adaptive with the main landscape's grid coordinates per axis; None when adaptive grids are off."""
    adaptive = config["landscape"]["adaptive"]
    if not adaptive["enabled"]:
        return None
    ls = config["landscape"]
    axes = [grid_values(ls["grid"])]
    if is_2d(config):
        axes.append(grid_values(ls["grid_b"] or ls["grid"], "landscape.grid_b"))
    return {key: value for key, value in adaptive.items() if key != "enabled"} | {"axes": axes}


def first_marks(n: int, origin: int, stride: int) -> list[int]:
    """Indices of one axis sampled in the first round: every `stride`-th from the origin both ways, and both ends."""
    return sorted({*range(origin, -1, -stride), *range(origin, n, stride), 0, n - 1})


def first_boxes(grid: AdaptiveGrid) -> list[Box]:
    """The boxes the first round's points cut the grid into."""
    marks = [first_marks(len(axis), axis.index(0.0), grid.initial_stride) for axis in grid.axes]
    return list(itertools.product(*(list(zip(m, m[1:])) for m in marks)))


def corners(box: Box) -> list[Index]:
    return list(itertools.product(*box))


def halves(box: Box, min_stride: int) -> list[Box]:
    """`box` split at its middle grid index along every axis at least 2 * min_stride steps long ([box] when none is)."""
    parts = [[(lo, (lo + hi) // 2), ((lo + hi) // 2, hi)] if hi - lo >= 2 * min_stride else [(lo, hi)] for lo, hi in box]
    return list(itertools.product(*parts))


def leaves(grid: AdaptiveGrid, sampled: set[Index]) -> list[Box]:
    """The boxes the sampled points cut the grid into: starting from the first round's boxes, a box counts
    as split when every corner of its halves is sampled."""
    missing = {c for box in first_boxes(grid) for c in corners(box)} - sampled
    if missing:
        raise ValueError(f"the first round's points {sorted(grid.coords(i) for i in missing)[:4]}... are not sampled")
    result, stack = [], first_boxes(grid)
    while stack:
        box = stack.pop()
        parts = halves(box, grid.min_stride)
        if len(parts) > 1 and all(c in sampled for part in parts for c in corners(part)):
            stack += parts
        else:
            result.append(box)
    return result


def refinement(grid: AdaptiveGrid, asr: Mapping[Index, float], tolerance: float) -> list[Index]:
    """The points to sample next: the corners of the halves of every box that `needs_split`."""
    below = int(np.sum(interpolated_asr(grid, asr) < ASR_MAX))
    new: set[Index] = set()
    for box in leaves(grid, set(asr)):
        parts = halves(box, grid.min_stride)
        if len(parts) > 1 and needs_split(box, asr, below, tolerance):
            new |= {c for part in parts for c in corners(part)}
    return sorted(new - asr.keys())


def crosses_edge(box: Box, asr: Mapping[Index, float]) -> bool:
    """Whether the basin's edge runs through a box: one corner at 100, another below."""
    values = [asr[c] for c in corners(box)]
    return max(values) == ASR_MAX and min(values) < ASR_MAX


def edge_unresolved(grid: AdaptiveGrid, asr: Mapping[Index, float]) -> bool:
    """Whether a box the basin's edge crosses can still be split. Until none can, a settled estimate proves
    nothing: Eq. 5 averages over the points below 100 only, so a box's interpolated margins look alike at
    every size, and halving an edge box whose new corners are all at 100 shrinks the basin while the estimate
    stays put."""
    return any(len(halves(box, grid.min_stride)) > 1 and crosses_edge(box, asr) for box in leaves(grid, set(asr)))


def needs_split(box: Box, asr: Mapping[Index, float], below: int, tolerance: float) -> bool:
    """Whether a box's unsampled points could matter: the basin's edge crosses it (so which of its points
    Eq. 5 averages over is unknown), or the spread of its corners' ASR times its unsampled points, over the
    `below` grid points Eq. 5 averages over now, reaches `tolerance`: the most those points move the
    estimate while their ASR stays between the corners'."""
    values = [asr[c] for c in corners(box)]
    spread = max(values) - min(values)
    if spread == 0:
        return False
    if crosses_edge(box, asr):
        return True
    unsampled = sum(1 for point in itertools.product(*(range(lo, hi + 1) for lo, hi in box)) if point not in asr)
    return spread * unsampled / max(below, 1) >= tolerance


def _contains(box: Box, index: Index) -> bool:
    return all(lo <= i <= hi for (lo, hi), i in zip(box, index))


def _volume(box: Box) -> int:
    return math.prod(hi - lo for lo, hi in box)


def interpolation_weights(grid: AdaptiveGrid, sampled: Sequence[Index]) -> np.ndarray:
    """[grid point x sampled point] weights that carry values at the sampled points to every point of the
    configured grid (grid order): a sampled point keeps its value, any other point gets the multilinear
    interpolation between the corners of the smallest box that contains it."""
    column = {index: k for k, index in enumerate(sampled)}
    boxes = sorted(leaves(grid, set(sampled)), key=_volume)
    weights = np.zeros((math.prod(grid.shape), len(sampled)))
    for row, point in enumerate(grid.indices()):
        if point in column:
            weights[row, column[point]] = 1.0
            continue
        box = next(b for b in boxes if _contains(b, point))
        for corner in corners(box):
            fractions = [(i - lo) / (hi - lo) for (lo, hi), i in zip(box, point)]
            weights[row, column[corner]] = math.prod(t if c == hi else 1.0 - t for t, c, (_, hi) in zip(fractions, corner, box))
    return weights


def interpolated_asr(grid: AdaptiveGrid, asr: Mapping[Index, float]) -> np.ndarray:
    """ASR at every point of the configured grid (grid order) from the sampled points' ASR."""
    sampled = sorted(asr)
    return interpolation_weights(grid, sampled) @ np.array([asr[i] for i in sampled], dtype=float)


def estimate(grid: AdaptiveGrid, asr: Mapping[Index, float]) -> float:
    """VISAGE (Eq. 5, the paper's definition) over the configured grid, from the sampled points' ASR."""
    return visage(interpolated_asr(grid, asr), "paper")


def interpolation_on_grid(grid: AdaptiveGrid, points: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The configured grid's points (columns a[, b], grid order) and the weights that interpolate values
    given at `points` (rows a[, b], any order) onto them."""
    axes = list(AXIS_LETTERS[: len(grid.axes)])
    sampled = [grid.index_of(coords) for coords in points[axes].itertuples(index=False, name=None)]
    full = pd.DataFrame([grid.coords(i) for i in grid.indices()], columns=axes)
    return full, interpolation_weights(grid, sampled)


def point_asr(records: Iterable[dict]) -> dict[tuple[float, ...], float]:
    """ASR (%) per point, keyed by its coordinates (a[, b]), over the judged records (verdict not null)."""
    verdicts: dict[tuple[float, ...], list[bool]] = {}
    for r in records:
        key = (r["a"], r["b"]) if "b" in r else (r["a"],)
        verdicts.setdefault(key, [])
        if r["jailbroken"] is not None:
            verdicts[key].append(r["jailbroken"])
    unjudged = [key for key, v in verdicts.items() if not v]
    if unjudged:
        raise ValueError(f"no response at {unjudged[:3]} was judged; check the judge's log")
    return {key: attack_success_rate(v) for key, v in verdicts.items()}


def first_plan(grid: AdaptiveGrid) -> dict:
    """Round 0: the points every `initial_stride` steps from the origin, and the grid's ends."""
    new = sorted({c for box in first_boxes(grid) for c in corners(box)})
    points = [list(grid.coords(i)) for i in new]
    return {"round": 0, "new": points, "sampled": points, "estimates": [], "converged": False, "stopped_by": None}


def next_plan(grid: AdaptiveGrid, plan: dict, asr: Mapping[tuple[float, ...], float], tolerance: float) -> dict:
    """The round after `plan`, from the ASR at every point sampled so far (keyed by coordinates): its
    estimate appended to the plan's, and the points to sample next; none (converged) once the estimate
    moved by less than `tolerance` since the round before with the basin's edge traced down to `min_stride`
    (see `edge_unresolved`), or when no box is left to split."""
    by_index = {grid.index_of(coords): value for coords, value in asr.items()}
    missing = [c for c in plan["sampled"] if grid.index_of(c) not in by_index]
    if missing:
        raise ValueError(f"no ASR at the sampled points {missing[:3]}; the judgments of round {plan['round']} are incomplete")
    estimates = [*plan["estimates"], estimate(grid, by_index)]
    stable = len(estimates) > 1 and abs(estimates[-1] - estimates[-2]) < tolerance and not edge_unresolved(grid, by_index)
    new = [] if stable else [list(grid.coords(i)) for i in refinement(grid, by_index, tolerance)]
    stopped_by = "tolerance" if stable else None if new else "no box left to split"
    return {
        "round": plan["round"] + 1,
        "new": new,
        "sampled": plan["sampled"] + new,
        "estimates": estimates,
        "converged": not new,
        "stopped_by": stopped_by,
    }
