"""Biometric performance metrics, in the terms of ISO/IEC 19795-1 (pure numpy, no I/O).

Conventions, used by every function here:

* A score is a similarity: higher means more alike. A comparison is declared a match when
  ``score >= threshold``.
* ``NaN`` marks a failure to acquire (no face found in one of the images). A failed
  comparison produces no score, so it can never be a false match; it always counts as a
  wrong decision for accuracy and as a false non-match / miss for the error rates that are
  "generalised" over all attempts (ISO/IEC 19795-1 FAR/FRR, FNIR). Leaving failures out
  would make a system that refuses hard images look better than it is.
* Rates are fractions in [0, 1]; an empty denominator gives ``NaN`` rather than a made-up 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Scores = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _as_scores(values: Scores) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if np.isinf(array).any():
        raise ValueError("scores must be finite numbers or NaN (failure to acquire), not infinite")
    return array


def _rate(count: float | np.integer[Any], total: int) -> float:
    return float(count) / total if total else math.nan


def failures(scores: Scores) -> int:
    """How many comparisons failed to acquire (``NaN`` scores)."""
    return int(np.isnan(_as_scores(scores)).sum())


# --- verification (1:1) ---------------------------------------------------------------


def fmr_at(impostor: Scores, threshold: float) -> float:
    """False match rate: fraction of acquired impostor comparisons scoring ``>= threshold``."""
    scores = _as_scores(impostor)
    scores = scores[~np.isnan(scores)]
    return _rate(np.count_nonzero(scores >= threshold), scores.size)


def fnmr_at(genuine: Scores, threshold: float) -> float:
    """False non-match rate: fraction of acquired genuine comparisons scoring ``< threshold``."""
    scores = _as_scores(genuine)
    scores = scores[~np.isnan(scores)]
    return _rate(np.count_nonzero(scores < threshold), scores.size)


def false_accept_rate(impostor: Scores, threshold: float) -> float:
    """ISO/IEC 19795-1 FAR: false matches over *all* impostor attempts, failures included.

    Equals ``FMR * (1 - FTA)``: an attempt that failed to acquire cannot be accepted.
    """
    scores = _as_scores(impostor)
    return _rate(np.count_nonzero(scores >= threshold), scores.size)


def false_reject_rate(genuine: Scores, threshold: float) -> float:
    """ISO/IEC 19795-1 FRR: ``FTA + FNMR * (1 - FTA)`` over all genuine attempts."""
    scores = _as_scores(genuine)
    return _rate(np.count_nonzero(~(scores >= threshold)), scores.size)


def accuracy_at(genuine: Scores, impostor: Scores, threshold: float) -> float:
    """Fraction of right decisions over all pairs; a failed pair is a wrong decision."""
    same = _as_scores(genuine)
    different = _as_scores(impostor)
    right = np.count_nonzero(same >= threshold) + np.count_nonzero(different < threshold)
    return _rate(right, same.size + different.size)


@dataclass(frozen=True, slots=True)
class Roc:
    """Error rates at every distinct score used as a threshold, thresholds ascending.

    ``fmr`` falls and ``fnmr`` rises along the arrays (both over acquired comparisons).
    """

    thresholds: FloatArray
    fmr: FloatArray
    fnmr: FloatArray

    def tmr(self) -> FloatArray:
        """True match rate (1 - FNMR), the y axis of the usual ROC plot."""
        return np.asarray(1.0 - self.fnmr, dtype=np.float64)


def roc(genuine: Scores, impostor: Scores) -> Roc:
    """FMR and FNMR at each distinct acquired score (O(n log n), fine for millions of scores)."""
    same = _as_scores(genuine)
    same = np.sort(same[~np.isnan(same)])
    different = _as_scores(impostor)
    different = np.sort(different[~np.isnan(different)])
    if same.size == 0 or different.size == 0:
        raise ValueError("a ROC needs at least one acquired genuine and one acquired impostor score")
    thresholds = np.unique(np.concatenate([same, different]))
    below_same = np.searchsorted(same, thresholds, side="left")
    below_different = np.searchsorted(different, thresholds, side="left")
    return Roc(
        thresholds=thresholds,
        fmr=(different.size - below_different) / different.size,
        fnmr=below_same / same.size,
    )


def best_threshold(genuine: Scores, impostor: Scores) -> float:
    """The threshold that maximises accuracy on these pairs.

    Candidates are midpoints between consecutive distinct acquired scores, plus one below
    the lowest and one above the highest, so the threshold never sits on a score it was
    fitted on. Ties go to the lowest candidate, which keeps the result reproducible.
    Failed pairs are wrong at every threshold, so they do not move the choice.
    """
    same = _as_scores(genuine)
    same = np.sort(same[~np.isnan(same)])
    different = _as_scores(impostor)
    different = np.sort(different[~np.isnan(different)])
    distinct = np.unique(np.concatenate([same, different]))
    if distinct.size == 0:
        raise ValueError("no acquired scores to choose a threshold from")
    margin = 1.0 if distinct.size == 1 else float(distinct[-1] - distinct[0])
    candidates = np.concatenate(
        [[distinct[0] - margin], (distinct[:-1] + distinct[1:]) / 2.0, [distinct[-1] + margin]]
    )
    accepted_same = same.size - np.searchsorted(same, candidates, side="left")
    rejected_different = np.searchsorted(different, candidates, side="left")
    return float(candidates[int(np.argmax(accepted_same + rejected_different))])


@dataclass(frozen=True, slots=True)
class KFoldResult:
    """Accuracy of each fold at the threshold fitted on the other folds.

    ``std`` is the sample standard deviation (n - 1) over folds; ``standard_error`` is
    ``std / sqrt(k)``, the figure the LFW protocol asks to report beside the mean.
    """

    accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    @property
    def standard_error(self) -> float:
        return self.std / math.sqrt(len(self.accuracies))


def kfold_accuracy(scores: Scores, same: npt.ArrayLike, folds: npt.ArrayLike) -> KFoldResult:
    """k-fold accuracy: for each fold, fit :func:`best_threshold` on the others, test on it.

    ``same`` says which pairs are genuine; ``folds`` gives each pair's fold label.
    """
    values = _as_scores(scores)
    genuine = np.asarray(same, dtype=bool).ravel()
    labels = np.asarray(folds).ravel()
    if not values.size == genuine.size == labels.size:
        raise ValueError("scores, same and folds must have one entry per pair")
    fold_ids = np.unique(labels)
    if fold_ids.size < 2:
        raise ValueError("k-fold accuracy needs at least two folds")
    accuracies: list[float] = []
    thresholds: list[float] = []
    for fold in fold_ids:
        test = labels == fold
        train = ~test
        threshold = best_threshold(values[train & genuine], values[train & ~genuine])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(values[test & genuine], values[test & ~genuine], threshold))
    return KFoldResult(accuracies=tuple(accuracies), thresholds=tuple(thresholds))


def threshold_at_fmr(impostor: Scores, target_fmr: float) -> float:
    """The lowest threshold whose FMR on these impostor scores is at most ``target_fmr``.

    With N acquired impostor scores, at most ``floor(target * N)`` of them may score at or
    above the threshold, so it sits just above the next one (the next float up). When
    ``target * N < 1`` the answer lies above every impostor seen: the data cannot show that
    the FMR is that low, only that it is below ``1 / N``.
    """
    if not 0.0 <= target_fmr <= 1.0:
        raise ValueError(f"target FMR must be in [0, 1], got {target_fmr}")
    scores = _as_scores(impostor)
    scores = np.sort(scores[~np.isnan(scores)])[::-1]
    if scores.size == 0:
        raise ValueError("no acquired impostor scores")
    allowed = math.floor(target_fmr * scores.size + 1e-9)
    if allowed >= scores.size:
        return float(scores[-1])
    return float(np.nextafter(scores[allowed], np.inf))


# --- identification (1:N) -------------------------------------------------------------


def mate_ranks(similarity: npt.ArrayLike, mate_columns: npt.ArrayLike) -> IntArray:
    """1-based rank of each probe's mate among the gallery columns.

    ``similarity`` is (probes x gallery); ``mate_columns[i]`` is the gallery column of
    probe i's mate. A row of NaN (failure to acquire) gets rank 0, meaning "not found".
    Ties are counted against the mate (pessimistic): an impostor scoring exactly the
    mate's score ranks ahead of it.
    """
    matrix = np.asarray(similarity, dtype=np.float64)
    columns = np.asarray(mate_columns, dtype=np.int64).ravel()
    if matrix.ndim != 2 or matrix.shape[0] != columns.size:
        raise ValueError("similarity must be (probes x gallery) with one mate column per probe")
    rows = np.arange(columns.size)
    mate = matrix[rows, columns]
    at_least = np.count_nonzero(matrix >= mate[:, None], axis=1)
    return np.where(np.isnan(mate), 0, at_least).astype(np.int64)


def cmc(ranks: npt.ArrayLike, max_rank: int) -> FloatArray:
    """Cumulative match characteristic: entry r-1 is the fraction of mated probes at rank <= r.

    ``ranks`` are 1-based mate ranks, 0 for a mate not found (failure to acquire or not
    returned); those count as misses at every rank.
    """
    if max_rank < 1:
        raise ValueError("max_rank must be at least 1")
    values = np.asarray(ranks, dtype=np.int64).ravel()
    if values.size == 0:
        return np.full(max_rank, math.nan)
    found = values[values > 0]
    counts = np.bincount(np.minimum(found, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1]
    return np.asarray(np.cumsum(counts) / values.size, dtype=np.float64)


def fpir_at(nonmated_top: Scores, threshold: float) -> float:
    """False positive identification rate: non-mated searches returning a candidate ``>= threshold``.

    ``nonmated_top`` is each non-mated search's best score (NaN when the probe failed to
    acquire: it returns nothing, so it cannot be a false positive but stays in the count).
    """
    scores = _as_scores(nonmated_top)
    return _rate(np.count_nonzero(scores >= threshold), scores.size)


def fnir_at(mate_scores: Scores, ranks: npt.ArrayLike, threshold: float, max_rank: int = 1) -> float:
    """False negative identification rate: mated searches whose mate is not returned.

    The mate counts as returned when it is at rank ``<= max_rank`` and scores
    ``>= threshold``. Failures to acquire (NaN score / rank 0) are misses.
    """
    scores = _as_scores(mate_scores)
    positions = np.asarray(ranks, dtype=np.int64).ravel()
    if scores.size != positions.size:
        raise ValueError("one mate score and one rank per mated probe")
    hit = (positions >= 1) & (positions <= max_rank) & (scores >= threshold)
    return _rate(scores.size - np.count_nonzero(hit), scores.size)


def threshold_at_fpir(nonmated_top: Scores, target_fpir: float) -> float:
    """The lowest threshold whose FPIR is at most ``target_fpir``.

    Failures to acquire stay in the denominator (they are non-mated searches that
    returned nothing), as ISO/IEC 19795-1 generalised rates count them.
    """
    if not 0.0 <= target_fpir <= 1.0:
        raise ValueError(f"target FPIR must be in [0, 1], got {target_fpir}")
    scores = _as_scores(nonmated_top)
    if scores.size == 0:
        raise ValueError("no non-mated searches")
    acquired = np.sort(scores[~np.isnan(scores)])[::-1]
    allowed = math.floor(target_fpir * scores.size + 1e-9)
    if allowed >= acquired.size:
        # Every threshold meets the target; the lowest acquired score keeps all mates in play.
        return float(acquired[-1]) if acquired.size else -math.inf
    return float(np.nextafter(acquired[allowed], np.inf))


# --- quality: error versus discard (ISO/IEC 29794-1) -----------------------------------


def pair_quality(quality_a: Scores, quality_b: Scores) -> FloatArray:
    """Each comparison's quality: the lower of its two images' (ISO/IEC 29794-1's usual choice).

    ``NaN`` (no face found, so no quality) counts as quality 0: such a comparison is
    always among the first discarded.
    """
    a = np.nan_to_num(_as_scores(quality_a), nan=0.0)
    b = np.nan_to_num(_as_scores(quality_b), nan=0.0)
    if a.size != b.size:
        raise ValueError("one quality per image of each comparison")
    return np.minimum(a, b)


@dataclass(frozen=True, slots=True)
class EdcPoint:
    """FNMR after discarding the lowest-quality comparisons, and what random discard gives.

    ``discarded`` can be below ``requested``: comparisons of equal quality are discarded
    together or not at all (a quality floor cannot tell them apart), so the cut stops at
    the last whole group of ties that fits. ``random_fnmr`` is the exact expected FNMR when
    the same number of comparisons is discarded uniformly at random, which equals the FNMR
    before discarding; ``random_sd`` is the standard deviation of that random FNMR over
    all such draws (hypergeometric), a yardstick for "clearly lower than random".
    """

    requested: float
    discarded: float
    quality_floor: float
    """Comparisons with a quality below this were discarded (``-inf``: none were)."""
    kept: int
    errors: int
    fnmr: float
    random_fnmr: float
    random_sd: float

    def to_dict(self) -> dict[str, float | int | None]:
        def number(value: float) -> float | None:
            return None if not math.isfinite(value) else round(value, 6)

        return {
            "requested": self.requested,
            "discarded": number(self.discarded),
            "quality_floor": number(self.quality_floor),
            "kept": self.kept,
            "errors": self.errors,
            "fnmr": number(self.fnmr),
            "random_fnmr": number(self.random_fnmr),
            "random_sd": number(self.random_sd),
        }


def edc(genuine: Scores, quality: Scores, threshold: float, fractions: Scores) -> tuple[EdcPoint, ...]:
    """The error-versus-discard characteristic of genuine comparisons (FNMR EDC, ISO/IEC 29794-1).

    ``genuine`` are the genuine comparisons' scores (``NaN``: failure to acquire, counted
    as a false non-match and, through ``quality`` ``NaN`` or 0, as the lowest quality);
    ``quality`` is each comparison's quality (see :func:`pair_quality`); a comparison
    is an error when it scores below ``threshold``. For each fraction f in
    ``fractions`` the ``floor(f * n)`` lowest-quality comparisons are discarded, except
    that a tie group at the cut is kept whole; FNMR is over what is kept, failures
    included.
    """
    scores = _as_scores(genuine)
    qualities = np.nan_to_num(_as_scores(quality), nan=0.0)
    if scores.size != qualities.size:
        raise ValueError("one quality per genuine comparison")
    wanted = _as_scores(fractions)
    if wanted.size and (np.isnan(wanted).any() or wanted.min() < 0.0 or wanted.max() > 1.0):
        raise ValueError("discard fractions must be in [0, 1]")
    n = scores.size
    wrong = np.isnan(scores) | (np.nan_to_num(scores, nan=-math.inf) < threshold)
    n_wrong = int(np.count_nonzero(wrong))
    ordered = np.sort(qualities)
    points = []
    for fraction in wanted:
        target = math.floor(float(fraction) * n + 1e-9)
        floor = -math.inf if target == 0 else (float(ordered[target]) if target < n else math.inf)
        keep = qualities >= floor
        kept = int(np.count_nonzero(keep))
        errors = int(np.count_nonzero(wrong & keep))
        removed = n - kept
        random_fnmr = _rate(n_wrong, n) if kept else math.nan
        if kept and n > 1:
            p = n_wrong / n
            variance = kept * p * (1.0 - p) * removed / (n - 1)
            random_sd = math.sqrt(variance) / kept
        else:
            random_sd = math.nan if not kept else 0.0
        points.append(
            EdcPoint(
                requested=float(fraction),
                discarded=_rate(removed, n),
                quality_floor=floor,
                kept=kept,
                errors=errors,
                fnmr=_rate(errors, kept),
                random_fnmr=random_fnmr,
                random_sd=random_sd,
            )
        )
    return tuple(points)
