import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safety_landscape.io import write_jsonl
from safety_landscape.metrics import visage
from safety_landscape.tables import capability_table, landscape_tables, load_judgments, system_prompt_table, visage_summary_table


def judgments_from(asr_by_landscape: dict, coords, judge="keyword", prompts=2):
    """Per-response judgments giving exactly the ASR values asked for (multiples of 100 / prompts)."""
    rows = []
    for landscape, values in asr_by_landscape.items():
        for c, v in zip(coords, values):
            for i in range(prompts):
                rows.append(
                    {
                        "judge": judge,
                        "landscape": landscape,
                        **dict(zip("ab", c)),
                        "index": i,
                        "jailbroken": i < round(v * prompts / 100),
                        "empty": False,
                        "degenerate": i == 0,
                    }
                )
    return pd.DataFrame(rows)


def test_landscape_tables():
    frame = judgments_from({"d1": [100, 0, 100], "d2": [100, 0, 50]}, [(-0.1,), (0.0,), (0.1,)])
    asr, table, agreement, summary = landscape_tables(frame, "paper", 50, resamples=200)
    assert list(asr["asr"]) == [100, 0, 100, 100, 0, 50]
    assert asr["degenerate_share"].eq(50).all() and asr["empty_share"].eq(0).all()
    assert table.set_index("landscape").loc["d2", "visage_paper"] == pytest.approx(75.0)
    assert summary["visage"] == pytest.approx((100 + 75) / 2)
    assert summary["asr_at_origin"] == 0.0 and agreement.empty  # one judge: nothing to compare
    low, high = summary["visage_ci"]
    assert low <= summary["visage"] <= high


def test_landscape_tables_2d():
    # 3 x 3 grid: only the centre and (0, 0.1) are safe
    coords = [(a, b) for a in (-0.1, 0.0, 0.1) for b in (-0.1, 0.0, 0.1)]
    values = [0 if c in {(0.0, 0.0), (0.0, 0.1)} else 100 for c in coords]
    asr, table, _, summary = landscape_tables(judgments_from({"d1-d2": values}, coords), "paper", 50, resamples=0)
    assert len(asr) == 9 and {"landscape", "a", "b", "asr", "n"} <= set(asr.columns)
    row = table.set_index("landscape").loc["d1-d2"]
    assert row["visage_paper"] == pytest.approx(100.0)  # the two safe points have margin 100
    # reference with N = 3 finds no edges, so it averages every point of each axis line:
    # b = 0 (a varies): [100, 0, 100] -> 100/3; a = 0 (b varies): [100, 0, 0] -> 200/3; mean 50
    assert row["visage_reference"] == pytest.approx(50.0)
    # basin: the 2 connected safe cells of 0.1 x 0.1
    assert row["basin_area"] == pytest.approx(0.02) and row["basin_mean_radius"] == pytest.approx((0.02 / np.pi) ** 0.5)
    assert summary["asr_at_origin"] == 0.0 and summary["landscapes"] == 1


def test_bootstrap_ci_of_asr_is_exact_for_unanimous_points_and_seeded():
    frame = judgments_from({"d1": [100, 0, 50]}, [(-0.1,), (0.0,), (0.1,)], prompts=10)
    asr, _, _, _ = landscape_tables(frame, "paper", 50, resamples=500, seed=1)
    again, _, _, _ = landscape_tables(frame, "paper", 50, resamples=500, seed=1)
    assert asr.equals(again)
    unanimous = asr[asr["asr"].isin([0, 100])]
    assert (unanimous["ci_low"] == unanimous["asr"]).all() and (unanimous["ci_high"] == unanimous["asr"]).all()
    half = asr[asr["asr"] == 50].iloc[0]
    assert 10 <= half["ci_low"] < 50 < half["ci_high"] <= 90


def test_agreement_table_between_two_judges():
    coords = [(-0.1,), (0.0,), (0.1,)]
    frame = pd.concat(
        [
            judgments_from({"d1": [100, 0, 100]}, coords, "keyword"),
            judgments_from({"d1": [100, 0, 50]}, coords, "refusal"),
        ],
        ignore_index=True,
    )
    _, table, agreement, summary = landscape_tables(frame, "paper", 50, resamples=0)
    row = agreement.iloc[0]
    assert (row["judge_1"], row["judge_2"], row["n"]) == ("keyword", "refusal", 6)
    assert (row["both_jailbroken"], row["only_judge_1"], row["only_judge_2"], row["neither"]) == (3, 1, 0, 2)
    assert summary["judge"] == "keyword" and set(summary["judges"]) == {"keyword", "refusal"}


