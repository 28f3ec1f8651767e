"""``faceledger eval lfw``, ``eval identify`` and ``eval quality``: accuracy on labelled photos."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from faceledger.cli.common import DataDirOption, JsonOption, console, handle_errors, print_json, progress_bar
from faceledger.config import Settings, load_settings
from faceledger.errors import EvaluationError

if TYPE_CHECKING:
    from faceledger.services import quality_evaluation

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
    from faceledger.services import evaluation

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
    settings_text = ", ".join(f"{key}={value}" for key, value in result.settings.items())
    console.print(f"model {result.model.key}; settings: {settings_text}", markup=False)
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
    from faceledger.services import evaluation

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


def _writable_plot(path: Path) -> None:
    """Fail before hours of work when the plot could not be written; a .png is all it draws."""
    if path.suffix.lower() != ".png":
        raise EvaluationError(f"{path}: the plot is written as PNG; give a file name ending in .png")
    if path.is_dir():
        raise EvaluationError(f"{path}: is a folder; give the plot's file name")
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot write the plot ({exc.strerror or exc})") from exc


def _write_plot(result: quality_evaluation.QualityEvaluation, path: Path) -> None:
    """EDC curves (the score, each factor, random discard) as a PNG, drawn with matplotlib's Agg."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    try:
        for name, points in result.curves.items():
            axes.plot(
                [100 * p.discarded for p in points],
                [100 * p.fnmr for p in points],
                marker="o",
                linewidth=2.5 if name == "score" else 1.2,
                label="overall score" if name == "score" else f"{name} factor",
            )
        baseline = result.curves["score"]
        axes.plot(
            [100 * p.requested for p in baseline],
            [100 * p.random_fnmr for p in baseline],
            linestyle="--",
            color="grey",
            label="random discard (expected)",
        )
        axes.set_xlabel("genuine pairs discarded, lowest quality first (%)")
        axes.set_ylabel(f"FNMR at threshold {result.threshold:.4f} (%)")
        axes.set_title(
            f"Error versus discard: {Path(result.pairs_file).name}, {result.n_genuine} genuine pairs"
        )
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        try:
            figure.savefig(path, format="png")
        except OSError as exc:
            raise EvaluationError(f"{path}: cannot write the plot ({exc.strerror or exc})") from exc
    finally:
        plt.close(figure)


def _fraction(value: float | None) -> str:
    return "   n/a" if value is None or value != value else f"{100 * value:5.2f}%"


@app.command("quality")
@handle_errors
def quality(
    images: ImagesOption,
    pairs: Annotated[Path, typer.Option("--pairs", help="pairsDevTrain.txt or pairs.txt.")],
    cache: CacheOption = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the EDC curves to this .png file.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes (default: setting; 0: one per core).")
    ] = None,
    flip: FlipOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Does quality predict errors? FNMR as the lowest-quality genuine pairs are discarded (EDC)."""
    from faceledger.services import quality_evaluation

    settings = _settings(data_dir, flip)
    quality_evaluation.read_protocol(images, pairs)  # bad input fails here, before the progress bar
    if plot is not None:
        _writable_plot(plot)
    with progress_bar("assessing", not as_json) as update:
        result = quality_evaluation.evaluate_quality(
            images,
            pairs,
            settings,
            cache_dir=cache,
            workers=workers,
            progress=lambda done, total: update(done, total, ""),
        )
    if plot is not None:
        _write_plot(result, plot)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.n_genuine} genuine pairs of {result.n_images} images ({Path(result.pairs_file).name}); "
        f"model {result.model.key}"
    )
    console.print(
        f"FNMR at threshold {result.threshold:.4f} ({result.threshold_source}); failure to acquire: "
        f"{result.n_images_failed} images, {result.n_genuine_failed} genuine pairs"
    )
    fractions = [p.requested for p in result.curves["score"]]
    console.print("discarded     " + " ".join(f"{100 * f:6.0f}%" for f in fractions))
    for name, points in result.curves.items():
        console.print(f"{name:<13} " + " ".join(f"{_fraction(p.fnmr):>7}" for p in points))
    random = result.curves["score"]
    console.print(f"{'random':<13} " + " ".join(f"{_fraction(p.random_fnmr):>7}" for p in random))
    console.print(f"{'random sd':<13} " + " ".join(f"{_fraction(p.random_sd):>7}" for p in random))
    console.print("floor  images below  genuine pairs kept  FNMR of kept")
    for row in result.floors:
        console.print(
            f"{row.floor:5.0f}  {row.images_below:5d} ({_fraction(row.images_below_share)})"
            f"  {row.genuine_kept:6d} ({_fraction(row.genuine_kept_share)})  {_fraction(row.fnmr_kept)}"
        )
    if plot is not None:
        console.print(f"plot written to {plot}")
    for note in result.notes:
        console.print(f"note: {note}", style="dim")
