"""Figures stage: 1D landscapes (ASR against a), 2D contours with the basin outlined, 3D surfaces."""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402
from .metrics import asr_grid  # noqa: E402

CMAP = "rocket_r"  # light = safe, dark = jailbroken


def _natural_order(name: str) -> list:
    """Sort key that puts d2 before d10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _mark_positions(ax, marks) -> None:
    """A dotted vertical line at each (label, a), labelled at the top of the axes."""
    for label, a in marks:
        ax.axvline(a, color="0.35", lw=0.8, ls=":")
        ax.annotate(
            label, (a, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -12), textcoords="offset points", fontsize="small"
        )


def _title(summary: dict) -> str:
    """Run, kind, headline VISAGE and its intervals: over prompts, and (mean of several landscapes)
    the hierarchical one over directions and prompts."""
    landscapes = summary.get("landscapes", 1)
    unit = "planes" if summary["kind"].startswith("2d") else "directions"
    mean_of = f", mean of {landscapes} {unit}" if landscapes > 1 else ""
    lines = [
        f"{summary['run']}: {summary['kind']} landscape",
        f"VISAGE {summary['visage']:.2f} ({summary['visage_definition']} definition, judge {summary['judge']}{mean_of})",
    ]
    prompts = summary.get("visage_ci", [np.nan, np.nan])
    both = summary.get("visage_ci_hierarchical", [np.nan, np.nan])
    if not np.isnan(prompts[0]):
        intervals = f"[{prompts[0]:.1f}, {prompts[1]:.1f}] over prompts"
        if landscapes > 1 and not np.isnan(both[0]):
            intervals += f", [{both[0]:.1f}, {both[1]:.1f}] over directions and prompts"
        lines.append(f"{summary.get('confidence', 0.95):.0%} CI {intervals}")
    if "adaptive" in summary:
        counts = ", ".join(f"{name} {n}" for name, n in summary["adaptive"]["sampled_points"].items())
        lines.append(f"adaptive grid: {counts} of {summary['adaptive']['grid_points']} points sampled")
    return "\n".join(lines)


def _scored(rows: pd.DataFrame) -> bool:
    """Whether these ASR rows come from a scoring judge (a mean score at every point)."""
    return "mean_score" in rows and len(rows) > 0 and bool(rows["mean_score"].notna().all())


def plot_landscape_1d(asr: pd.DataFrame, summary: dict, style: dict, markers: Sequence[tuple[str, float]] = ()):
    """ASR (%) against the perturbation size: colour = direction, line style = judge (the headline
    judge solid), dotted with crosses = 100 x the mean score of a scoring judge (StrongREJECT),
    bands = bootstrap confidence intervals, shading = the headline judge's basins;
    `markers` are named positions on the a axis (interpolation endpoints, projected checkpoints)."""
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    fig, ax = plt.subplots(figsize=(8.6, 4.6), layout="constrained")
    names = sorted(asr["landscape"].unique(), key=_natural_order)
    judges = list(dict.fromkeys(asr["judge"]))
    colors = dict(zip(names, sns.color_palette(style["palette"], len(names))))
    dashes = dict(zip(judges, ["-", "--", ":", "-."] * 4))
    for name, (low, high) in summary["basin"].items():
        if not (np.isnan(low) or np.isnan(high)):
            ax.axvspan(low, high, color=colors[name], alpha=0.07, lw=0)
    for (judge, name), line in asr.groupby(["judge", "landscape"], sort=False):
        line = line.sort_values("a")
        ax.plot(
            line["a"], line["asr"], dashes[judge], marker="o" if judge == judges[0] else None, ms=4, color=colors[name], lw=1.6
        )
        if "ci_low" in line:
            ax.fill_between(line["a"], line["ci_low"], line["ci_high"], color=colors[name], alpha=0.12, lw=0)
        if _scored(line):  # a scoring judge (StrongREJECT): its mean score, on the same 0-100 scale
            ax.plot(line["a"], 100 * line["mean_score"], ":", marker="x", ms=4, color=colors[name], lw=1.4)
    _mark_positions(ax, [("θ", 0.0), *markers])
    ax.set(
        xlabel=r"perturbation size $a$  ($\theta + a\,d$)",
        ylabel="attack success rate (%)",
        ylim=(-3, 103),
        title=_title(summary),
    )
    ax.title.set_fontsize("medium")
    handles = [plt.Line2D([], [], color=colors[n], lw=2, label=n) for n in names]
    handles += [plt.Line2D([], [], color="0.3", ls=dashes[j], label=f"judge: {j}") for j in judges]
    scored = [j for j in judges if _scored(asr[asr["judge"] == j])]
    handles += [plt.Line2D([], [], color="0.3", ls=":", marker="x", label=f"{j}: 100 x mean score") for j in scored]
    ax.legend(
        handles=handles,
        title=f"shaded: basin,\nASR < {summary['basin_threshold']:g} % ({judges[0]})",
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize="small",
        title_fontsize="small",
    )
    return fig


def plot_landscape_2d_contour(
    asr: pd.DataFrame,
    summary: dict,
    style: dict,
    axes: Sequence[str],
    endpoints: Sequence[tuple[str, float, float]] = (),
    trajectories: Mapping[str, Sequence[tuple[str, float, float]]] | None = None,
    labels: Sequence[str] | None = None,
    sampled: Sequence[tuple[float, float]] = (),
):
    """Filled ASR contour over (a, b) with the basin outlined at the threshold; interpolation
    endpoints marked; each trajectory (named, projected checkpoints in order) drawn as a path;
    `sampled`: the points an adaptive run measured (the rest of the grid is interpolated), as dots."""
    sns.set_theme(style="white", context=style["context"])
    grid = asr_grid(asr)
    a, b = grid.index.to_numpy(), grid.columns.to_numpy()
    fig, ax = plt.subplots(figsize=(6.2, 5.2), layout="constrained")
    filled = ax.contourf(a, b, grid.to_numpy().T, levels=np.linspace(0, 100, 11), cmap=CMAP, vmin=0, vmax=100)
    fig.colorbar(filled, ax=ax, label="attack success rate (%)")
    if grid.to_numpy().min() < summary["basin_threshold"] < grid.to_numpy().max():
        ax.contour(a, b, grid.to_numpy().T, levels=[summary["basin_threshold"]], colors="white", linewidths=2.2)
    if sampled:
        ax.plot(*zip(*sampled), ".", color="#2ca02c", mec="white", mew=0.6, ms=9, ls="none", label="sampled points")
    ax.plot([0], [0], marker="*", ms=14, color="#1f77b4", mec="white", ls="none", label="θ (basin outlined)")
    if endpoints:
        ax.plot(
            [p[1] for p in endpoints],
            [p[2] for p in endpoints],
            "D",
            color="#ff7f0e",
            mec="white",
            ms=7,
            ls="none",
            label="endpoints",
        )
    for name, x, y in endpoints:
        ax.annotate(name, (x, y), xytext=(5, 4), textcoords="offset points", fontsize="small", color="white")
    colors = sns.color_palette("bright", max(len(trajectories or {}), 1))
    for color, (label, points) in zip(colors, (trajectories or {}).items()):
        ax.plot([p[1] for p in points], [p[2] for p in points], "-o", color=color, mec="white", ms=6, lw=1.4, label=label)
        for name, x, y in points[-1:]:
            ax.annotate(name, (x, y), xytext=(5, -10), textcoords="offset points", fontsize="small", color=color)
    labels = labels or [f"a  (direction {axes[0]})", f"b  (direction {axes[1]})"]
    ax.set(xlabel=labels[0], ylabel=labels[1], xlim=(a.min(), a.max()), ylim=(b.min(), b.max()))
    ax.set_title(_title(summary), fontsize="medium")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def plot_finetune_epochs(asr: pd.DataFrame, judge: str, style: dict):
    """ASR (%) of every checkpoint against its epoch (0 = the model before finetuning), one colour
    per dataset, one line style per evaluation set, bands = bootstrap confidence intervals."""
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    rows = asr[asr["judge"] == judge]
    start = rows[rows["dataset"] == "aligned"]
    rows = rows[rows["dataset"] != "aligned"]
    # every dataset starts from the aligned model at epoch 0
    rows = pd.concat([rows] + [start.assign(dataset=d) for d in rows["dataset"].unique()], ignore_index=True).sort_values("epoch")
    fig, ax = plt.subplots(figsize=(7.6, 4.4), layout="constrained")
    sns.lineplot(rows, x="epoch", y="asr", hue="dataset", style="eval_set", markers=True, dashes=True, ax=ax, errorbar=None)
    if "ci_low" in rows:
        palette = dict(zip(rows["dataset"].unique(), sns.color_palette(style["palette"], rows["dataset"].nunique())))
        for (dataset, _), line in rows.groupby(["dataset", "eval_set"]):
            ax.fill_between(line["epoch"], line["ci_low"], line["ci_high"], color=palette[dataset], alpha=0.1, lw=0)
    ax.set(
        xlabel="epoch (0 = before finetuning)",
        ylabel="attack success rate (%)",
        ylim=(-3, 103),
        title=f"{rows['model'].iloc[0]}: ASR during finetuning (judge {judge})",
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.title.set_fontsize("medium")
    sns.move_legend(ax, "center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return fig


def plot_finetune_lines(asr: pd.DataFrame, judge: str, style: dict, title: str):
    """ASR along each line theta + a (theta_finetuned - theta): a = 0 is the model before finetuning,
    a = 1 the last epoch; one colour per dataset, bands = bootstrap confidence intervals."""
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    rows = asr[asr["judge"] == judge].sort_values("a")
    fig, ax = plt.subplots(figsize=(7.6, 4.4), layout="constrained")
    colors = dict(zip(rows["dataset"].unique(), sns.color_palette(style["palette"], rows["dataset"].nunique())))
    for dataset, line in rows.groupby("dataset", sort=False):
        ax.plot(line["a"], line["asr"], "-o", ms=4, lw=1.6, color=colors[dataset], label=dataset)
        if "ci_low" in line:
            ax.fill_between(line["a"], line["ci_low"], line["ci_high"], color=colors[dataset], alpha=0.12, lw=0)
    _mark_positions(ax, [("before", 0.0), ("finetuned", 1.0)])
    ax.set(
        xlabel=r"$a$  ($\theta + a\,(\theta_{finetuned} - \theta)$)",
        ylabel="attack success rate (%)",
        ylim=(-3, 103),
        title=title,
    )
    ax.title.set_fontsize("medium")
    ax.legend(title="dataset", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", title_fontsize="small")
    return fig


def plot_system_prompts(asr: pd.DataFrame, table2: pd.DataFrame, judge: str, style: dict, title: str):
    """Every system prompt variant's landscape in one figure (judge `judge`). 1D: ASR against a per
    variant, the mean over directions with the range over directions as a band; 2D: one contour
    panel per variant. Legends and panel titles carry each variant's VISAGE."""
    rows = asr[asr["judge"] == judge]
    variants = list(dict.fromkeys(rows["variant"]))
    visage = table2[table2["judge"] == judge].set_index("variant")["visage"]
    label = {v: f"{v} (VISAGE {visage[v]:.1f})" for v in variants}
    if "b" not in rows:
        sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
        fig, ax = plt.subplots(figsize=(8.2, 4.6), layout="constrained")
        colors = dict(zip(variants, sns.color_palette(style["palette"], len(variants))))
        for variant in variants:
            line = rows[rows["variant"] == variant].groupby("a")["asr"].agg(["mean", "min", "max"]).reset_index()
            ax.plot(line["a"], line["mean"], "-o", ms=4, lw=1.6, color=colors[variant], label=label[variant])
            ax.fill_between(line["a"], line["min"], line["max"], color=colors[variant], alpha=0.12, lw=0)
        ax.axvline(0.0, color="0.35", lw=0.8, ls=":")
        ax.set(xlabel=r"perturbation size $a$  ($\theta + a\,d$)", ylabel="attack success rate (%)", ylim=(-3, 103), title=title)
        ax.title.set_fontsize("medium")
        ax.legend(
            title="system prompt (band: range\nover directions)",
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize="small",
            title_fontsize="small",
        )
    else:
        sns.set_theme(style="white", context=style["context"])
        fig, panels = plt.subplots(
            1, len(variants), figsize=(4.2 * len(variants) + 1.2, 4.4), layout="constrained", squeeze=False
        )
        for ax, variant in zip(panels[0], variants):
            grid = asr_grid(rows[rows["variant"] == variant])
            filled = ax.contourf(
                grid.index, grid.columns, grid.to_numpy().T, levels=np.linspace(0, 100, 11), cmap=CMAP, vmin=0, vmax=100
            )
            ax.plot([0], [0], marker="*", ms=12, color="#1f77b4", mec="white", ls="none")
            ax.set(xlabel="a", ylabel="b", title=label[variant])
            ax.title.set_fontsize("small")
        fig.colorbar(filled, ax=panels[0].tolist(), label="attack success rate (%)")
        fig.suptitle(title, fontsize="medium")
    return fig


