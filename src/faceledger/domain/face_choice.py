"""Which face of a gallery photo is its subject's: the documented rule enrolment applies.

A gallery photo is framed on its subject (a booking photo, an identity document, a crop of
a case photo), but it may show someone else too: an officer at the edge, a face on a
poster, a second person in a press photo. Enrolment takes one face per photo, so when the
detector finds several it applies this rule, and records which part of it decided:

1. ``only face``: the detector found one face.
2. ``largest``: the largest face has at least ``DOMINANT_AREA_RATIO`` (2) times the box
   area of every other face, and its centre lies in the middle of the photo (at most
   ``CENTRAL_OFFSET`` (a quarter) of the width and of the height from the photo's centre).
3. ``centre``: otherwise, exactly one face's box contains the photo's centre, and that face
   has at least ``CENTRE_MIN_AREA_RATIO`` (half) the box area of every other face: the
   photo is framed on it, and no other face is much larger.

Anything else (no face's box contains the centre, two do, or a much larger face lies
elsewhere) is ambiguous, and the photo is turned down: enrol a crop that shows the subject.
The rule is about geometry only (no identity, no quality), so it can be checked by a
person looking at the photo and the boxes, which the enrolment record keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from faceledger.domain.models import Box

DOMINANT_AREA_RATIO: Final = 2.0
CENTRAL_OFFSET: Final = 0.25
CENTRE_MIN_AREA_RATIO: Final = 0.5


class ChoiceRule(StrEnum):
    ONLY_FACE = "only face"
    LARGEST = "largest"
    CENTRE = "centre"


@dataclass(frozen=True, slots=True)
class FaceChoice:
    """The face enrolment took (its position in the detector's list) and why."""

    index: int
    rule: ChoiceRule
    faces_found: int
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": str(self.rule),
            "face_index": self.index,
            "faces_found": self.faces_found,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Several faces and none the rule can choose: why, in words."""

    faces_found: int
    detail: str


def _area(box: Box) -> float:
    return max(box.width, 0.0) * max(box.height, 0.0)


def _centre(box: Box) -> tuple[float, float]:
    return (box.left + box.right) / 2.0, (box.top + box.bottom) / 2.0


def _contains(box: Box, x: float, y: float) -> bool:
    return box.left <= x <= box.right and box.top <= y <= box.bottom


def choose_subject_face(boxes: Sequence[Box], width: int, height: int) -> FaceChoice | Ambiguous | None:
    """The subject's face among ``boxes`` (see the module docstring); None when there is no face."""
    if not boxes:
        return None
    n = len(boxes)
    if n == 1:
        return FaceChoice(0, ChoiceRule.ONLY_FACE, 1, "the only face found")
    areas = [_area(b) for b in boxes]
    order = sorted(range(n), key=lambda i: -areas[i])
    largest, runner_up = order[0], order[1]
    ratio = areas[largest] / max(areas[runner_up], 1e-9)
    cx, cy = _centre(boxes[largest])
    off_x = abs(cx - width / 2.0) / max(width, 1)
    off_y = abs(cy - height / 2.0) / max(height, 1)
    if ratio >= DOMINANT_AREA_RATIO and off_x <= CENTRAL_OFFSET and off_y <= CENTRAL_OFFSET:
        detail = (
            f"largest of {n} faces: {ratio:.1f} times the area of the next, "
            f"centre {max(off_x, off_y):.0%} of the photo from its centre"
        )
        return FaceChoice(largest, ChoiceRule.LARGEST, n, detail)
    central = [i for i in range(n) if _contains(boxes[i], width / 2.0, height / 2.0)]
    if len(central) == 1:
        chosen = central[0]
        biggest_other = max(areas[i] for i in range(n) if i != chosen)
        relative = areas[chosen] / max(biggest_other, 1e-9)
        if relative >= CENTRE_MIN_AREA_RATIO:
            detail = (
                f"the one of {n} faces at the centre of the photo, "
                f"{relative:.1f} times the area of the largest other face"
            )
            return FaceChoice(chosen, ChoiceRule.CENTRE, n, detail)
        why = (
            f"the face at the centre is {relative:.1f} times the area of a larger face elsewhere "
            f"(at least {CENTRE_MIN_AREA_RATIO:g} needed)"
        )
    elif central:
        why = f"{len(central)} faces cover the centre of the photo"
    else:
        why = f"no face covers the centre of the photo and the largest is {ratio:.1f} times the next"
    return Ambiguous(n, f"{n} faces found and none clearly the subject's: {why}")
