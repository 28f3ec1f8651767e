"""Probe edits: each is exact, recorded with its parameters, and re-derivable from the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceledger.errors import ValidationError
from faceledger.pipeline.edit import (
    FILL,
    MAX_EDITS,
    AppliedEdit,
    Brightness,
    Contrast,
    Crop,
    Rotate,
    apply_edit,
    apply_edits,
    make_edit,
    parse_edit,
    pixels_sha256,
    replay_edits,
)
from faceledger.pipeline.ingest import load_image


@pytest.fixture(scope="module")
def face(lfw_images: Path) -> np.ndarray:
    return load_image(lfw_images / "Colin_Powell" / "Colin_Powell_0001.jpg").pixels


def test_crop_keeps_exactly_the_rectangle(face: np.ndarray) -> None:
    out = apply_edit(face, Crop(40, 30, 210, 230))
    np.testing.assert_array_equal(out, face[30:230, 40:210])
    assert out.shape == (200, 170, 3)
    assert not out.flags.writeable


def test_crop_outside_the_image_names_its_size(face: np.ndarray) -> None:
    with pytest.raises(ValidationError, match="only 250 x 250 pixels"):
        apply_edit(face, Crop(0, 0, 251, 100))


@pytest.mark.parametrize(("degrees", "turns"), [(90, 1), (180, 2), (-90, 3), (270, 3), (360, 0), (-360, 0)])
def test_quarter_turns_are_exact(face: np.ndarray, degrees: float, turns: int) -> None:
    np.testing.assert_array_equal(apply_edit(face, Rotate(degrees)), np.rot90(face, k=turns))


def test_other_angles_grow_the_canvas_and_fill_the_corners_grey(face: np.ndarray) -> None:
    out = apply_edit(face, Rotate(30))
    side = 250 * (np.cos(np.radians(30)) + np.sin(np.radians(30)))
    assert abs(out.shape[0] - side) <= 2
    assert abs(out.shape[1] - side) <= 2
    assert tuple(int(v) for v in out[0, 0]) == FILL
    centre = out[out.shape[0] // 2, out.shape[1] // 2].astype(int)
    assert np.abs(centre - face[125, 125].astype(int)).max() <= 30  # the middle stays the middle


def test_rotating_back_and_forth_is_close_to_the_original(face: np.ndarray) -> None:
    there = apply_edit(face, Rotate(12.5))
    back = apply_edit(there, Rotate(-12.5))
    h, w = back.shape[:2]
    top, left = (h - 250) // 2, (w - 250) // 2
    middle = back[top + 60 : top + 190, left + 60 : left + 190].astype(int)
    assert np.abs(middle - face[60:190, 60:190].astype(int)).mean() < 8


def test_brightness_rounds_and_clips() -> None:
    pixels = np.array([[[0, 100, 200], [51, 127, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(apply_edit(pixels, Brightness(1.5)), [[[0, 150, 255], [76, 190, 255]]])
    np.testing.assert_array_equal(apply_edit(pixels, Brightness(0.5)), [[[0, 50, 100], [26, 64, 128]]])


def test_contrast_stretches_about_mid_grey_rounds_and_clips() -> None:
    pixels = np.array([[[0, 100, 128], [150, 200, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(apply_edit(pixels, Contrast(1.5)), [[[0, 86, 128], [161, 236, 255]]])
    np.testing.assert_array_equal(apply_edit(pixels, Contrast(0.5)), [[[64, 114, 128], [139, 164, 192]]])


def test_an_edit_never_changes_its_input(face: np.ndarray) -> None:
    before = face.copy()
    for edit in (Crop(0, 0, 100, 100), Rotate(45), Brightness(2.0)):
        apply_edit(face, edit)
    np.testing.assert_array_equal(face, before)


def test_the_pixel_hash_covers_size_and_content() -> None:
    flat = np.zeros((4, 6, 3), dtype=np.uint8)
    assert pixels_sha256(flat) != pixels_sha256(flat.reshape(6, 4, 3))  # same bytes, other shape
    changed = flat.copy()
    changed[3, 5, 2] = 1
    assert pixels_sha256(flat) != pixels_sha256(changed)
    assert pixels_sha256(flat) == pixels_sha256(np.zeros((4, 6, 3), dtype=np.uint8))


def test_a_chain_records_every_step(face: np.ndarray) -> None:
    edits = (Crop(25, 25, 225, 225), Rotate(90), Brightness(1.2))
    result = apply_edits(face, edits)
    assert [s.edit for s in result.steps] == list(edits)
    assert [s.seq for s in result.steps] == [1, 2, 3]
    assert [(s.width, s.height) for s in result.steps] == [(200, 200)] * 3
    manual = apply_edit(apply_edit(apply_edit(face, edits[0]), edits[1]), edits[2])
    np.testing.assert_array_equal(result.pixels, manual)
    assert result.sha256 == result.steps[-1].sha256 == pixels_sha256(manual)
    assert len({s.sha256 for s in result.steps} | {pixels_sha256(face)}) == 4


def test_no_edits_leave_the_pixels_and_their_hash(face: np.ndarray) -> None:
    result = apply_edits(face, [])
    assert result.steps == ()
    assert result.sha256 == pixels_sha256(face)


def test_replay_checks_every_recorded_hash(face: np.ndarray) -> None:
    recorded = apply_edits(face, [Crop(10, 10, 200, 200), Brightness(0.8)]).steps
    assert replay_edits(face, recorded).sha256 == recorded[-1].sha256
    other = face.copy()
    other[50, 50] = 255 - other[50, 50]
    with pytest.raises(
        ValidationError, match=r"probe edit 1 \(crop to \(10,10\)-\(200,200\)\) no longer gives"
    ):
        replay_edits(other, recorded)
    forged = (recorded[0], AppliedEdit(2, Brightness(0.8), 190, 190, "0" * 64))
    with pytest.raises(ValidationError, match="probe edit 2"):
        replay_edits(face, forged)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("crop:10,20,110,220", Crop(10, 20, 110, 220)),
        (" Rotate: -7.5 ", Rotate(-7.5)),
        ("brightness:1.25", Brightness(1.25)),
        ("contrast:1.3", Contrast(1.3)),
    ],
)
def test_parse_edit_reads_the_command_line_form(spec: str, expected: object) -> None:
    edit = parse_edit(spec)
    assert edit == expected
    assert make_edit(edit.kind, edit.params()) == edit  # what is stored reads back the same


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("blur:2", "unknown probe edit"),
        ("crop:1,2,3", "crop takes 4 value"),
        ("crop:0,0,10.5,40", "whole number of pixels"),
        ("crop:0,0,10,40", "at least 16 x 16"),
        ("crop:-1,0,40,40", "must not be negative"),
        ("rotate:400", "between -360 and 360"),
        ("rotate:nan", "finite number"),
        ("brightness:0", "above 0 and at most 8"),
        ("brightness:x", "every value must be a number"),
        ("contrast:0", "contrast edit: the factor must be above 0 and at most 8"),
        ("contrast:9", "at most 8"),
    ],
)
def test_bad_edits_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_edit(spec)


def test_stored_parameters_must_match_the_kind() -> None:
    with pytest.raises(ValidationError, match="takes exactly"):
        make_edit("rotate", {"degrees": 5, "extra": 1})
    with pytest.raises(ValidationError, match="finite number"):
        make_edit("brightness", {"factor": True})


def test_too_many_edits_are_refused(face: np.ndarray) -> None:
    with pytest.raises(ValidationError, match=f"at most {MAX_EDITS} edits"):
        apply_edits(face, [Brightness(1.0)] * (MAX_EDITS + 1))


def test_applied_edits_serialise_with_kind_parameters_and_hash(face: np.ndarray) -> None:
    step = apply_edits(face, [Rotate(90)]).steps[0]
    assert step.to_dict() == {
        "seq": 1,
        "kind": "rotate",
        "params": {"degrees": 90},
        "description": "rotate 90 degrees counter-clockwise",
        "width": 250,
        "height": 250,
        "sha256": pixels_sha256(np.rot90(face)),
    }
