"""ONNX embedding backend: any face-embedding network the operator supplies as a local folder.

The folder holds ``model.onnx`` and a ``manifest.json`` that says how the network wants its
input (chip size, layout, colour order, normalisation), what it returns (dimension, output
name) and which alignment template its training crops used (docs/onnx-models.md). Nothing
is downloaded: a unit only runs a model it holds and can account for, and every vector
carries the sha256 of the exact weights that made it.

The manifest is checked strictly against the model itself when the folder is opened, so a
wrong size, layout or dimension fails at start-up with a reason instead of producing
vectors that silently do not match anything.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from faceledger.domain.models import ModelRef
from faceledger.errors import AlignmentError, ConfigError, ModelError
from faceledger.pipeline.align import PRESETS, SimilarityAligner, Template

if TYPE_CHECKING:
    from faceledger.config import EmbedderSettings

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]

MANIFEST_FILE: Final = "manifest.json"
MODEL_FILE: Final = "model.onnx"
FORMAT_VERSION: Final = 1
LAYOUTS: Final = ("NCHW", "NHWC")
COLOR_ORDERS: Final = ("RGB", "BGR")

_REQUIRED: Final = (
    "format_version",
    "name",
    "version",
    "input_size",
    "layout",
    "color_order",
    "mean",
    "std",
    "output_dim",
    "template",
)
_OPTIONAL: Final = ("output_name",)


@dataclass(frozen=True, slots=True)
class OnnxManifest:
    """What ``manifest.json`` declares; mean and std are in the model's channel order, on 0-255."""

    name: str
    version: str
    width: int
    height: int
    layout: str
    color_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_dim: int
    template: Template
    output_name: str | None = None


# --- manifest --------------------------------------------------------------------------