def plot_capability(table: pd.DataFrame, style: dict, title: str):
    """Safety and capability against the perturbation size (the paper's Fig. 7-8): ASR and the
    accuracies measured (MMLU, zero-shot multiple choice; %) on the left axis, perplexity of the reference
    answers (log scale) on the right; lines are means over the directions, bands their range. 2D
    landscapes get one panel per axis through theta (b = 0, then a = 0)."""
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    colors = sns.color_palette(style["palette"], 4)
    cuts = [("a", table[table["b"] == 0.0] if "b" in table else table)]
    if "b" in table:
        cuts.append(("b", table[table["a"] == 0.0]))
    lines = [
        ("asr", colors[0], "ASR (%)"),
        ("mmlu_accuracy", colors[1], "MMLU accuracy (%)"),
        ("mc_accuracy", colors[3], "zero-shot multiple-choice accuracy (%)"),
        ("perplexity", colors[2], "perplexity (right axis)"),
    ]
    fig, panels = plt.subplots(1, len(cuts), figsize=(8.6 * len(cuts), 4.6), layout="constrained", squeeze=False)
    for ax, (axis, rows) in zip(panels[0], cuts):
        right = ax.twinx()
        right.grid(False)
        for column, color, label in (line for line in lines if line[0] in table):
            target = right if column == "perplexity" else ax
            curve = rows.groupby(axis)[column].agg(["mean", "min", "max"]).reset_index()
            target.plot(curve[axis], curve["mean"], "-o", ms=4, lw=1.8, color=color, label=label)
            target.fill_between(curve[axis], curve["min"], curve["max"], color=color, alpha=0.12, lw=0)
        ax.axvline(0.0, color="0.35", lw=0.8, ls=":")
        ax.set(xlabel=f"perturbation size ${axis}$", ylabel="percent", ylim=(-3, 103))
        right.set(yscale="log", ylabel="perplexity of reference answers")
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.12, 1.0), fontsize="small")
    fig.suptitle(title, fontsize="medium")
    return fig


