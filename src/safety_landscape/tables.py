"""Experiment tables and their loaders: judgments read from the judge stage's files, ASR and VISAGE
per landscape with bootstrap intervals, judge agreement, the paper's Tables 1 and 2, and capability
beside safety."""

from __future__ import annotations

import itertools
import os
from typing import Sequence

import numpy as np
import pandas as pd

from .adaptive import AdaptiveGrid, interpolation_on_grid
from .metrics import (
    asr_of,
    attack_success_rate,
    basin_area,
    basin_interval,
    bootstrap_indices,
    cohen_kappa,
    direction_indices,
    hierarchical_means,
    percentile_interval,
    visage_on_scores,
    visage_pair,
)
from .plan import point_name


def load_judgments(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Per-response judgments of landscapes with the grid position each record carries (columns judge,
    landscape, a[, b], index, jailbroken, empty, degenerate, ...), in grid order."""
    judgments = pd.concat([pd.read_json(f, lines=True, dtype={"jailbroken": "boolean"}) for f in files], ignore_index=True)
    missing = [c for c in ("judge", "landscape", "a", "index", "jailbroken") if c not in judgments.columns]
    if missing:
        raise ValueError(f"judgment records of {list(files)[:2]}... lack {missing}; rerun the judge rule")
    # judges and landscapes in order of appearance, then grid points by a (then b), then prompts
    return _by_appearance(judgments, ["judge", "landscape"], ["a", *(["b"] if "b" in judgments.columns else []), "index"])


def verdict_matrix(judgments: pd.DataFrame, axes: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Points (sorted by axes) and their verdicts as a [point x prompt] array of 1.0 / 0.0 / nan (not judged)."""
    # groupby keeps the points that exist (an adaptive 2D run samples no full product of its a and b values)
    # and a point none of whose answers was judged (all-nan row)
    wide = judgments.groupby([*axes, "index"], sort=True)["jailbroken"].first().unstack("index")
    return wide.index.to_frame(index=False), wide.to_numpy(dtype=float, na_value=np.nan)


def agreement_table(judgments: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Cohen's kappa and confusion counts for every pair of judges on every landscape."""
    keys = ["landscape", *axes, "index"]
    rows = []
    judges = list(dict.fromkeys(judgments["judge"]))
    for first, second in itertools.combinations(judges, 2):
        pair = judgments[judgments.judge == first].merge(judgments[judgments.judge == second], on=keys, suffixes=("_1", "_2"))
        pair = pair.dropna(subset=["jailbroken_1", "jailbroken_2"])
        for landscape, group in pair.groupby("landscape", sort=True):
            x, y = group["jailbroken_1"].to_numpy(dtype=bool), group["jailbroken_2"].to_numpy(dtype=bool)
            rows.append(
                {
                    "landscape": landscape,
                    "judge_1": first,
                    "judge_2": second,
                    "n": len(group),
                    "kappa": cohen_kappa(x, y),
                    "agreement": float(np.mean(x == y)),
                    "both_jailbroken": int(np.sum(x & y)),
                    "only_judge_1": int(np.sum(x & ~y)),
                    "only_judge_2": int(np.sum(~x & y)),
                    "neither": int(np.sum(~x & ~y)),
                }
            )
    columns = [
        "landscape",
        "judge_1",
        "judge_2",
        "n",
        "kappa",
        "agreement",
        "both_jailbroken",
        "only_judge_1",
        "only_judge_2",
        "neither",
    ]
    return pd.DataFrame(rows, columns=columns)


def landscape_tables(
    judgments: pd.DataFrame,
    headline: str,
    threshold: float,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    grid: AdaptiveGrid | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """ASR per point and judge (bootstrap CI over prompts, shares of empty and degenerate answers),
    VISAGE per landscape and judge (both definitions, bootstrap CI of the headline one, basin
    geometry), judge agreement, and a summary. The first judge in `judgments` headlines the summary.

    The mean over landscapes has two intervals: over prompts (`visage_ci_low/high`: one prompt draw
    per resample for every landscape) and hierarchical (`visage_hier_ci_low/high`: the landscapes
    resampled with replacement too, each resample's prompt draw shared by the landscapes it draws).

    For 2D landscapes "reference" is the reference definition averaged over the two axes through
    the origin (the reference code defines it for 1D only). With `grid` (an adaptive run) the landscapes hold
    only their sampled points, and VISAGE and the basin are computed on their ASR interpolated onto every
    point of the configured grid (adaptive.py); `sampled_points` and `grid_points` count both."""
    axes = ["a", "b"] if "b" in judgments.columns else ["a"]
    judges = list(dict.fromkeys(judgments["judge"]))
    n_prompts = int(judgments["index"].max()) + 1
    draws = bootstrap_indices(n_prompts, resamples, seed) if resamples else None
    tail = 100 * (1 - confidence) / 2
    asr_rows, visage_rows, summary_judges = [], [], {}
    for judge in judges:
        per_judge = judgments[judgments.judge == judge]
        landscape_draws = []
        for landscape, group in per_judge.groupby("landscape", sort=True):
            points, matrix = verdict_matrix(group, axes)
            asr = asr_of(matrix)
            if np.isnan(asr).any():
                raise ValueError(f"judge {judge!r} judged no response at some point of {landscape}; check its log")
            flags = group.groupby(axes, sort=True)[["empty", "degenerate"]].mean() * 100
            point_rows = points.assign(
                judge=judge,
                landscape=landscape,
                asr=asr,
                n=(~np.isnan(matrix)).sum(axis=1),
                unjudged=np.isnan(matrix).sum(axis=1),
                empty_share=flags["empty"].to_numpy(),
                degenerate_share=flags["degenerate"].to_numpy(),
            )
            curve_points, curve = on_grid(points, grid)
            paper, reference = visage_pair(curve_points, curve(asr))
            row = {
                "judge": judge,
                "landscape": landscape,
                "visage_paper": paper,
                "visage_reference": reference,
                "asr_at_origin": float(asr[np.argmin(np.abs(points[axes].to_numpy()).sum(axis=1))]),
            }
            if draws is not None:
                boot = asr_of(matrix[:, draws])  # [point x resample]; nan where a draw holds no judged response
                point_rows["ci_low"], point_rows["ci_high"] = np.nanpercentile(boot, [tail, 100 - tail], axis=1)
                boot_visage = np.array(
                    [
                        np.nan
                        if np.isnan(boot[:, k]).any()
                        else visage_pair(curve_points, curve(boot[:, k]))[0 if headline == "paper" else 1]
                        for k in range(resamples)
                    ]
                )
                landscape_draws.append(boot_visage)
                row["visage_ci_low"], row["visage_ci_high"] = np.nanpercentile(boot_visage, [tail, 100 - tail])
            if grid is not None:
                row |= {"sampled_points": len(points), "grid_points": len(curve_points)}
            if axes == ["a"]:
                basin = basin_interval(curve_points["a"], curve(asr), threshold)
                row |= {
                    "basin_low": basin[0] if basin else np.nan,
                    "basin_high": basin[1] if basin else np.nan,
                    "basin_width": basin[1] - basin[0] if basin else 0.0,
                }
            else:
                row["basin_area"], row["basin_mean_radius"] = basin_area(curve_points.assign(asr=curve(asr)), threshold)
            asr_rows.append(point_rows)
            visage_rows.append(row)
        judge_rows = pd.DataFrame([r for r in visage_rows if r["judge"] == judge])
        mean = judge_rows.drop(columns=["judge", "landscape"]).mean().to_dict()
        if landscape_draws:
            per_landscape = np.array(landscape_draws)  # [landscape x resample]
            mean["visage_ci_low"], mean["visage_ci_high"] = percentile_interval(per_landscape.mean(axis=0), confidence)
            hierarchical = hierarchical_means(per_landscape, direction_indices(len(per_landscape), resamples, seed))
            mean["visage_hier_ci_low"], mean["visage_hier_ci_high"] = percentile_interval(hierarchical, confidence)
        visage_rows.append(mean | {"judge": judge, "landscape": "mean"})
        summary_judges[judge] = {
            "visage": mean[f"visage_{headline}"],
            "visage_paper": mean["visage_paper"],
            "visage_reference": mean["visage_reference"],
            "visage_ci": [mean.get("visage_ci_low", np.nan), mean.get("visage_ci_high", np.nan)],
            "visage_ci_hierarchical": [mean.get("visage_hier_ci_low", np.nan), mean.get("visage_hier_ci_high", np.nan)],
            "visage_std_over_landscapes": float(judge_rows[f"visage_{headline}"].std(ddof=1)) if len(judge_rows) > 1 else 0.0,
            "asr_at_origin": mean["asr_at_origin"],
            "basin": {
                r["landscape"]: [r.get("basin_low", np.nan), r.get("basin_high", np.nan)] for r in judge_rows.to_dict("records")
            },
        }
    asr_table = pd.concat(asr_rows, ignore_index=True)
    asr_table = asr_table[
        ["judge", "landscape", *axes, *[c for c in asr_table.columns if c not in ("judge", "landscape", *axes)]]
    ]
    visage_table = pd.DataFrame(visage_rows)
    visage_table = visage_table[["judge", "landscape", *[c for c in visage_table.columns if c not in ("judge", "landscape")]]]
    agreement = agreement_table(judgments, axes)
    lead = summary_judges[judges[0]]
    summary = {
        "judge": judges[0],
        "visage": lead["visage"],
        "visage_definition": headline,
        "visage_paper": lead["visage_paper"],
        "visage_reference": lead["visage_reference"],
        "visage_ci": lead["visage_ci"],
        "visage_ci_hierarchical": lead["visage_ci_hierarchical"],
        "confidence": confidence,
        "visage_std_over_landscapes": lead["visage_std_over_landscapes"],
        "landscapes": int(judgments["landscape"].nunique()),
        "asr_at_origin": lead["asr_at_origin"],
        "basin_threshold": threshold,
        "basin": lead["basin"],
        "judges": summary_judges,
        "agreement": agreement.to_dict("records"),
    }
    if grid is not None:
        counts = visage_table[(visage_table.judge == judges[0]) & (visage_table.landscape != "mean")]
        sampled = dict(zip(counts["landscape"], counts["sampled_points"].astype(int).tolist()))
        summary["adaptive"] = {"grid_points": len(grid.indices()), "sampled_points": sampled}
    return asr_table, visage_table, agreement, summary


def with_scores(judgments: pd.DataFrame, asr: pd.DataFrame, visage_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ASR and VISAGE tables of `landscape_tables` with the scoring judges' columns added (the tables as
    they are when no judge gives scores): `mean_score` per point, the mean `score` (in [0, 1]) of its judged
    responses, and `visage_score` per landscape, VISAGE with S = 100 * mean score in place of the ASR
    (`metrics.visage_on_scores`; the "mean" row averages the landscapes). Other judges' rows hold nan."""
    if "score" not in judgments.columns or judgments["score"].isna().all():
        return asr, visage_table
    axes = ["a", "b"] if "b" in judgments.columns else ["a"]
    keys = ["judge", "landscape", *axes]
    scoring = judgments.groupby("judge")["score"].transform(lambda s: s.notna().any())
    means = judgments[scoring].groupby(keys, sort=False)["score"].mean().rename("mean_score").reset_index()
    if means["mean_score"].isna().any():
        missing = means.loc[means["mean_score"].isna(), keys].to_dict("records")[:3]
        raise ValueError(f"a scoring judge scored no response at points {missing}; check its log")
    per_landscape = [
        {"judge": judge, "landscape": landscape, "visage_score": visage_on_scores(group["mean_score"])}
        for (judge, landscape), group in means.groupby(["judge", "landscape"], sort=False)
    ]
    scores = pd.DataFrame(per_landscape)
    mean_rows = scores.groupby("judge", sort=False)["visage_score"].mean().reset_index().assign(landscape="mean")
    scores = pd.concat([scores, mean_rows], ignore_index=True)
    return (
        asr.merge(means, on=keys, how="left", validate="one_to_one"),
        visage_table.merge(scores, on=["judge", "landscape"], how="left", validate="one_to_one"),
    )


def guard_category_table(judgments: pd.DataFrame, categories: dict[str, dict[str, str] | None]) -> pd.DataFrame:
    """How often each Llama Guard judge flagged each category: per judge, landscape and point (and per
    landscape, `point` "all", a and b empty), the number of judged responses (`judged`), of those flagged
    with the category (`flagged`; a response may carry several codes) and their share in percent.

    `categories` maps each Llama Guard judge's id to its category names by code (every code gets a row,
    zeros included), or to None for a judge whose codes are not checked (the codes it gave, without names)."""
    axes = ["a", "b"] if "b" in judgments.columns else ["a"]
    rows = []
    for judge, names in categories.items():
        judged = judgments[(judgments["judge"] == judge) & judgments["jailbroken"].notna()]
        flags = judged[["landscape", *axes, "categories"]].explode("categories").dropna(subset=["categories"])
        codes = list(names) if names else sorted(set(flags["categories"]), key=lambda c: (len(c), c))
        for landscape in dict.fromkeys(judged["landscape"]):
            ours, flagged = judged[judged["landscape"] == landscape], flags[flags["landscape"] == landscape]
            scopes = [("all", {axis: np.nan for axis in axes}, len(ours), flagged["categories"])]
            for coords, point in ours.groupby(axes, sort=True):
                at = flagged[(flagged[axes] == np.asarray(coords)).all(axis=1)]
                scopes.append((point_name(coords), dict(zip(axes, coords)), len(point), at["categories"]))
            for name, where, n, found in scopes:
                counts = found.value_counts()
                rows += [
                    {
                        "judge": judge,
                        "landscape": landscape,
                        "point": name,
                        **where,
                        "category": code,
                        "name": names[code] if names else None,
                        "judged": n,
                        "flagged": int(counts.get(code, 0)),
                        "share": 100.0 * counts.get(code, 0) / n,
                    }
                    for code in codes
                ]
    columns = ["judge", "landscape", "point", *axes, "category", "name", "judged", "flagged", "share"]
    return pd.DataFrame(rows, columns=columns)


def on_grid(points: pd.DataFrame, grid: AdaptiveGrid | None):
    """The points VISAGE and the basin are computed on, and the map from values at `points` to values there:
    `points` themselves (full grid), or every point of the adaptive run's configured grid (interpolated)."""
    if grid is None:
        return points, lambda values: values
    full, weights = interpolation_on_grid(grid, points)
    return full, lambda values: weights @ values


def load_checkpoint_judgments(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Per-response judgments of evaluated checkpoints with the checkpoint and evaluation set each record
    carries (columns judge, checkpoint, eval_set, index, jailbroken, ...): judges, then evaluation sets,
    then checkpoints in order of appearance, then prompts."""
    judgments = pd.concat([pd.read_json(f, lines=True, dtype={"jailbroken": "boolean"}) for f in files], ignore_index=True)
    return _by_appearance(judgments, ["judge", "eval_set", "checkpoint"], ["index"])


def _by_appearance(frame: pd.DataFrame, ranked: Sequence[str], then: Sequence[str]) -> pd.DataFrame:
    """`frame` sorted by the `ranked` columns, each in its values' order of appearance, then by `then`."""
    ranks = {f"{c}_rank": frame[c].map({v: i for i, v in enumerate(dict.fromkeys(frame[c]))}) for c in ranked}
    return frame.assign(**ranks).sort_values([*ranks, *then], kind="stable").drop(columns=list(ranks)).reset_index(drop=True)


def finetune_tables(
    judgments: pd.DataFrame,
    epochs: dict[str, tuple[str, int]],
    model: str,
    heldout: dict[str, Sequence[int]] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ASR of every evaluated checkpoint (with a bootstrap CI over prompts), and the paper's Table 1:
    one row per (judge, evaluation set), one column per dataset holding the last epoch's ASR, after
    the "aligned" column (the model before finetuning). `epochs` maps checkpoint -> (dataset, epoch);
    the checkpoint "aligned" is epoch 0 of every dataset.

    `heldout` maps an evaluation set to the indices of its prompts that no finetuning dataset trains
    on; every row also gets the ASR on those (`n_heldout`, `asr_heldout`), and Table 1 gets a row
    `prompts: held-out` beside `prompts: all` for each set that shares prompts with the training data."""
    tail = 100 * (1 - confidence) / 2
    heldout = heldout or {}
    rows = []
    for (judge, checkpoint, eval_set), group in judgments.groupby(["judge", "checkpoint", "eval_set"], sort=False):
        ordered = group.sort_values("index")
        verdicts = ordered["jailbroken"].dropna().to_numpy(dtype=bool)
        if verdicts.size == 0:
            raise ValueError(f"judge {judge!r} judged no response of {checkpoint} on {eval_set}; check its log")
        dataset, epoch = epochs.get(checkpoint, ("aligned", 0))
        kept = ordered[ordered["index"].isin(heldout.get(eval_set, ordered["index"]))]["jailbroken"].dropna().to_numpy(dtype=bool)
        row = {
            "model": model,
            "judge": judge,
            "checkpoint": checkpoint,
            "dataset": dataset,
            "epoch": epoch,
            "eval_set": eval_set,
            "n": int(verdicts.size),
            "asr": attack_success_rate(verdicts),
            "n_heldout": int(kept.size),
            "asr_heldout": attack_success_rate(kept) if kept.size else float("nan"),
        }
        if resamples:
            boot = 100.0 * verdicts[bootstrap_indices(verdicts.size, resamples, seed)].mean(axis=1)
            row["ci_low"], row["ci_high"] = np.percentile(boot, [tail, 100 - tail])
        rows.append(row)
    long = pd.DataFrame(rows)
    aligned = long[long["dataset"] == "aligned"]
    finals = long[long["dataset"] != "aligned"]
    finals = finals[finals["epoch"] == finals.groupby("dataset")["epoch"].transform("max")]
    datasets = list(dict.fromkeys(finals["dataset"]))
    chosen = pd.concat([aligned, finals])
    overlapping = chosen[chosen["n_heldout"] < chosen["n"]]
    parts = [
        chosen.assign(prompts="all"),
        overlapping.assign(prompts="held-out", n=overlapping["n_heldout"], asr=overlapping["asr_heldout"]),
    ]
    table = pd.concat(parts).pivot_table(
        index=["model", "judge", "eval_set", "prompts", "n"], columns="dataset", values="asr", sort=False
    )
    table = table.reindex(columns=["aligned", *datasets]).reset_index()
    table.columns.name = None
    first = {key: i for i, key in enumerate(dict.fromkeys(zip(chosen["judge"], chosen["eval_set"])))}
    position = [first[key] for key in zip(table["judge"], table["eval_set"])]
    return long, table.assign(position=position).sort_values(["position", "prompts"], kind="stable").drop(
        columns="position"
    ).reset_index(drop=True)


def system_prompt_table(visage_tables: dict[str, pd.DataFrame], texts: dict[str, str | None], headline: str) -> pd.DataFrame:
    """The paper's Table 2: one row per (system prompt variant, judge) with the VISAGE score (mean
    over the landscape's directions, headline definition, bootstrap CI) and the ASR of the
    unperturbed model. `visage_tables` are landscape_tables' VISAGE tables by variant."""
    rows = []
    for variant, table in visage_tables.items():
        text = texts[variant]
        for row in table[table["landscape"] == "mean"].to_dict("records"):
            rows.append(
                {
                    "variant": variant,
                    "system_prompt": "(chat template default)" if text is None else text,
                    "judge": row["judge"],
                    "visage": row[f"visage_{headline}"],
                    "visage_ci_low": row.get("visage_ci_low", np.nan),
                    "visage_ci_high": row.get("visage_ci_high", np.nan),
                    "asr_at_origin": row["asr_at_origin"],
                }
            )
    return pd.DataFrame(rows)


def capability_table(scores: Sequence[dict], asr: pd.DataFrame, judge: str) -> pd.DataFrame:
    """Capability scores per point beside the ASR of `judge` at the same point (columns landscape,
    a[, b], asr, perplexity, mmlu_accuracy, ...); nested results (MMLU per subject) stay in the per-point files."""
    table = pd.DataFrame([{key: value for key, value in s.items() if not isinstance(value, dict)} for s in scores])
    axes = [c for c in ("a", "b") if c in table.columns]
    safety = asr.loc[asr["judge"] == judge, ["landscape", *axes, "asr"]]
    merged = table.merge(safety, on=["landscape", *axes], how="left", validate="one_to_one")
    if merged["asr"].isna().any():
        missing = merged.loc[merged["asr"].isna(), ["landscape", *axes]].to_dict("records")[:3]
        raise ValueError(f"no ASR of judge {judge!r} at capability points {missing}; the tables come from different grids")
    return merged[["landscape", *axes, "asr", *[c for c in table.columns if c not in ("landscape", *axes)]]].sort_values(
        ["landscape", *axes]
    )


def visage_summary_table(summary: dict) -> pd.DataFrame:
    """The headline numbers of a landscape, one row per judge (rounded for reading): VISAGE in the
    headline definition with its interval over prompts and its hierarchical interval over directions
    and prompts, both definitions, and the ASR of the unperturbed model."""
    return pd.DataFrame(
        [
            {
                "judge": judge,
                "VISAGE": round(s["visage"], 2),
                "CI low": round(s["visage_ci"][0], 2),
                "CI high": round(s["visage_ci"][1], 2),
                "CI low (directions + prompts)": round(s["visage_ci_hierarchical"][0], 2),
                "CI high (directions + prompts)": round(s["visage_ci_hierarchical"][1], 2),
                "paper": round(s["visage_paper"], 2),
                "reference": round(s["visage_reference"], 2),
                "ASR at theta (%)": round(s["asr_at_origin"], 2),
            }
            for judge, s in summary["judges"].items()
        ]
    )


def rate_with_interval(matrix: np.ndarray, resamples: int, confidence: float, seed: int) -> pd.DataFrame:
    """Per row of a [point x prompt] matrix of 1.0 / 0.0 / nan (not judged): the share of ones (%) over
    the judged entries, their count, and a bootstrap interval over prompts (columns rate, n, ci_low, ci_high)."""
    rows = pd.DataFrame({"rate": asr_of(matrix), "n": (~np.isnan(matrix)).sum(axis=1)})
    if resamples:
        tail = 100 * (1 - confidence) / 2
        boot = asr_of(matrix[:, bootstrap_indices(matrix.shape[1], resamples, seed)])
        rows["ci_low"], rows["ci_high"] = np.nanpercentile(boot, [tail, 100 - tail], axis=1)
    return rows


def over_refusal_table(
    harmful: pd.DataFrame, safe: pd.DataFrame, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Safety and over-refusal at every point of the main landscapes, one judge: the ASR on the harmful
    prompts and the refusal rate on the safe prompts (the share of safe prompts the judge finds not
    jailbroken), each over the judged responses with a bootstrap interval over its prompts.

    `harmful` and `safe` are judgments of that judge (load_judgments), the safe ones labelled with the
    over-refusal landscapes ("d1@over-refusal"), which answer at the points of "d1". Columns: judge,
    landscape, a[, b], asr, asr_ci_low, asr_ci_high, n_harmful, refusal_rate, refusal_ci_low,
    refusal_ci_high, n_safe, and safe_broken_share: the share of safe answers that are empty or
    degenerate (repetitive), which a model broken by the perturbation writes instead of refusing."""
    axes = ["a", "b"] if "b" in harmful.columns else ["a"]
    # a refusal is a verdict "not jailbroken" (an unjudged response stays unjudged)
    refusals = safe.assign(landscape=safe["landscape"].str.split("@").str[0], jailbroken=~safe["jailbroken"])
    tables = []
    for landscape, group in harmful.groupby("landscape", sort=False):
        points, jailbroken = verdict_matrix(group, axes)
        safe_points, refused = verdict_matrix(refusals[refusals["landscape"] == landscape], axes)
        if not points.equals(safe_points):
            raise ValueError(f"the safe prompts of {landscape} were answered at other points than its harmful prompts")
        asr = rate_with_interval(jailbroken, resamples, confidence, seed).add_prefix("asr_")
        refusal = rate_with_interval(refused, resamples, confidence, seed).add_prefix("refusal_")
        of_safe = refusals[refusals["landscape"] == landscape]
        broken = (of_safe["empty"] | of_safe["degenerate"]).groupby([of_safe[axis] for axis in axes], sort=True).mean() * 100
        tables.append(
            pd.concat([points, asr, refusal], axis=1).assign(
                judge=group["judge"].iloc[0], landscape=landscape, safe_broken_share=broken.to_numpy()
            )
        )
    table = pd.concat(tables, ignore_index=True).rename(columns={"asr_rate": "asr", "asr_n": "n_harmful", "refusal_n": "n_safe"})
    ordered = ["judge", "landscape", *axes, "asr", "asr_ci_low", "asr_ci_high", "n_harmful"]
    ordered += ["refusal_rate", "refusal_ci_low", "refusal_ci_high", "n_safe", "safe_broken_share"]
    return table[[c for c in ordered if c in table.columns]]