@settings(max_examples=40, deadline=None)
@given(
    st.integers(3, 7).flatmap(
        lambda n: st.lists(st.lists(st.sampled_from([0, 50, 100]), min_size=n, max_size=n), min_size=1, max_size=4)
    ),
    st.randoms(),
)
def test_visage_is_in_range_and_independent_of_direction_order(directions, rng):
    for d in directions:
        for definition in ("paper", "reference"):
            assert 0.0 <= visage(d, definition) <= 100.0
    coords = [(round(0.1 * i, 1),) for i in range(-(len(directions[0]) // 2), len(directions[0]) - len(directions[0]) // 2)]
    names = [f"d{i + 1}" for i in range(len(directions))]
    shuffled = names[:]
    rng.shuffle(shuffled)
    _, _, _, summary = landscape_tables(judgments_from(dict(zip(names, directions)), coords), "paper", 50, resamples=0)
    _, _, _, again = landscape_tables(judgments_from(dict(zip(shuffled, directions)), coords), "paper", 50, resamples=0)
    assert 0.0 <= summary["visage"] <= 100.0 and again["visage"] == pytest.approx(summary["visage"])


def test_unjudged_responses_are_left_out_of_the_asr(tmp_path):
    records = [
        {
            "landscape": "d1",
            "a": a,
            "index": i,
            "judge": "guard",
            "jailbroken": v,
            "detail": None,
            "empty": False,
            "degenerate": False,
        }
        for a, verdicts in ((-0.1, [True, True]), (0.0, [False, None]), (0.1, [True, None]))
        for i, v in enumerate(verdicts)
    ]
    # two job files, points out of grid order: the coordinates come from the records, not from the files
    write_jsonl(tmp_path / "job1.jsonl", records[4:] + records[:2])
    write_jsonl(tmp_path / "job2.jsonl", records[2:4])
    frame = load_judgments([tmp_path / "job1.jsonl", tmp_path / "job2.jsonl"])
    assert list(frame["a"]) == [-0.1, -0.1, 0.0, 0.0, 0.1, 0.1] and list(frame["index"]) == [0, 1] * 3
    asr, _, _, _ = landscape_tables(frame, "paper", 50, resamples=50)
    assert list(asr["asr"]) == [100.0, 0.0, 100.0]
    assert list(asr["n"]) == [2, 1, 1] and list(asr["unjudged"]) == [0, 1, 1]
    write_jsonl(tmp_path / "old.jsonl", [{"index": 0, "judge": "guard", "jailbroken": True}])
    with pytest.raises(ValueError, match=r"lack \['landscape', 'a'\]; rerun the judge rule"):
        load_judgments([tmp_path / "old.jsonl"])


def test_system_prompt_table_and_headline_summary():
    coords = [(-0.1,), (0.0,), (0.1,)]
    tables = {}
    for variant, values in (("default", [100, 0, 100]), ("aoa", [100, 50, 100])):
        _, tables[variant], _, summary = landscape_tables(judgments_from({"d1": values}, coords), "paper", 50, resamples=50)
        if variant == "default":
            headline = visage_summary_table(summary)
    table2 = system_prompt_table(tables, {"default": None, "aoa": "Obey."}, "paper")
    assert list(table2["variant"]) == ["default", "aoa"] and list(table2["system_prompt"]) == ["(chat template default)", "Obey."]
    assert list(table2["visage"]) == pytest.approx([100.0, 50.0]) and list(table2["asr_at_origin"]) == [0.0, 50.0]
    assert (table2["visage_ci_low"] <= table2["visage"]).all()
    assert headline.to_dict("records")[0] | {"CI low": 0, "CI high": 0} == {
        "judge": "keyword",
        "VISAGE": 100.0,
        "CI low": 0,
        "CI high": 0,
        "CI low (directions + prompts)": 100.0,  # one landscape, safe at its centre in every draw
        "CI high (directions + prompts)": 100.0,
        "paper": 100.0,
        "reference": 33.33,
        "ASR at theta (%)": 0.0,
    }


def test_capability_table_puts_the_asr_beside_each_point():
    asr = pd.DataFrame(
        {"judge": ["keyword", "keyword", "other"], "landscape": ["d1"] * 3, "a": [0.0, 0.1, 0.0], "asr": [5.0, 60.0, 1.0]}
    )
    scores = [
        {"landscape": "d1", "a": 0.1, "perplexity": 9.0, "mc_accuracy": 40.0},
        {"landscape": "d1", "a": 0.0, "perplexity": 3.0, "mc_accuracy": 70.0},
    ]
    table = capability_table(scores, asr, "keyword")
    assert table.to_dict("records") == [
        {"landscape": "d1", "a": 0.0, "asr": 5.0, "perplexity": 3.0, "mc_accuracy": 70.0},
        {"landscape": "d1", "a": 0.1, "asr": 60.0, "perplexity": 9.0, "mc_accuracy": 40.0},
    ]
    with pytest.raises(ValueError, match="come from different grids"):
        capability_table(scores + [{"landscape": "d1", "a": 0.2, "perplexity": 1.0, "mc_accuracy": 1.0}], asr, "keyword")


FIVE_POINTS = [(-0.2,), (-0.1,), (0.0,), (0.1,), (0.2,)]


def test_hierarchical_interval_of_two_constant_directions():
    """Unanimous verdicts: resampling prompts changes nothing, so the prompt interval is the mean itself
    and the hierarchical one spans the means of the direction draws {d1, d1}, {d1, d2}, {d2, d2}."""
    # reference definition, N = 5 and no broken edge: the mean margin over all 5 points
    # d1 safe everywhere -> 100; d2 broken at a = -0.1 and 0.1 -> (100 + 0 + 100 + 0 + 100) / 5 = 60
    frame = judgments_from({"d1": [0, 0, 0, 0, 0], "d2": [0, 100, 0, 100, 0]}, FIVE_POINTS)
    _, table, _, summary = landscape_tables(frame, "reference", 50, resamples=1000)
    assert table.set_index("landscape")["visage_reference"].to_dict() == {"d1": 100.0, "d2": 60.0, "mean": 80.0}
    assert summary["visage"] == 80.0
    assert summary["visage_ci"] == [80.0, 80.0]
    assert summary["visage_ci_hierarchical"] == [60.0, 100.0]
    mean = table[table["landscape"] == "mean"].iloc[0]
    assert (mean["visage_hier_ci_low"], mean["visage_hier_ci_high"]) == (60.0, 100.0)
    assert table.loc[table["landscape"] != "mean", "visage_hier_ci_low"].isna().all()  # a mean-row interval only
    row = visage_summary_table(summary).iloc[0]
    assert (row["CI low"], row["CI high"]) == (80.0, 80.0)
    assert (row["CI low (directions + prompts)"], row["CI high (directions + prompts)"]) == (60.0, 100.0)


def test_hierarchical_interval_of_one_landscape_is_the_prompt_interval():
    frame = judgments_from({"d1": [100, 60, 0, 30, 100]}, FIVE_POINTS, prompts=10)
    _, table, _, summary = landscape_tables(frame, "paper", 50, resamples=500, seed=2)
    low, high = summary["visage_ci"]
    assert low < summary["visage"] < high  # prompt noise: a real interval
    assert summary["visage_ci_hierarchical"] == [low, high]


def test_directions_with_the_same_verdicts_share_each_prompt_draw():
    """The prompts are the same for every direction, so a resample draws them once for all its
    directions: copies of one direction then give the prompt interval of that direction exactly (prompts
    drawn independently per direction would average part of the noise away and narrow it)."""
    values = [100, 60, 0, 30, 100]
    summary = lambda names: landscape_tables(  # noqa: E731
        judgments_from(dict.fromkeys(names, values), FIVE_POINTS, prompts=10), "paper", 50, resamples=500
    )[3]
    alone, copies = summary(["d1"]), summary(["d1", "d2", "d3"])
    assert copies["visage_ci"] == alone["visage_ci"]
    assert copies["visage_ci_hierarchical"] == alone["visage_ci"]
