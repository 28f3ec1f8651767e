"""faceledger against face_recognition (ageitgey), in the same run, on the same photos.

Prints, side by side and as ratios:
  accuracy  LFW DevTrain pairs (2,200): 10-fold accuracy and the photos without a face found, for
            the peer's default pipeline and for each faceledger configuration (default, fast, and
            the default without its CNN rescue pass);
  identify  open-set 1:N on all 9,525 DevTrain photos through the real gallery path: the first
            photo of each of the 1,184 people with two or more is enrolled with faceledger's own
            enrolment (screening, face choice, quality floor), the other 5,487 photos are mated
            probes, the 2,854 people with one photo are non-mated probes; share of gallery photos
            turned down, rank-1, rank-10, FNIR at FPIR 1% and 0.3%, against the peer enrolling
            the same photos (exhaustive search on both sides);
  enrol     images per second enrolling the same folder (1,000 LFW photos), both sides on both
            cores, taking turns for three rounds (medians); faceledger also stores images,
            provenance and the vector index;
  probe     a 1-megapixel JPEG with one face to a candidate list against a gallery of the largest
            size: faceledger's search service vs the peer's detect + encode + face_distance;
  search    the search step alone at each gallery size (10k, 100k, 1M: real LFW descriptors plus
            generated distractors), recall@50 of the approximate index against exact search, and
            memory per enrolled face.

    python bench/compare_peer.py                     # everything (about an hour here, the first time)
    python bench/compare_peer.py --quick             # a smoke run of every section (a minute or two)
    python bench/compare_peer.py --sections accuracy,enrol

Embeddings for the accuracy section are cached under bench/results/ (gitignored), so reruns are
quicker; timing sections are always measured afresh.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faceledger.config import EmbedderSettings, Settings
from faceledger.domain import metrics
from faceledger.services import evaluation, galleries
from index_search import Generator, real_descriptors

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LFW = REPO.parent / "shared" / "faces" / "lfw"
SECTIONS = ("accuracy", "identify", "enrol", "probe", "search")
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Config:
    """A faceledger configuration an operator can choose."""

    label: str
    flip: bool
    rescue: str | None = None  # None: the default cascade's

    def settings(self, data_dir: Path | None = None, workers: int = 2) -> Settings:
        base = Settings() if data_dir is None else Settings(data_dir=data_dir)
        rescue = base.detector.rescue if self.rescue is None else self.rescue
        detector = dataclasses.replace(base.detector, rescue=rescue)
        return dataclasses.replace(
            base, detector=detector, embedder=EmbedderSettings(flip=self.flip), workers=workers
        )


CONFIGS = (
    Config("faceledger default (flip, CNN rescue)", True),
    Config("faceledger fast (no flip)", False),
)
#: Measured for accuracy only: the cascade without its CNN rescue pass (the default before).
WITHOUT_RESCUE = (Config("faceledger without CNN rescue", True, "none"),)


# --- the peer ------------------------------------------------------------------------------


def peer_encode(path: str) -> F64 | None:
    """face_recognition's default pipeline on one photo; the face nearest the centre (LFW convention)."""
    import face_recognition

    image = face_recognition.load_image_file(path)
    locations = face_recognition.face_locations(image)
    if not locations:
        return None
    h, w = image.shape[:2]

    def off_centre(loc: tuple[int, int, int, int]) -> float:
        top, right, bottom, left = loc
        return float(((left + right) / 2 - w / 2) ** 2 + ((top + bottom) / 2 - h / 2) ** 2)

    chosen = min(locations, key=off_centre)
    return np.asarray(face_recognition.face_encodings(image, [chosen])[0], dtype=np.float64)


def peer_embeddings(paths: Sequence[Path], workers: int) -> dict[Path, F64 | None]:
    cache = RESULTS / "peer_face_recognition_embeddings.npz"
    known: dict[str, F64 | None] = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            for key, vector, ok in zip(data["paths"], data["vectors"], data["ok"], strict=True):
                known[str(key)] = vector if ok else None
    missing = [p for p in paths if str(p) not in known]
    if missing:
        print(
            f"  peer: embedding {len(missing)} photos with face_recognition ({workers} processes)...",
            flush=True,
        )
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            jobs = pool.imap(peer_encode, [str(p) for p in missing], 8)
            for done, (path, vector) in enumerate(zip(missing, jobs, strict=True), start=1):
                known[str(path)] = vector
                if done % 500 == 0 or done == len(missing):
                    _save_peer(cache, known)
    return {p: known[str(p)] for p in paths}


