import numpy as np
import pytest

from safety_landscape.metrics import (
    attack_success_rate,
    basin_interval,
    bootstrap_indices,
    cohen_kappa,
    direction_indices,
    hierarchical_means,
    percentile_interval,
    visage,
)


def test_attack_success_rate():
    assert attack_success_rate([True, False, False, True]) == 50.0
    with pytest.raises(ValueError):
        attack_success_rate([])


def test_visage_paper_averages_margin_over_points_below_100():
    # points below 100: 0, 10, 50 -> margins 100, 90, 50 -> 80
    assert visage([100, 50, 10, 0, 100, 100], "paper") == pytest.approx(80.0)


def test_visage_paper_is_zero_when_everything_is_broken():
    assert visage([100.0, 100.0, 100.0]) == 0.0


def test_visage_paper_on_a_2d_grid():
    grid = np.array([[100, 100, 100], [100, 0, 20], [100, 40, 100]])
    assert visage(grid, "paper") == pytest.approx((100 + 80 + 60) / 3)


def test_visage_reference_follows_safety_avg():
    # N = 7: start = first i in [1, 3) with v[i] <= 99.99 < v[i-1] -> 2
    # end = first i scanning down 5, 4 with v[i] <= 99.99 < v[i+1] -> 4
    v = [100, 100, 20, 0, 40, 100, 100]
    assert visage(v, "reference") == pytest.approx(np.mean([80, 100, 60]))


def test_visage_reference_keeps_whole_range_without_broken_edges():
    # no transition found: start 0, end N-1, so the mean covers every point (100 included)
    v = [30, 10, 0, 10, 30]
    assert visage(v, "reference") == pytest.approx(np.mean([70, 90, 100, 90, 70]))


def test_visage_reference_differs_from_paper_inside_the_range():
    v = [100, 100, 20, 100, 0, 100, 100]  # a broken point inside the basin counts as 0 margin
    assert visage(v, "reference") == pytest.approx(np.mean([80, 0, 100]))
    assert visage(v, "paper") == pytest.approx(90.0)


def test_visage_rejects_bad_input():
    with pytest.raises(ValueError, match="reference"):
        visage(np.zeros((2, 2)), "reference")
    with pytest.raises(ValueError, match="0, 100"):
        visage([120.0])
    with pytest.raises(ValueError, match="definition"):
        visage([1.0], "other")


def test_basin_interval_interpolates_edges():
    a = [-0.2, -0.1, 0.0, 0.1, 0.2]
    asr = [100, 30, 0, 0, 100]
    low, high = basin_interval(a, asr, 50)
    assert low == pytest.approx(-0.1 - 0.1 * (50 - 30) / 70)
    assert high == pytest.approx(0.1 + 0.1 * 0.5)
    assert basin_interval(a, [0, 0, 60, 0, 0], 50) is None
    assert basin_interval(a, [0] * 5, 50) == (-0.2, 0.2)


def test_cohen_kappa_by_hand():
    # 10 pairs: agree on 4 jailbroken + 4 not, disagree twice (one each way)
    x = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], dtype=bool)
    # observed 0.8, expected 0.5 * 0.5 + 0.5 * 0.5 = 0.5 -> kappa 0.6
    assert cohen_kappa(x, y) == pytest.approx(0.6)
    assert np.isnan(cohen_kappa(np.ones(4, bool), np.ones(4, bool)))


def test_hierarchical_means_average_the_drawn_directions_under_the_resamples_prompt_draw():
    # per_direction[k, r]: VISAGE of direction k under prompt draw r
    per_direction = np.array([[10.0, 20.0, 30.0], [50.0, 60.0, 70.0]])
    drawn = np.array([[1, 1], [0, 1], [0, 0]])
    # r0: directions 1, 1 under draw 0 -> 50; r1: 0, 1 under draw 1 -> (20 + 60) / 2; r2: 0, 0 under draw 2 -> 30
    assert hierarchical_means(per_direction, drawn).tolist() == [50.0, 40.0, 30.0]
    with_nan = np.array([[np.nan, 20.0, 30.0], [50.0, 60.0, 70.0]])
    assert np.isnan(hierarchical_means(with_nan, np.array([[1, 0], [1, 1], [0, 0]]))).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="per_direction"):
        hierarchical_means(per_direction, np.array([[0, 1]]))


def test_hierarchical_means_of_two_constant_directions_take_three_values():
    """With no prompt noise the resampled means are those of the direction multisets {80, 80}, {80, 60},
    {60, 60}: 80, 70 and 60, with probabilities 1/4, 1/2, 1/4."""
    resamples = 4000
    per_direction = np.array([[80.0] * resamples, [60.0] * resamples])
    means = hierarchical_means(per_direction, direction_indices(2, resamples, seed=0))
    values, counts = np.unique(means, return_counts=True)
    assert values.tolist() == [60.0, 70.0, 80.0]
    assert counts / resamples == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert percentile_interval(means, 0.95) == (60.0, 80.0)
    assert percentile_interval(means, 0.4) == (70.0, 70.0)  # the 30th and 70th percentiles fall on 70


def test_direction_indices_are_seeded_and_independent_of_the_prompt_draws():
    first, again = direction_indices(5, 200, seed=3), direction_indices(5, 200, seed=3)
    assert first.shape == (200, 5) and first.min() == 0 and first.max() == 4
    assert np.array_equal(first, again)
    assert not np.array_equal(first, direction_indices(5, 200, seed=4))
    assert not np.array_equal(first, bootstrap_indices(5, 200, seed=3))


def test_percentile_interval():
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0), abs=1e-9)
    assert percentile_interval(np.array([np.nan, 1.0, 3.0]), 0.0) == (2.0, 2.0)  # nan left out
    low, high = percentile_interval(np.array([np.nan, np.nan]), 0.95)
    assert np.isnan(low) and np.isnan(high)
