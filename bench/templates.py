"""Subject templates on LFW DevTrain: how the score of a mean template behaves, and whether it helps.

A subject enrolled from several photos can be scored against a probe in two ways: by its best
image (what a search over images returns today) or by its mean template, the unit-length mean
of its images' embeddings. This script measures, with the default pipeline's embeddings (the
nearest-centre face of each photo, cached under bench/results/ by bench/calibrate.py):

  impostors by size   for each template size n (1 to 4): every person with at least n photos,
                      the mean of their first n embeddings, against every photo of every other
                      person. Prints the threshold at FMR 1e-3 and 1e-4 and the FMR at the shipped
                      threshold: if the impostor scores of a mean template rise with n, one
                      score -> FMR table cannot serve every template size.
  mixed gallery       the open-set protocol of a real gallery, where people have different
                      numbers of enrolled photos: a person with k >= 2 photos is enrolled from
                      min(k - 1, 3) of them and probed with the rest; the people with one photo
                      alternate between non-mated probes and enrolled distractors. Schemes:
                        best image         each subject scored by its best image;
                        mean, raw          the mean template's cosine score;
                        mean, calibrated   the mean template's score turned into its estimated
                                           FMR by the shipped table of its template size
                                           (calibration.json, as a search does), ranked by it.
                      Kept only by the rule of bench/open_set.py: the whole 95 % paired-bootstrap
                      interval of the FNIR change at FPIR 1 % below zero, rank-1 not lower.

    python bench/templates.py            # all DevTrain photos (embeddings from the cache)
    python bench/templates.py --quick    # the first 300 people
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_peer import CONFIGS, LFW, RESULTS, Searches
from faceledger.domain import metrics
from faceledger.domain.calibration import (
    Calibration,
    build_calibration,
    get_calibration,
    template_calibrations,
)
from faceledger.domain.templates import MAX_TEMPLATE_IMAGES
from faceledger.services import evaluation
from open_set import _print

F64 = npt.NDArray[np.float64]
SIZES = (1, 2, 3, 4)


def unit_mean(vectors: Sequence[F64]) -> F64:
    mean = np.mean(np.stack(vectors), axis=0)
    out: F64 = mean / np.linalg.norm(mean)
    return out


def acquired(table: evaluation.EmbeddingTable, photos: Sequence[Path]) -> list[F64]:
    return [np.asarray(v, dtype=np.float64) for p in photos if (v := table.vectors[p]) is not None]


def impostors_by_size(
    table: evaluation.EmbeddingTable, people: dict[str, list[Path]], model_key: str
) -> dict[int, Calibration]:
    """A score -> FMR table per template size, from every template against other people's photos."""
    names = list(people)
    owner = np.array([i for i, n in enumerate(names) for p in people[n] if table.vectors[p] is not None])
    photos = np.stack([v for n in names for v in acquired(table, people[n])])
    tables: dict[int, Calibration] = {}
    for size in SIZES:
        rows, whose = [], []
        for i, name in enumerate(names):
            vectors = acquired(table, people[name])
            if len(vectors) >= size:
                rows.append(unit_mean(vectors[:size]))
                whose.append(i)
        templates = np.stack(rows)
        scores = templates @ photos.T
        impostor = scores[np.asarray(whose)[:, None] != owner[None, :]]
        tables[size] = build_calibration(
            impostor,
            model_key=model_key,
            flip=True,
            dataset=f"LFW DevTrain, templates of {size}",
            created="measured now",
            command="python bench/templates.py",
        )
        cal = tables[size]
        print(
            f"  n={size}: {len(templates):>5,} templates, {cal.n_impostor:>11,} impostor scores; "
            f"threshold at FMR 1e-3 {cal.threshold_for_fmr(1e-3):.4f}, at 1e-4 "
            f"{cal.threshold_for_fmr(1e-4):.4f}; FMR at 0.9287 {metrics.fmr_at(impostor, 0.9287):.2e}"
        )
    return tables