def _bilinear(a: np.ndarray, b: np.ndarray, values: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid refined `factor` times per axis by bilinear interpolation (for a smooth surface)."""
    fine_a = np.linspace(a.min(), a.max(), (len(a) - 1) * factor + 1)
    fine_b = np.linspace(b.min(), b.max(), (len(b) - 1) * factor + 1)
    along_a = np.stack([np.interp(fine_a, a, values[:, j]) for j in range(len(b))], axis=1)
    fine = np.stack([np.interp(fine_b, b, row) for row in along_a])
    return fine_a, fine_b, fine


def plot_landscape_3d(asr: pd.DataFrame, summary: dict, style: dict, axes: Sequence[str]):
    """ASR as a 3D surface over (a, b), bilinearly refined between the measured points. The ASR axis
    points down (0 % on top), so the basin stands up as a plateau that no wall hides."""
    sns.set_theme(style="white", context=style["context"])
    grid = asr_grid(asr)
    a, b, values = _bilinear(grid.index.to_numpy(), grid.columns.to_numpy(), grid.to_numpy(), 4)
    A, B = np.meshgrid(a, b, indexing="ij")
    fig = plt.figure(figsize=(7, 5.6), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(A, B, values, cmap=CMAP, vmin=0, vmax=100, rstride=1, cstride=1, linewidth=0, antialiased=True)
    ax.set(xlabel=f"a ({axes[0]})", ylabel=f"b ({axes[1]})", zlabel="ASR (%)  (0 on top)", zlim=(100, 0))
    ax.view_init(elev=30, azim=-55)
    ax.set_title(_title(summary), fontsize="medium")
    return fig


def save_figure_set(fig, paths: Sequence[str | os.PathLike], dpi: int) -> None:
    """Save one figure to each path (its format from the extension: png, pdf), each atomically, then close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=os.path.splitext(str(path))[1][1:])
    plt.close(fig)