def read_manifest(path: Path | str) -> OnnxManifest:
    """Parse and validate a manifest file; every failure names the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(
            f"{path}: manifest not found; an ONNX model folder needs {MANIFEST_FILE} beside "
            f"{MODEL_FILE} (see docs/onnx-models.md)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the manifest ({exc})") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    return parse_manifest(raw, source=str(path))


def parse_manifest(raw: object, *, source: str) -> OnnxManifest:
    """Validate an already-decoded manifest; ``source`` names it in error messages."""
    if not isinstance(raw, dict):
        raise ModelError(f"{source}: the manifest must be a JSON object, got {type(raw).__name__}")
    fields = _Fields(raw, source)
    fields.check_keys()
    version = fields.integer("format_version", minimum=1)
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{source}: field 'format_version' is {version}; this version reads {FORMAT_VERSION}"
        )
    width, height = fields.size("input_size")
    return OnnxManifest(
        name=fields.text("name"),
        version=fields.text("version"),
        width=width,
        height=height,
        layout=fields.choice("layout", LAYOUTS),
        color_order=fields.choice("color_order", COLOR_ORDERS),
        mean=fields.triple("mean", positive=False),
        std=fields.triple("std", positive=True),
        output_dim=fields.integer("output_dim", minimum=1),
        template=fields.template("template", width, height),
        output_name=fields.text("output_name") if "output_name" in raw else None,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Fields:
    """Typed access to manifest fields, each failure naming the field and what it must be."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source

    def fail(self, key: str, must: str) -> ModelError:
        shown = repr(self.raw[key])
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return ModelError(f"{self.source}: field {key!r} must be {must}, got {shown}")

    def check_keys(self) -> None:
        missing = [k for k in _REQUIRED if k not in self.raw]
        if missing:
            raise ModelError(f"{self.source}: missing required field(s) {', '.join(map(repr, missing))}")
        extra = sorted(set(self.raw) - set(_REQUIRED) - set(_OPTIONAL))
        if extra:
            hints = [
                f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k)
                for k in extra
                for close in [difflib.get_close_matches(k, _REQUIRED + _OPTIONAL, n=1)]
            ]
            raise ModelError(f"{self.source}: unknown field(s) {', '.join(hints)}")

    def text(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string")
        return value

    def integer(self, key: str, *, minimum: int) -> int:
        value = self.raw[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(key, f"an integer >= {minimum}")
        return value

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.raw[key]
        if value not in options:
            raise self.fail(key, f"one of {', '.join(map(repr, options))}")
        return str(value)

    def size(self, key: str) -> tuple[int, int]:
        value = self.raw[key]
        ok = isinstance(value, list) and len(value) == 2
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise self.fail(key, "[width, height], two positive integers")
        return int(value[0]), int(value[1])

    def triple(self, key: str, *, positive: bool) -> tuple[float, float, float]:
        value = self.raw[key]
        what = "a list of 3 numbers, one per channel" + (", all > 0" if positive else "")
        if not isinstance(value, list) or len(value) != 3 or not all(_is_number(v) for v in value):
            raise self.fail(key, what)
        if positive and not all(v > 0 for v in value):
            raise self.fail(key, what)
        return float(value[0]), float(value[1]), float(value[2])

    def template(self, key: str, width: int, height: int) -> Template:
        value = self.raw[key]
        if isinstance(value, str):
            return self._preset(key, value, width, height)
        presets = ", ".join(map(repr, PRESETS))
        what = f"a preset name ({presets}) or 5 [x, y] points inside the {width}x{height} chip"
        if not isinstance(value, list) or len(value) != 5:
            raise self.fail(key, what)
        for point in value:
            if not (isinstance(point, list) and len(point) == 2 and all(_is_number(v) for v in point)):
                raise self.fail(key, what)
            if not (0 <= point[0] <= width and 0 <= point[1] <= height):
                raise self.fail(key, what)
        points = tuple((float(x), float(y)) for x, y in value)
        try:
            SimilarityAligner(points, (width, height))
        except AlignmentError as exc:
            raise ModelError(f"{self.source}: field {key!r} is unusable: {exc}") from exc
        return Template(points=points, width=width, height=height)

    def _preset(self, key: str, name: str, width: int, height: int) -> Template:
        preset = PRESETS.get(name)
        if preset is None:
            raise self.fail(key, f"a known preset ({', '.join(map(repr, PRESETS))}) or 5 [x, y] points")
        if (preset.width, preset.height) != (width, height):
            raise ModelError(
                f"{self.source}: template preset {name!r} is for {preset.width}x{preset.height} chips but "
                f"'input_size' is {width}x{height}; give the 5 template points explicitly"
            )
        return preset


# --- model -----------------------------------------------------------------------------


def _read_model(path: Path) -> tuple[bytes, str]:
    """The model's bytes and their sha256, read once so the hash is of exactly what runs."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(
            f"{path}: model file not found (expected {MODEL_FILE} beside {MANIFEST_FILE})"
        ) from exc
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc})") from exc
    return data, hashlib.sha256(data).hexdigest()


def _open_session(data: bytes, path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for any bad model
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable ONNX model ({first_line})") from exc


def _check_input(session: ort.InferenceSession, manifest: OnnxManifest, path: Path) -> tuple[str, bool]:
    """The input's name, and whether its batch size is fixed at 1."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise ModelError(
            f"{path}: a face-embedding model must take exactly one input; this one takes {names}"
        )
    name, dtype, shape = inputs[0].name, inputs[0].type, list(inputs[0].shape)
    if dtype != "tensor(float)":
        raise ModelError(
            f"{path}: input {name!r} is {dtype}; only float32 inputs (tensor(float)) are supported"
        )
    w, h = manifest.width, manifest.height
    expected = [3, h, w] if manifest.layout == "NCHW" else [h, w, 3]
    if len(shape) != 4 or any(
        isinstance(d, int) and d != e for d, e in zip(shape[1:], expected, strict=True)
    ):
        raise ModelError(
            f"{path}: input {name!r} has shape {shape}, but manifest.json declares {manifest.layout} "
            f"with 'input_size' [{w}, {h}] (expected [batch, {', '.join(map(str, expected))}]); "
            "check 'input_size' and 'layout'"
        )
    batch = shape[0]
    if isinstance(batch, int) and batch != 1:
        raise ModelError(
            f"{path}: input {name!r} has a fixed batch size of {batch}; only 1 or dynamic is supported"
        )
    return name, batch == 1


def _pick_output(session: ort.InferenceSession, manifest: OnnxManifest, path: Path) -> str:
    outputs = {o.name: o for o in session.get_outputs()}
    names = ", ".join(map(repr, outputs))
    if manifest.output_name is not None:
        if manifest.output_name not in outputs:
            raise ModelError(
                f"{path}: manifest 'output_name' {manifest.output_name!r} is not an output; it has {names}"
            )
        chosen = outputs[manifest.output_name]
    elif len(outputs) == 1:
        chosen = next(iter(outputs.values()))
    else:
        raise ModelError(f"{path}: the model has several outputs ({names}); name one in 'output_name'")
    shape = list(chosen.shape)
    per_face = shape[1:]
    if per_face and all(isinstance(d, int) for d in per_face) and math.prod(per_face) != manifest.output_dim:
        raise ModelError(
            f"{path}: output {chosen.name!r} has {math.prod(per_face)} values per face "
            f"(shape {shape}) but 'output_dim' is {manifest.output_dim}"
        )
    return str(chosen.name)


class OnnxEmbedder:
    """An operator-supplied ONNX network as a ``ports.FaceEmbedder``.

    One intra-op thread: the service answers single queries, and on the shared cores here
    more threads per session made searches several times slower under load. ``flip``
    averages each face with its mirror image (one more network pass per face).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        flip: bool = True,
        batch_size: int = 32,
        threads: int = 1,
    ) -> None:
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise ModelError(
                f"{self.directory}: ONNX model folder not found "
                f"(it must hold {MODEL_FILE} and {MANIFEST_FILE})"
            )
        if batch_size < 1 or threads < 1:
            raise ModelError(f"batch_size and threads must be >= 1, got {batch_size} and {threads}")
        self.manifest = read_manifest(self.directory / MANIFEST_FILE)
        model_path = self.directory / MODEL_FILE
        data, digest = _read_model(model_path)
        self._session = _open_session(data, model_path, threads)
        self._input, fixed_batch = _check_input(self._session, self.manifest, model_path)
        self._output = _pick_output(self._session, self.manifest, model_path)
        self._path = model_path
        self.flip = flip
        self.batch_size = 1 if fixed_batch else batch_size
        self.model = ModelRef(
            backend="onnx",
            name=self.manifest.name,
            version=self.manifest.version,
            weights_sha256=digest,
            dim=self.manifest.output_dim,
        )
        self._probe()

    def _probe(self) -> None:
        """One pass on a grey chip, so a dimension mismatch shows at start-up, not at the first face."""
        grey = np.full((self.manifest.height, self.manifest.width, 3), 128, dtype=np.uint8)
        self._run(self._to_tensor(grey[None]))

    def aligner(self) -> SimilarityAligner:
        """An aligner that cuts chips the way this model's training crops were cut."""
        return SimilarityAligner.from_template(self.manifest.template)

    def embed(self, chips: Sequence[ImageArray]) -> FloatArray:
        """An (n, dim) float32 array of unit vectors, one per aligned RGB chip."""
        self._check_chips(chips)
        parts = [np.zeros((0, self.model.dim), dtype=np.float32)]
        for start in range(0, len(chips), self.batch_size):
            batch = np.stack(chips[start : start + self.batch_size])
            vectors = _unit(self._run(self._to_tensor(batch)), self._path)
            if self.flip:
                mirrored = _unit(self._run(self._to_tensor(batch[:, :, ::-1, :])), self._path)
                vectors = _unit(np.add(vectors, mirrored, dtype=np.float32), self._path)
            parts.append(vectors)
        return np.concatenate(parts)

    def _check_chips(self, chips: Sequence[ImageArray]) -> None:
        m = self.manifest
        for i, chip in enumerate(chips):
            if (
                not isinstance(chip, np.ndarray)
                or chip.dtype != np.uint8
                or chip.shape != (m.height, m.width, 3)
            ):
                shown = f"{chip.shape} {chip.dtype}" if isinstance(chip, np.ndarray) else type(chip).__name__
                raise ModelError(
                    f"chip {i} is {shown}; model {m.name!r} expects "
                    f"({m.height}, {m.width}, 3) uint8 RGB (align with its template first)"
                )

    def _to_tensor(self, batch: ImageArray) -> FloatArray:
        """(n, h, w, 3) uint8 RGB chips as the network's input tensor, per the manifest."""
        m = self.manifest
        values = batch.astype(np.float32)
        if m.color_order == "BGR":
            values = values[..., ::-1]
        mean = np.asarray(m.mean, dtype=np.float32)
        values = np.divide(np.subtract(values, mean), np.asarray(m.std, dtype=np.float32), dtype=np.float32)
        if m.layout == "NCHW":
            values = values.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(values, dtype=np.float32)

    def _run(self, tensor: FloatArray) -> FloatArray:
        """One network pass over at most ``batch_size`` faces; (n, dim) raw outputs."""
        try:
            (raw,) = self._session.run([self._output], {self._input: tensor})
        except Exception as exc:  # onnxruntime's errors are untyped
            raise ModelError(f"{self._path}: inference failed ({str(exc).strip()[:300]})") from exc
        out = np.asarray(raw, dtype=np.float32)
        if out.ndim == 0 or out.shape[0] != len(tensor):
            raise ModelError(
                f"{self._path}: output {self._output!r} has shape {out.shape} for a batch of {len(tensor)}; "
                "the first dimension must be the batch"
            )
        out = out.reshape(len(tensor), -1)
        if out.shape[1] != self.model.dim:
            raise ModelError(
                f"{self._path}: output {self._output!r} has {out.shape[1]} values per face but "
                f"'output_dim' in {MANIFEST_FILE} is {self.model.dim}"
            )
        return out


def _unit(vectors: FloatArray, path: Path) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.isfinite(vectors).all() or (norms <= 1e-12).any():
        raise ModelError(
            f"{path}: the model produced a zero or non-finite vector; it cannot be used as a descriptor"
        )
    unit: FloatArray = np.divide(vectors, norms, dtype=np.float32)
    return unit


def load_onnx_embedder(settings: EmbedderSettings) -> OnnxEmbedder:
    """The ONNX embedder that ``[embedder]`` settings ask for."""
    if not settings.onnx_model:
        raise ConfigError(
            "embedder.backend is 'onnx' but embedder.onnx_model is not set: give the local folder "
            f"that holds {MODEL_FILE} and {MANIFEST_FILE}"
        )
    return OnnxEmbedder(settings.onnx_model, flip=settings.flip)
