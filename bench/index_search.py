"""Recall and latency of the embedded vector index: exact (flat) against HNSW, 10k to 1M faces.

Real dlib descriptors of LFW photos give the enrolled people and the probes; the rest of each
gallery is generated distractors drawn from a Gaussian fitted to the real descriptors (mean and
covariance), then L2-normalised, so that they sit in the same narrow cone as real faces.

    python bench/index_search.py                       # 10k, 100k and 1M
    python bench/index_search.py --sizes 10000,100000  # quicker
    python bench/index_search.py --embed-only          # just compute/cache the real descriptors

Per size: build time, memory per face, single-probe latency of exact and HNSW search (one
thread; wall and CPU time, since the cores are shared), and recall@1/10/50 of HNSW against
exact search over real probes (other photos of the enrolled people), with a row where 9% of
the gallery was removed (tombstones). Results and choices are written up in docs/index.md.

Real descriptors are cached in bench/results/ (gitignored); the first run computes them with
dlib directly (HOG detector, upsample 1; 5-point landmarks; ResNet descriptor) at ~0.1 s a photo.
Built HNSW graphs are cached in bench/results/graphs/ so reruns can sweep query-time settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.adapters.index import PersistentIndex, open_index
from faceledger.config import IndexSettings

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LFW = REPO.parent / "shared" / "faces" / "lfw"
CACHE = RESULTS / "lfw_dlib_descriptors.npz"
GRAPHS = RESULTS / "graphs"
MAX_PER_PERSON = 3

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- real descriptors
def _chosen_photos(lfw: Path) -> list[tuple[str, Path]]:
    """Up to three photos of every DevTrain person with at least two (mates for the probes)."""
    lines = (lfw / "peopleDevTrain.txt").read_text(encoding="utf-8").splitlines()[1:]
    chosen: list[tuple[str, Path]] = []
    for line in lines:
        name, count = line.split("\t")
        if int(count) < 2:
            continue
        for number in range(1, min(int(count), MAX_PER_PERSON) + 1):
            chosen.append((name, lfw / "images" / name / f"{name}_{number:04d}.jpg"))
    return chosen


def _compute_descriptors(lfw: Path) -> tuple[list[str], F32]:
    import dlib
    import face_recognition_models as frm
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    names: list[str] = []
    vectors: list[F32] = []
    photos = _chosen_photos(lfw)
    started = time.perf_counter()
    for i, (name, path) in enumerate(photos):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        rects = detector(pixels, 1)
        if not rects:
            continue
        centre = np.array(pixels.shape[1::-1]) / 2
        rect = min(rects, key=lambda r: float(np.hypot(*(np.array([r.center().x, r.center().y]) - centre))))
        descriptor = np.asarray(net.compute_face_descriptor(pixels, shapes(pixels, rect)), dtype=np.float32)
        names.append(name)
        vectors.append(descriptor / np.linalg.norm(descriptor))
        if (i + 1) % 250 == 0:
            rate = (i + 1) / (time.perf_counter() - started)
            print(f"  {i + 1}/{len(photos)} photos, {rate:.1f}/s", file=sys.stderr)
    return names, np.stack(vectors)


def real_descriptors(lfw: Path = LFW) -> tuple[list[str], F32]:
    """Person names and unit descriptors of the chosen LFW photos (cached)."""
    if CACHE.is_file():
        with np.load(CACHE, allow_pickle=False) as data:
            return [str(n) for n in data["names"]], data["vectors"].astype(np.float32)
    if not (lfw / "images").is_dir():
        raise SystemExit(f"LFW photos not found at {lfw} (needed once to compute the real descriptors)")
    print(f"computing dlib descriptors of LFW photos in {lfw} (cached in {CACHE}) ...", file=sys.stderr)
    names, vectors = _compute_descriptors(lfw)
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, names=np.array(names), vectors=vectors)
    return names, vectors


# --------------------------------------------------------------------------- galleries
@dataclass(frozen=True)
class Faces:
    """Real descriptors split into an enrolled photo per person and probes of the same people."""

    gallery: F32
    probes: F32
    mate: I64  # row of ``gallery`` holding each probe's person


def split(names: list[str], vectors: F32) -> Faces:
    first: dict[str, int] = {}
    gallery_rows: list[int] = []
    probe_rows: list[int] = []
    for row, name in enumerate(names):
        if name not in first:
            first[name] = len(gallery_rows)
            gallery_rows.append(row)
        else:
            probe_rows.append(row)
    mate = np.array([first[names[row]] for row in probe_rows], dtype=np.int64)
    return Faces(vectors[gallery_rows], vectors[probe_rows], mate)


@dataclass(frozen=True)
class Generator:
    """A Gaussian fitted to real descriptors; samples are L2-normalised like real ones."""

    mean: npt.NDArray[np.float64]
    chol: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, vectors: F32) -> Generator:
        cov = np.cov(vectors.astype(np.float64), rowvar=False)
        chol = np.linalg.cholesky(cov).astype(np.float64)
        return cls(vectors.mean(axis=0).astype(np.float64), chol)

    def sample(self, n: int, rng: np.random.Generator) -> F32:
        out = np.empty((n, len(self.mean)), dtype=np.float32)
        for start in range(0, n, 100_000):
            stop = min(n, start + 100_000)
            raw = self.mean + rng.standard_normal((stop - start, len(self.mean))) @ self.chol.T
            out[start:stop] = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        return out


def _summary(scores: npt.NDArray[np.floating[Any]]) -> dict[str, float]:
    q = np.quantile(scores, [0.01, 0.5, 0.99, 0.9999])
    return {
        "n": float(len(scores)),
        "mean": float(scores.mean()),
        "sd": float(scores.std()),
        "p1": float(q[0]),
        "p50": float(q[1]),
        "p99": float(q[2]),
        "p99.99": float(q[3]),
        "max": float(scores.max()),
    }


def score_check(faces: Faces, generator: Generator, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Cosine score distributions: real genuine / real impostor against generated distractors."""
    real = faces.probes @ faces.gallery.T
    own = np.zeros(real.shape, dtype=bool)
    own[np.arange(len(faces.probes)), faces.mate] = True
    fake = generator.sample(20_000, rng)
    fake_vs_probe = (faces.probes @ fake.T).ravel()
    fake_vs_fake = fake[:2000] @ fake[2000:4000].T
    rows = {
        "real genuine (probe vs own enrolled photo)": _summary(real[own]),
        "real impostor (probe vs other people)": _summary(real[~own]),
        "generated vs real probes": _summary(fake_vs_probe),
        "generated vs generated": _summary(fake_vs_fake.ravel()),
    }
    print("\ncosine score distributions (real dlib descriptors vs generated distractors)")
    print(f"{'':44} {'n':>9} {'mean':>6} {'sd':>6} {'p1':>6} {'p50':>6} {'p99':>6} {'p99.99':>6} {'max':>6}")
    for label, s in rows.items():
        cells = " ".join(f"{s[c]:6.3f}" for c in ("mean", "sd", "p1", "p50", "p99", "p99.99", "max"))
        print(f"{label:44} {int(s['n']):9d} {cells}")
    return rows


