"""The ONNX backend, on tiny models built here with onnx.helper (nothing downloaded or committed)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from faceledger.adapters.models.onnx_backend import (
    OnnxEmbedder,
    load_onnx_embedder,
    parse_manifest,
    read_manifest,
)
from faceledger.config import EmbedderSettings
from faceledger.errors import ConfigError, ModelError
from faceledger.pipeline.align import ARCFACE_112, SimilarityAligner
from faceledger.ports import FaceEmbedder

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
OPSET = [helper.make_opsetid("", 17)]


# --- tiny models -------------------------------------------------------------------------


def input_shape(layout: str, width: int, height: int, batch: int | str = "N") -> list[int | str]:
    return [batch, 3, height, width] if layout == "NCHW" else [batch, height, width, 3]


def save(model: Any, directory: Path) -> Path:
    onnx.checker.check_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def make_graph(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> Any:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def passthrough_model(layout: str, width: int, height: int) -> Any:
    """Output = [flattened input tensor, 1]: the trailing 1 survives L2 normalisation as a scale."""
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("ReduceSum", ["flat", "axis1"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "one"], ["ones"]),
        helper.make_node("Concat", ["flat", "ones"], ["y"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape(layout, width, height))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3 * width * height + 1])
    return make_graph(nodes, [x], [y], inits)


def conv_model(size: int = 24, dim: int = 16, batch: int | str = "N", extra_output: bool = False) -> Any:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> MatMul: a small, not mirror-symmetric net."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "m"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(size=(8, dim)).astype(np.float32), "m"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, dim])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, [batch, 8]))
    return make_graph(nodes, [x], outputs, inits)


def symmetric_model(size: int = 24, dim: int = 6) -> Any:
    """GlobalAveragePool first: the output cannot change when the chip is mirrored."""
    rng = np.random.default_rng(8)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "m"], ["p"]),
        helper.make_node("Add", ["p", "b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(size=(3, dim)).astype(np.float32), "m"),
        numpy_helper.from_array(rng.normal(size=dim).astype(np.float32), "b"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", dim])
    return make_graph(nodes, [x], [y], inits)


def manifest_for(width: int, height: int, dim: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format_version": 1,
        "name": "tiny-test-net",
        "version": "1",
        "input_size": [width, height],
        "layout": "NCHW",
        "color_order": "RGB",
        "mean": [127.5, 127.5, 127.5],
        "std": [128.0, 128.0, 128.0],
        "output_dim": dim,
        "template": [[x * width / 112, y * height / 112] for x, y in ARCFACE_112.points],
    }
    base.update(changes)
    return base


def model_dir(tmp_path: Path, model: Any, manifest: dict[str, Any], name: str = "m") -> Path:
    directory = tmp_path / name
    save(model, directory)
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def chips(n: int, width: int, height: int, seed: int = 0) -> list[U8]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def conv_dir(tmp_path: Path) -> Path:
    return model_dir(tmp_path, conv_model(), manifest_for(24, 24, 16))


# --- embedding -------------------------------------------------------------------------


def test_conv_model_gives_unit_float32_vectors_batch_consistent(conv_dir: Path) -> None:
    embedder = OnnxEmbedder(conv_dir, flip=False)
    assert isinstance(embedder, FaceEmbedder)
    batch = chips(5, 24, 24)
    vectors = embedder.embed(batch)
    assert vectors.shape == (5, 16)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    one_by_one = np.vstack([embedder.embed([c]) for c in batch])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1]), "different chips must give different vectors"
    assert embedder.embed([]).shape == (0, 16)


def test_batches_larger_than_batch_size_and_fixed_batch_models(tmp_path: Path) -> None:
    batch = chips(7, 24, 24, seed=1)
    dynamic = OnnxEmbedder(model_dir(tmp_path, conv_model(), manifest_for(24, 24, 16), "a"), batch_size=3)
    fixed = OnnxEmbedder(model_dir(tmp_path, conv_model(batch=1), manifest_for(24, 24, 16), "b"))
    assert fixed.batch_size == 1
    np.testing.assert_allclose(dynamic.embed(batch), fixed.embed(batch), atol=1e-6)


def test_model_ref_identifies_the_exact_weights(conv_dir: Path) -> None:
    embedder = OnnxEmbedder(conv_dir)
    digest = hashlib.sha256((conv_dir / "model.onnx").read_bytes()).hexdigest()
    assert embedder.model.backend == "onnx"
    assert embedder.model.name == "tiny-test-net"
    assert embedder.model.version == "1"
    assert embedder.model.weights_sha256 == digest
    assert embedder.model.dim == 16
    assert embedder.model.key == f"onnx/tiny-test-net/1/{digest[:12]}"


def test_session_uses_one_cpu_thread(conv_dir: Path) -> None:
    embedder = OnnxEmbedder(conv_dir)
    options = embedder._session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert embedder._session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("layout", "color_order", "mean", "std"),
    [
        ("NCHW", "RGB", [127.5, 127.5, 127.5], [128.0, 128.0, 128.0]),
        ("NCHW", "BGR", [10.0, 100.0, 200.0], [1.0, 2.0, 4.0]),
        ("NHWC", "RGB", [0.0, 50.0, 255.0], [255.0, 1.0, 0.5]),
        ("NHWC", "BGR", [103.94, 116.78, 123.68], [57.4, 57.1, 58.4]),
    ],
)
def test_preprocessing_follows_the_manifest(
    tmp_path: Path, layout: str, color_order: str, mean: list[float], std: list[float]
) -> None:
    width, height = 5, 4  # not square, so a swapped width/height would show
    dim = 3 * width * height + 1
    template = [[1, 1], [4, 1], [2.5, 2], [1.5, 3], [3.5, 3]]
    manifest = manifest_for(
        width, height, dim, layout=layout, color_order=color_order, mean=mean, std=std, template=template
    )
    embedder = OnnxEmbedder(
        model_dir(tmp_path, passthrough_model(layout, width, height), manifest), flip=False
    )
    chip = chips(1, width, height, seed=5)[0]

    out = embedder.embed([chip])[0]
    tensor = out[:-1] / out[-1]  # undo the L2 normalisation with the constant 1 the model appends

    # Expected, written element by element from the manifest's definitions.
    order = [0, 1, 2] if color_order == "RGB" else [2, 1, 0]
    expected = np.zeros((3, height, width) if layout == "NCHW" else (height, width, 3))
    for c in range(3):
        for y in range(height):
            for x in range(width):
                value = (float(chip[y, x, order[c]]) - mean[c]) / std[c]
                if layout == "NCHW":
                    expected[c, y, x] = value
                else:
                    expected[y, x, c] = value
    np.testing.assert_allclose(tensor, expected.ravel(), rtol=1e-4, atol=1e-4)


def test_flip_averages_with_the_horizontal_mirror(tmp_path: Path) -> None:
    width, height = 5, 4
    manifest = manifest_for(
        width, height, 3 * width * height + 1, template=[[1, 1], [4, 1], [2.5, 2], [1, 3], [4, 3]]
    )
    directory = model_dir(tmp_path, passthrough_model("NCHW", width, height), manifest)
    plain = OnnxEmbedder(directory, flip=False)
    flipped = OnnxEmbedder(directory, flip=True)
    chip = chips(1, width, height, seed=9)[0]

    a, b = plain.embed([chip])[0], plain.embed([chip[:, ::-1].copy()])[0]
    expected = (a + b) / np.linalg.norm(a + b)
    got = flipped.embed([chip])[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, a, atol=1e-3), "this model is not mirror-symmetric: TTA must change it"
    upside_down = plain.embed([chip[::-1].copy()])[0]
    assert not np.allclose(got, (a + upside_down) / np.linalg.norm(a + upside_down), atol=1e-3)


def test_flip_is_a_no_op_for_a_mirror_symmetric_model(tmp_path: Path) -> None:
    directory = model_dir(tmp_path, symmetric_model(), manifest_for(24, 24, 6))
    batch = chips(3, 24, 24, seed=2)
    np.testing.assert_allclose(
        OnnxEmbedder(directory, flip=True).embed(batch),
        OnnxEmbedder(directory, flip=False).embed(batch),
        atol=1e-6,
    )


def test_flip_changes_a_non_symmetric_conv_model(conv_dir: Path) -> None:
    batch = chips(2, 24, 24, seed=4)
    with_tta = OnnxEmbedder(conv_dir, flip=True).embed(batch)
    without = OnnxEmbedder(conv_dir, flip=False).embed(batch)
    np.testing.assert_allclose(np.linalg.norm(with_tta, axis=1), 1.0, atol=1e-6)
    assert np.abs(with_tta - without).max() > 1e-3


def test_aligner_comes_from_the_manifest_template(tmp_path: Path) -> None:
    manifest = manifest_for(112, 112, 16, template="arcface-112")
    model = conv_model(size=112)
    aligner = OnnxEmbedder(model_dir(tmp_path, model, manifest)).aligner()
    assert isinstance(aligner, SimilarityAligner)
    assert aligner.size == (112, 112)
    np.testing.assert_array_equal(aligner.template, np.array(ARCFACE_112.points))


def test_wrong_chips_are_refused(conv_dir: Path) -> None:
    embedder = OnnxEmbedder(conv_dir)
    with pytest.raises(ModelError, match=r"chip 1 is \(20, 24, 3\)"):
        embedder.embed([chips(1, 24, 24)[0], chips(1, 24, 20)[0]])
    with pytest.raises(ModelError, match="uint8"):
        embedder.embed([np.zeros((24, 24, 3), np.float32)])
    with pytest.raises(ModelError, match="chip 0 is list"):
        embedder.embed([[[0, 0, 0]]])  # type: ignore[list-item]


def test_models_that_mix_the_batch_are_refused(tmp_path: Path) -> None:
    model = make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"], axis=1),
            helper.make_node("ReduceMean", ["f"], ["y"], axes=[0], keepdims=1),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 24, 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [],
    )
    embedder = OnnxEmbedder(model_dir(tmp_path, model, manifest_for(24, 24, 3)))
    assert embedder.embed(chips(1, 24, 24)).shape == (1, 3)
    with pytest.raises(ModelError, match=r"shape \(1, 3\) for a batch of 2"):
        embedder.embed(chips(2, 24, 24))


def test_zero_vectors_are_refused(tmp_path: Path) -> None:
    # A symmetric model whose weights are all zero returns the zero vector for every chip.
    model = symmetric_model()
    for init in model.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)), init.name))
    with pytest.raises(ModelError, match="zero or non-finite vector"):
        OnnxEmbedder(model_dir(tmp_path, model, manifest_for(24, 24, 6))).embed(chips(1, 24, 24))


def test_load_from_settings(conv_dir: Path) -> None:
    embedder = load_onnx_embedder(EmbedderSettings(backend="onnx", flip=False, onnx_model=str(conv_dir)))
    assert embedder.flip is False
    with pytest.raises(ConfigError, match="onnx_model is not set"):
        load_onnx_embedder(EmbedderSettings(backend="onnx"))


# --- manifest and model errors ---------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def drop(key: str) -> Mutation:
    return lambda m: m.pop(key)


def put(key: str, value: Any) -> Mutation:
    return lambda m: m.__setitem__(key, value)


MANIFEST_ERRORS: list[tuple[str, Mutation, str]] = [
    *[(f"missing-{k}", drop(k), f"missing required field.*'{k}'") for k in manifest_for(1, 1, 1)],
    ("extra", put("colour_order", "RGB"), "unknown field.*'colour_order'.*did you mean 'color_order'"),
    ("format-version", put("format_version", 2), "'format_version' is 2"),
    ("name-int", put("name", 5), "'name' must be a non-empty string"),
    ("version-empty", put("version", " "), "'version' must be a non-empty string"),
    ("size-string", put("input_size", "24x24"), "'input_size' must be \\[width, height\\]"),
    ("size-three", put("input_size", [24, 24, 3]), "'input_size' must be"),
    ("size-zero", put("input_size", [0, 24]), "'input_size' must be"),
    ("size-float", put("input_size", [24.0, 24]), "'input_size' must be"),
    ("layout", put("layout", "NCWH"), "'layout' must be one of 'NCHW', 'NHWC'"),
    ("color-lower", put("color_order", "rgb"), "'color_order' must be one of 'RGB', 'BGR'"),
    ("mean-two", put("mean", [1, 2]), "'mean' must be a list of 3 numbers"),
    ("mean-str", put("mean", ["1", 2, 3]), "'mean' must be a list of 3 numbers"),
    ("mean-bool", put("mean", [True, 2, 3]), "'mean' must be a list of 3 numbers"),
    ("std-zero", put("std", [1, 0, 1]), "'std' must be .* all > 0"),
    ("std-scalar", put("std", 128), "'std' must be a list of 3 numbers"),
    ("dim-bool", put("output_dim", True), "'output_dim' must be an integer >= 1"),
    ("dim-str", put("output_dim", "16"), "'output_dim' must be an integer"),
    ("template-preset", put("template", "dlib-150"), "'template' must be a known preset"),
    ("template-size", put("template", "arcface-112"), "preset 'arcface-112' is for 112x112 chips"),
    ("template-four", put("template", [[1, 1]] * 4), "'template' must be a preset name"),
    ("template-outside", put("template", [[1, 1], [30, 1], [5, 5], [2, 9], [9, 9]]), "inside the 24x24 chip"),
    ("template-point", put("template", [[1, 1], [3, 1], [2, "x"], [1, 4], [3, 4]]), "'template' must be"),
    ("template-same", put("template", [[5, 5]] * 5), "'template' is unusable.*degenerate"),
    ("output-name", put("output_name", ""), "'output_name' must be a non-empty string"),
]


@pytest.mark.parametrize(
    ("mutate", "reason"), [(m, r) for _, m, r in MANIFEST_ERRORS], ids=[i for i, _, _ in MANIFEST_ERRORS]
)
def test_manifest_errors_name_the_file_and_field(tmp_path: Path, mutate: Mutation, reason: str) -> None:
    manifest = manifest_for(24, 24, 16)
    mutate(manifest)
    directory = model_dir(tmp_path, conv_model(), manifest)
    with pytest.raises(ModelError, match=reason) as err:
        OnnxEmbedder(directory)
    assert str(directory / "manifest.json") in str(err.value)


def test_the_documented_examples_are_valid() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "onnx-models.md"
    blocks = re.findall(r"```json\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    manifest = parse_manifest(json.loads(blocks[0]), source="docs example")
    assert (manifest.width, manifest.height, manifest.template) == (112, 112, ARCFACE_112)
    points = json.loads("{" + blocks[1] + "}")["template"]
    other = parse_manifest(
        {**json.loads(blocks[0]), "input_size": [96, 112], "template": points}, source="doc"
    )
    np.testing.assert_allclose(np.add(other.template.points, [8, 0]), ARCFACE_112.points, atol=0.01)


def test_manifest_read_alone(conv_dir: Path) -> None:
    manifest = read_manifest(conv_dir / "manifest.json")
    assert (manifest.width, manifest.height, manifest.output_dim) == (24, 24, 16)
    assert manifest.template.points[0] == pytest.approx((38.2946 * 24 / 112, 51.6963 * 24 / 112))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe\x00", "cannot read"),
    ],
)
def test_unreadable_manifests(conv_dir: Path, content: bytes, reason: str) -> None:
    (conv_dir / "manifest.json").write_bytes(content)
    with pytest.raises(ModelError, match=reason):
        OnnxEmbedder(conv_dir)


def test_missing_files_and_folders(tmp_path: Path, conv_dir: Path) -> None:
    with pytest.raises(ModelError, match="ONNX model folder not found"):
        OnnxEmbedder(tmp_path / "nowhere")
    (conv_dir / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx: model file not found"):
        OnnxEmbedder(conv_dir)
    (conv_dir / "model.onnx").mkdir()
    with pytest.raises(ModelError, match=r"model\.onnx: cannot read the model file"):
        OnnxEmbedder(conv_dir)
    (conv_dir / "manifest.json").unlink()
    with pytest.raises(ModelError, match=r"manifest\.json: manifest not found"):
        OnnxEmbedder(conv_dir)


def test_garbage_model_file(conv_dir: Path) -> None:
    (conv_dir / "model.onnx").write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match=r"model\.onnx: not a loadable ONNX model"):
        OnnxEmbedder(conv_dir)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"output_dim": 12},
            r"output 'y' has 16 values per face \(shape \['N', 16\]\) but 'output_dim' is 12",
        ),
        ({"input_size": [32, 32]}, r"input 'x' has shape \['N', 3, 24, 24\].*input_size"),
        ({"layout": "NHWC"}, "declares NHWC"),
        ({"output_name": "logits"}, "'output_name' 'logits' is not an output; it has 'y'"),
    ],
)
def test_manifest_must_match_the_model(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    manifest = manifest_for(24, 24, 16)
    manifest.update(changes)
    if "input_size" in changes:
        manifest["template"] = manifest_for(32, 32, 16)["template"]
    with pytest.raises(ModelError, match=reason):
        OnnxEmbedder(model_dir(tmp_path, conv_model(), manifest))


def test_output_dim_checked_by_running_when_undeclared(tmp_path: Path) -> None:
    # Symbolic height and width: the output size is only known once the model runs.
    model = passthrough_model("NCHW", 4, 4)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "D"
    template = [[1, 1], [3, 1], [2, 2], [1, 3], [3, 3]]
    ok = OnnxEmbedder(model_dir(tmp_path, model, manifest_for(4, 4, 49, template=template), "a"))
    assert ok.embed(chips(2, 4, 4)).shape == (2, 49)
    with pytest.raises(ModelError, match=r"49 values per face but 'output_dim' in manifest\.json is 20"):
        OnnxEmbedder(model_dir(tmp_path, model, manifest_for(4, 4, 20, template=template), "b"))


def test_four_dimensional_outputs_are_flattened(tmp_path: Path) -> None:
    model = conv_model()
    model.graph.node.append(helper.make_node("Unsqueeze", ["y", "axes"], ["y4"]))
    model.graph.initializer.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"))
    model.graph.output.pop()
    model.graph.output.append(helper.make_tensor_value_info("y4", TensorProto.FLOAT, ["N", 16, 1, 1]))
    embedder = OnnxEmbedder(model_dir(tmp_path, model, manifest_for(24, 24, 16), "a"), flip=False)
    flat = OnnxEmbedder(model_dir(tmp_path, conv_model(), manifest_for(24, 24, 16), "b"), flip=False)
    batch = chips(3, 24, 24)
    np.testing.assert_allclose(embedder.embed(batch), flat.embed(batch), atol=1e-6)
    with pytest.raises(ModelError, match=r"16 values per face \(shape \['N', 16, 1, 1\]\)"):
        OnnxEmbedder(model_dir(tmp_path, model, manifest_for(24, 24, 12), "c"))


def test_several_outputs_need_a_name(tmp_path: Path) -> None:
    model = conv_model(extra_output=True)
    with pytest.raises(ModelError, match=r"several outputs.*'output_name'"):
        OnnxEmbedder(model_dir(tmp_path, model, manifest_for(24, 24, 16), "a"))
    chosen = OnnxEmbedder(model_dir(tmp_path, model, manifest_for(24, 24, 8, output_name="f"), "b"))
    assert chosen.embed(chips(2, 24, 24)).shape == (2, 8)


def test_unsupported_inputs(tmp_path: Path) -> None:
    two = conv_model()
    two.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    with pytest.raises(ModelError, match="exactly one input; this one takes 'x', 'extra'"):
        OnnxEmbedder(model_dir(tmp_path, two, manifest_for(24, 24, 16), "a"))
    fixed4 = conv_model(batch=4)
    with pytest.raises(ModelError, match="fixed batch size of 4"):
        OnnxEmbedder(model_dir(tmp_path, fixed4, manifest_for(24, 24, 16), "b"))
    integer = make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 3, 24, 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 24, 24])],
        [],
    )
    with pytest.raises(ModelError, match=r"tensor\(uint8\); only float32"):
        OnnxEmbedder(model_dir(tmp_path, integer, manifest_for(24, 24, 16), "c"))