def mixed_gallery(
    table: evaluation.EmbeddingTable, people: dict[str, list[Path]], tables: dict[int, Calibration]
) -> dict[str, Searches]:
    """The three schemes on one gallery whose subjects have 1 to 3 enrolled photos."""
    enrolled: dict[str, list[F64]] = {}
    mated: list[tuple[str, F64 | None]] = []
    nonmated: list[F64 | None] = []
    singles = 0
    for name, photos in people.items():
        if len(photos) == 1:
            vector = acquired(table, photos)
            if singles % 2 == 0:
                nonmated.append(vector[0] if vector else None)
            elif vector:
                enrolled[name] = vector
            singles += 1
            continue
        keep = min(len(photos) - 1, 3)
        vectors = acquired(table, photos[:keep])
        if vectors:
            enrolled[name] = vectors
        mated.extend((name, vector[0] if (vector := acquired(table, [p])) else None) for p in photos[keep:])
    names = list(enrolled)
    dim = next(iter(enrolled.values()))[0].shape[0]
    mated_vectors = evaluation.stack_rows([v for _, v in mated], dim)
    nonmated_vectors = evaluation.stack_rows(nonmated, dim)
    mated_names = [n for n, _ in mated]

    def best_image(probes: F64) -> F64:
        out = np.full((len(probes), len(names)), -np.inf)
        for column, name in enumerate(names):
            out[:, column] = (probes @ np.stack(enrolled[name]).T).max(axis=1)
        return out

    templates = np.stack([unit_mean(enrolled[n]) for n in names])
    sizes = np.array([len(enrolled[n]) for n in names])

    def calibrated(scores: F64) -> F64:
        """-log10(estimated FMR) per subject, from the table of its template size."""
        out = np.full(scores.shape, np.nan)
        for size in np.unique(sizes):
            cal = tables[int(size)]
            columns = np.flatnonzero(sizes == size)
            block = scores[:, columns]
            ok = ~np.isnan(block)
            values = np.full(block.shape, np.nan)
            values[ok] = [-math.log10(cal.estimated_fmr(float(s))) for s in block[ok]]
            # Beyond the data every score gets the floor; keep their order by the raw score.
            beyond = ok & (block > cal.max_impostor_score)
            values[beyond] += block[beyond] - cal.max_impostor_score
            out[:, columns] = values
        return out

    raw_m, raw_n = mated_vectors @ templates.T, nonmated_vectors @ templates.T
    counts = ", ".join(f"{np.count_nonzero(sizes == s):,} from {s}" for s in (1, 2, 3))
    print(
        f"  {len(names):,} subjects enrolled ({counts}), "
        f"{len(mated):,} mated and {len(nonmated):,} non-mated probes"
    )
    by_image = (best_image(mated_vectors), best_image(nonmated_vectors))
    return {
        "best image": Searches.of(names, mated_names, *by_image),
        "mean, raw": Searches.of(names, mated_names, raw_m, raw_n),
        "mean, calibrated": Searches.of(names, mated_names, calibrated(raw_m), calibrated(raw_n)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    images = args.lfw / "images"
    if not images.is_dir():
        print(f"LFW photos not found at {args.lfw}: pass --lfw DIR", file=sys.stderr)
        return 2
    people = evaluation.scan_people(images)
    if args.quick:
        people = dict(list(people.items())[:300])
    spec = evaluation.pipeline_spec(CONFIGS[0].settings(workers=args.workers))
    paths = sorted(p for photos in people.values() for p in photos)
    table = evaluation.embed_images(paths, spec, cache_dir=RESULTS, workers=args.workers)
    shipped = get_calibration(spec.model.key, flip=True)
    print(
        f"{len(paths):,} photos of {len(people):,} people, {table.n_failed} without a face; "
        f"shipped threshold {shipped.default_threshold} (FMR {shipped.default_fmr:.2e})"
    )
    print("\n== impostor scores of mean templates, by template size (measured here)")
    impostors_by_size(table, people, spec.model.key)
    tables = template_calibrations(spec.model.key, flip=True, up_to=MAX_TEMPLATE_IMAGES)
    if tables is None:
        print("the shipped calibration has no template tables: run bench/calibrate.py", file=sys.stderr)
        return 2
    rows = mixed_gallery(table, people, tables)
    _print("mixed gallery: best image against mean templates", rows, "best image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