def _save_peer(cache: Path, known: dict[str, F64 | None]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = sorted(known)
    partial = cache.with_name(cache.stem + ".partial.npz")
    np.savez(
        partial,
        paths=np.array(keys),
        vectors=np.stack([_or_zeros(known[k]) for k in keys]),
        ok=np.array([known[k] is not None for k in keys]),
    )
    partial.replace(cache)


def _or_zeros(vector: F64 | None) -> F64:
    return np.zeros(128) if vector is None else vector


# --- accuracy ------------------------------------------------------------------------------


def _pairs_file(pairs: Path, limit: int | None, workdir: Path) -> Path:
    """The DevTrain pairs, or its first ``limit`` same and different pairs (quick runs)."""
    if limit is None:
        return pairs
    lines = pairs.read_text(encoding="utf-8").splitlines()
    half = int(lines[0])
    same, diff = lines[1 : 1 + half][:limit], lines[1 + half :][:limit]
    out = workdir / "pairs_subset.txt"
    out.write_text("\n".join([str(limit), *same, *diff]) + "\n", encoding="utf-8")
    return out


def run_accuracy(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    images = args.lfw / "images"
    pairs = _pairs_file(args.lfw / "pairsDevTrain.txt", 50 if args.quick else None, workdir)
    protocol = evaluation.parse_pairs(pairs)
    paths = evaluation.protocol_images(protocol, images)
    same = np.array([p.same for p in protocol.pairs])
    folds = np.arange(len(protocol.pairs)) % 10
    print(
        f"\n== accuracy: {pairs.name}, {same.sum()} same + {(~same).sum()} different pairs, "
        f"{len(paths)} photos"
    )

    out: dict[str, dict[str, float]] = {}
    peer = peer_embeddings(paths, args.workers)
    scores = np.full(len(protocol.pairs), np.nan)
    for row, pair in enumerate(protocol.pairs):
        a = peer[evaluation.lfw_image_path(images, pair.name_a, pair.index_a)]
        b = peer[evaluation.lfw_image_path(images, pair.name_b, pair.index_b)]
        if a is not None and b is not None:
            scores[row] = -float(np.linalg.norm(a - b))  # the peer's face_distance, negated: higher = closer
    out["face_recognition (peer)"] = _accuracy_row(scores, same, folds, peer.values())

    for config in CONFIGS + WITHOUT_RESCUE:
        spec = evaluation.pipeline_spec(config.settings(workers=args.workers))
        table = evaluation.embed_images(paths, spec, cache_dir=RESULTS, workers=args.workers)
        ours = evaluation.pair_scores(protocol, images, table).astype(np.float64)
        out[config.label] = _accuracy_row(ours, same, folds, table.vectors.values())
    peer_acc = out["face_recognition (peer)"]["accuracy"]
    peer_fta = out["face_recognition (peer)"]["fta_images"]
    print(f"  {'pipeline':38} {'10-fold acc':>11} {'± sd':>6} {'no face':>8} {'share':>7} {'vs peer':>9}")
    for label, result_row in out.items():
        print(
            f"  {label:38} {result_row['accuracy'] * 100:10.2f}% {result_row['std'] * 100:6.2f} "
            f"{int(result_row['fta_images']):8d} {result_row['fta_images'] / len(paths) * 100:6.2f}% "
            f"{(result_row['accuracy'] - peer_acc) * 100:+8.2f}pp"
        )
    print(f"  (no face: of the {len(paths):,} photos, those where no face was found; a pair with no face")
    print("   on a side counts as a wrong decision)")
    for config in CONFIGS[:1]:
        chosen = out[config.label]
        checks = (
            ("LFW accuracy at least 1.0 point above the peer's", chosen["accuracy"] - peer_acc >= 0.01),
            ("fewer photos without a face than the peer", chosen["fta_images"] < peer_fta),
        )
        for text, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {config.label}: {text}")
    return out


def _accuracy_row(scores: F64, same: npt.NDArray[np.bool_], folds: Any, vectors: Any) -> dict[str, float]:
    # A NaN score is a failure to acquire: kfold_accuracy counts such a pair as a wrong decision.
    failed = np.isnan(scores)
    result = metrics.kfold_accuracy(scores, same, folds)
    return {
        "accuracy": result.mean,
        "std": result.std,
        "fta_images": float(sum(v is None for v in vectors)),
        "failed_pairs": float(failed.sum()),
    }


# --- identification through the gallery ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IdentifyProtocol:
    """Open-set 1:N on DevTrain: each person with two or more photos is enrolled from the first."""

    gallery: dict[str, Path]  # person -> the photo enrolled
    mated: list[tuple[str, Path]]  # (person, photo) for every other photo of an enrolled person
    nonmated: list[Path]  # the one photo of each person with a single photo (never enrolled)

    @classmethod
    def of(cls, images: Path, limit: int | None = None) -> IdentifyProtocol:
        people = evaluation.scan_people(images)
        several = [name for name, photos in people.items() if len(photos) >= 2]
        singles = [name for name, photos in people.items() if len(photos) == 1]
        if limit is not None:
            several, singles = several[:limit], singles[:limit]
        return cls(
            gallery={name: people[name][0] for name in several},
            mated=[(name, photo) for name in several for photo in people[name][1:]],
            nonmated=[people[name][0] for name in singles],
        )


@dataclasses.dataclass(frozen=True)
class Searches:
    """Each probe's outcome: mate rank (0: not found) and score (NaN), non-mated top score (NaN)."""

    ranks: npt.NDArray[np.int64]
    mate_scores: F64
    nonmated_top: F64
    mated_scores: F64  # (mated probes x gallery), NaN rows for probes without a face
    nonmated_scores: F64  # (non-mated probes x gallery)

    @classmethod
    def of(
        cls, gallery_names: Sequence[str], mated_names: Sequence[str], mated_scores: F64, nonmated_scores: F64
    ) -> Searches:
        """Mate ranks and scores, and non-mated best scores, from the two score matrices."""
        column = {name: i for i, name in enumerate(gallery_names)}
        cols = np.array([column.get(name, -1) for name in mated_names], dtype=np.int64)
        present = cols >= 0
        ranks = np.zeros(len(cols), dtype=np.int64)
        mate = np.full(len(cols), np.nan)
        if present.any():
            ranks[present] = metrics.mate_ranks(mated_scores[present], cols[present])
            mate[present] = mated_scores[present, cols[present]]
        top = (
            nonmated_scores.max(axis=1) if nonmated_scores.shape[1] else np.full(len(nonmated_scores), np.nan)
        )
        return cls(ranks, mate, top, mated_scores, nonmated_scores)


def search_all(
    gallery_names: Sequence[str],
    gallery: F64,
    mated: Sequence[tuple[str, F64 | None]],
    nonmated: Sequence[F64 | None],
) -> Searches:
    """Exhaustive search of every probe against the gallery matrix (one row per enrolled person).

    A mated probe whose person is not in the gallery (turned down at enrolment) or that has
    no face is a miss at every rank; a non-mated probe without a face returns no candidate.
    """
    dim = gallery.shape[1]

    def matrix(vectors: Sequence[F64 | None]) -> F64:
        scores: F64 = evaluation.stack_rows(vectors, dim) @ gallery.T
        return scores

    return Searches.of(gallery_names, [n for n, _ in mated], matrix([v for _, v in mated]), matrix(nonmated))


def open_set_row(searches: Searches, fpirs: Sequence[float] = (0.01, 0.003)) -> dict[str, float]:
    """Rank-1, rank-10 (closed set, over every mated probe) and FNIR at each FPIR (open set)."""
    cmc = metrics.cmc(searches.ranks, 20)
    row = {"rank1": float(cmc[0]), "rank5": float(cmc[4]), "rank10": float(cmc[9]), "rank20": float(cmc[19])}
    for fpir in fpirs:
        threshold = metrics.threshold_at_fpir(searches.nonmated_top, fpir)
        row[f"threshold@{fpir:g}"] = threshold
        row[f"fpir@{fpir:g}"] = metrics.fpir_at(searches.nonmated_top, threshold)
        row[f"fnir@{fpir:g}"] = metrics.fnir_at(searches.mate_scores, searches.ranks, threshold)
    return row


def enrol_gallery(
    protocol: IdentifyProtocol, config: Config, workdir: Path, workers: int
) -> tuple[list[str], F64, Any]:
    """Enrol the gallery photos with ``faceledger``'s own enrolment; their stored vectors, by person."""
    from sqlalchemy import select

    from faceledger import library
    from faceledger.adapters.store import repository
    from faceledger.adapters.store import tables as t

    folder = workdir / "identify-gallery"
    for name, photo in protocol.gallery.items():
        target = folder / name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, target)
    data_dir = workdir / "identify-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    with library.open(create=True, settings=config.settings(data_dir, workers=workers)) as ledger:
        ledger.create_gallery(
            "devtrain",
            legal_basis="benchmark",
            source_description="LFW DevTrain",
            required_provenance=["source"],
        )
        result = ledger.enroll("devtrain", folder, enrolled_by="bench")
        with ledger.data_dir.store.read() as conn:
            rows = conn.execute(
                select(t.subjects.c.external_id, t.faces.c.embedding).join(
                    t.faces, t.faces.c.subject_id == t.subjects.c.id
                )
            ).all()
    shutil.rmtree(data_dir, ignore_errors=True)
    names = [str(name) for name, _ in rows]
    vectors = np.stack([repository.decode_embedding(blob) for _, blob in rows]).astype(np.float64)
    return names, vectors, result


def run_identify(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    """Open-set identification on DevTrain through enrolment, faceledger's default against the peer."""
    protocol = IdentifyProtocol.of(args.lfw / "images", 40 if args.quick else None)
    probes = [photo for _, photo in protocol.mated] + protocol.nonmated
    print(
        f"\n== identification through the gallery: {len(protocol.gallery):,} people enrolled from their "
        f"first photo, {len(protocol.mated):,} mated probes (their other photos), "
        f"{len(protocol.nonmated):,} non-mated probes (people with one photo, not enrolled)"
    )
    out: dict[str, dict[str, float]] = {}
    peer = peer_embeddings([*protocol.gallery.values(), *probes], args.workers)
    peer_names = [name for name, photo in protocol.gallery.items() if peer[photo] is not None]
    peer_gallery = np.stack([peer[protocol.gallery[name]] for name in peer_names])  # type: ignore[misc]
    # The peer's own score: face_distance (Euclidean), negated so that higher means closer.
    peer_searches = _peer_search(
        peer_names,
        peer_gallery,
        [(n, peer[p]) for n, p in protocol.mated],
        [peer[p] for p in protocol.nonmated],
    )
    out["face_recognition (peer)"] = open_set_row(peer_searches) | {
        "turned_down": float(len(protocol.gallery) - len(peer_names)),
        "gallery": float(len(protocol.gallery)),
    }
    config = CONFIGS[0]
    names, vectors, result = enrol_gallery(protocol, config, workdir, args.workers)
    spec = evaluation.pipeline_spec(config.settings(workers=args.workers))
    table = evaluation.embed_images(probes, spec, cache_dir=RESULTS, workers=args.workers)
    ours = search_all(
        names,
        vectors,
        [(n, _f64(table.vectors[p])) for n, p in protocol.mated],
        [_f64(table.vectors[p]) for p in protocol.nonmated],
    )
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped_by_reason().items())) or "none"
    out[config.label] = open_set_row(ours) | {
        "turned_down": float(len(result.skipped)),
        "gallery": float(len(protocol.gallery)),
    }
    print(
        f"  faceledger enrolment turned down: {reasons}; "
        f"faces chosen among several: {result.chosen_by_rule()}"
    )
    _print_identify(out)
    return out


