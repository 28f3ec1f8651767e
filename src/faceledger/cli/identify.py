"""``faceledger search``, ``verify`` and ``faces``: probe photos in, leads and measurements out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

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
    shown,
)
from faceledger.config import Settings, load_settings
from faceledger.errors import FaceLedgerError

if TYPE_CHECKING:
    from collections.abc import Callable

    from faceledger.domain.models import AnalyzedFace, Box, DecodedImage, ImageAnalysis, ModelRef
    from faceledger.pipeline.edit import Crop
    from faceledger.pipeline.run import Pipeline
    from faceledger.services.accounts import Principal
    from faceledger.services.datadir import DataDir
    from faceledger.services.identification import Analyzer
    from faceledger.services.probes import Probe
    from faceledger.services.search_records import SearchRecord
    from faceledger.services.searches import SearchInput

ProbesArgument = Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, WebP, HEIC, BMP, TIFF).")]


class _ModelsOnFirstUse:
    """The face pipeline, loaded when a probe is first analysed.

    The policy decides before any probe is analysed; loading the models first would make
    every refused request wait seconds for models it never uses.
    """

    def __init__(self, settings: Settings, *, parallel_flip: bool | None = None) -> None:
        self._settings = settings
        self._parallel_flip = parallel_flip
        self._pipeline: Pipeline | None = None

    def _loaded(self) -> Pipeline:
        if self._pipeline is None:
            from faceledger.pipeline.run import Pipeline

            self._pipeline = Pipeline.from_settings(self._settings, parallel_flip=self._parallel_flip)
        return self._pipeline

    @property
    def model(self) -> ModelRef:
        return self._loaded().model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        return self._loaded().analyze(image)

    def __enter__(self) -> _ModelsOnFirstUse:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pipeline is not None:
            self._pipeline.close()


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


def _record_line(record: SearchRecord, source: str) -> dict[str, Any]:
    """One probe face with its ranked candidates, as ``search --jsonl`` prints it."""
    data = record.to_dict()
    face = record.result.faces[0] if record.result is not None and record.result.faces else None
    line: dict[str, Any] = {"path": source, "search_id": record.search_id}
    if face is not None:
        line |= face_dict(face.probe, embedding=False)
        line["below_quality_floor"] = face.below_quality_floor
        line["subjects"] = [c.to_dict() for c in face.subjects]
    kept = (
        "case_number", "purpose", "threshold", "threshold_fmr", "score_normalisation", "template_thresholds",
        "galleries",
    )  # fmt: skip
    line |= {k: data[k] for k in kept}
    # The face's model (backend, name, weights hash, key) stays; only its key was recorded.
    line.setdefault("model", {"key": record.model_key})
    line["candidates"] = data["candidates"]
    line["policy"] = data["policy"]
    line["probe"] = data["probe"]
    line["lead_notice"] = record.lead_notice
    return line


def _print_record(record: SearchRecord, source: str) -> None:
    console.print(
        f"[bold]{shown(source)}[/]  search {record.search_id}, case {shown(record.case_number)}, "
        f"purpose {shown(record.purpose)}; model {shown(record.model_key)}"
    )
    for edit in record.edits:
        console.print(
            f"  probe edit {edit.seq}: {edit.edit.describe()} -> {edit.width}x{edit.height}, "
            f"sha256 {edit.sha256[:12]}",
            style="dim",
        )
    result = record.result
    face = result.faces[0] if result is not None and result.faces else None
    if result is not None and face is not None:
        q = face.probe.quality
        console.print(f"  face at {_box(face.probe.face.box)}, quality {q.score:.0f}/100")
        console.print(f"  quality: {q.explanation()}", style="dim", markup=False, highlight=False)
        if face.below_quality_floor:
            err_console.print(
                f"  [yellow]warning:[/] probe quality {q.score:.0f} is below the floor "
                f"{result.quality_floor:.0f} ({'; '.join(q.issues) or 'low quality'}): "
                "candidates from it are weak leads"
            )
    if not record.candidates:
        console.print("    no candidates (are the galleries empty?)")
    for c in record.candidates:
        mark = "*" if c.above_threshold else " "
        est = f"  est. FMR {c.estimated_fmr:.1e}" if c.estimated_fmr is not None else ""
        of = f"  (mean template of {c.template_images} images)" if c.template_images > 1 else ""
        console.print(
            f"   {mark}{c.rank:>3}. {shown(c.gallery)}/{shown(c.subject_id)}  score {c.score:.4f}{est}{of}"
        )
    fmr = f", FMR {record.threshold_fmr:.1e}" if record.threshold_fmr is not None else ""
    sizes = record.template_thresholds
    where = (
        f"the threshold of its template's size{fmr}: "
        + ", ".join(f"{t:.4f} for {n} image{'s' if n > 1 else ''}" for n, t in sorted(sizes.items()))
        if sizes is not None
        else f"threshold {record.threshold:.4f}{fmr}"
    )
    console.print(f"    (* at or above {where}; {record.score_normalisation.says()})")
    if record.faces_found > 1:
        console.print(
            f"    the probe has {record.faces_found} faces; the largest was searched "
            "(search another with --edit crop:LEFT,TOP,RIGHT,BOTTOM, or all with --all-faces)"
        )
    console.print(f"    {record.lead_notice}")


def _other_faces(record: SearchRecord, probe: Probe, settings: Settings) -> list[Crop]:
    """Crops around every face but the one searched, each to be searched (and recorded) on its own.

    Each crop is the face's box with a margin, kept inside the (upright) probe image, so that a
    face at the edge of the photo gives a valid crop rather than a refused edit.
    """
    from faceledger.pipeline.edit import Crop
    from faceledger.pipeline.ingest import decode_image

    if record.result is None or record.faces_found < 2:
        return []
    upright = decode_image(probe.data, source=probe.source, limits=settings.image)
    width, height = upright.width, upright.height
    analysis = record.result.faces
    crops = []
    searched = analysis[0].probe.face.box if analysis else None
    for face in analysis[1:]:
        box = face.probe.face.box
        if searched is not None and box == searched:
            continue
        margin = 0.6 * max(box.width, box.height)
        crops.append(
            Crop(
                left=max(0, int(box.left - margin)),
                top=max(0, int(box.top - margin)),
                right=min(width, int(box.right + margin)),
                bottom=min(height, int(box.bottom + margin)),
            )
        )
    return crops


def _search_probes(
    dd: DataDir,
    pipeline: Analyzer,
    principal: Principal,
    probes: list[Path],
    request: SearchInput,
    *,
    all_faces: bool,
    show: Callable[[SearchRecord, str], None],
) -> None:
    """Search each probe (``all_faces``: and its other faces), showing each search as it is made.

    One that fails later must not hide the searches before it from the examiner who made them.
    """
    from faceledger.services.probes import Probe
    from faceledger.services.searches import accountable_search

    for path in probes:
        probe = Probe.from_path(path, dd.settings.image)
        first = accountable_search(dd, pipeline, principal, probe, request, now=datetime.now(UTC))
        show(first, probe.source)
        if all_faces and not request.edits:
            for crop in _other_faces(first, probe, dd.settings):
                more = dataclasses.replace(request, edits=(crop,))
                show(
                    accountable_search(dd, pipeline, principal, probe, more, now=datetime.now(UTC)),
                    probe.source,
                )


def _show(
    record: SearchRecord, source: str, as_json: bool, as_jsonl: bool, documents: list[dict[str, Any]]
) -> None:
    if as_jsonl:
        print_jsonl(_record_line(record, source))
    elif as_json:
        documents.append(record.to_dict())
    else:
        _print_record(record, source)


#: Every accountable search or comparison names its case and purpose (the policy refuses one without).
CaseOption = Annotated[str | None, typer.Option("--case", help="Case number (format set by the policy).")]
PurposeOption = Annotated[str | None, typer.Option(help="Purpose, one of the policy's allowed purposes.")]


@handle_errors
def search(
    probes: ProbesArgument,
    gallery: Annotated[
        list[str], typer.Option("--gallery", "-g", help="Gallery to search (repeat for several).")
    ],
    case: CaseOption = None,
    purpose: PurposeOption = None,
    justification: Annotated[str | None, typer.Option(help="Why this search is needed (free text).")] = None,
    on_behalf_of: Annotated[
        str | None, typer.Option(help="Agency the search is made for, if another.")
    ] = None,
    agreement: Annotated[
        str | None, typer.Option(help="Agreement reference for a request of another agency.")
    ] = None,
    edit: Annotated[
        list[str] | None,
        typer.Option(
            help="Probe edit, recorded with the search: "
            "crop:L,T,R,B | rotate:DEG | brightness:F | contrast:F."
        ),
    ] = None,
    all_faces: Annotated[
        bool, typer.Option("--all-faces", help="Also search every other face of the probe (one search each).")
    ] = False,
    top_k: Annotated[int | None, typer.Option(help="Candidates per face (default: setting top_k).")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    as_jsonl: JsonlOption = False,
) -> None:
    """1:N search of each probe against galleries, as the signed-in examiner, under the policy in force.

    Needs a case number and a purpose; the policy decides before the probe is read, and the search,
    the candidates shown and any refusal are recorded. The largest face is searched (--all-faces: every
    face, one recorded search each). With --jsonl, one line per searched probe face: the ranked
    candidates, the threshold, the model, the policy decision and the probe's hashes and edits.
    """
    from faceledger.cli.accounts import signed_in
    from faceledger.pipeline.edit import parse_edit
    from faceledger.services.datadir import open_data_dir
    from faceledger.services.searches import SearchInput

    one_output_mode(as_json, as_jsonl)
    edits = tuple(parse_edit(spec) for spec in edit or [])
    settings = load_settings(data_dir)
    request = SearchInput(
        case_number=case, purpose=purpose, galleries=tuple(gallery), justification=justification,
        on_behalf_of=on_behalf_of, agreement_ref=agreement, top_k=top_k, edits=edits,
    )  # fmt: skip
    documents: list[dict[str, Any]] = []

    def show(record: SearchRecord, source: str) -> None:
        _show(record, source, as_json, as_jsonl, documents)

    try:
        with open_data_dir(settings.data_dir, settings=settings) as dd:
            principal = signed_in(dd)
            with _ModelsOnFirstUse(dd.settings) as pipeline:
                _search_probes(dd, pipeline, principal, probes, request, all_faces=all_faces, show=show)
    except FaceLedgerError:
        if as_json and documents:  # the searches recorded before the failure are still shown
            print_json(documents)
        raise
    if as_json:
        print_json(documents if len(documents) != 1 else documents[0])


@handle_errors
def verify(
    first: Annotated[Path, typer.Argument(help="First image (its largest face is compared).")],
    second: Annotated[Path, typer.Argument(help="Second image (its largest face is compared).")],
    case: CaseOption = None,
    purpose: PurposeOption = None,
    justification: Annotated[str | None, typer.Option(help="Why this comparison is needed.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """1:1 verification as the signed-in examiner: the score of the largest face in each image and the
    decision at the threshold; bound to a case and purpose, decided by the policy and recorded."""
    from faceledger.cli.accounts import signed_in
    from faceledger.domain.calibration import verification_statement
    from faceledger.services.datadir import open_data_dir
    from faceledger.services.probes import Probe
    from faceledger.services.searches import VerifyInput, accountable_verify

    settings = load_settings(data_dir)
    with open_data_dir(settings.data_dir, settings=settings) as dd:
        principal = signed_in(dd)
        request = VerifyInput(case_number=case, purpose=purpose, justification=justification)
        with _ModelsOnFirstUse(dd.settings, parallel_flip=False) as pipeline:
            record = accountable_verify(
                dd, pipeline, principal,
                Probe.from_path(first, dd.settings.image), Probe.from_path(second, dd.settings.image),
                request, now=datetime.now(UTC),
            )  # fmt: skip
    if as_json:
        print_json(record.to_dict() | {"first": str(first), "second": str(second)})
        return
    console.print(
        verification_statement(record.score, record.threshold, record.threshold_fmr, record.estimated_fmr)
    )
    console.print(f"({record.score_normalisation.says()})")
    console.print(
        f"recorded as comparison {record.search_id} in case {record.case_number}. {record.lead_notice}"
    )


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
    from faceledger.library import read_image
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
                    err_console.print(f"[red]error:[/] {shown(exc)}")
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
        console.print(f"[bold]{shown(path)}[/]: {len(analysis.faces)} face(s)")
        for face in analysis.faces:
            q = face.quality
            box = face.face.box
            console.print(
                f"  face {face.index}: box {_box(box)}, "
                f"quality {q.score:.0f}/100, inter-eye {q.inter_eye_px:.0f} px, yaw {q.yaw_deg:+.0f}°"
                + (f"  [{'; '.join(q.issues)}]" if q.issues else "")
            )
            console.print(f"    quality: {q.explanation()}", style="dim", markup=False, highlight=False)