def _visage_label(label: str, row: pd.Series) -> str:
    interval = "" if np.isnan(row["visage_ci_low"]) else f" [{row['visage_ci_low']:.1f}, {row['visage_ci_high']:.1f}]"
    return f"{label}: VISAGE {row['visage']:.1f}{interval}"


def plot_study_1d(asr: pd.DataFrame, table: pd.DataFrame, judge: str, style: dict, title: str, threshold: float):
    """Several models' 1D landscapes in one figure (the paper's Fig. 2), judge `judge`: ASR against a, one colour
    and marker per model, its mean over directions as a line and each direction as a faint line; the legend
    carries each model's VISAGE with its bootstrap interval (`table`: study.compare_table)."""
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    rows, scores = asr[asr["judge"] == judge], table[table["judge"] == judge].set_index("label")
    labels = list(dict.fromkeys(rows["label"]))
    colors = dict(zip(labels, sns.color_palette(style["palette"], len(labels))))
    markers = dict(zip(labels, ["o", "s", "D", "^", "v", "P", "X", "h"] * 4))
    fig, ax = plt.subplots(figsize=(8.6, 5.4), layout="constrained")
    for label in labels:
        model = rows[rows["label"] == label].sort_values("a")
        for _, line in model.groupby("landscape", sort=True):
            ax.plot(line["a"], line["asr"], color=colors[label], lw=0.9, alpha=0.35)
        mean = model.groupby("a")["asr"].mean()
        ax.plot(
            mean.index,
            mean.to_numpy(),
            "-",
            marker=markers[label],
            ms=5,
            lw=2.2,
            color=colors[label],
            label=_visage_label(label, scores.loc[label]),
        )
    ax.axhline(threshold, color="0.45", lw=0.9, ls="--", label=f"basin threshold: ASR {threshold:g} %")
    ax.axvline(0.0, color="0.35", lw=0.8, ls=":", label="θ: the model itself (a = 0)")
    ax.set(xlabel=r"perturbation size $a$  ($\theta + a\,d$)", ylabel="attack success rate (%)", ylim=(-3, 103), title=title)
    ax.title.set_fontsize("medium")
    ax.legend(
        title="model: VISAGE [bootstrap interval]; line: mean over directions, faint: each direction",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=min(2, len(labels)),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )
    return fig


