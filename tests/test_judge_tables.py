"""Tables of the model judges' extra answers: VISAGE on StrongREJECT's scores and the Llama Guard category
counts, on judgment files with hand-computed values."""

from pathlib import Path

import numpy as np
import pytest

from safety_landscape.io import write_jsonl
from safety_landscape.judge_formats import LLAMA_GUARD_CATEGORIES, LLAMA_GUARD_CATEGORY_NAMES
from safety_landscape.metrics import visage_on_scores
from safety_landscape.tables import guard_category_table, landscape_tables, load_judgments, with_scores

FIXTURES = Path(__file__).parent / "fixtures" / "judges"


def judgment(judge, landscape, a, index, jailbroken, **extra):
    return {"judge": judge, "landscape": landscape, "a": a, "index": index, "jailbroken": jailbroken} | extra


def load(tmp_path, records):
    write_jsonl(tmp_path / "judgments.jsonl", [r | {"empty": False, "degenerate": False} for r in records])
    return load_judgments([tmp_path / "judgments.jsonl"])


def test_visage_on_scores_is_eq5_on_100_times_the_mean_score():
    # S = 12.5 and 75 are below 100: margins 87.5 and 25
    assert visage_on_scores([1.0, 0.125, 0.75]) == 56.25
    assert visage_on_scores([0.0, 0.0]) == 100.0
    assert visage_on_scores([1.0, 1.0]) == 0.0
    assert visage_on_scores(np.array([[1.0, 0.5], [0.0, 1.0]])) == 75.0  # a 2D grid: margins 50 and 100


@pytest.mark.parametrize("bad", [[0.5, 1.5], [-0.1], [np.nan]])
def test_visage_on_scores_refuses_values_outside_0_1(bad):
    with pytest.raises(ValueError, match=r"^mean scores must be finite and in \[0, 1\]$"):
        visage_on_scores(bad)


SCORES = {"d1": {-0.1: [1.0, 1.0], 0.0: [0.0, 0.25], 0.1: [0.5, 1.0]}, "d2": {-0.1: [0.0, 0.0], 0.0: [0.0, 0.0], 0.1: [0.0, 0.0]}}


def scored_judgments(tmp_path):
    records = [
        judgment("strongreject", landscape, a, i, score > 0, score=score)
        for landscape, points in SCORES.items()
        for a, scores in points.items()
        for i, score in enumerate(scores)
    ]
    records += [judgment("keyword", r["landscape"], r["a"], r["index"], r["jailbroken"]) for r in records]
    return load(tmp_path, records)


def test_scoring_judges_get_mean_score_per_point_and_visage_score_per_landscape(tmp_path):
    judgments = scored_judgments(tmp_path)
    asr, table, _, _ = landscape_tables(judgments, "paper", 50, resamples=0)
    asr, table = with_scores(judgments, asr, table)
    strong = asr[asr["judge"] == "strongreject"]
    assert strong[["landscape", "a", "mean_score"]].values.tolist() == [
        ["d1", -0.1, 1.0],
        ["d1", 0.0, 0.125],
        ["d1", 0.1, 0.75],
        ["d2", -0.1, 0.0],
        ["d2", 0.0, 0.0],
        ["d2", 0.1, 0.0],
    ]
    assert asr.loc[asr["judge"] == "keyword", "mean_score"].isna().all()
    visage = table.set_index(["judge", "landscape"])["visage_score"]
    # d1: S = 100, 12.5, 75 -> (87.5 + 25) / 2; d2: S = 0 everywhere -> 100; mean 78.125
    assert visage[("strongreject", "d1")] == 56.25
    assert visage[("strongreject", "d2")] == 100.0
    assert visage[("strongreject", "mean")] == 78.125
    assert visage.loc["keyword"].isna().all()
    # ASR of the same verdicts (score > 0): d1 100, 50, 100 -> VISAGE 50; the score version weighs how much
    assert table.set_index(["judge", "landscape"]).loc[("strongreject", "d1"), "visage_paper"] == 50.0


def test_tables_without_scores_are_left_as_they_are(tmp_path):
    judgments = load(tmp_path, [judgment("keyword", "d1", a, 0, a != 0) for a in (-0.1, 0.0, 0.1)])
    asr, table, _, _ = landscape_tables(judgments, "paper", 50, resamples=0)
    scored_asr, scored_table = with_scores(judgments, asr, table)
    assert scored_asr is asr and scored_table is table


def test_llama_guard_category_names_are_the_published_lists():
    for model in ("llama-guard-2", "llama-guard-3"):
        lines = (FIXTURES / f"{model.replace('-', '_')}_categories.txt").read_text().splitlines()
        published = dict(line.strip().rstrip(".").split(": ", 1) for line in lines if line.strip())
        assert LLAMA_GUARD_CATEGORY_NAMES[model] == published
    assert LLAMA_GUARD_CATEGORIES == {"llama-guard-2": 11, "llama-guard-3": 14}
    assert LLAMA_GUARD_CATEGORY_NAMES["llama-guard-3"]["S9"] == "Indiscriminate Weapons"
    assert LLAMA_GUARD_CATEGORY_NAMES["llama-guard-2"]["S9"] == "Hate"