def _f64(vector: Any) -> F64 | None:
    return None if vector is None else np.asarray(vector, dtype=np.float64)


def _peer_search(
    names: Sequence[str],
    gallery: F64,
    mated: Sequence[tuple[str, F64 | None]],
    nonmated: Sequence[F64 | None],
) -> Searches:
    """:func:`search_all` with the peer's score, minus the Euclidean distance between encodings."""
    squared = (gallery**2).sum(axis=1)

    def as_distance(scores: F64, vectors: Sequence[F64 | None]) -> F64:
        norms = np.array([np.nan if v is None else float(v @ v) for v in vectors])
        distance: F64 = np.sqrt(np.maximum(norms[:, None] + squared[None, :] - 2 * scores, 0.0))
        return -distance

    raw = search_all(names, gallery, mated, nonmated)
    mated_d = as_distance(raw.mated_scores, [v for _, v in mated])
    return Searches.of(names, [n for n, _ in mated], mated_d, as_distance(raw.nonmated_scores, nonmated))


def _print_identify(out: dict[str, dict[str, float]]) -> None:
    peer = out["face_recognition (peer)"]
    print(
        f"  {'pipeline':38} {'turned down':>11} {'rank-1':>7} {'rank-10':>8} "
        f"{'FNIR@FPIR1%':>12} {'FNIR@FPIR0.3%':>14}"
    )
    for label, row in out.items():
        print(
            f"  {label:38} {row['turned_down'] / row['gallery'] * 100:10.2f}% {row['rank1'] * 100:6.2f}% "
            f"{row['rank10'] * 100:7.2f}% {row['fnir@0.01'] * 100:11.2f}% {row['fnir@0.003'] * 100:13.2f}%"
        )
    for label, row in out.items():
        if label == "face_recognition (peer)":
            continue
        turned = row["turned_down"] / row["gallery"]
        checks = (
            ("gallery photos turned down <= 1%", turned <= 0.01),
            ("rank-1 above the peer's", row["rank1"] > peer["rank1"]),
            ("FNIR at FPIR 1% at least 25% below the peer's", row["fnir@0.01"] <= 0.75 * peer["fnir@0.01"]),
        )
        for text, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}: {text}")
    print(
        "  (a probe without a face, or whose person was turned down, is a miss; FPIR counts non-mated probes)"
    )


