"""Sequential directions: after the first landscapes are judged, decide from the hierarchical VISAGE
interval (directions and prompts resampled) whether one more direction is needed, and tabulate the
decisions."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from .tables import landscape_tables


def direction_decision(judgments: pd.DataFrame, precision: dict, visage: dict) -> dict:
    """The decision after the landscapes in `judgments` (one judge: the headline one): one more is
    needed while the half-width of the hierarchical interval of mean VISAGE exceeds
    precision["half_width"] and fewer than precision["max_directions"] are measured."""
    _, _, _, summary = landscape_tables(
        judgments, visage["headline"], visage["basin_threshold"], visage["bootstrap"], visage["confidence"], visage["seed"]
    )
    low, high = summary["visage_ci_hierarchical"]
    if math.isnan(low):
        raise ValueError(
            f"judge {summary['judge']!r}: no bootstrap draw has a judged response at every point, so there is no "
            "interval to decide from; check the judge's log for unjudged responses"
        )
    count, half_width = summary["landscapes"], (high - low) / 2
    reached = half_width <= precision["half_width"]
    return {
        "landscapes": count,
        "judge": summary["judge"],
        "visage_definition": summary["visage_definition"],
        "visage": summary["visage"],
        "visage_ci_hierarchical": [low, high],
        "half_width": half_width,
        "target_half_width": precision["half_width"],
        "confidence": summary["confidence"],
        "reached": reached,
        "more": not reached and count < precision["max_directions"],
    }


def decision_table(decisions: Sequence[dict]) -> pd.DataFrame:
    """One row per decision, in the order made: landscapes measured, mean VISAGE, hierarchical
    interval and its half-width against the target, and whether another landscape followed."""
    return pd.DataFrame(
        [
            {
                "landscapes": d["landscapes"],
                "judge": d["judge"],
                "visage": d["visage"],
                "ci_low": d["visage_ci_hierarchical"][0],
                "ci_high": d["visage_ci_hierarchical"][1],
                "half_width": d["half_width"],
                "target_half_width": d["target_half_width"],
                "reached": d["reached"],
                "more": d["more"],
            }
            for d in decisions
        ]
    )