# --------------------------------------------------------------------------- measurement
def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed_queries(index: PersistentIndex, queries: F32, k: int) -> tuple[npt.NDArray[np.float64], I64]:
    """One probe at a time, as a search request arrives: (wall, CPU) seconds per query, ids found.

    CPU time of the searching thread is reported beside wall time because this machine's cores
    are shared: wall time includes waiting for a core, CPU time is the work the search did.
    """
    seconds = np.empty((len(queries), 2))
    found = np.empty((len(queries), k), dtype=np.int64)
    for i in range(len(queries)):
        started, cpu = time.perf_counter(), time.thread_time()
        _, ids = index.search(queries[i : i + 1], k)
        seconds[i] = (time.perf_counter() - started, time.thread_time() - cpu)
        found[i] = ids[0]
    return seconds, found


def recall_at(found: I64, truth: I64, k: int) -> float:
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def mate_recall_at(found: I64, truth: I64, mates: I64, k: int) -> float:
    """Of the probes whose mate exact search ranks in the top k, the share HNSW also ranks there."""
    in_truth = (truth[:, :k] == mates[:, None]).any(axis=1)
    in_found = (found[:, :k] == mates[:, None]).any(axis=1)
    return float(in_found[in_truth].mean()) if in_truth.any() else float("nan")


