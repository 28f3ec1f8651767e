"""Measure the score -> FMR calibration of the current pipeline on LFW DevTrain; write calibration.json.

One embedding per DevTrain image (9,525 photos of 4,038 people) through the real pipeline
(``Pipeline.from_settings``, default settings unless told otherwise); every pair of images of
different people is an impostor comparison (~45 million), every pair of the same person a
genuine one. The table and the default threshold (the lowest score with FMR <= --target-fmr)
go into ``src/faceledger/data/calibration.json`` under the model's key and flip setting,
replacing an older entry of the same key. Then one table per subject-template size from 2 to
``MAX_TEMPLATE_IMAGES`` (faceledger.domain.templates): the mean of each person's first n photos
against every photo of every other person.

    python bench/calibrate.py                    # default settings (flip on), both cores
    python bench/calibrate.py --no-flip          # the calibration of flip=False
    python bench/calibrate.py --people 300 --output /tmp/cal.json   # a quick trial
    python bench/calibrate.py --images DIR --dataset "what DIR holds" --output FILE   # own data

Embeddings are cached in bench/results/ (gitignored) keyed by model and settings, so a rerun
(or the lead's benchmarks, through faceledger.services.evaluation.embed_images) is cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.config import Settings
from faceledger.domain import metrics
from faceledger.domain.calibration import (
    DEFAULT_TARGET_FMR,
    Calibration,
    build_calibration,
    calibrations_from_json,
    calibrations_to_json,
)
from faceledger.domain.templates import MAX_TEMPLATE_IMAGES
from faceledger.services import evaluation

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "faces" / "lfw"
RESULTS = REPO / "bench" / "results"
PACKAGE_TABLE = REPO / "src" / "faceledger" / "data" / "calibration.json"
REPORT_FMRS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)

F32 = npt.NDArray[np.float32]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=LFW / "images")
    parser.add_argument(
        "--pairs",
        type=Path,
        default=None,
        help="a pairs file to check the default on (LFW: pairsDevTrain.txt)",
    )
    parser.add_argument(
        "--dataset", default=None, help="how to name the images in the table (LFW: automatic)"
    )
    parser.add_argument("--cache-dir", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=PACKAGE_TABLE)
    parser.add_argument("--workers", type=int, default=0, help="0: one per CPU core")
    parser.add_argument("--target-fmr", type=float, default=DEFAULT_TARGET_FMR)
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=Settings().embedder.flip)
    parser.add_argument("--people", type=int, default=0, help="only the first N people (a trial run)")
    args = parser.parse_args(argv)
    is_lfw = args.images.resolve() == (LFW / "images").resolve()
    if args.pairs is None and is_lfw:
        args.pairs = LFW / "pairsDevTrain.txt"
    if args.dataset is None:
        args.dataset = "LFW DevTrain deep-funneled" if is_lfw else str(args.images)
    if args.people and args.output.resolve() == PACKAGE_TABLE.resolve():
        parser.error("a --people trial must not overwrite the shipped table: give --output")
    return args


def _progress(started: float) -> evaluation.Progress:
    last = [-1]

    def report(done: int, total: int) -> None:
        step = done * 20 // max(total, 1)
        if step != last[0]:
            last[0] = step
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"  embedded {done:>6,}/{total:,} ({rate:.1f} images/s overall)", flush=True)

    return report


def _labelled_vectors(
    people: dict[str, list[Path]], table: evaluation.EmbeddingTable
) -> tuple[F32, npt.NDArray[np.int64]]:
    vectors: list[F32] = []
    labels: list[int] = []
    for label, images in enumerate(people.values()):
        for path in images:
            vector = table.vectors[path]
            if vector is not None:
                vectors.append(vector)
                labels.append(label)
    return np.stack(vectors), np.asarray(labels, dtype=np.int64)


def all_pair_scores(vectors: F32, labels: npt.NDArray[np.int64], block: int = 512) -> tuple[F32, F32]:
    """(genuine, impostor) cosine scores of every unordered pair of distinct images."""
    n = len(vectors)
    impostor = np.empty(n * (n - 1) // 2, dtype=np.float32)
    genuine: list[F32] = []
    filled = 0
    for start in range(0, n, block):
        rows = vectors[start : start + block]
        similarity = rows @ vectors[start:].T
        for offset in range(len(rows)):
            scores = similarity[offset, offset + 1 :]
            same = labels[start + offset + 1 :] == labels[start + offset]
            genuine.append(scores[same])
            chosen = scores[~same]
            impostor[filled : filled + chosen.size] = chosen
            filled += chosen.size
    return np.concatenate(genuine), impostor[:filled]


def _evidence(
    calibration: Calibration,
    genuine: F32,
    impostor: F32,
    table: evaluation.EmbeddingTable,
    pairs: evaluation.PairsEvaluation | None,
) -> dict[str, float | int | str]:
    """What the default costs and buys: FNMR at other FMRs, and the pairs protocol at the default."""
    evidence: dict[str, float | int | str] = dict(calibration.evidence)
    evidence["images"] = len(table.vectors)
    evidence["images_failed_to_acquire"] = table.n_failed
    for fmr in REPORT_FMRS:
        if fmr * impostor.size >= 1:
            threshold = metrics.threshold_at_fmr(impostor, fmr)
            evidence[f"threshold_at_fmr_{fmr:.0e}"] = round(threshold, 6)
            evidence[f"fnmr_at_fmr_{fmr:.0e}"] = round(metrics.fnmr_at(genuine, threshold), 6)
    if pairs is not None and pairs.calibrated is not None:
        evidence["pairs_file"] = Path(pairs.pairs_file).name
        evidence["pairs_accuracy_at_default"] = round(pairs.calibrated.accuracy, 6)
        evidence["pairs_fmr_at_default"] = round(pairs.calibrated.fmr, 6)
        evidence["pairs_fnmr_at_default"] = round(pairs.calibrated.fnmr, 6)
        evidence["pairs_best_threshold"] = round(pairs.best.threshold, 6)
        evidence["pairs_best_accuracy"] = round(pairs.best.accuracy, 6)
        evidence["pairs_images_failed_to_acquire"] = pairs.n_images_failed
    return evidence


def _write(output: Path, calibrations: list[Calibration]) -> None:
    existing: dict[Any, Calibration] = {}
    if output.is_file():
        existing = calibrations_from_json(output.read_text(encoding="utf-8"), source=str(output))
    for calibration in calibrations:
        existing[calibration.key] = calibration
    about = "Generated by bench/calibrate.py on LFW DevTrain; see docs/evaluation.md."
    partial = output.with_name(output.name + ".partial")
    partial.write_text(calibrations_to_json(list(existing.values()), about=about), encoding="utf-8")
    partial.replace(output)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    base = Settings()
    settings = base.with_overrides(
        embedder=dataclasses.replace(base.embedder, flip=args.flip), workers=args.workers
    )
    people = evaluation.scan_people(args.images)
    if args.people:
        people = dict(list(people.items())[: args.people])
    paths = [p for images in people.values() for p in images]
    spec = evaluation.pipeline_spec(settings)
    print(f"model {spec.model.key}, flip={args.flip}: {len(paths):,} images of {len(people):,} people")

    started = time.perf_counter()
    table = evaluation.embed_images(
        paths, spec, cache_dir=args.cache_dir, workers=args.workers, progress=_progress(started)
    )
    print(
        f"embeddings: {table.n_computed:,} computed, {table.n_cached:,} from cache, "
        f"{table.n_failed} without a face, {table.seconds:.0f} s"
    )
    vectors, labels = _labelled_vectors(people, table)
    genuine, impostor = all_pair_scores(vectors, labels)
    print(f"comparisons: {genuine.size:,} genuine, {impostor.size:,} impostor")

    command = shlex.join(["python", "bench/calibrate.py", *(sys.argv[1:] if argv is None else argv)])
    dataset = f"{args.dataset}: {len(paths):,} images of {len(people):,} people, all different-person pairs"
    calibration = build_calibration(
        impostor,
        genuine=genuine,
        model_key=spec.model.key,
        flip=args.flip,
        dataset=dataset,
        created=dt.date.today().isoformat(),
        command=command,
        target_fmr=args.target_fmr,
    )
    pairs = None
    if args.pairs is not None and not args.people:
        protocol = evaluation.parse_pairs(args.pairs)
        pairs = evaluation.evaluate_pairs_with(
            protocol,
            args.images,
            spec,
            calibration=calibration,
            cache_dir=args.cache_dir,
            workers=args.workers,
        )
    evidence = _evidence(calibration, genuine, impostor, table, pairs)
    calibration = dataclasses.replace(calibration, evidence=evidence)
    templates = _template_calibrations(vectors, labels, calibration, args, len(paths), len(people))
    _write(args.output, [calibration, *templates])

    print(
        f"default threshold {calibration.default_threshold} (FMR {calibration.default_fmr:.2e} "
        f"on {calibration.n_impostor:,} impostor comparisons; target {args.target_fmr:g})"
    )
    for key, value in calibration.evidence.items():
        print(f"  {key}: {value}")
    for template in templates:
        print(
            f"mean templates of {template.template_size}: threshold {template.default_threshold} "
            f"(FMR {template.default_fmr:.2e} on {template.n_impostor:,} impostor comparisons; "
            f"FNMR {template.evidence['fnmr_at_default']:.4f} "
            f"over {template.evidence['n_genuine']:,} genuine)"
        )
    print(f"written to {args.output}")
    return 0


def _template_calibrations(
    vectors: F32,
    labels: npt.NDArray[np.int64],
    single: Calibration,
    args: argparse.Namespace,
    n_images: int,
    n_people: int,
) -> list[Calibration]:
    """One table per template size 2 .. MAX_TEMPLATE_IMAGES: each person's first n photos averaged."""
    out = []
    for size in range(2, MAX_TEMPLATE_IMAGES + 1):
        genuine, impostor = evaluation.template_scores(vectors, labels, size)
        n_templates = len({int(x) for x in np.unique(labels) if np.count_nonzero(labels == x) >= size})
        out.append(
            build_calibration(
                impostor,
                genuine=genuine,
                model_key=single.model_key,
                flip=single.flip,
                dataset=(
                    f"{args.dataset}: {n_images:,} images of {n_people:,} people; the mean template of the "
                    f"first {size} photos of each of the {n_templates:,} people with {size} or more, "
                    "against every photo of every other person"
                ),
                created=single.created,
                command=single.command,
                target_fmr=args.target_fmr,
                template_size=size,
            )
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
