"""The pitch estimate on LFW photos: how it spreads, and how many faces fall under the enrolment floor.

LFW's news photos are mostly near frontal, so a pose estimate should spread around zero and
turn few of them down. This detects the largest face of N random DevTrain photos and
assesses its quality twice in the same run: with the current ``estimate_pose`` and, as the
baseline, with the exact rotation model it replaced (``acos`` of the nose's drop over its
reach, pinned at -41 degrees for every drop longer than the reach). It prints the pitch
percentiles, how many faces share the single most common value, how many read beyond the
pitch threshold, and how many score under the enrolment quality floor, for both.

    python bench/quality_pose.py              # 600 photos, seed 11
    python bench/quality_pose.py --photos 200 --seed 3

Development figures: DevTrain is what the defaults were built on.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from faceledger.config import Settings
from faceledger.domain.models import Landmarks
from faceledger.pipeline import quality
from faceledger.pipeline.run import Pipeline

LFW = Path(__file__).resolve().parents[2] / "shared" / "faces" / "lfw" / "images"
Pose = Callable[[Landmarks], tuple[float, float, float]]
CURRENT: Pose = quality.estimate_pose


def replaced_pose(landmarks: Landmarks) -> tuple[float, float, float]:
    """The estimate before this change, kept here only as the baseline."""
    yaw, roll, _ = CURRENT(landmarks)  # yaw and roll are unchanged
    re, le, nose = landmarks.right_eye, landmarks.left_eye, landmarks.nose
    ex, ey = le.x - re.x, le.y - re.y
    ied = math.hypot(ex, ey)
    mx, my = (le.x + re.x) / 2, (le.y + re.y) / 2
    ny = (-(nose.x - mx) * ey + (nose.y - my) * ex) / ied**2
    drop = ny * math.cos(math.radians(yaw))
    reach = math.hypot(quality._NOSE_DROP, quality._NOSE_DEPTH)
    offset = math.atan2(quality._NOSE_DEPTH, quality._NOSE_DROP)
    pitch = math.acos(max(-1.0, min(1.0, drop / reach))) - offset
    return yaw, roll, math.degrees(pitch)


@contextmanager
def pose_model(pose: Pose) -> Iterator[None]:
    original = quality.estimate_pose
    quality.estimate_pose = pose  # type: ignore[assignment]  # the module's own name, swapped
    try:
        yield
    finally:
        quality.estimate_pose = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    if not LFW.is_dir():
        print(f"no LFW photos at {LFW}: see ../shared/faces/README.md", file=sys.stderr)
        return 2
    files = sorted(LFW.rglob("*.jpg"))
    sample = random.Random(args.seed).sample(files, min(args.photos, len(files)))
    settings = Settings()
    pipeline = Pipeline.from_settings(settings, parallel_flip=False)
    faces = []
    for path in sample:
        with Image.open(path) as opened:
            pixels = np.asarray(opened.convert("RGB"))
        found = pipeline.detect(pixels)
        if found:
            faces.append((pixels, found[0]))
    floor, limit = settings.quality_floor, quality.DEFAULT_THRESHOLDS.max_pitch_deg
    print(f"{len(faces)} faces in {len(sample)} random DevTrain photos (seed {args.seed})")
    print(
        f"{'model':<10} {'pitch p1/p5/p50/p95/p99 (deg)':<34} {'most shared':>11} "
        f"{'|pitch|>' + str(limit):>12} {'score<' + str(floor):>10}"
    )
    for name, pose in (("replaced", replaced_pose), ("current", CURRENT)):
        with pose_model(pose):
            reports = [quality.assess_quality(pixels, face) for pixels, face in faces]
        pitches = [r.pitch_deg for r in reports]
        spread = "/".join(f"{p:+.1f}" for p in np.percentile(pitches, [1, 5, 50, 95, 99]))
        shared = Counter(round(p, 3) for p in pitches).most_common(1)[0][1]
        beyond = sum(abs(p) > limit for p in pitches)
        low = sum(r.score < floor for r in reports)
        print(f"{name:<10} {spread:<34} {shared:>11} {beyond:>12} {low:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
