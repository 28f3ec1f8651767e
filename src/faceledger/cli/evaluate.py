"""``faceledger eval lfw`` and ``faceledger eval identify``: accuracy on labelled photos."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from faceledger.cli.common import DataDirOption, JsonOption, console, handle_errors, print_json, progress_bar
from faceledger.config import Settings, load_settings
from faceledger.services import evaluation

app = typer.Typer(help="Measure accuracy on labelled face photos (LFW layout).", no_args_is_help=True)

ImagesOption = Annotated[Path, typer.Option("--images", help="Folder of <Name>/<Name>_<NNNN>.jpg images.")]
CacheOption = Annotated[
    Path | None, typer.Option("--cache", help="Folder to cache embeddings in, so a rerun costs seconds.")
]
FlipOption = Annotated[
    bool | None,
    typer.Option("--flip/--no-flip", help="Mirror-image test-time augmentation (default: setting)."),
]


def _settings(data_dir: Path | None, flip: bool | None) -> Settings:
    settings = load_settings(data_dir)
    if flip is not None:
        settings = dataclasses.replace(settings, embedder=dataclasses.replace(settings.embedder, flip=flip))
    return settings


@app.command("lfw")
@handle_errors
def lfw(
    images: ImagesOption,
    pairs: Annotated[
        Path, typer.Option("--pairs", help="pairs.txt (View 2, 10 folds) or pairsDevTrain.txt.")
    ],
    cache: CacheOption = None,
    flip: FlipOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """LFW verification: 10-fold accuracy (View 2), or accuracy with FMR/FNMR (DevTrain)."""
    settings = _settings(data_dir, flip)
    with progress_bar("embedding", not as_json) as update:
        result = evaluation.evaluate_pairs(
            images, pairs, settings, cache_dir=cache, progress=lambda done, total: update(done, total, "")
        )
    data = result.to_dict()
    if as_json:
        print_json(data)
        return
    console.print(
        f"protocol {result.protocol}: {result.n_genuine} genuine + {result.n_impostor} impostor pairs"
    )
    console.print(f"model {result.model.key}; settings {dict(result.settings)}")
    if result.kfold is not None:
        console.print(
            f"10-fold accuracy: {result.kfold.mean * 100:.2f}% ± {result.kfold.std * 100:.2f} "
            "(threshold chosen on the other folds)"
        )
    best = result.best
    console.print(
        f"at threshold {best.threshold:.4f} ({best.source}): accuracy {best.accuracy * 100:.2f}%, "
        f"FMR {best.fmr:.4f}, FNMR {best.fnmr:.4f}"
    )
    if result.calibrated is not None:
        c = result.calibrated
        console.print(
            f"at the calibrated default {c.threshold:.4f}: accuracy {c.accuracy * 100:.2f}%, "
            f"FMR {c.fmr:.4f}, FNMR {c.fnmr:.4f}"
        )
    console.print(
        f"failure to acquire: {result.n_images_failed} of {result.n_images} images "
        f"({result.fta_rate * 100:.2f}%), {result.n_pairs_failed} pairs counted as errors"
    )
    for note in result.notes:
        console.print(f"note: {note}", style="dim")


@app.command("identify")
@handle_errors
def identify(
    images: ImagesOption,
    cache: CacheOption = None,
    flip: FlipOption = None,
    target_fpir: Annotated[float, typer.Option(help="Open-set operating point (FPIR).")] = 0.01,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """1:N identification: one image per person enrolled, the rest as mated probes, singletons non-mated."""
    settings = _settings(data_dir, flip)
    with progress_bar("embedding", not as_json) as update:
        result = evaluation.evaluate_identification(
            images,
            settings,
            cache_dir=cache,
            target_fpir=target_fpir,
            progress=lambda done, total: update(done, total, ""),
        )
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"gallery {result.gallery_size} people ({result.enrolment}); mated probes {result.n_mated}, "
        f"non-mated probes {result.n_nonmated}; model {result.model.key}"
    )
    console.print(f"closed set: rank-1 {result.rank(1) * 100:.2f}%, rank-10 {result.rank(10) * 100:.2f}%")
    console.print("CMC: " + " ".join(f"{v * 100:.1f}" for v in result.cmc))
    console.print(
        f"open set: FNIR {result.fnir * 100:.2f}% at FPIR {result.fpir * 100:.2f}% "
        f"(target {result.target_fpir * 100:.1f}%, threshold {result.threshold:.4f}, rank {result.fnir_rank})"
    )
