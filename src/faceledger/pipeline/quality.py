"""How usable one face is for identification: measurements, one 0-100 score, and reasons.

Pure numpy on the decoded pixels and the detected face: no models, no I/O. Every measure
is made on the face region resampled to a fixed size (``PATCH_PX``), so a sharp face photo
scores the same whether it was taken at 100 or 1000 pixels; being small is judged
separately, by the face size and the distance between the eyes.

The pose is a rough geometric estimate from the five landmarks (nose offset from the eye
midpoint, eye-line angle) with an average face's proportions, and not an orientation
measurement. Signs: yaw > 0 when the nose points to the image's right, pitch > 0 when the
head tilts back (chin up), roll > 0 when the face is turned clockwise in the image.

Pitch is the weakest of the three. With dlib's five points the only cue is how far below
the eye line the nose base sits, and faces differ in that by more than a moderate tilt
changes it: on LFW's mostly frontal photos the estimate spreads over about -22 to +24
degrees (5th to 95th percentile; ``bench/quality_pose.py``). For a head tilted back it is
the exact rotation of the average nose; for a bowed head, where that rotation flattens out
and has no answer for a drop longer than the nose's reach (it put every such face, about
one ordinary photo in eighteen, at -41 degrees), it is the small-angle reading
``atan((average drop - drop) / depth)``, with the same slope at zero. So it is zero for the
average face, monotone, and never pinned at a bound. A head bowed beyond about 20 degrees
moves the nose base little more, so a strong downward tilt reads smaller than it is.

The score multiplies one factor per aspect (size, sharpness, pose, exposure), each
strictly decreasing as the aspect gets worse, so a worse photo of the same face always
scores lower; the report keeps each factor (0-100), so it can say which aspect lowered
the score and by how much, and ``issues`` names, in words, each aspect past its threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from faceledger.domain.models import Box, DetectedFace, Landmarks, QualityReport

ImageArray = npt.NDArray[np.uint8]
Gray = npt.NDArray[np.float64]

#: Side of the square the face region is resampled to before sharpness and exposure.
PATCH_PX: Final = 64
_LUMA: Final = np.array([0.299, 0.587, 0.114])

# Average frontal face, in units of the inter-eye distance, from the eye midpoint: the
# nose tip sits 0.571 below the eye line (the common 5-point template) and about 0.5 in
# front of the eyes. (dlib's backend places the tip from the nose base it locates, so on
# LFW the median drop is 0.57.)
_NOSE_DROP: Final = 0.571
_NOSE_DEPTH: Final = 0.5


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """Where an aspect becomes an issue; the scales of the score's factors follow from them."""

    min_face_px: float = 40.0
    min_inter_eye_px: float = 20.0
    min_sharpness: float = 0.22
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 30.0
    max_roll_deg: float = 30.0
    min_brightness: float = 50.0
    max_brightness: float = 210.0
    max_clipped_fraction: float = 0.15
    min_contrast: float = 15.0


DEFAULT_THRESHOLDS: Final = QualityThresholds()


# --- measurements -----------------------------------------------------------------------