def _latency(seconds: npt.NDArray[np.float64]) -> dict[str, float]:
    wall, cpu = seconds[:, 0] * 1e3, seconds[:, 1] * 1e3
    return {
        "p50_ms": float(np.median(wall)),
        "p95_ms": float(np.quantile(wall, 0.95)),
        "cpu_p50_ms": float(np.median(cpu)),
        "cpu_p95_ms": float(np.quantile(cpu, 0.95)),
    }


@dataclass
class Args:
    sizes: list[int]
    efs: list[int]
    m: int
    ef_construction: int
    exact_queries: int
    tombstones: float
    seed: int
    save: bool
    build_threads: int
    reuse: bool


def _build(
    settings: IndexSettings, ids: I64, vectors: F32, where: Path, threads: int | None = None
) -> tuple[PersistentIndex, dict[str, float]]:
    index = PersistentIndex(where, dim=vectors.shape[1], settings=settings)
    index.build_threads = threads
    before = rss_bytes()
    started = time.perf_counter()
    index.add(ids, vectors)
    build_s = time.perf_counter() - started
    n = len(ids)
    return index, {
        "build_s": build_s,
        "bytes_per_face": index.memory_bytes() / n,
        "rss_per_face": (rss_bytes() - before) / n,
    }


def gallery_of(n: int, faces: Faces, generator: Generator, rng: np.random.Generator) -> tuple[F32, I64]:
    """``n`` vectors (the real enrolled ones among distractors, shuffled) and the probes' mate ids."""
    real = len(faces.gallery)
    if n < real:
        raise SystemExit(f"size {n} is below the {real} real enrolled faces")
    vectors = np.concatenate([faces.gallery, generator.sample(n - real, rng)])
    order = rng.permutation(n)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    return vectors[order], position[faces.mate]


def run_size(n: int, faces: Faces, generator: Generator, args: Args, workdir: Path) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed + n)
    vectors, mates = gallery_of(n, faces, generator, rng)
    ids = np.arange(n, dtype=np.int64)
    probes = faces.probes
    print(f"\n== {n:,} faces ({len(faces.gallery)} real enrolled, {len(probes)} real probes) ==", flush=True)

    exact, exact_cost = _build(IndexSettings(exact_max=n), ids, vectors, workdir / "exact")
    exact.search_threads = None  # ground truth in one batch, all cores
    _, truth = exact.search(probes, 200)
    exact.search_threads = 1
    seconds, _ = timed_queries(exact, probes[: args.exact_queries], 50)
    exact_row = {"size": n, "index": "exact", **exact_cost, **_latency(seconds)}
    exact_row.update(recall1=1.0, recall10=1.0, recall50=1.0, mate_recall50=1.0, speedup=1.0)
    rank1 = float((truth[:, 0] == mates).mean())
    print(f"exact: built in {exact_cost['build_s']:.2f} s; rank-1 identification of real probes {rank1:.3f}")
    rows = [exact_row]

    settings = IndexSettings(
        exact_max=0, hnsw_m=args.m, hnsw_ef_construction=args.ef_construction, hnsw_ef_search=args.efs[0]
    )
    hnsw, hnsw_cost = _cached_hnsw(settings, ids, vectors, args)
    print(f"hnsw M={args.m} efConstruction={args.ef_construction}: built in {hnsw_cost['build_s']:.1f} s")
    for ef in args.efs:
        hnsw.ef_search = ef
        seconds, found = timed_queries(hnsw, probes, 50)
        row: dict[str, Any] = {"size": n, "index": f"hnsw ef={ef}", **hnsw_cost, **_latency(seconds)}
        row.update(
            recall1=recall_at(found, truth, 1),
            recall10=recall_at(found, truth, 10),
            recall50=recall_at(found, truth, 50),
            mate_recall50=mate_recall_at(found, truth, mates, 50),
            speedup=exact_row["cpu_p50_ms"] / row["cpu_p50_ms"],
        )
        rows.append(row)
    if args.tombstones > 0:
        rows.append(_with_tombstones(hnsw, truth, mates, probes, args, rng, exact_row))
    if args.save:
        rows[-1].update(_save_and_load(hnsw, workdir / "saved", settings))
    return rows


