"""Metrics on hand-made score sets whose answers are worked out in the comments, plus properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceledger.domain import metrics

GENUINE = [0.9, 0.8, 0.7, 0.6]
IMPOSTOR = [0.65, 0.5, 0.4, 0.3]
NAN = math.nan


def test_fmr_and_fnmr_count_at_or_above_the_threshold() -> None:
    # impostors >= 0.5: 0.65 and 0.5 -> 2 of 4; genuine < 0.7: only 0.6 -> 1 of 4
    assert metrics.fmr_at(IMPOSTOR, 0.5) == 0.5
    assert metrics.fnmr_at(GENUINE, 0.7) == 0.25
    assert metrics.fmr_at(IMPOSTOR, 0.66) == 0.0
    assert metrics.fnmr_at(GENUINE, 0.6) == 0.0


def test_accuracy_counts_right_decisions_over_all_pairs() -> None:
    # t = 0.62: genuine 0.9, 0.8, 0.7 accepted (3), impostors 0.5, 0.4, 0.3 rejected (3) -> 6/8
    assert metrics.accuracy_at(GENUINE, IMPOSTOR, 0.62) == 0.75
    # t = 0.55: all 4 genuine accepted, 0.65 falsely accepted -> 7/8
    assert metrics.accuracy_at(GENUINE, IMPOSTOR, 0.55) == 0.875


def test_failed_pairs_are_wrong_for_accuracy_and_frr_but_never_false_matches() -> None:
    genuine = [*GENUINE, NAN]
    impostor = [*IMPOSTOR, NAN]
    # t = 0.55: 7 right of 10 pairs; the two failed pairs are wrong whatever the threshold
    assert metrics.accuracy_at(genuine, impostor, 0.55) == 0.7
    assert metrics.failures(genuine) == 1
    # FMR/FNMR are over acquired comparisons only
    assert metrics.fmr_at(impostor, 0.55) == 0.25
    assert metrics.fnmr_at(genuine, 0.7) == 0.25
    # ISO/IEC 19795-1: FAR = FMR (1 - FTA) = 0.25 * 4/5; FRR = FTA + FNMR (1 - FTA) = 1/5 + 0.25 * 4/5
    assert metrics.false_accept_rate(impostor, 0.55) == pytest.approx(0.2)
    assert metrics.false_reject_rate(genuine, 0.7) == pytest.approx(0.4)


def test_empty_denominators_give_nan_not_zero() -> None:
    assert math.isnan(metrics.fmr_at([NAN, NAN], 0.5))
    assert math.isnan(metrics.fnmr_at([], 0.5))


def test_infinite_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        metrics.fmr_at([0.1, math.inf], 0.5)


def test_roc_lists_rates_at_every_distinct_score() -> None:
    roc = metrics.roc(GENUINE, IMPOSTOR)
    assert roc.thresholds.tolist() == [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8, 0.9]
    # at 0.6: impostors >= 0.6 -> 0.65 only (1/4); genuine < 0.6 -> none
    at = roc.thresholds.tolist().index(0.6)
    assert roc.fmr[at] == 0.25
    assert roc.fnmr[at] == 0.0
    assert roc.fmr[0] == 1.0
    assert roc.fnmr[-1] == 0.75
    assert roc.tmr()[-1] == 0.25


def test_best_threshold_is_the_lowest_midpoint_of_highest_accuracy() -> None:
    # candidates 0.35 .. 0.85; 0.55 and 0.675 both give 7/8 right; the lower one wins
    threshold = metrics.best_threshold(GENUINE, IMPOSTOR)
    assert threshold == pytest.approx(0.55)
    assert metrics.accuracy_at(GENUINE, IMPOSTOR, threshold) == 0.875


def test_best_threshold_separates_separable_sets_perfectly() -> None:
    threshold = metrics.best_threshold([0.9, 0.8], [0.2, 0.1])
    assert threshold == pytest.approx(0.5)  # midpoint of the gap between 0.2 and 0.8


def test_kfold_fits_each_threshold_on_the_other_folds() -> None:
    # fold 0: genuine 0.9, 0.8; impostor 0.3, 0.2 -- fold 1: genuine 0.6, 0.55; impostor 0.7, 0.1
    scores = [0.9, 0.8, 0.3, 0.2, 0.6, 0.55, 0.7, 0.1]
    same = [True, True, False, False, True, True, False, False]
    folds = [0, 0, 0, 0, 1, 1, 1, 1]
    result = metrics.kfold_accuracy(scores, same, folds)
    # fold 0 is tested at fold 1's best threshold, 0.325 (3 of 4 right there): all 4 right
    # fold 1 is tested at fold 0's best, 0.55: 0.6, 0.55 accepted, 0.1 rejected, 0.7 wrong -> 3/4
    assert result.thresholds == pytest.approx((0.325, 0.55))
    assert result.accuracies == (1.0, 0.75)
    assert result.mean == 0.875
    assert result.std == pytest.approx(math.sqrt(2 * 0.125**2))
    assert result.standard_error == pytest.approx(0.125)


def test_kfold_needs_matching_lengths_and_two_folds() -> None:
    with pytest.raises(ValueError, match="one entry per pair"):
        metrics.kfold_accuracy([0.1, 0.2], [True], [0, 1])
    with pytest.raises(ValueError, match="two folds"):
        metrics.kfold_accuracy([0.1, 0.2], [True, False], [0, 0])


def test_threshold_at_fmr_sits_just_above_the_last_allowed_impostor() -> None:
    # 1 of 4 impostors may score at or above: the threshold sits just above the second highest, 0.5
    threshold = metrics.threshold_at_fmr(IMPOSTOR, 0.25)
    assert 0.5 < threshold < 0.5 + 1e-12
    assert metrics.fmr_at(IMPOSTOR, threshold) == 0.25
    # below 1/N the threshold must clear every impostor seen
    above_all = metrics.threshold_at_fmr(IMPOSTOR, 0.1)
    assert 0.65 < above_all < 0.65 + 1e-12
    assert metrics.threshold_at_fmr(IMPOSTOR, 1.0) == 0.3


def test_threshold_at_fmr_rejects_bad_targets() -> None:
    with pytest.raises(ValueError, match="target FMR"):
        metrics.threshold_at_fmr(IMPOSTOR, 1.5)
    with pytest.raises(ValueError, match="no acquired"):
        metrics.threshold_at_fmr([NAN], 0.1)


def test_mate_ranks_are_pessimistic_on_ties_and_zero_on_failure() -> None:
    similarity = [
        [0.9, 0.1, 0.5],  # mate 0 scores highest -> rank 1
        [0.2, 0.3, 0.8],  # mate 0 scores lowest of three -> rank 3
        [NAN, NAN, NAN],  # failure to acquire -> 0
        [0.5, 0.5, 0.1],  # mate 1 ties with column 0 -> counted behind it, rank 2
    ]
    assert metrics.mate_ranks(similarity, [0, 0, 1, 1]).tolist() == [1, 3, 0, 2]


def test_cmc_is_the_cumulative_share_of_mates_found_by_each_rank() -> None:
    ranks = [1, 2, 0, 1, 5]  # one failure; rank 5 beyond max_rank 3
    assert metrics.cmc(ranks, 3).tolist() == [0.4, 0.6, 0.6]
    assert metrics.cmc(ranks, 5).tolist() == [0.4, 0.6, 0.6, 0.6, 0.8]
    assert np.isnan(metrics.cmc([], 2)).all()


def test_open_set_rates_and_threshold_at_fpir() -> None:
    nonmated_top = [0.9, 0.4, NAN, 0.6]
    # a failed non-mated search returns nothing: not a false positive, still a search
    assert metrics.fpir_at(nonmated_top, 0.5) == 0.5
    threshold = metrics.threshold_at_fpir(nonmated_top, 0.25)  # 1 of 4 may return a candidate
    assert 0.6 < threshold < 0.6 + 1e-12
    assert metrics.fpir_at(nonmated_top, threshold) == 0.25

    mate_scores = [0.9, 0.2, NAN, 0.5]
    ranks = [1, 3, 0, 2]
    # t = 0.4, rank 1: only the first is returned -> 3 of 4 missed; rank 2 also admits the last
    assert metrics.fnir_at(mate_scores, ranks, 0.4, max_rank=1) == 0.75
    assert metrics.fnir_at(mate_scores, ranks, 0.4, max_rank=2) == 0.5
    assert metrics.fnir_at(mate_scores, ranks, 0.95, max_rank=3) == 1.0


def test_threshold_at_fpir_when_every_threshold_meets_the_target() -> None:
    assert metrics.threshold_at_fpir([0.3, NAN], 0.5) == 0.3
    assert metrics.threshold_at_fpir([NAN, NAN], 0.5) == -math.inf


# --- properties on random score sets ---------------------------------------------------

RNG_SEEDS = range(5)


def _random_sets(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    genuine = rng.normal(0.7, 0.1, 300).round(3)  # rounding makes ties
    impostor = rng.normal(0.4, 0.1, 500).round(3)
    genuine[rng.integers(0, 300, 5)] = np.nan
    return genuine, impostor


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_roc_rates_are_monotone_and_bounded(seed: int) -> None:
    genuine, impostor = _random_sets(seed)
    roc = metrics.roc(genuine, impostor)
    assert np.all(np.diff(roc.thresholds) > 0)
    assert np.all(np.diff(roc.fmr) <= 0)
    assert np.all(np.diff(roc.fnmr) >= 0)
    assert roc.fmr.min() >= 0
    assert roc.fmr.max() <= 1
    assert roc.fnmr.min() >= 0
    assert roc.fnmr.max() <= 1
    for at in (0, len(roc.thresholds) // 2, -1):
        t = float(roc.thresholds[at])
        assert roc.fmr[at] == metrics.fmr_at(impostor, t)
        assert roc.fnmr[at] == metrics.fnmr_at(genuine, t)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_best_threshold_beats_every_other_threshold(seed: int) -> None:
    genuine, impostor = _random_sets(seed)
    best = metrics.accuracy_at(genuine, impostor, metrics.best_threshold(genuine, impostor))
    grid = np.linspace(-0.2, 1.2, 1401)
    assert best >= max(metrics.accuracy_at(genuine, impostor, float(t)) for t in grid)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("target", [0.5, 0.1, 0.01, 0.003])
def test_threshold_at_fmr_is_the_lowest_meeting_the_target(seed: int, target: float) -> None:
    _, impostor = _random_sets(seed)
    threshold = metrics.threshold_at_fmr(impostor, target)
    assert metrics.fmr_at(impostor, threshold) <= target
    assert metrics.fmr_at(impostor, float(np.nextafter(threshold, -np.inf))) > target


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_cmc_is_non_decreasing_and_reaches_the_found_share(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ranks = rng.integers(0, 30, 200)
    curve = metrics.cmc(ranks, 30)
    assert np.all(np.diff(curve) >= 0)
    assert curve[-1] == pytest.approx(np.count_nonzero(ranks > 0) / 200)
