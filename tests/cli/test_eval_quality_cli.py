"""``faceledger eval quality``: the EDC table and plot, and one clear line for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceledger.cli.main import app

runner = CliRunner()


def _error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def _pairs(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_missing_images_folder_is_one_line(tmp_path: Path) -> None:
    pairs = _pairs(tmp_path, ["1", "A\t1\t2", "A\t1\tB\t1"])
    result = runner.invoke(
        app, ["eval", "quality", "--images", str(tmp_path / "none"), "--pairs", str(pairs)]
    )
    assert result.exit_code != 0
    assert "images folder not found" in _error_line(result.output)


def test_a_bad_pairs_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    pairs = _pairs(tmp_path, ["1", "A\t1", "A\t1\tB\t1"])
    result = runner.invoke(
        app, ["eval", "quality", "--images", str(tmp_path / "images"), "--pairs", str(pairs)]
    )
    assert result.exit_code != 0
    assert "pairs.txt:2: expected a same-person pair" in _error_line(result.output)


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        ("missing/edc.png", "cannot write the plot"),
        ("edc.pdf", "written as PNG"),
        ("folder.png", "is a folder"),
    ],
)
def test_an_unwritable_plot_is_refused_before_any_work(tmp_path: Path, plot: str, message: str) -> None:
    for name in ("A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg"):  # never read: the plot fails first
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / name).write_bytes(b"not a photo")
    pairs = _pairs(tmp_path, ["1", "A\t1\t2", "A\t1\tB\t1"])
    (tmp_path / "folder.png").mkdir()
    target = tmp_path / plot
    result = runner.invoke(
        app,
        [
            "eval",
            "quality",
            "--images",
            str(tmp_path / "images"),
            "--pairs",
            str(pairs),
            "--plot",
            str(target),
        ],
    )
    assert result.exit_code != 0
    assert message in _error_line(result.output)


@pytest.mark.faces
@pytest.mark.slow
def test_the_table_json_and_plot_on_a_few_real_pairs(lfw_dir: Path, tmp_path: Path) -> None:
    lines = (lfw_dir / "pairsDevTrain.txt").read_text().splitlines()
    pairs = _pairs(tmp_path, ["2", *lines[1:3], *lines[1101:1103]])
    common = ["--images", str(lfw_dir / "images"), "--pairs", str(pairs), "--cache", str(tmp_path / "cache")]
    plot = tmp_path / "edc.png"
    shown = runner.invoke(app, ["eval", "quality", *common, "--workers", "1", "--plot", str(plot)])
    assert shown.exit_code == 0, shown.output
    for heading in ("discarded", "random", "floor"):
        assert heading in shown.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(runner.invoke(app, ["eval", "quality", *common, "--json"]).output)
    assert data["images"]["cached"] == data["images"]["total"]  # the first run cached every image
    assert set(data["edc"]) == {"score", "size", "sharpness", "pose", "exposure"}
    assert [p["requested"] for p in data["edc"]["score"]] == [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2]
    assert [f["floor"] for f in data["floors"]] == [10.0, 20.0, 30.0, 40.0, 50.0]