def _cached_hnsw(
    settings: IndexSettings, ids: I64, vectors: F32, args: Args
) -> tuple[PersistentIndex, dict[str, float]]:
    """Build the graph, or reopen the one an earlier run built over the very same vectors.

    Builds take most of a run at 1M; caching them lets a rerun sweep query-time settings.
    """
    where = GRAPHS / f"hnsw-n{len(ids)}-m{args.m}-efc{args.ef_construction}-seed{args.seed}"
    digest = hashlib.sha256(vectors.tobytes()).hexdigest()
    record = where / "build.json"
    if args.reuse and record.is_file():
        cost = json.loads(record.read_text())
        if cost.pop("vectors_sha256", None) == digest:
            index = open_index(where, dim=vectors.shape[1], settings=settings)
            print(f"(reusing the graph built by an earlier run in {where})")
            return index, cost
    shutil.rmtree(where, ignore_errors=True)
    index, cost = _build(settings, ids, vectors, where, args.build_threads)
    index.save()
    record.write_text(json.dumps({**cost, "vectors_sha256": digest}))
    return index, cost


def _with_tombstones(
    hnsw: PersistentIndex,
    truth: I64,
    mates: I64,
    probes: F32,
    args: Args,
    rng: np.random.Generator,
    exact_row: dict[str, Any],
) -> dict[str, Any]:
    """Recall while a share of the graph is zeroed tombstones (just below the rebuild threshold)."""
    n = len(hnsw)
    keep = set(mates.tolist())
    candidates = np.array([i for i in rng.permutation(n)[: int(n * args.tombstones * 1.2)] if i not in keep])
    removed = candidates[: int(n * args.tombstones)]
    hnsw.max_tombstone_fraction = 1.0
    hnsw.ef_search = args.efs[min(1, len(args.efs) - 1)]
    hnsw.remove(removed)
    gone = np.isin(truth, removed)
    filtered = np.array([row[~mask][:50] for row, mask in zip(truth, gone, strict=True)])
    seconds, found = timed_queries(hnsw, probes, 50)
    label = f"hnsw ef={hnsw.ef_search}, {args.tombstones:.0%} removed"
    row: dict[str, Any] = {"size": n, "index": label, **_latency(seconds)}
    row.update(
        build_s=float("nan"),
        bytes_per_face=hnsw.memory_bytes() / n,
        rss_per_face=float("nan"),
        recall1=recall_at(found, filtered, 1),
        recall10=recall_at(found, filtered, 10),
        recall50=recall_at(found, filtered, 50),
        mate_recall50=mate_recall_at(found, filtered, mates, 50),
        speedup=exact_row["cpu_p50_ms"] / row["cpu_p50_ms"],
    )
    return row


def _save_and_load(index: PersistentIndex, where: Path, settings: IndexSettings) -> dict[str, float]:
    started = time.perf_counter()
    index.save(where)
    save_s = time.perf_counter() - started
    size = sum(p.stat().st_size for p in where.iterdir())
    started = time.perf_counter()
    reopened = open_index(where, dim=index.dim, settings=settings)
    open_s = time.perf_counter() - started
    assert len(reopened) == len(index)
    print(f"saved in {save_s:.1f} s ({size / 1e6:.0f} MB), reopened and verified in {open_s:.1f} s")
    shutil.rmtree(where)
    return {"save_s": save_s, "open_s": open_s, "file_bytes_per_face": size / len(index)}


