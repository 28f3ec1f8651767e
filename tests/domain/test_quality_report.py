"""The quality report's factors and the explanation a person reads."""

from __future__ import annotations

from typing import Any

from faceledger.domain.models import QualityReport

MEASURES: dict[str, Any] = {
    "face_size_px": 120.0,
    "inter_eye_px": 40.0,
    "sharpness": 0.3,
    "yaw_deg": 28.0,
    "roll_deg": 2.0,
    "pitch_deg": -5.0,
    "brightness": 120.0,
    "contrast": 50.0,
    "overexposed_fraction": 0.0,
    "underexposed_fraction": 0.0,
}


def report(**changes: Any) -> QualityReport:
    factors = {"size_factor": 100.0, "sharpness_factor": 90.0, "pose_factor": 61.0, "exposure_factor": 99.8}
    fields = MEASURES | factors | changes
    score = fields["size_factor"] * fields["sharpness_factor"] * fields["pose_factor"]
    score *= fields["exposure_factor"] / 100.0**3
    return QualityReport(**(fields | {"score": score}))


def test_explanation_names_the_worst_aspect_first_with_its_cause() -> None:
    assert report().explanation() == (
        "score 55: lowered most by pose (factor 0.61, yaw +28 degrees), then sharpness (0.90, sharpness 0.30)"
    )


def test_the_worst_aspect_changes_with_the_factors() -> None:
    text = report(size_factor=40.0, inter_eye_px=12.0, face_size_px=30.0).explanation()
    assert text.startswith("score 22: lowered most by size (factor 0.40, face 30 px, eyes 12 px apart)")
    assert "then pose (0.61" in text
    dark = report(exposure_factor=20.0, brightness=30.0, contrast=8.0, pose_factor=100.0).explanation()
    assert dark == (
        "score 18: lowered most by exposure (factor 0.20, brightness 30 of 255, contrast 8), "
        "then sharpness (0.90, sharpness 0.30)"
    )
    tilted = report(pitch_deg=-33.0).explanation()
    assert "pose (factor 0.61, pitch -33 degrees)" in tilted


def test_a_perfect_face_and_a_cut_off_face() -> None:
    perfect = report(sharpness_factor=100.0, pose_factor=100.0, exposure_factor=100.0)
    assert perfect.explanation() == "score 100: no aspect lowered it"
    cut = report(sharpness_factor=100.0, pose_factor=100.0, exposure_factor=100.0, outside_fraction=0.25)
    assert cut.explanation() == "score 100: 25% of the face outside the image"


def test_to_dict_carries_the_factors_and_the_explanation() -> None:
    data = report().to_dict()
    assert data["factors"] == {"size": 100.0, "sharpness": 90.0, "pose": 61.0, "exposure": 99.8}
    assert data["explanation"] == report().explanation()
    assert data["outside_fraction"] == 0.0


def test_a_report_made_before_the_factors_still_reads() -> None:
    """Reports built with the old fields only (e.g. positional, as older code does) keep working."""
    old = QualityReport(
        120.0, 40.0, 0.1, 28.0, 2.0, -5.0, 120.0, 50.0, 0.0, 0.0, 35.0, ("blurred: sharpness 0.10 < 0.22",)
    )
    assert old.factors is None
    assert old.explanation() == "score 35: blurred: sharpness 0.10 < 0.22"
    assert old.to_dict()["factors"] is None
    assert QualityReport(**MEASURES, score=80.0).explanation() == "score 80"
