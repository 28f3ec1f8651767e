"""The error-versus-discard characteristic on a hand-made set whose answers are worked out below."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from faceledger.domain import metrics

NAN = math.nan
THRESHOLD = 0.5
# Ten genuine comparisons; errors (score < 0.5 or no face) are marked *.
#   index:    0*    1*   2*   3    4    5    6    7    8     9*
SCORES = [NAN, 0.3, 0.4, 0.9, 0.8, 0.7, 0.9, 0.6, 0.95, 0.2]
QUALITY = [NAN, 10, 50, 20, 30, 30, 60, 70, 80, 90]  # index 0: no face, so quality 0
# Sorted qualities: 0, 10, 20, 30, 30, 50, 60, 70, 80, 90.


def points(*fractions: float) -> tuple[metrics.EdcPoint, ...]:
    return metrics.edc(SCORES, QUALITY, THRESHOLD, list(fractions))


def test_nothing_discarded_gives_the_fnmr_with_failures_counted_as_errors() -> None:
    (p,) = points(0.0)
    assert (p.kept, p.errors, p.fnmr, p.discarded) == (10, 4, 0.4, 0.0)
    assert p.quality_floor == -math.inf
    assert p.random_fnmr == 0.4
    assert p.random_sd == 0.0


def test_the_lowest_quality_comparisons_go_first() -> None:
    # 10%: one comparison, the failure (quality 0): 3 errors of 9 left.
    # 20%: then quality 10 (an error): 2 of 8.  30%: then quality 20 (not an error): 2 of 7.
    p10, p20, p30 = points(0.1, 0.2, 0.3)
    assert (p10.kept, p10.errors, p10.quality_floor) == (9, 3, 10.0)
    assert p10.fnmr == pytest.approx(3 / 9)
    assert (p20.kept, p20.errors, p20.fnmr, p20.quality_floor) == (8, 2, 0.25, 20.0)
    assert (p30.kept, p30.errors, p30.quality_floor) == (7, 2, 30.0)
    assert p30.fnmr == pytest.approx(2 / 7)


def test_ties_at_the_cut_are_kept_together() -> None:
    # 40% would discard one of the two comparisons of quality 30, which no floor can do:
    # both are kept, so only 30% is discarded.  50% discards both (quality < 50): 2 of 5.
    p40, p50 = points(0.4, 0.5)
    assert (p40.discarded, p40.kept, p40.quality_floor) == (0.3, 7, 30.0)
    assert (p50.discarded, p50.kept, p50.errors, p50.fnmr, p50.quality_floor) == (0.5, 5, 2, 0.4, 50.0)


def test_discarding_everything_leaves_no_rate() -> None:
    (p,) = points(1.0)
    assert p.kept == 0
    assert math.isnan(p.fnmr)
    assert math.isnan(p.random_fnmr)


def test_random_discard_is_the_exact_mean_and_spread_over_every_draw() -> None:
    """Over all 45 ways to discard 2 of the 10, the FNMR left averages 0.4 with the stated spread."""
    wrong = np.array([True, True, True, False, False, False, False, False, False, True])
    rates = [np.delete(wrong, list(dropped)).mean() for dropped in itertools.combinations(range(10), 2)]
    (p,) = points(0.2)
    assert p.random_fnmr == pytest.approx(float(np.mean(rates)))
    assert p.random_sd == pytest.approx(float(np.std(rates)))
    # Discarding by quality beats that here: 0.25 against 0.4 expected.
    assert p.fnmr < p.random_fnmr


def test_pair_quality_is_the_lower_with_no_face_as_zero() -> None:
    assert metrics.pair_quality([10, 50, NAN], [20, 40, 90]).tolist() == [10.0, 40.0, 0.0]
    with pytest.raises(ValueError, match="one quality per image"):
        metrics.pair_quality([1, 2], [1])


@pytest.mark.parametrize(
    ("scores", "quality", "fractions", "message"),
    [
        ([0.1, 0.2], [1.0], [0.0], "one quality per genuine comparison"),
        ([0.1], [1.0], [1.5], r"discard fractions must be in \[0, 1\]"),
        ([0.1], [1.0], [-0.1], r"discard fractions must be in \[0, 1\]"),
        ([0.1], [1.0], [NAN], r"discard fractions must be in \[0, 1\]"),
    ],
)
def test_bad_input_is_refused(
    scores: list[float], quality: list[float], fractions: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.edc(scores, quality, 0.5, fractions)


def test_to_dict_writes_no_infinities() -> None:
    first, last = points(0.0, 1.0)
    assert first.to_dict()["quality_floor"] is None
    assert last.to_dict()["fnmr"] is None
    assert points(0.2)[0].to_dict() == {
        "requested": 0.2,
        "discarded": 0.2,
        "quality_floor": 20.0,
        "kept": 8,
        "errors": 2,
        "fnmr": 0.25,
        "random_fnmr": 0.4,
        "random_sd": pytest.approx(0.08165, abs=1e-5),
    }
