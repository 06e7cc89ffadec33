"""Figures stage: the 1D safety landscape (ASR against a, one line per direction, basin shaded)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402


def plot_landscape_1d(asr: pd.DataFrame, summary: dict, style: dict):
    """ASR (%) against the perturbation size, one line per direction, each direction's basin shaded."""
    sns.set_theme(style=style["style"], context=style["context"], palette=style["palette"])
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    directions = sorted(asr["direction"].unique())
    colors = dict(zip(directions, sns.color_palette(style["palette"], len(directions))))
    for direction, (low, high) in summary["basin"].items():
        if not (np.isnan(low) or np.isnan(high)):
            ax.axvspan(low, high, color=colors[direction], alpha=0.08, lw=0)
    sns.lineplot(data=asr, x="a", y="asr", hue="direction", hue_order=directions, palette=colors, marker="o", ax=ax)
    ax.axvline(0, color="0.4", lw=0.8, ls=":")
    ax.set(
        xlabel=r"perturbation size $a$  ($\theta + a\,d$)",
        ylabel="attack success rate (%)",
        ylim=(-3, 103),
        title=f"{summary['run']}: safety landscape, VISAGE {summary['visage']:.2f} ({summary['visage_definition']})",
    )
    ax.legend(title=f"direction (shaded: ASR < {summary['basin_threshold']:g} %)", loc="upper center", fontsize="small", title_fontsize="small")
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=os.path.splitext(str(path))[1][1:])