def exact_sweep(sizes: list[int], faces: Faces, generator: Generator, queries: int) -> list[dict[str, float]]:
    """Single-thread exact latency at sizes around the exact/HNSW switch (cheap: no graph)."""
    rows = []
    rng = np.random.default_rng(7)
    for n in sizes:
        vectors, _ = gallery_of(n, faces, generator, rng)
        index = PersistentIndex(RESULTS / "unused", dim=vectors.shape[1], settings=IndexSettings(exact_max=n))
        index.add(np.arange(n, dtype=np.int64), vectors)
        seconds, _ = timed_queries(index, faces.probes[:queries], 50)
        rows.append({"size": n, **_latency(seconds)})
    print("\nexact search, one probe at a time, one thread (top 50)")
    print(f"{'faces':>10} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8} {'CPU p95':>8}")
    for row in rows:
        cells = " ".join(f"{row[c]:8.2f}" for c in ("p50_ms", "p95_ms", "cpu_p50_ms", "cpu_p95_ms"))
        print(f"{int(row['size']):>10,} {cells}")
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\nindex search at each gallery size (latency: one probe at a time, one thread, top 50)")
    head = (
        f"{'faces':>10} {'index':<26} {'build s':>8} {'B/face':>7} {'RSS/face':>8} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'CPU p50':>7} {'x exact':>7} {'R@1':>6} {'R@10':>6} {'R@50':>6} {'mate@50':>7}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['size']:>10,} {r['index']:<26} {r['build_s']:8.1f} {r['bytes_per_face']:7.0f} "
            f"{r['rss_per_face']:8.0f} {r['p50_ms']:7.3f} {r['p95_ms']:7.3f} {r['cpu_p50_ms']:7.3f} "
            f"{r['speedup']:7.1f} "
            f"{r['recall1']:6.4f} {r['recall10']:6.4f} {r['recall50']:6.4f} {r['mate_recall50']:7.4f}"
        )
    print("p50/p95: wall ms; CPU p50: the searching thread's CPU ms; x exact: exact CPU p50 / this CPU p50")
    print("R@k: share of exact search's top k that HNSW returns in its top k, over the real probes;")
    print("mate@50: of the probes whose enrolled mate exact search ranks in the top 50, the share HNSW does")


def _ints(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part]


def parse(argv: list[str] | None = None) -> tuple[Args, bool, list[int]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=_ints, default=[10_000, 100_000, 1_000_000], help="e.g. 10000,1e5,1e6"
    )
    parser.add_argument("--ef", type=_ints, default=[256, 512, 1024, 1536], help="efSearch values")
    parser.add_argument("--m", type=int, default=32, help="HNSW M (links per node)")
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--exact-queries", type=int, default=200, help="probes timed on exact search")
    parser.add_argument("--tombstones", type=float, default=0.09, help="share removed in the tombstone row")
    parser.add_argument("--exact-sweep", type=_ints, default=[10_000, 25_000, 50_000, 100_000, 200_000])
    parser.add_argument("--no-save", action="store_true", help="skip timing save + reopen")
    parser.add_argument("--build-threads", type=int, default=1, help="OpenMP threads for HNSW builds")
    parser.add_argument("--rebuild", action="store_true", help="ignore HNSW graphs cached by earlier runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embed-only", action="store_true", help="only compute/cache the real descriptors")
    a = parser.parse_args(argv)
    args = Args(
        a.sizes,
        a.ef,
        a.m,
        a.ef_construction,
        a.exact_queries,
        a.tombstones,
        a.seed,
        not a.no_save,
        a.build_threads,
        not a.rebuild,
    )
    return args, a.embed_only, a.exact_sweep


def main(argv: list[str] | None = None) -> None:
    args, embed_only, sweep = parse(argv)
    names, vectors = real_descriptors()
    print(f"{len(names)} real dlib descriptors of {len(set(names))} people ({CACHE.name})")
    if embed_only:
        return
    faces = split(names, vectors)
    generator = Generator.fit(vectors)
    import faiss

    threads = f"build threads: {args.build_threads}, search: 1 thread"
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, {threads}")
    scores = score_check(faces, generator, np.random.default_rng(args.seed))
    sweep_rows = exact_sweep(sweep, faces, generator, args.exact_queries) if sweep else []
    rows: list[dict[str, Any]] = []
    workdir = RESULTS / "index-work"
    for n in args.sizes:
        rows.extend(run_size(n, faces, generator, args, workdir))
        print_table(rows)
    shutil.rmtree(workdir, ignore_errors=True)
    out = RESULTS / f"index_search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps({"argv": sys.argv, "scores": scores, "exact_sweep": sweep_rows, "rows": rows}, indent=1)
    )
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