def face_patch(pixels: ImageArray, box: Box, size: int = PATCH_PX) -> Gray:
    """The box region as grey levels (0-255), resampled to ``size`` x ``size``.

    Shrinking first averages whole blocks of pixels (so a large face does not alias into
    false detail), then bilinear sampling reaches the exact size. Parts of the box outside
    the image are left out (the patch covers the part inside).
    """
    height, width = pixels.shape[:2]
    left, top = max(math.floor(box.left), 0), max(math.floor(box.top), 0)
    right, bottom = min(math.ceil(box.right), width), min(math.ceil(box.bottom), height)
    if right - left < 2 or bottom - top < 2:
        return np.zeros((size, size))
    region = pixels[top:bottom, left:right]
    gray = region.astype(np.float64) @ _LUMA if region.ndim == 3 else region.astype(np.float64)
    factor = min(gray.shape[0], gray.shape[1]) // size
    if factor >= 2:
        h, w = (gray.shape[0] // factor) * factor, (gray.shape[1] // factor) * factor
        gray = gray[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    return _bilinear(gray, size)


def _bilinear(gray: Gray, size: int) -> Gray:
    h, w = gray.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy = np.clip(ys - y0, 0.0, 1.0)[:, None]
    wx = np.clip(xs - x0, 0.0, 1.0)[None, :]
    top = gray[y0][:, x0] * (1 - wx) + gray[y0][:, x1] * wx
    bottom = gray[y1][:, x0] * (1 - wx) + gray[y1][:, x1] * wx
    out: Gray = top * (1 - wy) + bottom * wy
    return out


def sharpness(patch: Gray) -> float:
    """Standard deviation of the Laplacian over that of the grey levels.

    The Laplacian responds to fine detail, which blur removes; dividing by the contrast
    keeps a dim but sharp face from reading as blurred (exposure is judged on its own).
    """
    lap = patch[1:-1, :-2] + patch[1:-1, 2:] + patch[:-2, 1:-1] + patch[2:, 1:-1] - 4.0 * patch[1:-1, 1:-1]
    return float(np.std(lap) / (np.std(patch) + 2.0))


def estimate_pose(landmarks: Landmarks) -> tuple[float, float, float]:
    """Approximate (yaw, roll, pitch) in degrees from the eyes and the nose tip."""
    re, le, nose = landmarks.right_eye, landmarks.left_eye, landmarks.nose
    ex, ey = le.x - re.x, le.y - re.y
    ied = math.hypot(ex, ey)
    if ied < 1e-6:
        return 0.0, 0.0, 0.0
    roll = math.degrees(math.atan2(ey, ex))
    mx, my = (le.x + re.x) / 2, (le.y + re.y) / 2
    # Nose offset in the eye frame: x along the eye line, y down the face, in eye distances.
    nx = ((nose.x - mx) * ex + (nose.y - my) * ey) / ied**2
    ny = (-(nose.x - mx) * ey + (nose.y - my) * ex) / ied**2
    yaw = math.atan(nx / _NOSE_DEPTH)
    # Turning the head shortens the eye distance by cos(yaw); undo that for the drop.
    drop = ny * math.cos(yaw)
    if drop <= _NOSE_DROP:
        # Tilted back: the nose (in front of the eyes) rises towards the eye line; the exact
        # rotation of the average nose is well conditioned here.
        reach = math.hypot(_NOSE_DROP, _NOSE_DEPTH)
        pitch = math.acos(max(-1.0, drop / reach)) - math.atan2(_NOSE_DEPTH, _NOSE_DROP)
    else:
        # Bowed: the exact rotation flattens out and ends at -41 degrees, where any longer
        # drop than the average face's reach would be pinned; read it at small angles instead
        # (the same slope at zero), so it keeps falling with the drop.
        pitch = math.atan((_NOSE_DROP - drop) / _NOSE_DEPTH)
    return math.degrees(yaw), roll, math.degrees(pitch)


def exposure(patch: Gray) -> tuple[float, float, float, float]:
    """(mean brightness, contrast as standard deviation, fraction >= 250, fraction <= 5)."""
    return (
        float(patch.mean()),
        float(patch.std()),
        float((patch >= 250).mean()),
        float((patch <= 5).mean()),
    )


def outside_fraction(box: Box, width: int, height: int) -> float:
    """How much of the face box lies outside the image."""
    area = box.width * box.height
    if area <= 0:
        return 1.0
    w = max(0.0, min(box.right, width) - max(box.left, 0.0))
    h = max(0.0, min(box.bottom, height) - max(box.top, 0.0))
    return 1.0 - (w * h) / area


# --- score and issues -------------------------------------------------------------------


def _falloff(value: float, scale: float, power: float = 4.0) -> float:
    """1 at 0, 0.5 at ``scale``, towards 0 beyond: strictly decreasing for value > 0."""
    return 1.0 / (1.0 + math.pow(max(value, 0.0) / scale, power))


def _rise(value: float, scale: float, power: float = 4.0) -> float:
    """0 at 0, 0.5 at ``scale``, towards 1 beyond: strictly increasing."""
    if value <= 0:
        return 0.0
    return 1.0 / (1.0 + math.pow(scale / value, power))


@dataclass(frozen=True, slots=True)
class _Measures:
    size: float
    ied: float
    sharp: float
    yaw: float
    roll: float
    pitch: float
    brightness: float
    contrast: float
    over: float
    under: float
    outside: float


def _factors(m: _Measures, t: QualityThresholds) -> tuple[float, float, float, float]:
    """(size, sharpness, pose, exposure), each in (0, 1]; each falls as its aspect gets worse."""
    size = _rise(m.size, 0.6 * t.min_face_px) * _rise(m.ied, 0.8 * t.min_inter_eye_px)
    sharp = _rise(m.sharp, 0.7 * t.min_sharpness, power=3.0)
    pose = (
        _falloff(abs(m.yaw), 1.3 * t.max_yaw_deg)
        * _falloff(abs(m.pitch), 1.3 * t.max_pitch_deg)
        * _falloff(abs(m.roll), 2.0 * t.max_roll_deg)
    )
    mid = (t.min_brightness + t.max_brightness) / 2
    half = (t.max_brightness - t.min_brightness) / 2
    light = (
        _falloff(abs(m.brightness - mid), 1.3 * half)
        * _rise(m.contrast, 0.7 * t.min_contrast, power=2.0)
        * _falloff(m.over + m.under, 2.0 * t.max_clipped_fraction, power=2.0)
    )
    return size, sharp, pose, light


def _issues(m: _Measures, t: QualityThresholds) -> tuple[str, ...]:
    checks = (
        (m.size < t.min_face_px, f"face too small: {m.size:.0f} px < {t.min_face_px:.0f} px"),
        (
            m.ied < t.min_inter_eye_px,
            f"eyes too close together for identification: {m.ied:.0f} px < {t.min_inter_eye_px:.0f} px",
        ),
        (m.sharp < t.min_sharpness, f"blurred: sharpness {m.sharp:.2f} < {t.min_sharpness:.2f}"),
        (abs(m.yaw) > t.max_yaw_deg, f"face turned sideways: yaw about {m.yaw:+.0f} degrees"),
        (abs(m.pitch) > t.max_pitch_deg, f"head tilted up or down: pitch about {m.pitch:+.0f} degrees"),
        (abs(m.roll) > t.max_roll_deg, f"head rotated in the image: roll {m.roll:+.0f} degrees"),
        (m.brightness < t.min_brightness, f"too dark: mean brightness {m.brightness:.0f} of 255"),
        (m.brightness > t.max_brightness, f"too bright: mean brightness {m.brightness:.0f} of 255"),
        (m.under > t.max_clipped_fraction, f"underexposed: {m.under:.0%} of the face is black"),
        (m.over > t.max_clipped_fraction, f"overexposed: {m.over:.0%} of the face is white"),
        (m.contrast < t.min_contrast, f"low contrast: {m.contrast:.0f} grey levels"),
        (m.outside > 0.1, f"face cut off by the image edge: {m.outside:.0%} of it is outside"),
    )
    return tuple(text for failed, text in checks if failed)


def assess_quality(
    pixels: ImageArray, face: DetectedFace, thresholds: QualityThresholds = DEFAULT_THRESHOLDS
) -> QualityReport:
    """The quality report of one detected face in its image (H x W x 3 uint8 RGB)."""
    patch = face_patch(pixels, face.box)
    yaw, roll, pitch = estimate_pose(face.landmarks)
    brightness, contrast, over, under = exposure(patch)
    m = _Measures(
        size=(face.box.width + face.box.height) / 2.0,
        ied=face.landmarks.inter_eye_distance,
        sharp=sharpness(patch),
        yaw=yaw,
        roll=roll,
        pitch=pitch,
        brightness=brightness,
        contrast=contrast,
        over=over,
        under=under,
        outside=outside_fraction(face.box, pixels.shape[1], pixels.shape[0]),
    )
    size, sharp, pose, light = _factors(m, thresholds)
    return QualityReport(
        face_size_px=m.size,
        inter_eye_px=m.ied,
        sharpness=m.sharp,
        yaw_deg=m.yaw,
        roll_deg=m.roll,
        pitch_deg=m.pitch,
        brightness=m.brightness,
        contrast=m.contrast,
        overexposed_fraction=m.over,
        underexposed_fraction=m.under,
        score=100.0 * size * sharp * pose * light * (1.0 - m.outside),
        issues=_issues(m, thresholds),
        size_factor=100.0 * size,
        sharpness_factor=100.0 * sharp,
        pose_factor=100.0 * pose,
        exposure_factor=100.0 * light,
        outside_fraction=m.outside,
    )
