"""The face rule of enrolment (domain.face_choice), on boxes laid out by hand."""

from __future__ import annotations

import pytest

from faceledger.domain.face_choice import (
    CENTRE_MIN_AREA_RATIO,
    DOMINANT_AREA_RATIO,
    Ambiguous,
    ChoiceRule,
    FaceChoice,
    choose_subject_face,
)
from faceledger.domain.models import Box

W, H = 1000, 800


def square(cx: float, cy: float, side: float) -> Box:
    return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def chosen(boxes: list[Box]) -> FaceChoice:
    choice = choose_subject_face(boxes, W, H)
    assert isinstance(choice, FaceChoice), choice
    return choice


def test_no_face_is_none_and_one_face_is_the_only_face() -> None:
    assert choose_subject_face([], W, H) is None
    only = chosen([square(100, 100, 50)])  # anywhere, any size: the rule only decides among several
    assert (only.index, only.rule, only.faces_found) == (0, ChoiceRule.ONLY_FACE, 1)


def test_a_much_larger_face_near_the_centre_is_chosen_wherever_it_is_in_the_list() -> None:
    small = square(100, 100, 100)
    big = square(600, 450, 100 * (DOMINANT_AREA_RATIO**0.5) + 1)  # off centre by 10% and 6%
    choice = chosen([small, big, square(900, 700, 60)])
    assert (choice.index, choice.rule, choice.faces_found) == (1, ChoiceRule.LARGEST, 3)
    assert "largest of 3 faces" in choice.detail
    assert choice.to_dict() == {
        "rule": "largest",
        "face_index": 1,
        "faces_found": 3,
        "detail": choice.detail,
    }


def test_a_face_not_large_enough_to_dominate_falls_to_the_centre_clause() -> None:
    at_centre = square(W / 2, H / 2, 100 * (DOMINANT_AREA_RATIO**0.5) - 1)  # just under twice
    choice = chosen([square(150, 150, 100), at_centre])
    assert (choice.index, choice.rule) == (1, ChoiceRule.CENTRE)


def test_the_face_over_the_centre_is_chosen_when_no_other_is_much_larger() -> None:
    side = 100 * CENTRE_MIN_AREA_RATIO**0.5 + 1  # just over half the area of the larger face
    choice = chosen([square(150, 400, 100), square(W / 2, H / 2, side), square(850, 400, 100)])
    assert (choice.index, choice.rule) == (1, ChoiceRule.CENTRE)
    assert "at the centre" in choice.detail


@pytest.mark.parametrize(
    ("boxes", "why"),
    [
        # a larger face (over twice the area) away from the centre, a small one at the centre
        ([square(150, 150, 200), square(W / 2, H / 2, 100)], "0.2 times the area of a larger face"),
        # two faces over the centre (overlapping boxes of a couple cheek to cheek)
        ([square(460, 400, 150), square(540, 400, 150)], "2 faces cover the centre"),
        # two equal faces left and right of the centre
        ([square(300, 400, 150), square(700, 400, 150)], "no face covers the centre"),
        # the largest is large enough but far from the centre; nothing at the centre
        ([square(150, 150, 300), square(800, 600, 100)], "no face covers the centre"),
    ],
)
def test_ambiguous_layouts_are_turned_down_with_the_reason(boxes: list[Box], why: str) -> None:
    choice = choose_subject_face(boxes, W, H)
    assert isinstance(choice, Ambiguous)
    assert choice.faces_found == len(boxes)
    assert why in choice.detail
    assert f"{len(boxes)} faces found" in choice.detail
