"""``faceledger search``, ``verify`` and ``faces``: probe photos in, leads and measurements out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from faceledger.cli.common import (
    DataDirOption,
    JsonlOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    one_output_mode,
    print_json,
    print_jsonl,
)
from faceledger.config import load_settings
from faceledger.domain.models import AnalyzedFace, Box, ImageAnalysis, ProbeFaceResult, SearchResult
from faceledger.errors import FaceLedgerError
from faceledger.library import open as open_ledger
from faceledger.library import read_image

ProbesArgument = Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, WebP, HEIC, BMP, TIFF).")]


def _box(box: Box) -> str:
    return f"({box.left:.0f},{box.top:.0f})-({box.right:.0f},{box.bottom:.0f})"


def face_dict(face: AnalyzedFace, *, embedding: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "face": face.index,
        "box": face.face.box.to_dict(),
        "landmarks": face.face.landmarks.to_dict(),
        "detector": face.face.detector,
        "detector_score": round(face.face.score, 4),
        "quality": face.quality.to_dict(),
        "model": face.embedding.model.to_dict() | {"key": face.embedding.model.key},
    }
    if embedding:
        out["embedding"] = [round(float(v), 7) for v in face.embedding.vector]
    return out


def _probe_face_dict(result: SearchResult, face: ProbeFaceResult) -> dict[str, Any]:
    return {
        "path": result.source,
        "probe_sha256": result.probe_sha256,
        "galleries": list(result.galleries),
        **face_dict(face.probe, embedding=False),
        "below_quality_floor": face.below_quality_floor,
        "quality_floor": result.quality_floor,
        "threshold": result.threshold,
        "threshold_fmr": result.threshold_fmr,
        "candidates": [c.to_dict() for c in face.candidates],
        "subjects": [c.to_dict() for c in face.subjects],
    }


def _print_search(result: SearchResult) -> None:
    console.print(f"[bold]{result.source}[/]  ({len(result.faces)} face(s); model {result.model.key})")
    if not result.faces:
        console.print("  no face found")
    fmr = f", FMR {result.threshold_fmr:.1e}" if result.threshold_fmr is not None else ""
    for face in result.faces:
        box = face.probe.face.box
        console.print(f"  face {face.probe.index} at {_box(box)}, quality {face.probe.quality.score:.0f}/100")
        if face.below_quality_floor:
            err_console.print(
                f"  [yellow]warning:[/] probe quality {face.probe.quality.score:.0f} is below the floor "
                f"{result.quality_floor:.0f} ({'; '.join(face.probe.quality.issues) or 'low quality'}): "
                "candidates from it are weak leads"
            )
        if not face.subjects:
            console.print("    no candidates (is the gallery empty?)")
        for c in face.subjects:
            mark = "*" if c.above_threshold else " "
            est = f"  est. FMR {c.estimated_fmr:.1e}" if c.estimated_fmr is not None else ""
            console.print(f"   {mark}{c.rank:>3}. {c.gallery}/{c.subject_id}  score {c.score:.4f}{est}")
        console.print(
            f"    (* at or above threshold {result.threshold:.4f}{fmr}; leads only, for human review)"
        )


@handle_errors
def search(
    probes: ProbesArgument,
    gallery: Annotated[
        list[str], typer.Option("--gallery", "-g", help="Gallery to search (repeat for several).")
    ],
    top_k: Annotated[int | None, typer.Option(help="Candidates per face (default: setting top_k).")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    as_jsonl: JsonlOption = False,
) -> None:
    """1:N search: every face of each probe against the galleries; a ranked candidate list per face.

    With --jsonl, one line per probe face: the ranked candidates (per face and per subject),
    the threshold, the model and the probe's quality.
    """
    one_output_mode(as_json, as_jsonl)
    documents: list[dict[str, Any]] = []
    failed = 0
    with open_ledger(data_dir) as ledger:
        for probe in probes:
            try:
                result = ledger.search(probe, gallery, top_k=top_k)
            except FaceLedgerError as exc:
                if not (as_json or as_jsonl) or len(probes) == 1:
                    raise
                failed += 1
                error = {"path": str(probe), "error": {"code": exc.code, "message": str(exc)}}
                print_jsonl(error) if as_jsonl else documents.append(error)
                continue
            rows = [_probe_face_dict(result, face) for face in result.faces]
            if as_jsonl:
                for row in rows or [{"path": result.source, "probe_sha256": result.probe_sha256, "faces": 0}]:
                    print_jsonl(row)
            elif as_json:
                documents.append({"path": result.source, "faces": rows, "timings_ms": result.timings_ms})
            else:
                _print_search(result)
    if as_json:
        print_json(documents if len(probes) > 1 else documents[0])
    if failed:
        raise typer.Exit(1)


@handle_errors
def verify(
    first: Annotated[Path, typer.Argument(help="First image (its largest face is compared).")],
    second: Annotated[Path, typer.Argument(help="Second image (its largest face is compared).")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """1:1 verification: similarity of the largest face in each image, and the decision at the threshold."""
    from faceledger.pipeline.run import Pipeline
    from faceledger.services.identification import verify as verify_service

    settings = load_settings(data_dir)
    with Pipeline.from_settings(settings, parallel_flip=False) as pipeline:
        result = verify_service(pipeline, settings, read_image(first, settings), read_image(second, settings))
    if as_json:
        print_json(
            {
                "first": str(first),
                "second": str(second),
                "score": round(result.score, 6),
                "threshold": result.threshold,
                "estimated_fmr": result.estimated_fmr,
                "same_person": result.same_person,
                "model": result.model.to_dict() | {"key": result.model.key},
            }
        )
        return
    verdict = (
        "same person (at this threshold)" if result.same_person else "not the same person (at this threshold)"
    )
    est = f", est. FMR {result.estimated_fmr:.1e}" if result.estimated_fmr is not None else ""
    console.print(f"score {result.score:.4f} (threshold {result.threshold:.4f}{est}): {verdict}")


@handle_errors
def faces(
    paths: ProbesArgument,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    as_jsonl: JsonlOption = False,
) -> None:
    """Detect every face: box, 5 landmarks, quality and embedding. Reads only the files given.

    With --jsonl, one line per face: path, box, landmarks, quality, model and the embedding.
    """
    from faceledger.pipeline.run import Pipeline

    one_output_mode(as_json, as_jsonl)
    settings = load_settings(data_dir)
    documents: list[dict[str, Any]] = []
    failed = 0
    with Pipeline.from_settings(settings, parallel_flip=False) as pipeline:
        for path in paths:
            try:
                analysis = pipeline.analyze(read_image(path, settings))
            except FaceLedgerError as exc:
                failed += 1
                error = {"path": str(path), "error": {"code": exc.code, "message": str(exc)}}
                if as_jsonl:
                    print_jsonl(error)
                elif as_json:
                    documents.append(error)
                else:
                    err_console.print(f"[red]error:[/] {exc}")
                continue
            _emit_faces(analysis, str(path), as_json, as_jsonl, documents)
    if as_json:
        print_json(documents)
    if failed:
        raise typer.Exit(1)


def _emit_faces(
    analysis: ImageAnalysis, path: str, as_json: bool, as_jsonl: bool, documents: list[dict[str, Any]]
) -> None:
    rows = [
        {"path": path, "image_sha256": analysis.image_sha256} | face_dict(f, embedding=True)
        for f in analysis.faces
    ]
    if as_jsonl:
        for row in rows:
            print_jsonl(row)
    elif as_json:
        documents.append({"path": path, "image_sha256": analysis.image_sha256, "faces": rows})
    else:
        console.print(f"[bold]{path}[/]: {len(analysis.faces)} face(s)")
        for face in analysis.faces:
            q = face.quality
            box = face.face.box
            console.print(
                f"  face {face.index}: box {_box(box)}, "
                f"quality {q.score:.0f}/100, inter-eye {q.inter_eye_px:.0f} px, yaw {q.yaw_deg:+.0f}°"
                + (f"  [{'; '.join(q.issues)}]" if q.issues else "")
            )