# --- enrolment -----------------------------------------------------------------------------


def enrol_folder(args: argparse.Namespace, workdir: Path) -> tuple[Path, list[Path]]:
    """The first N photos of LFW (by person folder), copied into <folder>/<person>/."""
    folder = workdir / "enrol"
    chosen: list[Path] = []
    for person in sorted((args.lfw / "images").iterdir()):
        for photo in sorted(person.glob("*.jpg")):
            target = folder / person.name / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
            chosen.append(target)
            if len(chosen) == args.enrol_images:
                return folder, chosen
    return folder, chosen


def _peer_enrol_rate(photos: Sequence[Path], workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        found = pool.map(peer_encode, [str(p) for p in photos], 4)
    return len(photos) / (time.perf_counter() - start), sum(f is not None for f in found)


def _enrol_rate(
    config: Config, folder: Path, photos: Sequence[Path], data_dir: Path, workers: int
) -> tuple[float, Any]:
    from faceledger import library

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = config.settings(data_dir, workers=workers)
    with library.open(create=True, settings=settings) as ledger:
        ledger.create_gallery(
            "bench", legal_basis="benchmark", source_description="LFW", required_provenance=["source"]
        )
        start = time.perf_counter()
        result = ledger.enroll("bench", folder, enrolled_by="bench")
        seconds = time.perf_counter() - start
    shutil.rmtree(data_dir, ignore_errors=True)
    return len(photos) / seconds, result


def run_enrol(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Images per second, each side run ``--enrol-repeats`` times in turn; medians, and their ratios.

    The sides take turns so that a slow spell of this shared machine falls on all of them.
    """
    folder, photos = enrol_folder(args, workdir)
    print(
        f"\n== enrolment: {len(photos)} LFW photos, {args.workers} processes on each side, "
        f"{args.enrol_repeats} rounds (median, range)"
    )
    peer = "face_recognition (peer)"
    runs: dict[str, list[float]] = {peer: [], **{c.label: [] for c in CONFIGS}}
    notes: dict[str, str] = {}
    for _ in range(args.enrol_repeats):
        rate, encoded = _peer_enrol_rate(photos, args.workers)
        runs[peer].append(rate)
        notes[peer] = f"{encoded} encoded; detect + encode only, nothing stored"
        for config in CONFIGS:
            rate, result = _enrol_rate(config, folder, photos, workdir / "enrol-data", args.workers)
            runs[config.label].append(rate)
            done = f"{len(result.enrolled)} enrolled, {len(result.skipped)} skipped"
            notes[config.label] = f"{done}; images, provenance, index stored"
    rates = {label: statistics.median(values) for label, values in runs.items()}
    for label, values in runs.items():
        ratio = "" if label == peer else f" = {rates[label] / rates[peer]:.2f}x the peer"
        print(
            f"  {label:34} {rates[label]:6.2f} images/s ({min(values):.2f}-{max(values):.2f}){ratio}  "
            f"[{notes[label]}]"
        )
    return rates


# --- galleries of 10k .. 1M ----------------------------------------------------------------


def bulk_add(ledger: Any, gallery: str, vectors: F32, model: Any) -> None:
    """Insert generated distractor faces straight into the store (no photos behind them)."""
    from sqlalchemy import func, insert, select

    from faceledger.adapters.store import repository
    from faceledger.adapters.store import tables as t

    dd = ledger.data_dir
    now = repository.utcnow()
    with dd.writing(), dd.store.begin() as conn:
        g = repository.get_gallery(conn, gallery)
        repository.ensure_model(conn, model)
        base = int(conn.execute(select(func.coalesce(func.max(t.faces.c.id), 0))).scalar_one())
        sbase = int(conn.execute(select(func.coalesce(func.max(t.subjects.c.id), 0))).scalar_one())
        ibase = int(conn.execute(select(func.coalesce(func.max(t.images.c.id), 0))).scalar_one())
        for start in range(0, len(vectors), 50_000):
            stop = min(len(vectors), start + 50_000)
            rows = range(start, stop)
            conn.execute(insert(t.subjects), [
                {"id": sbase + i + 1, "gallery_id": g.id, "external_id": f"distractor-{i:07d}",
                 "created_at": now}
                for i in rows
            ])  # fmt: skip
            conn.execute(insert(t.images), [
                {"id": ibase + i + 1, "gallery_id": g.id, "subject_id": sbase + i + 1, "sha256": f"{i:064x}",
                 "format": "none", "width": 0, "height": 0, "byte_size": 0, "source": "generated distractor",
                 "enrolled_by": "bench", "enrolled_at": now}
                for i in rows
            ])  # fmt: skip
            conn.execute(insert(t.faces), [
                {"id": base + i + 1, "image_id": ibase + i + 1, "subject_id": sbase + i + 1,
                 "gallery_id": g.id,
                 "face_index": 0, "box": {}, "landmarks": {}, "quality": {}, "quality_score": 0.0,
                 "detector": "none", "detector_score": 0.0, "model_key": model.key,
                 "embedding": repository.encode_embedding(vectors[i], model.dim), "created_at": now}
                for i in rows
            ])  # fmt: skip


def one_megapixel_jpeg(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        big = image.convert("RGB").resize((1000, 1000), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def one_megapixel_background(path: Path) -> bytes:
    """A 1000 x 1000 JPEG of the top-left corner of an LFW photo: background, no face in it."""
    from PIL import Image

    with Image.open(path) as image:
        corner = image.convert("RGB").crop((0, 0, 60, 60))
    big = corner.resize((1000, 1000), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run_search(args: argparse.Namespace, workdir: Path, probe_too: bool, search_too: bool) -> dict[str, Any]:
    import face_recognition

    from faceledger import library

    _, real = real_descriptors(args.lfw)
    generator = Generator.fit(real)
    rng = np.random.default_rng(7)
    largest = max(args.sizes)
    distractors = generator.sample(largest, rng)
    out: dict[str, Any] = {}
    probe_person = "George_W_Bush"
    probe_photo = args.lfw / "images" / probe_person / f"{probe_person}_0001.jpg"
    probe_bytes = one_megapixel_jpeg(probe_photo)
    probe_file = workdir / "probe-1mp.jpg"
    probe_file.write_bytes(probe_bytes)
    no_face_file = workdir / "no-face-1mp.jpg"
    no_face_file.write_bytes(one_megapixel_background(probe_photo))
    mate_folder = workdir / "mates" / probe_person
    mate_folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.lfw / "images" / probe_person / f"{probe_person}_0002.jpg", mate_folder / "mate.jpg")

    if search_too:
        print(f"\n== search step alone: single query, one thread; {args.queries} real probes")
        print(
            f"  {'gallery':>9} {'exact ms':>9} {'ANN ms':>8} {'peer ms':>9} {'peer/ours':>10} "
            f"{'recall@50':>10} {'bytes/face':>11}"
        )
    for size in sorted(args.sizes):
        data_dir = workdir / f"gallery-{size}"
        with library.open(data_dir, create=True, workers=1) as ledger:
            ledger.create_gallery(
                "bench",
                legal_basis="benchmark",
                source_description="LFW + distractors",
                required_provenance=["source"],
            )
            ledger.enroll("bench", mate_folder.parent, enrolled_by="bench", workers=1)
            model = ledger.pipeline.model
            bulk_add(ledger, "bench", distractors[: size - 1], model)
            build = time.perf_counter()
            import faiss

            faiss.omp_set_num_threads(args.workers)  # build on every core; searches stay on one
            with ledger.data_dir.writing():
                g = galleries.get_gallery(ledger.data_dir, "bench")
                # Reopen the index: it is reconciled with the database, taking in the distractors.
                ledger.data_dir.forget_index(g, model.key)
                index = ledger.data_dir.index(g, model)
            build_s = time.perf_counter() - build
            faiss.omp_set_num_threads(1)
            print(f"  gallery of {size:,}: index ready in {build_s:.0f} s", file=sys.stderr, flush=True)
            n = len(index)
            row: dict[str, Any] = {
                "size": n,
                "build_s": build_s,
                "index_bytes_per_face": index.memory_bytes() / n,
            }
            db_bytes = (data_dir / "faceledger.db").stat().st_size
            row["db_bytes_per_face"] = db_bytes / n
            if search_too:
                row |= _search_row(ledger, index, real[: args.queries], model)
                print(
                    f"  {n:9,d} {row['exact_ms']:9.2f} {row['ann_ms']:8.2f} {row['peer_ms']:9.1f} "
                    f"{row['peer_ms'] / row['ann_ms']:9.0f}x {row['recall50']:10.4f} "
                    f"{row['index_bytes_per_face'] + row['db_bytes_per_face']:11,.0f}"
                )
            if probe_too and size == largest:
                row |= _probe_row(ledger, probe_file, distractors[: size - 1], args, face_recognition)
                row |= _no_face_row(ledger, no_face_file, args)
            out[str(size)] = row
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def _search_row(ledger: Any, index: Any, queries: F32, model: Any) -> dict[str, Any]:
    """Exact search over exactly the gallery's vectors (from the store) against the served index."""
    import face_recognition
    import faiss

    from faceledger.adapters.store import repository

    with ledger.data_dir.store.read() as conn:
        ids, vectors = repository.face_vectors(conn, [int(i) for i in index.ids()], model.dim)
    k = 50
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    faiss.omp_set_num_threads(1)
    exact_ms = _median_ms(lambda: [flat.search(q[None], k) for q in queries], 1) / len(queries)
    truth = ids[flat.search(queries, k)[1]]
    ann_times = []
    recall = []
    for q, want in zip(queries, truth, strict=True):
        start = time.perf_counter()
        _, got = index.search(q[None], k)
        ann_times.append((time.perf_counter() - start) * 1000)
        recall.append(len(set(got[0].tolist()) & set(want.tolist())) / k)
    peer_gallery = vectors.astype(np.float64)
    peer_ms = _median_ms(
        lambda: face_recognition.face_distance(peer_gallery, queries[0].astype(np.float64)), 5
    )
    return {
        "exact_ms": exact_ms,
        "ann_ms": statistics.median(ann_times),
        "peer_ms": peer_ms,
        "recall50": float(np.mean(recall)),
    }


def _probe_row(
    ledger: Any, probe: Path, distractors: F32, args: argparse.Namespace, fr: Any
) -> dict[str, Any]:
    print(
        f"\n== probe to candidate list: 1000x1000 JPEG, one face, gallery of {len(distractors) + 1:,} faces"
    )
    ledger.search(probe, ["bench"])  # warm: models and index loaded, as in a running service
    ours_ms = []
    stages: dict[str, list[float]] = {"analyse": [], "search": [], "templates": []}
    top = None
    for _ in range(args.probe_runs):
        start = time.perf_counter()
        result = ledger.search(probe, ["bench"], top_k=10)
        ours_ms.append((time.perf_counter() - start) * 1000)
        top = result.faces[0].subjects[0].subject_id
        for stage, times in stages.items():
            times.append(result.timings_ms[stage])
    peer_gallery = np.vstack([distractors.astype(np.float64), np.zeros((1, distractors.shape[1]))])
    known = fr.face_encodings(
        fr.load_image_file(str(args.lfw / "images" / "George_W_Bush" / "George_W_Bush_0002.jpg"))
    )
    peer_gallery[-1] = known[0]
    peer_ms = []
    for _ in range(args.probe_runs):
        start = time.perf_counter()
        image = fr.load_image_file(str(probe))
        encodings = fr.face_encodings(image, fr.face_locations(image))
        distances = fr.face_distance(peer_gallery, encodings[0])
        int(np.argmin(distances))
        peer_ms.append((time.perf_counter() - start) * 1000)
    ours, peer = statistics.median(ours_ms), statistics.median(peer_ms)
    print(
        f"  faceledger search service: median {ours:7.1f} ms (p90 {np.percentile(ours_ms, 90):.1f}; "
        f"top subject {top})"
    )
    print(
        "  of which (medians): decode + detect + align + embed "
        f"{statistics.median(stages['analyse']):.1f} ms, index search + candidate records "
        f"{statistics.median(stages['search']):.1f} ms (subject templates from the stored vectors "
        f"{statistics.median(stages['templates']):.1f} ms of it)"
    )
    print(f"  face_recognition:          median {peer:7.1f} ms (p90 {np.percentile(peer_ms, 90):.1f})")
    print(f"  ratio: faceledger is {peer / ours:.2f}x faster")
    print(f"  {'PASS' if ours < 150 else 'FAIL'}  probe median under 150 ms at this gallery size")
    return {"probe_ms": ours, "peer_probe_ms": peer, "probe_top_subject": top}


#: The documented bound on a probe in which no face is found (docs/evaluation.md).
NO_FACE_BOUND_MS = 2000.0


def _no_face_row(ledger: Any, probe: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A 1 MP probe without a face: every detector pass runs, the CNN rescue last."""
    from faceledger.errors import NoFaceError

    def search() -> int:
        try:
            return len(ledger.search(probe, ["bench"]).faces)
        except NoFaceError:
            return 0

    found = search()
    runs = max(3, args.probe_runs // 3)
    ms = _median_ms(search, runs)
    ok = found == 0 and ms <= NO_FACE_BOUND_MS
    print(
        f"  a 1 MP probe without a face: median {ms:7.1f} ms over {runs} runs, {found} faces found; "
        f"{'PASS' if ok else 'FAIL'} (bound {NO_FACE_BOUND_MS:.0f} ms)"
    )
    return {"no_face_probe_ms": ms, "no_face_found": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lfw", type=Path, default=LFW, help="LFW folder (images/, pairsDevTrain.txt)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="gallery sizes for search and probe")
    parser.add_argument("--enrol-images", type=int, default=1000)
    parser.add_argument("--enrol-repeats", type=int, default=3, help="rounds of the enrolment section")
    parser.add_argument("--probe-runs", type=int, default=21)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every section")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.sizes, args.enrol_images, args.probe_runs, args.queries = [2000], 20, 3, 20
        args.enrol_repeats = 1
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if not (args.lfw / "images").is_dir():
        print(f"LFW photos not found at {args.lfw}: pass --lfw DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="faceledger-bench-") as tmp:
        workdir = Path(tmp)
        accuracy = run_accuracy(args, workdir) if "accuracy" in sections else {}
        if "identify" in sections:
            run_identify(args, workdir)
        speed = run_enrol(args, workdir) if "enrol" in sections else {}
        if accuracy and speed:
            print_choice(accuracy, speed)
        if "probe" in sections or "search" in sections:
            run_search(args, workdir, probe_too="probe" in sections, search_too="search" in sections)
    return 0


def print_choice(accuracy: dict[str, dict[str, float]], speed: dict[str, float]) -> None:
    """Each configuration's accuracy and enrolment speed side by side, for an operator to choose."""
    peer = "face_recognition (peer)"
    print("\n== the configurations side by side")
    print(f"  {'':34} {'LFW 10-fold':>11} {'no face':>8} {'enrol img/s':>12} {'vs peer':>8}")
    for label in (peer, *(c.label for c in CONFIGS)):
        row = accuracy[label]
        print(
            f"  {label:34} {row['accuracy'] * 100:10.2f}% {int(row['fta_images']):8d} "
            f"{speed[label]:12.2f} {speed[label] / speed[peer]:7.2f}x"
        )


if __name__ == "__main__":
    raise SystemExit(main())
