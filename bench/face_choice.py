"""Detection and the face rule on every LFW DevTrain photo: how many photos enrolment could take.

Runs the default detector cascade (HOG passes, then the CNN rescue where they find nothing)
on every photo, and prints how many photos yield no face, one face, or several; for those
with several, how many the enrolment rule (``faceledger.domain.face_choice``) resolves by
each clause and how many stay ambiguous; and how many faces were found only by the rescue.
As the baseline, the rule enrolment had before (exactly one face, else turned down).

    python bench/face_choice.py                 # all 9,525 photos, both cores (a few minutes)
    python bench/face_choice.py --photos 500    # a random sample

Development figures: LFW photos are centred on their subject by construction.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
from collections import Counter
from pathlib import Path

from faceledger.domain.face_choice import Ambiguous, choose_subject_face
from faceledger.domain.models import Box

LFW = Path(__file__).resolve().parents[2] / "shared" / "faces" / "lfw" / "images"

_PIPELINE = None


def detect(path: str) -> tuple[int, int, list[tuple[Box, str]]]:
    """(width, height, [(box, detector)]) of one photo with the default settings."""
    global _PIPELINE  # one pipeline per worker process
    from faceledger.config import Settings
    from faceledger.pipeline.ingest import load_image
    from faceledger.pipeline.run import Pipeline

    if _PIPELINE is None:
        _PIPELINE = Pipeline.from_settings(Settings(), parallel_flip=False)
    image = load_image(path, _PIPELINE.image_limits)
    faces = _PIPELINE.detect(image.pixels)
    return image.width, image.height, [(f.box, f.detector) for f in faces]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--photos", type=int, default=0, help="a random sample of this many (0: all)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not LFW.is_dir():
        print(f"no LFW photos at {LFW}: see ../shared/faces/README.md", file=sys.stderr)
        return 2
    files = sorted(str(p) for p in LFW.rglob("*.jpg"))
    if args.photos:
        files = random.Random(args.seed).sample(files, min(args.photos, len(files)))
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        found = pool.map(detect, files, 16)
    per_photo = Counter(min(len(faces), 2) for _, _, faces in found)
    rescued = sum(1 for _, _, faces in found for _, by in faces if by.startswith("dlib-cnn"))
    outcome: Counter[str] = Counter()
    for width, height, faces in found:
        if len(faces) < 2:
            continue
        choice = choose_subject_face([box for box, _ in faces], width, height)
        outcome["ambiguous" if isinstance(choice, Ambiguous) else str(getattr(choice, "rule", "?"))] += 1
    several = per_photo[2]
    print(f"{len(files):,} DevTrain photos, default detector (HOG cascade + CNN rescue)")
    print(f"  no face {per_photo[0]:,}; one face {per_photo[1]:,}; several faces {several:,}")
    print(f"  faces found only by the CNN rescue: {rescued:,}")
    largest, centre = outcome["largest"], outcome["centre"]
    print(f"  several faces, chosen by 'largest': {largest:,}, by 'centre': {centre:,}")
    print(f"  several faces, still ambiguous (turned down): {outcome['ambiguous']:,}")
    turned_before, turned_now = per_photo[0] + several, per_photo[0] + outcome["ambiguous"]
    print(
        f"  turned down for their faces (before quality): exactly-one-face rule {turned_before:,} "
        f"({turned_before / len(files):.2%}), this rule {turned_now:,} ({turned_now / len(files):.2%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