OVER_REFUSAL_CURVES = (
    ("asr", "ASR on harmful prompts (answered)", "o", "-"),
    ("refusal_rate", "refusal rate on safe prompts (refused)", "s", "--"),
)


def plot_over_refusal(table: pd.DataFrame, style: dict, title: str):
    """Safety against over-refusal at the same points (over_refusal_table): 1D, one panel per direction
    with the ASR on the harmful prompts and the refusal rate on the safe prompts against a (bands =
    bootstrap intervals) and the share of broken (empty or degenerate) safe answers; 2D, the ASR and
    the refusal rate as contour panels side by side over (a, b)."""
    if "b" in table:
        return _over_refusal_planes(table, style, title)
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    names = list(dict.fromkeys(table["landscape"]))
    colors = sns.color_palette(style["palette"], 2)
    fig, panels = plt.subplots(
        1, len(names), figsize=(max(7.6, 0.6 + 3.9 * len(names)), 4.8), sharey=True, layout="constrained", squeeze=False
    )
    for ax, name in zip(panels[0], names):
        line = table[table["landscape"] == name].sort_values("a")
        for color, (column, label, marker, dash) in zip(colors, OVER_REFUSAL_CURVES):
            ax.plot(line["a"], line[column], dash, marker=marker, ms=4.5, lw=1.8, color=color, label=label)
            low, high = ("asr_ci_low", "asr_ci_high") if column == "asr" else ("refusal_ci_low", "refusal_ci_high")
            if low in line:
                ax.fill_between(line["a"], line[low], line[high], color=color, alpha=0.15, lw=0)
        ax.plot(line["a"], line["safe_broken_share"], ":", color="0.4", lw=1.5, label="safe prompts answered empty or degenerate")
        _mark_positions(ax, [("θ", 0.0)])
        ax.set(xlabel=r"perturbation size $a$  ($\theta + a\,d$)", ylim=(-3, 103), title=f"direction {name}")
        ax.title.set_fontsize("medium")
    panels[0][0].set_ylabel("percent of prompts")
    fig.legend(
        *panels[0][0].get_legend_handles_labels(),
        loc="outside lower center",
        ncol=3 if len(names) > 1 else 1,
        fontsize="small",
        title="bands: bootstrap intervals over prompts",
        title_fontsize="small",
        frameon=False,
    )
    fig.suptitle(title, fontsize="medium")
    return fig


def _over_refusal_planes(table: pd.DataFrame, style: dict, title: str):
    """The 2D case of plot_over_refusal: ASR and refusal rate as filled contours side by side."""
    sns.set_theme(style="white", context=style["context"])
    fig, panels = plt.subplots(1, 2, figsize=(10.4, 4.6), layout="constrained")
    for ax, (column, label, _, _) in zip(panels, OVER_REFUSAL_CURVES):
        grid = asr_grid(table, column)
        levels = np.linspace(0, 100, 11)
        filled = ax.contourf(grid.index, grid.columns, grid.to_numpy().T, levels=levels, cmap=CMAP, vmin=0, vmax=100)
        ax.plot([0], [0], marker="*", ms=12, color="#1f77b4", mec="white", ls="none")
        ax.set(xlabel="a", ylabel="b", title=label)
        ax.title.set_fontsize("small")
    fig.colorbar(filled, ax=panels.tolist(), label="percent of prompts (dark: fails its prompts)")
    fig.suptitle(title, fontsize="medium")
    return fig
