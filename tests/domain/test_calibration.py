"""Calibration tables on synthetic impostor scores whose FMR is known exactly."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from faceledger.domain import metrics
from faceledger.domain.calibration import (
    Calibration,
    build_calibration,
    calibrations_from_json,
    calibrations_to_json,
    find_calibration,
    get_calibration,
    load_calibrations,
    round_up,
    template_calibrations,
    verification_statement,
)
from faceledger.domain.templates import MAX_TEMPLATE_IMAGES
from faceledger.errors import ModelError

# 10,000 impostor scores 0.0001, 0.0002, ..., 1.0: the FMR at k/10000 is (10001 - k) / 10000.
N = 10_000
IMPOSTOR = np.arange(1, N + 1) / N


def _build(**overrides: object) -> Calibration:
    options: dict[str, object] = {
        "model_key": "test/model/1/abc",
        "flip": True,
        "dataset": "synthetic",
        "created": "2024-01-01",
        "command": "pytest",
    }
    options.update(overrides)
    return build_calibration(IMPOSTOR, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return _build(genuine=np.array([0.99, 0.9995, 1.0, math.nan]))


def test_knots_are_exact_empirical_fmrs(calibration: Calibration) -> None:
    assert calibration.n_impostor == N
    assert calibration.scores[0] == 0.0001
    assert calibration.fmrs[0] == 1.0
    assert calibration.scores[-1] == 1.0
    assert calibration.fmrs[-1] == 1 / N
    for score, fmr in zip(calibration.scores, calibration.fmrs, strict=True):
        assert fmr == metrics.fmr_at(IMPOSTOR, score)
    # ten levels a decade, 1 ... 10^-4 (41), but levels that floor to the same impostor count
    # share a knot: 10^-3.7 .. 10^-4 all mean 1 impostor, 10^-3.4 and 10^-3.5 both mean 3
    assert len(calibration.scores) == 41 - 3 - 1


def test_estimated_fmr_is_exact_at_knots_and_log_linear_between(calibration: Calibration) -> None:
    # FMR 1e-3 is reached at the 10th highest score, 0.9991; the next knot (10^-3.1 -> 7 of N) is 0.9994
    assert calibration.estimated_fmr(0.9991) == pytest.approx(1e-3)
    assert calibration.estimated_fmr(0.9994) == pytest.approx(7e-4)
    assert calibration.estimated_fmr(0.99925) == pytest.approx(math.sqrt(1e-3 * 7e-4))


def test_estimated_fmr_clamps_at_both_ends(calibration: Calibration) -> None:
    assert calibration.estimated_fmr(-1.0) == 1.0
    assert calibration.estimated_fmr(1.0) == 1 / N
    assert not calibration.is_beyond_data(1.0)
    # above every impostor seen: only "< 1/N" is known
    assert calibration.is_beyond_data(1.01)
    assert calibration.estimated_fmr(1.01) == calibration.fmr_floor == 1 / N
    assert calibration.describe_fmr(1.01).startswith("< 1 in 10,000")
    assert calibration.describe_fmr(0.9991) == "about 1 in 1,000 (FMR 1.00e-03, synthetic)"
    # 10^-3.1 -> 1 in 1,429, quoted to two significant figures
    assert calibration.describe_fmr(0.9994).startswith("about 1 in 1,400 (FMR 7.00e-04")
    with pytest.raises(ValueError, match="NaN"):
        calibration.estimated_fmr(math.nan)


def test_estimated_fmr_never_rises_with_the_score(calibration: Calibration) -> None:
    grid = np.linspace(-0.5, 1.5, 4001)
    values = [calibration.estimated_fmr(float(s)) for s in grid]
    assert all(b <= a for a, b in itertools.pairwise(values))
    assert all(0 < v <= 1 for v in values)


def test_default_threshold_meets_the_target_and_records_its_fmr(calibration: Calibration) -> None:
    # 10 of 10,000 impostors may score >= t: t lies just above 0.9990, rounded up to 4 places
    assert calibration.default_threshold == 0.9991
    assert calibration.default_fmr == 1e-3
    assert calibration.target_fmr == 1e-3
    # genuine 0.99 falls below, 0.9995 and 1.0 pass; the NaN is not an acquired comparison
    assert calibration.evidence == {"n_genuine": 3, "fnmr_at_default": pytest.approx(1 / 3)}


def test_other_targets_move_the_default() -> None:
    strict = _build(target_fmr=1e-4)
    assert strict.default_threshold == 1.0  # 1 of N allowed: just above 0.9999, rounded up
    assert strict.default_fmr == 1e-4


def test_threshold_for_fmr_inverts_the_table(calibration: Calibration) -> None:
    for score in (0.5, 0.9, 0.9991, 0.99925, 0.9999):
        assert calibration.threshold_for_fmr(calibration.estimated_fmr(score)) == pytest.approx(score)
    assert calibration.threshold_for_fmr(1.0) == calibration.scores[0]
    with pytest.raises(ValueError, match="below what 10,000 impostor comparisons"):
        calibration.threshold_for_fmr(1e-5)


def test_round_up_never_rounds_below_the_value() -> None:
    assert round_up(0.93201) == 0.9321
    assert round_up(0.9321) == 0.9321
    assert round_up(float(np.nextafter(0.932, 1.0))) == 0.9321
    assert round_up(-0.12345) == -0.1234


def test_invalid_tables_are_refused() -> None:
    base = _build().to_dict()
    base["table"] = [[0.5, 0.1], [0.4, 0.01]]
    with pytest.raises(ValueError, match="ascend"):
        Calibration.from_dict(base)
    base["table"] = [[0.4, 0.01], [0.5, 0.1]]
    with pytest.raises(ValueError, match="not increase"):
        Calibration.from_dict(base)
    with pytest.raises(ValueError, match="at least two"):
        build_calibration([0.5], model_key="m", flip=False, dataset="d", created="c", command="x")


def test_json_round_trip(tmp_path: Path, calibration: Calibration) -> None:
    other = _build(flip=False, target_fmr=1e-2)
    path = tmp_path / "calibration.json"
    path.write_text(calibrations_to_json([calibration, other], about="test"), encoding="utf-8")
    loaded = load_calibrations(path)
    assert set(loaded) == {("test/model/1/abc", True, 1), ("test/model/1/abc", False, 1)}
    again = loaded[("test/model/1/abc", True, 1)]
    assert again.to_dict() == calibration.to_dict()
    assert again.estimated_fmr(0.99925) == calibration.estimated_fmr(0.99925)
    assert find_calibration("test/model/1/abc", flip=False, path=path) is not None
    assert find_calibration("other/model", flip=True, path=path) is None


def test_each_template_size_has_its_own_entry(tmp_path: Path, calibration: Calibration) -> None:
    sizes = [_build(template_size=n) for n in (2, 3)]
    path = tmp_path / "calibration.json"
    path.write_text(calibrations_to_json([calibration, *sizes]), encoding="utf-8")
    loaded = load_calibrations(path)
    assert set(loaded) == {("test/model/1/abc", True, n) for n in (1, 2, 3)}
    assert loaded[("test/model/1/abc", True, 3)].to_dict()["template_size"] == 3
    assert find_calibration("test/model/1/abc", flip=True, path=path, template_size=2) == sizes[0]
    found = template_calibrations("test/model/1/abc", flip=True, up_to=3, path=path)
    assert found is not None
    assert sorted(found) == [1, 2, 3]
    # A size that was never measured means no templates at all, not a borrowed table.
    assert template_calibrations("test/model/1/abc", flip=True, up_to=4, path=path) is None
    assert template_calibrations("test/model/1/abc", flip=False, up_to=2, path=path) is None
    with pytest.raises(ValueError, match="template size is at least 1"):
        _build(template_size=0)


def test_an_entry_without_a_template_size_is_of_single_images(calibration: Calibration) -> None:
    """Files written before templates existed hold single-image tables."""
    data = calibration.to_dict()
    del data["template_size"]
    assert Calibration.from_dict(data).template_size == 1


def test_missing_calibration_says_what_to_do(tmp_path: Path, calibration: Calibration) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(calibrations_to_json([calibration]), encoding="utf-8")
    with pytest.raises(ModelError, match=r"no calibration for model onnx/x.*threshold.*calibrate\.py"):
        get_calibration("onnx/x", flip=True, path=path)
    assert get_calibration("test/model/1/abc", flip=True, path=path) == calibration


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "Expecting value"),
        ('{"format": 99, "calibrations": []}', "format 99"),
        ('{"format": 1}', "calibrations"),
        ('{"format": 1, "calibrations": [{"model_key": "m"}]}', "table"),
    ],
)
def test_broken_files_raise_model_error_naming_the_file(text: str, reason: str) -> None:
    with pytest.raises(ModelError, match=rf"^where\.json: not a valid .*{reason}"):
        calibrations_from_json(text, source="where.json")


def test_unreadable_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read calibration file"):
        load_calibrations(tmp_path / "absent.json")


def test_shipped_table_is_valid_and_self_consistent() -> None:
    shipped = load_calibrations()
    data = json.loads(
        (Path(__file__).resolve().parents[2] / "src/faceledger/data/calibration.json").read_text("utf-8")
    )
    assert len(shipped) == len(data["calibrations"])
    for calibration in shipped.values():
        assert calibration.default_fmr <= calibration.target_fmr
        assert calibration.n_impostor >= 1_000_000  # millions of LFW impostor pairs, not a toy sample
        # the table and the stored default agree to within the interpolation between two knots
        estimate = calibration.estimated_fmr(calibration.default_threshold)
        assert estimate == pytest.approx(calibration.default_fmr, rel=0.3)


@pytest.mark.parametrize("flip", [True, False])
def test_shipped_table_covers_the_default_model(flip: bool) -> None:
    """Searches need a calibrated threshold: a new weight file or backend must be recalibrated."""
    backend = pytest.importorskip("faceledger.adapters.models.dlib_backend")
    key = backend.dlib_model_ref().key
    calibration = find_calibration(key, flip=flip)
    assert calibration is not None, f"no calibration for {key} flip={flip}: run bench/calibrate.py"
    assert calibration.target_fmr == 1e-3
    assert 0.8 < calibration.default_threshold < 1.0


@pytest.mark.parametrize("flip", [True, False])
def test_shipped_table_has_every_template_size_and_bigger_templates_need_higher_scores(flip: bool) -> None:
    """Different people score higher against a mean of more images (measured on DevTrain)."""
    backend = pytest.importorskip("faceledger.adapters.models.dlib_backend")
    key = backend.dlib_model_ref().key
    tables = template_calibrations(key, flip=flip, up_to=MAX_TEMPLATE_IMAGES)
    assert tables is not None, f"no template calibrations for {key} flip={flip}: run bench/calibrate.py"
    thresholds = [tables[n].default_threshold for n in range(1, MAX_TEMPLATE_IMAGES + 1)]
    assert thresholds == sorted(thresholds)
    assert thresholds[0] < thresholds[-1]
    for size, table in tables.items():
        assert table.template_size == size
        assert table.n_impostor >= 1_000_000
        assert table.default_fmr <= table.target_fmr == 1e-3


def test_a_score_just_under_the_threshold_is_not_called_another_person() -> None:
    """A genuine pair at 0.9277 against 0.9286 was once reported as "not the same person"."""
    below = verification_statement(0.9277, 0.9286, 1e-3)
    assert below.startswith("score 0.9277, below the threshold 0.9286 (set at a false match rate of 1e-03)")
    assert "does not show that they are different people" in below
    above = verification_statement(0.9286, 0.9286, None)
    assert above == (
        "score 0.9286, at or above the threshold 0.9286: "
        "a possible match, a lead for review, not an identification"
    )
    assert all("not the same person" not in text for text in (below, above))
    rated = verification_statement(0.9277, 0.9286, 1e-3, 1.2e-3)
    assert rated.startswith("score 0.9277 (different people score this high at a rate of 1.2e-03), below")