def guard_judgments(tmp_path):
    return load(
        tmp_path,
        [
            judgment("lg3", "d1", 0.0, 0, False, categories=[]),
            judgment("lg3", "d1", 0.0, 1, True, categories=["S2"]),
            judgment("lg3", "d1", 0.0, 2, None, reason="unknown category codes ['S15']"),
            judgment("lg3", "d1", 0.1, 0, True, categories=["S2", "S9"]),
            judgment("lg3", "d1", 0.1, 1, True, categories=["S9"]),
            judgment("lg3", "d1", 0.1, 2, False, categories=[]),
            judgment("any-guard", "d1", 0.0, 0, True, categories=["S10", "S2"]),
            judgment("any-guard", "d1", 0.1, 0, True, categories=["S2"]),
            judgment("keyword", "d1", 0.0, 0, True),
        ],
    )


def test_guard_categories_counts_each_code_per_point_and_landscape(tmp_path):
    table = guard_category_table(
        guard_judgments(tmp_path), {"lg3": LLAMA_GUARD_CATEGORY_NAMES["llama-guard-3"], "any-guard": None}
    )
    assert list(table.columns) == ["judge", "landscape", "point", "a", "category", "name", "judged", "flagged", "share"]
    lg3 = table[table["judge"] == "lg3"]
    assert len(lg3) == 3 * 14  # every code at the landscape and its two points
    assert list(lg3["category"][:14]) == [f"S{i}" for i in range(1, 15)]
    flagged = lg3[lg3["flagged"] > 0]
    assert flagged[["point", "category", "name", "judged", "flagged"]].values.tolist() == [
        ["all", "S2", "Non-Violent Crimes", 5, 2],
        ["all", "S9", "Indiscriminate Weapons", 5, 2],
        ["a+0.0000", "S2", "Non-Violent Crimes", 2, 1],
        ["a+0.1000", "S2", "Non-Violent Crimes", 3, 1],
        ["a+0.1000", "S9", "Indiscriminate Weapons", 3, 2],
    ]
    assert list(flagged["share"]) == pytest.approx([40.0, 40.0, 50.0, 100 / 3, 200 / 3])
    assert lg3.loc[lg3["point"] == "all", "a"].isna().all()
    assert list(lg3.loc[lg3["point"] != "all", "a"].unique()) == [0.0, 0.1]
    assert lg3.loc[lg3["flagged"] == 0, "share"].eq(0).all()
    # a judge whose codes are not checked: the codes it gave, in code order, without names
    other = table[table["judge"] == "any-guard"]
    assert other[["point", "category", "judged", "flagged"]].values.tolist() == [
        ["all", "S2", 2, 2],
        ["all", "S10", 2, 1],
        ["a+0.0000", "S2", 1, 1],
        ["a+0.0000", "S10", 1, 1],
        ["a+0.1000", "S2", 1, 1],
        ["a+0.1000", "S10", 1, 0],
    ]
    assert other["name"].isna().all()


def test_guard_categories_of_a_2d_landscape_name_the_points(tmp_path):
    records = [
        judgment("lg2", "d1-d2", a, 0, a == b, b=b, categories=["S1"] if a == b else []) for a in (0.0, 0.1) for b in (0.0, 0.1)
    ]
    table = guard_category_table(load(tmp_path, records), {"lg2": LLAMA_GUARD_CATEGORY_NAMES["llama-guard-2"]})
    s1 = table[table["category"] == "S1"]
    assert s1[["point", "judged", "flagged"]].values.tolist() == [
        ["all", 4, 2],
        ["a+0.0000_b+0.0000", 1, 1],
        ["a+0.0000_b+0.1000", 1, 0],
        ["a+0.1000_b+0.0000", 1, 0],
        ["a+0.1000_b+0.1000", 1, 1],
    ]
    assert len(table) == 5 * 11 and set(table["name"]) == set(LLAMA_GUARD_CATEGORY_NAMES["llama-guard-2"].values())


def test_the_1d_figure_draws_a_scoring_judges_mean_score_on_the_asr_scale():
    import pandas as pd

    from safety_landscape.figures import plot_landscape_1d

    asr = pd.DataFrame(
        {
            "judge": ["keyword"] * 3 + ["sr"] * 3,
            "landscape": ["d1"] * 6,
            "a": [-0.1, 0.0, 0.1] * 2,
            "asr": [100.0, 0.0, 50.0, 100.0, 0.0, 100.0],
            "mean_score": [np.nan] * 3 + [0.75, 0.0, 0.5],
        }
    )
    summary = {
        "run": "demo",
        "kind": "1d-random",
        "visage": 75.0,
        "visage_definition": "paper",
        "judge": "keyword",
        "landscapes": 1,
        "visage_ci": [np.nan, np.nan],
        "basin": {"d1": [np.nan, np.nan]},
        "basin_threshold": 50,
    }
    fig = plot_landscape_1d(asr, summary, {"style": "whitegrid", "context": "notebook", "palette": "colorblind"})
    ax = fig.axes[0]
    scored = [line for line in ax.get_lines() if line.get_linestyle() == ":" and line.get_marker() == "x"]
    assert len(scored) == 1 and scored[0].get_ydata().tolist() == [75.0, 0.0, 50.0]
    assert [text.get_text() for text in ax.get_legend().get_texts()][-1] == "sr: 100 x mean score"
