"""Open-set score normalisation and subject templates on LFW DevTrain: which ones to keep.

The issue's rule: keep a normalisation (or a template scheme) only if it lowers FNIR at
FPIR = 1% on the development photos without lowering rank-1; "lowers" here means the whole
95 % interval of the change (a paired bootstrap over probes) lies below zero. This script measures each
candidate against raw scores (the cosine similarity of unit embeddings) on the same
searches, with the default pipeline's embeddings (nearest-centre face of each photo,
cached under bench/results/ by bench/calibrate.py or bench/compare_peer.py):

  normalisations  the protocol of compare_peer.py's identify section (first photo of each
                  person with two or more enrolled, their other photos mated probes), with
                  the people who have one photo split in two by name order: the even ones
                  are non-mated probes, the odd ones a cohort of impostor faces that is never
                  searched for. Candidates, each per probe:
                    none         the raw score;
                    gallery-z    (s - mean) / sd of the probe's scores against the whole gallery;
                    cohort-t     (s - mean) / sd of the probe's scores against the cohort (T-norm);
                    tail-z       (s - mean) / sd of the probe's gallery scores ranked 2 to 51.
                  Each is an increasing function of s within one probe, so ranks (and rank-1)
                  are unchanged; only the open-set threshold across probes changes.
  templates       people with three or more photos: the first two enrolled, the others
                  probed; one image (the first), the best of the two images' scores (what a
                  search over images returns for a subject), and the mean of the two vectors.

    python bench/open_set.py             # all DevTrain photos (embeddings from the cache)
    python bench/open_set.py --quick     # the first 200 people of each kind
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_peer import CONFIGS, LFW, RESULTS, IdentifyProtocol, Searches, open_set_row, search_all
from faceledger.domain import metrics
from faceledger.services import evaluation

F64 = npt.NDArray[np.float64]
Normalise = Callable[[F64, F64], F64]
"""(probe x gallery scores, probe x cohort scores) -> normalised probe x gallery scores."""


def _z(scores: F64, reference: F64) -> F64:
    mean = np.nanmean(reference, axis=1, keepdims=True)
    sd = np.nanstd(reference, axis=1, keepdims=True)
    out: F64 = (scores - mean) / np.where(sd > 0, sd, 1.0)
    return out


def _tail(scores: F64, _cohort: F64) -> F64:
    ordered = -np.sort(-scores, axis=1)
    return _z(scores, ordered[:, 1:51])


NORMALISATIONS: dict[str, Normalise] = {
    "none": lambda scores, _cohort: scores,
    "gallery-z": lambda scores, _cohort: _z(scores, scores),
    "cohort-t": _z,
    "tail-z": _tail,
}


def _vector(table: evaluation.EmbeddingTable, path: Path) -> F64 | None:
    vector = table.vectors[path]
    return None if vector is None else np.asarray(vector, dtype=np.float64)


def normalisation_rows(table: evaluation.EmbeddingTable, protocol: IdentifyProtocol) -> dict[str, Searches]:
    enrolled = {n: v for n, p in protocol.gallery.items() if (v := _vector(table, p)) is not None}
    names = list(enrolled)
    gallery = np.stack(list(enrolled.values()))
    probes = protocol.nonmated[0::2]
    cohort_photos = protocol.nonmated[1::2]
    cohort = np.stack([v for p in cohort_photos if (v := _vector(table, p)) is not None])
    mated = [(n, _vector(table, p)) for n, p in protocol.mated]
    nonmated = [_vector(table, p) for p in probes]
    raw = search_all(names, gallery, mated, nonmated)

    def cohort_scores(vectors: Sequence[F64 | None]) -> F64:
        result: F64 = evaluation.stack_rows(vectors, cohort.shape[1]) @ cohort.T
        return result

    mated_cohort = cohort_scores([v for _, v in mated])
    nonmated_cohort = cohort_scores(nonmated)
    rows: dict[str, Searches] = {}
    for label, fn in NORMALISATIONS.items():
        m = fn(raw.mated_scores, mated_cohort)
        rows[label] = Searches.of(names, [n for n, _ in mated], m, fn(raw.nonmated_scores, nonmated_cohort))
    return rows


def _template_people(people: dict[str, list[Path]], limit: int | None) -> tuple[list[str], list[str]]:
    """(people with three or more photos, people with one), the first ``limit`` of each."""
    several = [n for n, photos in people.items() if len(photos) >= 3][:limit]
    singles = [n for n, photos in people.items() if len(photos) == 1][:limit]
    return several, singles


def template_rows(
    table: evaluation.EmbeddingTable, people: dict[str, list[Path]], limit: int | None
) -> dict[str, Searches]:
    several, singles = _template_people(people, limit)
    first = [(n, _vector(table, people[n][0]), _vector(table, people[n][1])) for n in several]
    mated = [(n, _vector(table, p)) for n in several for p in people[n][2:]]
    nonmated = [_vector(table, people[n][0]) for n in singles]
    rows: dict[str, Searches] = {}
    schemes: dict[str, Callable[[F64 | None, F64 | None], list[F64]]] = {
        "one image": lambda a, _b: [] if a is None else [a],
        "best of two images": lambda a, b: [v for v in (a, b) if v is not None],
        "mean of two vectors": lambda a, b: (
            [m / np.linalg.norm(m)] if (m := _mean([v for v in (a, b) if v is not None])) is not None else []
        ),
    }
    for label, scheme in schemes.items():
        names: list[str] = []
        vectors: list[F64] = []
        for name, a, b in first:
            for vector in scheme(a, b):
                names.append(name)
                vectors.append(vector)
        rows[label] = _best_per_subject(names, np.stack(vectors), mated, nonmated)
    return rows


def _mean(vectors: list[F64]) -> F64 | None:
    return np.mean(vectors, axis=0) if vectors else None


def _best_per_subject(
    names: Sequence[str],
    gallery: F64,
    mated: Sequence[tuple[str, F64 | None]],
    nonmated: Sequence[F64 | None],
) -> Searches:
    """Searches over images, each subject scored by its best image (as the search service does)."""
    subjects = sorted(set(names))
    owner = np.array([subjects.index(n) for n in names])

    def per_subject(scores: F64) -> F64:
        out = np.full((scores.shape[0], len(subjects)), -np.inf)
        np.maximum.at(out.T, owner, scores.T)
        out[np.isnan(scores).any(axis=1)] = np.nan
        return out

    per_image = search_all(names, gallery, mated, nonmated)
    return Searches.of(
        subjects,
        [n for n, _ in mated],
        per_subject(per_image.mated_scores),
        per_subject(per_image.nonmated_scores),
    )


def fnir_difference(
    scheme: Searches, baseline: Searches, rounds: int = 500, seed: int = 11
) -> tuple[float, float]:
    """95 % interval of FNIR at FPIR 1 % (scheme minus baseline), paired bootstrap over probes.

    Each round resamples the mated and the non-mated probes with replacement, the same
    draws for both, sets each one's threshold at FPIR 1 % on its resampled non-mated
    searches, and takes the difference of their FNIRs.
    """
    rng = np.random.default_rng(seed)
    n_m, n_n = len(baseline.ranks), len(baseline.nonmated_top)
    diffs = np.empty(rounds)
    for i in range(rounds):
        m, n = rng.integers(0, n_m, n_m), rng.integers(0, n_n, n_n)
        fnirs = []
        for s in (scheme, baseline):
            at = metrics.threshold_at_fpir(s.nonmated_top[n], 0.01)
            fnirs.append(metrics.fnir_at(s.mate_scores[m], s.ranks[m], at))
        diffs[i] = fnirs[0] - fnirs[1]
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def _print(title: str, rows: dict[str, Searches], baseline: str) -> None:
    print(f"\n== {title}")
    print(
        f"  {'scheme':20} {'rank-1':>7} {'rank-10':>8} {'FNIR@FPIR1%':>12} {'FNIR@FPIR0.3%':>14} "
        f"{'FNIR change, 95% CI':>22}  keep?"
    )
    base = open_set_row(rows[baseline])
    for label, searches in rows.items():
        row = open_set_row(searches)
        keep, interval = "(baseline)", ""
        if label != baseline:
            low, high = fnir_difference(searches, rows[baseline])
            interval = f"{low * 100:+.2f} to {high * 100:+.2f} pp"
            # Kept only when FNIR is lower beyond the resampling noise and rank-1 is not lower.
            keep = "yes" if high < 0 and row["rank1"] >= base["rank1"] else "no"
        print(
            f"  {label:20} {row['rank1'] * 100:6.2f}% {row['rank10'] * 100:7.2f}% "
            f"{row['fnir@0.01'] * 100:11.2f}% {row['fnir@0.003'] * 100:13.2f}% {interval:>22}  {keep}"
        )


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
    limit = 200 if args.quick else None
    protocol = IdentifyProtocol.of(images, limit)
    people = evaluation.scan_people(images)
    template_people = _template_people(people, limit)
    wanted = {*protocol.gallery.values(), *(p for _, p in protocol.mated), *protocol.nonmated}
    wanted |= {p for name in (*template_people[0], *template_people[1]) for p in people[name]}
    paths = sorted(wanted)
    spec = evaluation.pipeline_spec(CONFIGS[0].settings(workers=args.workers))
    table = evaluation.embed_images(paths, spec, cache_dir=RESULTS, workers=args.workers)
    print(f"{len(paths):,} photos, {table.n_failed} without a face; embeddings of {spec.model.key}")
    rows = normalisation_rows(table, protocol)
    _print(
        f"score normalisation: {len(protocol.gallery):,} enrolled, {len(protocol.mated):,} mated probes, "
        f"{len(protocol.nonmated[0::2]):,} non-mated probes, cohort of {len(protocol.nonmated[1::2]):,}",
        rows,
        "none",
    )
    templates = template_rows(table, people, limit)
    _print("subject templates: people with three or more photos, two enrolled", templates, "one image")
    low, high = fnir_difference(templates["mean of two vectors"], templates["best of two images"])
    print(
        f"  mean of two vectors against best of two images (what a search over images gives): "
        f"FNIR change {low * 100:+.2f} to {high * 100:+.2f} pp (95% CI)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
